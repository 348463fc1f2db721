"""pytest plugin (opt-in: ``-p harness.pytest_plugin`` or ``pytest_plugins = ["harness.pytest_plugin"]``):
scenario files as tests, and fixtures for your own timer regression tests.

* ``pytest scenarios/`` collects every ``*.yaml`` in a directory named ``scenarios`` (or below one) as a
  scenario: one test item per profile, named ``<scenario>[<profile>]`` (plus ``-<backend>``
  when several backends are chosen); a failure is one sentence of measured vs expected.
* ``run_fault(fault, profile=None, **params) -> Outcome`` injects a fault and measures it: on a
  lab shared by the session when the profile is the session's (``--profile``), reset between
  tests (every fault undoes itself; an unhealthy lab is replaced), else on a fresh lab. A fault
  the timer model refuses for the profile (no DPD for a crash) fails the test before any lab.
* ``failover_lab``: that shared lab, for tests that look at it directly.

Options: --lab-backend (repeatable), --profile, --policy, --time-scale, --results-dir, --keep-lab;
--lab-inventory FILE and --lab-insecure-host-keys for --lab-backend ssh (the user's own hosts),
which needs --lab-inventory (and --lab-inventory needs it).
Labs of parallel workers (pytest -n N) get their own names, subnets and compose projects.

Owns: pytest integration. Not: running anything (harness.scenario, harness.measure).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import charon, faults, lab, measure, policy, report, result, sa, scenario, timers
from harness.backends import AUTO, BACKENDS, SSH, backend, can_delay_links
from harness.errors import LabError, UsageError
from harness.topology import BACKENDS as BACKEND_NODES

RunFault = Callable[..., measure.Outcome]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("failover-lab")
    group.addoption(
        "--lab-backend",
        action="append",
        choices=[AUTO, *BACKENDS, SSH],
        help="backend of the labs (repeatable; default: auto, never ssh; the lab tests: every backend that can run; "
        "ssh: with --lab-inventory)",
    )
    group.addoption(
        "--lab-inventory",
        type=Path,
        help="--lab-backend ssh: your hosts, as an inventory file (see inventories/); overrides a scenario's own",
    )
    group.addoption(
        "--lab-insecure-host-keys",
        action="store_true",
        help="ssh: accept hosts missing from known_hosts (each unknown key is printed)",
    )
    group.addoption(
        "--profile", default="fast", help=f"profile of run_fault and the shared lab: {', '.join(timers.PROFILES)}"
    )
    group.addoption(
        "--time-scale",
        type=time_scale_option,
        default="1",
        help="multiply every timer of --profile: a number in (0, 1] or a fraction like 1/30 (default 1)",
    )
    group.addoption(
        "--policy", default=policy.DEFAULT, help=f"policy of run_fault and the shared lab: {', '.join(policy.POLICIES)}"
    )
    group.addoption("--results-dir", type=Path, help="write every measured run here (JSON, report.md, plots)")
    group.addoption("--keep-lab", action="store_true", help="leave the shared lab running after the session")


def time_scale_option(text: str) -> float:
    """--time-scale, checked when pytest parses its options: a bad value is pytest's usage error
    `argument --time-scale: <timers.parse_scale's message>`, before any test runs."""
    try:
        return timers.parse_scale(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def backends(config: pytest.Config) -> list[str]:
    chosen: list[str] | None = config.getoption("--lab-backend")
    return chosen or [AUTO]


def pytest_configure(config: pytest.Config) -> None:
    """--lab-backend ssh and --lab-inventory each need the other, and the inventory must be one a
    lab can run on: else one usage error before any test."""
    inventory: Path | None = config.getoption("--lab-inventory")
    ssh = SSH in backends(config)
    if ssh and inventory is None:
        raise pytest.UsageError(
            "--lab-backend ssh needs --lab-inventory FILE: your hosts (see inventories/example.yaml)"
        )
    if inventory is None:
        return
    if not ssh:
        raise pytest.UsageError(
            "--lab-inventory is for --lab-backend ssh: add --lab-backend ssh or drop --lab-inventory"
        )
    try:
        backend(SSH, inventory, bool(config.getoption("--lab-insecure-host-keys")))
    except UsageError as error:
        raise pytest.UsageError(str(error)) from None


def ssh_arguments(config: pytest.Config, backend_name: str) -> dict[str, Any]:
    """lab.running's arguments for the user's hosts: --lab-inventory and --lab-insecure-host-keys
    on ssh, none elsewhere."""
    if backend_name != SSH:
        return {}
    return {"inventory": _inventory(config), "insecure_host_keys": bool(config.getoption("--lab-insecure-host-keys"))}


def _inventory(config: pytest.Config) -> Path:
    """--lab-inventory as an absolute path (recorded with the lab, read from anywhere)."""
    return Path(os.path.abspath(config.getoption("--lab-inventory")))


def scenario_overrides(config: pytest.Config, backend_name: str | None) -> dict[str, Any]:
    """What the options change in a scenario run on ``backend_name`` (None: on the file's own
    choice): --lab-backend, on ssh --lab-inventory; --lab-insecure-host-keys when given."""
    settings: dict[str, Any] = {} if backend_name is None else {"backend": backend_name}
    if backend_name == SSH:
        settings["inventory"] = str(_inventory(config))
    if config.getoption("--lab-insecure-host-keys"):
        settings["insecure_host_keys"] = True
    return settings


JUNIT_PROPERTIES = (
    "fault",
    "profile",
    "backend",
    "datapath",
    "strongswan_version",
    "outage_s",
    "predicted_lo_s",
    "predicted_hi_s",
    "within_prediction",
    "ike_sas_with_vip",
)
"""What every run of an item records as a JUnit property (``--junitxml``), in this order."""


def junit_properties(outcomes: list[measure.Outcome]) -> list[tuple[str, object]]:
    """Each run's JUNIT_PROPERTIES as (name, value), from its JSON result; names get the run's
    number (``run2.outage_s``) when an item measured more than one."""
    properties: list[tuple[str, object]] = []
    for number, outcome in enumerate(outcomes, 1):
        record = result.to_json(outcome)
        values = dict(record, predicted_lo_s=record["predicted"]["lo_s"], predicted_hi_s=record["predicted"]["hi_s"])
        prefix = f"run{number}." if len(outcomes) > 1 else ""
        properties += [(f"{prefix}{name}", values[name]) for name in JUNIT_PROPERTIES]
    return properties


def _save(config: pytest.Config, name: str, outcomes: list[measure.Outcome]) -> None:
    directory: Path | None = config.getoption("--results-dir")
    if directory is not None and outcomes:
        folder = directory / re.sub(r"[^\w.-]+", "_", name)
        report.write_folder([result.to_json(o) for o in outcomes], folder, [o.evidence for o in outcomes])


def _keeps_evidence(config: pytest.Config) -> bool:
    """Runs keep their capture, charon logs and configuration when there is a folder for them."""
    return config.getoption("--results-dir") is not None


NO_NETEM = "link_delay needs netem, which this host's kernel lacks for"


class ScenarioFailed(Exception):
    """Expectations of a scenario not met: one sentence each."""


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml") and "scenarios" in file_path.parent.parts:
        collector: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return collector
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        explicit: list[str] | None = self.config.getoption("--lab-backend")
        try:
            loaded = scenario.load(self.path)
            chosen = explicit or [loaded.model.backend or AUTO]  # --lab-backend overrides the file's backend
            runs_on = {
                name: scenario.override(loaded, scenario_overrides(self.config, name if explicit else None))
                for name in chosen
            }
        except UsageError as error:
            raise self.CollectError(str(error)) from None
        for profile in loaded.profiles:
            for backend_name in chosen:
                suffix = f"-{backend_name}" if len(chosen) > 1 else ""
                name = f"{loaded.name}[{profile.name}{suffix}]"
                item = ScenarioItem.from_parent(
                    self, name=name, loaded=runs_on[backend_name], profile=profile, backend_name=backend_name
                )
                if loaded.params.link_delay > 0 and not can_delay_links(backend_name):
                    item.add_marker(
                        pytest.mark.skip(reason=f"{NO_NETEM} {backend_name}: run it with --lab-backend uml")
                    )
                try:
                    faults.refuse_what_the_backend_cannot_inject(loaded.model.fault.kind, loaded.params, backend_name)
                except UsageError as refused:
                    item.add_marker(pytest.mark.skip(reason=str(refused)))
                yield item


class ScenarioItem(pytest.Item):
    def __init__(self, *, loaded: scenario.Scenario, profile: timers.Profile, backend_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded = loaded
        self.profile = profile
        self.backend_name = backend_name

    def runtest(self) -> None:
        keep = _keeps_evidence(self.config)
        outcomes = scenario.run(
            self.loaded,
            self.profile,
            self.backend_name,
            lambda running, fault, params: measure.run(running, fault, params, keep_evidence=keep),
        )
        self.user_properties += junit_properties(outcomes)
        _save(self.config, self.name, outcomes)
        problems = scenario.judge_all(self.loaded, outcomes)
        if problems:
            raise ScenarioFailed("\n".join(problems))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed | LabError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.name}: {self.loaded.model.fault.kind}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A lab that failed under a test (a node gone, charon killed, a command that overran) is
    reported as the harness's one sentence, not as a traceback through the harness; ``--tb``
    other than the default (e.g. ``--tb=long``) shows the traceback for debugging."""
    report: pytest.TestReport = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, LabError) and report.failed and item.config.getoption("tbstyle") == "auto":
        report.longrepr = f"{item.nodeid}: {error}"
    return report


def _session_profile(config: pytest.Config) -> timers.Profile:
    scale: float = config.getoption("--time-scale")
    try:
        return timers.profile(config.getoption("--profile")).scaled(scale)
    except UsageError as error:
        raise pytest.UsageError(str(error)) from None


def _healthy(running: lab.Lab) -> bool:
    """fe has an installed CHILD_SA, every back-end's charon answers and one of them owns the VIP."""
    try:
        children = sa.installed_children(charon.sas(running.fe))
        charons = all(charon.running(running.nodes[n]) for n in BACKEND_NODES)
        return bool(children) and charons and running.vip_owner() is not None
    except LabError:
        return False


@pytest.fixture(scope="session")
def _lab_pool(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The shared lab (created on first use) and how to replace it."""
    pool: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        profile = _session_profile(request.config)
        backend_name = backends(request.config)[0]
        policy_name = policy.policy(request.config.getoption("--policy")).name
        keep = bool(request.config.getoption("--keep-lab"))

        def fresh() -> lab.Lab:
            if "stack" in pool:
                pool.pop("stack").close()
            inner = contextlib.ExitStack()
            running: lab.Lab = inner.enter_context(
                lab.running(profile, backend_name, policy_name=policy_name, **pool["ssh"])
            )
            pool["lab"], pool["stack"] = running, inner
            return running

        def close() -> None:
            if "stack" in pool and not keep:  # kept: `failover-lab status` shows it, `clean` removes it
                pool["stack"].close()

        pool["fresh"] = fresh
        pool["profile"] = profile
        pool["backend"] = backend_name
        pool["ssh"] = ssh_arguments(request.config, backend_name)
        pool["policy"] = policy_name
        stack.callback(close)
        yield pool


@pytest.fixture
def failover_lab(_lab_pool: dict[str, Any]) -> lab.Lab:
    """The session's shared lab (profile --profile), healthy at the start of every test."""
    current: lab.Lab | None = _lab_pool.get("lab")
    if current is None or not _healthy(current):
        current = _lab_pool["fresh"]()
    return current


def _check_fault(fault: str, profile: timers.Profile, params: timers.FaultParams) -> None:
    """A known fault that the timer model accepts for ``profile``: refused before a lab is built."""
    faults.fault(fault)
    try:
        timers.check(profile, fault, params)
    except UsageError as error:
        raise UsageError(f"run_fault({fault!r}) with profile {profile.name}: {error}") from None


@pytest.fixture
def run_fault(request: pytest.FixtureRequest, _lab_pool: dict[str, Any]) -> Iterator[RunFault]:
    """``run_fault("crash", profile=None, policy=None, cluster_delay=1.0, freeze=3.0)`` -> Outcome."""
    outcomes: list[measure.Outcome] = []
    keep = _keeps_evidence(request.config)

    def run(
        fault: str, profile: str | timers.Profile | None = None, policy: str | None = None, **params: float
    ) -> measure.Outcome:
        chosen = _lab_pool["profile"] if profile is None else profile
        chosen = timers.profile(chosen) if isinstance(chosen, str) else chosen
        design = _lab_pool["policy"] if policy is None else policy
        fault_params = timers.FaultParams(**params).scaled(chosen.time_scale)
        _check_fault(fault, chosen, fault_params)
        if chosen == _lab_pool["profile"] and design == _lab_pool["policy"]:
            outcome = measure.run(request.getfixturevalue("failover_lab"), fault, fault_params, keep_evidence=keep)
        else:
            with lab.running(chosen, _lab_pool["backend"], policy_name=design, **_lab_pool["ssh"]) as running:
                outcome = measure.run(running, fault, fault_params, keep_evidence=keep)
        outcomes.append(outcome)
        return outcome

    yield run
    request.node.user_properties += junit_properties(outcomes)
    _save(request.config, request.node.name, outcomes)

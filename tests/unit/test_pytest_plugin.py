"""The pytest plugin's checks that come before any lab: a bad --time-scale is pytest's usage
error, and run_fault refuses a profile the timer model refuses before it builds a lab; the ssh
backend's options go together, and reach every lab (scenarios, run_fault's shared one)."""

import argparse
from pathlib import Path

import pytest

from harness import lab, pytest_plugin
from harness.errors import UsageError

from .hosts import write_inventory
from .outcomes import synthetic_outcome


def test_the_time_scale_option_parses_like_the_cli() -> None:
    assert pytest_plugin.time_scale_option("1/30") == pytest.approx(1 / 30)
    for bad in ("2", "1/0"):
        with pytest.raises(argparse.ArgumentTypeError) as error:
            pytest_plugin.time_scale_option(bad)
        assert str(error.value) == f"must be a number in (0, 1] or a fraction like 1/30, got {bad!r}"


@pytest.mark.parametrize("bad", ["2", "1/0"])
def test_a_bad_time_scale_stops_the_session_with_one_line(pytester: pytest.Pytester, bad: str) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    run = pytester.runpytest_inprocess("-p", "harness.pytest_plugin", "--time-scale", bad)
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    expected = f"error: argument --time-scale: must be a number in (0, 1] or a fraction like 1/30, got '{bad}'"
    assert any(line.endswith(expected) for line in run.errlines), run.errlines


def test_run_fault_refuses_what_the_model_refuses_before_a_lab_exists(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lab(*args: object, **kwargs: object) -> None:
        raise AssertionError("a lab was about to be built")

    monkeypatch.setattr(lab, "running", no_lab)
    pytester.makepyfile(
        test_user="""
from harness.timers import Profile

def test_no_dpd(run_fault):
    run_fault("link-cut", profile=Profile("nodpd", "", dpd_delay=0))

def test_unknown_fault(run_fault):
    run_fault("crsh")
"""
    )
    run = pytester.runpytest_inprocess("-p", "harness.pytest_plugin")
    run.assert_outcomes(failed=2)
    run.stdout.fnmatch_lines(
        [
            "test_user.py::test_no_dpd: run_fault('link-cut') with profile nodpd: "
            "dpd_delay 0 never detects a crash; set dpd_delay >= 1",
            "test_user.py::test_unknown_fault: unknown fault 'crsh': choose one of graceful, *",
        ]
    )
    assert "a lab was about to be built" not in run.stdout.str()


def test_a_lab_failure_under_a_test_is_one_sentence(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
from harness.errors import NodeLost

def test_lab_breaks():
    raise NodeLost("be2", "the agent closed the connection")
"""
    )
    run = pytester.runpytest_inprocess("-p", "harness.pytest_plugin")
    run.assert_outcomes(failed=1)
    output = run.stdout.str()
    assert "test_user.py::test_lab_breaks: be2: the node is gone (the agent closed the connection)" in output
    assert "Traceback" not in output and "raise NodeLost" not in output
    debugging = pytester.runpytest_inprocess("-p", "harness.pytest_plugin", "--tb=long")
    assert "raise NodeLost" in debugging.stdout.str()  # the traceback, when asked for


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (
            ["--lab-backend", "ssh"],
            "--lab-backend ssh needs --lab-inventory FILE: your hosts (see inventories/example.yaml)",
        ),
        (
            ["--lab-backend", "netns", "--lab-backend", "ssh", "--lab-insecure-host-keys"],
            "--lab-backend ssh needs --lab-inventory FILE: your hosts (see inventories/example.yaml)",
        ),
        (
            ["--lab-inventory", "hosts.yaml"],
            "--lab-inventory is for --lab-backend ssh: add --lab-backend ssh or drop --lab-inventory",
        ),
        (
            ["--lab-backend", "netns", "--lab-inventory", "hosts.yaml"],
            "--lab-inventory is for --lab-backend ssh: add --lab-backend ssh or drop --lab-inventory",
        ),
        (
            ["--lab-backend", "ssh", "--lab-inventory", "no-such-hosts.yaml"],
            "no-such-hosts.yaml: cannot read it: No such file or directory",
        ),
    ],
)
def test_the_ssh_options_go_together_or_stop_the_session_with_one_line(
    pytester: pytest.Pytester, options: list[str], line: str
) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    run = pytester.runpytest_inprocess("-p", "harness.pytest_plugin", *options)
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert [error for error in run.errlines if error.strip()] == [f"ERROR: {line}"]


SCENARIO = "profiles: [fast]\nfault: {kind: crash}\n"


class LabsAsked:
    """lab.running without a lab: what it was asked for, then a failure of the test."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Path | None, bool]] = []

    def __call__(
        self,
        profile: object,
        backend_name: str,
        keep: bool = False,
        policy_name: str = "",
        inventory: Path | None = None,
        insecure_host_keys: bool = False,
    ) -> None:
        self.asked.append((backend_name, inventory, insecure_host_keys))
        raise UsageError("no lab in unit tests")


@pytest.fixture
def labs_asked(monkeypatch: pytest.MonkeyPatch) -> LabsAsked:
    asked = LabsAsked()
    monkeypatch.setattr(lab, "running", asked)
    return asked


def test_scenarios_and_run_fault_build_their_labs_on_the_hosts_of_lab_inventory(
    pytester: pytest.Pytester, labs_asked: LabsAsked
) -> None:
    hosts = write_inventory(pytester.path / "hosts.yaml")
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "crash.yaml").write_text(SCENARIO + "backend: netns\n")
    pytester.makepyfile(test_user="def test_a_crash(run_fault):\n    run_fault('crash')\n")
    options = ["--lab-backend", "ssh", "--lab-inventory", "hosts.yaml", "--lab-insecure-host-keys"]
    run = pytester.runpytest_inprocess("-p", "harness.pytest_plugin", *options)
    run.assert_outcomes(failed=2)
    assert labs_asked.asked == [("ssh", hosts, True), ("ssh", hosts, True)]


def test_a_scenario_s_own_ssh_backend_and_inventory_are_used_and_lab_backend_overrides_them(
    pytester: pytest.Pytester, labs_asked: LabsAsked
) -> None:
    hosts = write_inventory(pytester.path / "lab" / "hosts.yaml")
    (pytester.path / "lab" / "scenarios").mkdir()
    (pytester.path / "lab" / "scenarios" / "crash.yaml").write_text(
        SCENARIO + "backend: ssh\ninventory: ../hosts.yaml\n"
    )
    pytester.runpytest_inprocess("-p", "harness.pytest_plugin", "lab").assert_outcomes(failed=1)
    pytester.runpytest_inprocess("-p", "harness.pytest_plugin", "lab", "--lab-insecure-host-keys")
    pytester.runpytest_inprocess("-p", "harness.pytest_plugin", "lab", "--lab-backend", "netns")
    assert labs_asked.asked == [("ssh", hosts, False), ("ssh", hosts, True), ("netns", None, False)]


def test_link_delays_run_where_a_kernel_has_netem() -> None:
    """uml's VMs have netem; a user's hosts say so when asked; netns and docker run on this host's
    kernel, and a scenario with a link delay is skipped there when it lacks it."""
    from harness.backends import can_delay_links, host_has_netem

    assert can_delay_links("uml") and can_delay_links("ssh")
    assert can_delay_links("netns") == can_delay_links("docker") == host_has_netem()


def test_a_firewall_in_front_of_fe_runs_only_on_the_lab_s_own_vms() -> None:
    """Raw ESP, which a firewall cannot track (firewall_idle), only on uml: libipsec always puts ESP
    in UDP, and a user's fe is not the harness's to firewall."""
    from harness.backends import can_firewall_fe

    assert can_firewall_fe("uml")
    assert not any(can_firewall_fe(name) for name in ("netns", "docker", "docker:bookworm", "ssh"))


def test_each_run_becomes_junit_properties_numbered_when_there_are_several() -> None:
    one = synthetic_outcome(4.8)
    recorded = dict(pytest_plugin.junit_properties([one]))
    assert list(recorded) == list(pytest_plugin.JUNIT_PROPERTIES)
    where = [recorded[name] for name in ("fault", "profile", "backend", "datapath", "strongswan_version")]
    assert where == ["crash", "fast", "netns", "libipsec", "5.9.8"]
    assert recorded["outage_s"] == round(one.outage_s or 0, 4) and recorded["within_prediction"] is True
    assert (recorded["predicted_lo_s"], recorded["predicted_hi_s"]) == (
        round(one.predicted.lo, 4),
        round(one.predicted.hi, 4),
    )
    assert recorded["ike_sas_with_vip"] is None
    two = pytest_plugin.junit_properties([one, synthetic_outcome(5.0)])
    assert [name for name, _ in two][:2] == ["run1.fault", "run1.profile"]
    assert len(two) == 2 * len(pytest_plugin.JUNIT_PROPERTIES) and two[-1][0] == "run2.ike_sas_with_vip"

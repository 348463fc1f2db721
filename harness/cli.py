"""`failover-lab`: a thin command line over the same functions the tests call.

Every user-facing problem prints one line `failover-lab: error: ...` and exits 2 for bad input or
an unfit environment (nothing built), 1 when a lab failed or did not recover; Ctrl-C and SIGTERM
tear the lab down and exit 130.

Owns: argument parsing, output and exit codes. Not: any lab logic.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from harness import faults, lab, measure, policy, registry, report, result, scenario, timers, userfiles
from harness.backends import AUTO, BACKENDS, backend
from harness.errors import LabError, UsageError

console = Console()
if not console.is_terminal:
    console = Console(width=160)

DEMO_PROFILES = (("win2000", True), ("win2003-nlbsflags", True), ("strongswan-default", True), ("fast", False))
"""The demo's profiles and whether the time scale applies (fast runs at its real speed)."""
DEMO_FAULTS = ("graceful", "crash")
DEFAULT_DEMO_SCALE = "1/30"


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage problem in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def _faults(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        faults.fault(name)
    return names


def _time_scale(text: str) -> float:
    """--time-scale: timers.parse_scale's message, which argparse prefixes with the option."""
    try:
        return timers.parse_scale(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _seconds(text: str, zero_allowed: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
        raise argparse.ArgumentTypeError(f"must be a number {'>=' if zero_allowed else '>'} 0, got {text!r}")
    return value


def _seconds_from_zero(text: str) -> float:
    """--cluster-delay: 0 is a standby that takes the VIP at once."""
    return _seconds(text, zero_allowed=True)


def _seconds_above_zero(text: str) -> float:
    """--freeze: a freeze of no time is no fault."""
    return _seconds(text, zero_allowed=False)


def _runs(text: str) -> int:
    """--repeat: how many runs, at least one."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def parser() -> Parser:
    top = Parser(
        prog="failover-lab",
        description="Measure how long IPsec-protected traffic is interrupted when a clustered peer "
        "fails over (an emulated fe -> be1/be2 VIP lab with real strongSwan).",
    )
    commands = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    profiles = ", ".join(timers.PROFILES)

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--backend",
            default=AUTO,
            help=f"where the lab runs: {', '.join(BACKENDS)}, or {AUTO} (default: docker when an engine "
            "answers, else netns)",
        )

    def timing(command: argparse.ArgumentParser, scale_default: str, scale_help: str) -> None:
        command.add_argument("--time-scale", type=_time_scale, default=scale_default, help=scale_help)
        command.add_argument(
            "--cluster-delay",
            type=_seconds_from_zero,
            default=timers.FaultParams.cluster_delay,
            help="seconds until the standby takes the VIP after a crash or link cut, before scaling (default 1)",
        )
        command.add_argument(
            "--freeze",
            type=_seconds_above_zero,
            default=timers.FaultParams.freeze,
            help="seconds a frozen charon stays stopped, before scaling (default 3)",
        )

    def profile_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--profile", default="fast", help=f"timer profile: {profiles} (default fast)")
        command.add_argument(
            "--profiles", type=Path, help="a YAML file of your own profiles (see README), usable with --profile"
        )

    def policy_option(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--policy",
            default=policy.DEFAULT,
            help=f"what IPsec protects: {', '.join(policy.POLICIES)} (default {policy.DEFAULT})",
        )

    up = commands.add_parser("up", help="bring a lab up and leave it running")
    profile_options(up)
    policy_option(up)
    common(up)
    status = commands.add_parser("status", help="nodes, VIP owner and SAs of every running lab")
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    status.add_argument("--backend", choices=list(BACKENDS), help="only the labs of this backend")
    run = commands.add_parser(
        "run",
        help="bring up fresh labs, inject faults, measure the outages (or run a scenario file)",
        description="Either `run --fault F [options]` or `run SCENARIO.yaml` (the scenario says "
        "profiles, fault, repeat and expectations; exit 1 if one is not met).",
    )
    run.add_argument("scenario", nargs="?", type=Path, help="a scenario file (see scenarios/)")
    run.add_argument(
        "--fault",
        action="append",
        help=f"fault(s) to inject, repeatable or comma-separated: {', '.join(faults.FAULTS)}",
    )
    profile_options(run)
    policy_option(run)
    run.add_argument("--repeat", type=_runs, default=1, help="runs per fault, each on a fresh lab (default 1)")
    timing(run, "1", "multiply every timer by this: a number in (0, 1] or a fraction like 1/30 (default 1)")
    run.add_argument("--json", type=Path, help="write the results (a JSON list, one object per run) here")
    run.add_argument("--out", type=Path, help="write a report folder (JSON per run, report.md, plots) here")
    common(run)
    demo = commands.add_parser(
        "demo",
        help="reproduce KB 821839: graceful move and crash under the Windows profiles and strongSwan's",
        description="Graceful move and crash under win2000, win2003-nlbsflags and strongswan-default "
        "(time-scaled) and fast (real time); prints KB 821839's figures, the prediction and the "
        "measurement side by side and writes a report folder.",
    )
    timing(
        demo,
        DEFAULT_DEMO_SCALE,
        f"time scale of the KB and default profiles: a number in (0, 1] or a fraction (default {DEFAULT_DEMO_SCALE})",
    )
    demo.add_argument("--repeat", type=_runs, default=1, help="runs per profile and fault (default 1)")
    demo.add_argument(
        "--policies",
        action="store_true",
        help="instead: the KB's policy designs side by side (what crosses in clear, the passwords an "
        "eavesdropper reads, graceful and crash outages per protected service), profile fast",
    )
    demo.add_argument("--out", type=Path, default=Path("results/demo"), help="report folder (default results/demo)")
    common(demo)
    redraw = commands.add_parser(
        "report",
        help="redraw report.md and the plots from saved results",
        description="Given a report folder (written by demo or run --out), redraw its report.md and plots "
        "from its runs/*.json. Given a JSON file (written by run --json: a list of results, or one "
        "result), write a report folder next to it: FILE.json -> FILE-report/.",
    )
    redraw.add_argument("path", type=Path, help="a report folder, or a JSON file of results")
    down = commands.add_parser("down", help="tear a running lab down (its backend is in its record)")
    down.add_argument("name", nargs="?", help="the lab to remove (needed when several run)")
    clean = commands.add_parser("clean", help="remove leftovers of any lab of ours on this host")
    clean.add_argument("--force", action="store_true", help="also remove labs that a live run or test uses")
    clean.add_argument("--backend", choices=list(BACKENDS), help="only the labs of this backend")
    return top


@contextmanager
def progress_reporter(title: str, predicted: float) -> Iterator[measure.Reporter]:
    """A live bar of elapsed vs predicted time and the current phase on a terminal; on anything
    else one plain line per phase change."""
    if console.is_terminal:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[phase]:<12} {task.completed:6.1f} s of {task.total:.1f} s predicted"),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(title, total=predicted, phase="detection")

            def live(state: measure.Progress) -> None:
                bar.update(task, total=state.predicted.hi, completed=state.elapsed, phase=state.phase)

            yield live
        return
    seen: set[str] = set()

    def plain(state: measure.Progress) -> None:
        if state.phase not in seen:
            seen.add(state.phase)
            print(f"  {title}: {state.phase} at {state.elapsed:.1f} s", flush=True)

    yield plain


Plan = Sequence[tuple[timers.Profile, str, str]]
"""(profile, fault, policy) per measurement."""


def _check_plan(plan: Plan, params: timers.FaultParams) -> None:
    """The timer model accepts every (profile, fault) of ``plan``: refused before any lab exists."""
    for profile, fault, _ in plan:
        try:
            timers.check(profile, fault, params.scaled(profile.time_scale))
        except UsageError as error:
            raise UsageError(f"--profile {profile.name} with --fault {fault}: {error}") from None


def say_rounded(profile: timers.Profile) -> None:
    """The scaled settings charon runs rounded to whole seconds: the prediction uses what runs."""
    for rounded in profile.rounded:
        console.print(f"  note: {rounded.describe()}", highlight=False)


def measure_runs(plan: Plan, params: timers.FaultParams, repeat: int, backend_name: str) -> list[result.Result]:
    """Each (profile, fault, policy) ``repeat`` times, every run on a fresh lab."""
    results = []
    for profile, fault, policy_name in plan:
        scaled_params = params.scaled(profile.time_scale)
        bounds = timers.predict(fault, profile, scaled_params, 0)
        for _ in range(repeat):
            started = time.monotonic()
            with lab.running(profile, backend_name, policy_name=policy_name) as running:
                title = f"{fault} / {profile.name}" + (f" / {policy_name}" if policy_name != policy.DEFAULT else "")
                console.print(
                    f"{title} on lab {running.topology.name}: predicted outage {bounds.lo:.2f}-{bounds.hi:.2f} s",
                    highlight=False,
                )
                say_rounded(profile)
                with progress_reporter(title, bounds.hi) as reporter:
                    outcome = measure.run(running, fault, scaled_params, reporter)
            record = result.to_json(outcome)
            record["run_wall_s"] = round(time.monotonic() - started, 3)
            results.append(record)
    return results


def _profile(arguments: argparse.Namespace) -> timers.Profile:
    user = userfiles.load_profiles(arguments.profiles) if arguments.profiles else None
    return timers.profile(arguments.profile, user)


def _params(arguments: argparse.Namespace) -> timers.FaultParams:
    return timers.FaultParams(arguments.cluster_delay, arguments.freeze)


def cmd_up(arguments: argparse.Namespace) -> int:
    profile = _profile(arguments)
    with lab.running(
        profile, arguments.backend, keep=True, policy_name=policy.policy(arguments.policy).name
    ) as running:
        topology = running.topology
        console.print(
            f"lab [bold]{topology.name}[/] is up ({arguments.backend}, profile {profile.name}, "
            f"strongSwan {running.strongswan_version}): fe {topology.address('fe')}, "
            f"be1 {topology.address('be1')}, be2 {topology.address('be2')}, "
            f"VIP {topology.vip} on {running.vip_owner()}"
        )
        console.print(f"`failover-lab status` shows it, `failover-lab down {topology.name}` removes it")
    return 0


def _owner(entry: dict[str, Any]) -> str:
    if entry["owner"] is None:
        return "left running by `up`; `failover-lab down` removes it"
    if entry["owner_alive"]:
        return f"used by process {entry['owner']}"
    return f"its process {entry['owner']} is gone; `failover-lab clean` removes it"


def cmd_status(arguments: argparse.Namespace) -> int:
    states = registry.registered()
    reports = [lab.status(s) for s in states if arguments.backend in (None, s.backend)]
    if arguments.json:
        print(json.dumps(reports, indent=2))
        return 0
    if not reports:
        console.print("no lab is running")
    for entry in reports:
        owner = _owner(entry)
        if "problem" in entry:
            console.print(f"lab {entry['name']} ({owner}): {entry['problem']}", highlight=False)
            continue
        view = Table(
            title=f"lab {entry['name']} (profile {entry['profile']}, VIP {entry['vip']}, {owner})",
            title_justify="left",
        )
        for column in ("node", "address", "charon", "VIP", "IKE SAs"):
            view.add_column(column)
        for name, node in entry["nodes"].items():
            sas = ", ".join(f"{sa['state']} to {sa['remote']} ({sa['children']} child)" for sa in node["sas"])
            vip = {True: "owner", False: "-"}.get(node.get("vip"), "")
            view.add_row(name, node["address"], node["charon"], vip, sas or "none")
        console.print(view)
    return 0


def cmd_run(arguments: argparse.Namespace) -> int:
    if arguments.scenario is not None:
        return run_scenario(arguments)
    if not arguments.fault:
        raise UsageError("name a fault with --fault, or give a scenario file")
    names = [name for text in arguments.fault for name in _faults(text)]
    profile = _profile(arguments).scaled(arguments.time_scale)
    chosen = policy.policy(arguments.policy).name
    plan = [(profile, fault, chosen) for fault in names]
    _check_plan(plan, _params(arguments))
    backend(arguments.backend)
    results = measure_runs(plan, _params(arguments), arguments.repeat, arguments.backend)
    console.print(report.runs_table(results))
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(results, indent=1) + "\n")
        console.print(f"results written to {arguments.json}")
    if arguments.out:
        console.print(f"report written to {report.write_folder(results, arguments.out)}")
    return 0 if all(r["recovered"] for r in results) else 1


def run_scenario(arguments: argparse.Namespace) -> int:
    """A scenario file outside pytest: same runs, same report as the demo, expectations judged."""
    if arguments.fault:
        raise UsageError("give either a scenario file or --fault, not both")
    loaded = scenario.load(arguments.scenario)
    backend(loaded.model.backend or arguments.backend)
    results, problems = [], []
    for profile in loaded.profiles:
        title = loaded.item_name(profile)
        bounds = timers.predict(loaded.model.fault.kind, profile, loaded.params, 0)
        console.print(f"{title}: predicted outage {bounds.lo:.2f}-{bounds.hi:.2f} s", highlight=False)
        say_rounded(profile)
        with progress_reporter(title, bounds.hi) as reporter:
            outcomes = scenario.run(loaded, profile, arguments.backend, reporter)
        results += [result.to_json(outcome) for outcome in outcomes]
        problems += scenario.judge_all(loaded, outcomes)
    console.print(report.runs_table(results))
    out = arguments.out or Path("results") / loaded.name
    console.print(f"report written to {report.write_folder(results, out)}")
    for problem in problems:
        console.print(f"[bold red]not met:[/] {problem}", highlight=False)
    if not problems:
        console.print(f"{loaded.name}: every expectation met")
    return 1 if problems else 0


def cmd_demo(arguments: argparse.Namespace) -> int:
    backend(arguments.backend)
    if arguments.policies:
        fast = timers.profile("fast")
        plan: Plan = [(fast, fault, name) for name in policy.POLICIES for fault in DEMO_FAULTS]
    else:
        plan = [
            (timers.profile(name).scaled(arguments.time_scale if scaled else 1.0), fault, policy.DEFAULT)
            for name, scaled in DEMO_PROFILES
            for fault in DEMO_FAULTS
        ]
    results = measure_runs(plan, _params(arguments), arguments.repeat, arguments.backend)
    console.print(report.policy_table(results) if arguments.policies else report.kb_table(results))
    console.print(f"report written to {report.write_folder(results, arguments.out)}")
    return 0 if all(r["recovered"] and r["within_prediction"] for r in results) else 1


def cmd_report(arguments: argparse.Namespace) -> int:
    source: Path = arguments.path
    results = result.load(source)
    path = report.redraw(results, source) if source.is_dir() else report.write_folder(results, report_folder_of(source))
    console.print(report.kb_table(results))
    console.print(f"report drawn: {path}")
    return 0


def report_folder_of(results_file: Path) -> Path:
    """Where `report FILE.json` writes its report folder: FILE-report/ next to it."""
    return results_file.with_name(f"{results_file.stem}-report")


def cmd_down(arguments: argparse.Namespace) -> int:
    states = registry.registered()
    names = ", ".join(state.name for state in states) or "none"
    if arguments.name is None and len(states) != 1:
        raise UsageError("no lab is running" if not states else f"several labs run ({names}): name one")
    state = states[0] if arguments.name is None else next((s for s in states if s.name == arguments.name), None)
    if state is None:
        raise UsageError(f"no lab named {arguments.name!r}: running are {names}")
    if state.in_use():
        assert state.owner is not None
        raise UsageError(f"lab {state.name} belongs to process {state.owner.pid}, which removes it when done")
    registry.remove(backend(state.backend), state.topology.qualified)
    console.print(f"lab {state.name} removed")
    return 0


def cmd_clean(arguments: argparse.Namespace) -> int:
    only = backend(arguments.backend) if arguments.backend else None
    removed, skipped = registry.clean(force=arguments.force, only=only)
    console.print(f"removed {', '.join(removed)}" if removed else "nothing to clean")
    if skipped:
        console.print(f"left {', '.join(skipped)}: in use by a live run or test (--force removes them too)")
    return 0


COMMANDS = {
    "up": cmd_up,
    "status": cmd_status,
    "run": cmd_run,
    "demo": cmd_demo,
    "report": cmd_report,
    "down": cmd_down,
    "clean": cmd_clean,
}


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (`cmd &`)
    try:
        return COMMANDS[arguments.command](arguments)
    except LabError as error:
        sys.stderr.write(f"failover-lab: error: {error}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("failover-lab: interrupted; everything it started was torn down\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())

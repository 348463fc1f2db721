"""`failover-lab`: a thin command line over the same functions the tests call.

Every user-facing problem prints one line `failover-lab: error: ...` and exits 2 for bad input or
an unfit environment (nothing built), 1 when a lab failed while running; Ctrl-C and SIGTERM tear
the lab down and exit 130.

Owns: argument parsing, output and exit codes. Not: any lab logic.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.table import Table

from harness import faults, lab, measure, registry, report, timers
from harness.backends import BACKENDS, backend
from harness.errors import LabError, UsageError

console = Console()
if not console.is_terminal:
    console = Console(width=140)


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


def _positive(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(text)
    return value


def parser() -> Parser:
    top = Parser(
        prog="failover-lab",
        description="Measure how long IPsec-protected traffic is interrupted when a clustered peer "
        "fails over (an emulated fe -> be1/be2 VIP lab with real strongSwan).",
    )
    commands = top.add_subparsers(dest="command", required=True, parser_class=Parser)

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--backend", default="netns", help=f"where the lab runs: {', '.join(BACKENDS)} (default netns)"
        )

    up = commands.add_parser("up", help="bring a lab up and leave it running")
    up.add_argument("--profile", default="fast", help=f"timer profile: {', '.join(timers.PROFILES)}")
    common(up)
    status = commands.add_parser("status", help="nodes, VIP owner and SAs of every running lab")
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    run = commands.add_parser("run", help="bring up fresh labs, inject faults, measure the outages")
    run.add_argument(
        "--fault",
        action="append",
        required=True,
        help=f"fault(s) to inject, repeatable or comma-separated: {', '.join(faults.FAULTS)}",
    )
    run.add_argument("--profile", default="fast", help=f"timer profile: {', '.join(timers.PROFILES)}")
    run.add_argument("--repeat", type=int, default=1, help="runs per fault, each on a fresh lab (default 1)")
    run.add_argument(
        "--cluster-delay",
        type=_positive,
        default=faults.DEFAULT_CLUSTER_DELAY_S,
        help="seconds until the standby takes the VIP after a crash (default 1)",
    )
    run.add_argument("--json", type=Path, help="write the results (a JSON list, one object per run) here")
    common(run)
    down = commands.add_parser("down", help="tear a running lab down")
    down.add_argument("name", nargs="?", help="the lab to remove (needed when several run)")
    clean = commands.add_parser("clean", help="remove leftovers of any lab of ours on this host")
    clean.add_argument("--force", action="store_true", help="also remove labs that a live run or test uses")
    return top


def cmd_up(arguments: argparse.Namespace) -> int:
    profile = timers.profile(arguments.profile)
    with lab.running(profile, arguments.backend, keep=True) as running:
        topology = running.topology
        console.print(
            f"lab [bold]{topology.name}[/] is up ({arguments.backend}, profile {profile.name}, "
            f"strongSwan {running.strongswan_version}): fe {topology.address('fe')}, "
            f"be1 {topology.address('be1')}, be2 {topology.address('be2')}, "
            f"VIP {topology.vip} on {running.vip_owner()}"
        )
        console.print(f"`failover-lab status` shows it, `failover-lab down {topology.name}` removes it")
    return 0


def cmd_status(arguments: argparse.Namespace) -> int:
    reports = [lab.status(state) for state in registry.registered()]
    if arguments.json:
        print(json.dumps(reports, indent=2))
        return 0
    if not reports:
        console.print("no lab is running")
    for entry in reports:
        view = Table(
            title=f"lab {entry['name']} (profile {entry['profile']}, VIP {entry['vip']})",
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
    names = [name for text in arguments.fault for name in _faults(text)]
    profile = timers.profile(arguments.profile)
    backend(arguments.backend)
    if arguments.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, not {arguments.repeat}")
    results = []
    for fault in names:
        for _ in range(arguments.repeat):
            with lab.running(profile, arguments.backend) as running:
                bounds = timers.predict(fault, profile, arguments.cluster_delay, 0)
                console.print(
                    f"{fault} on lab {running.topology.name} ({profile.name}): "
                    f"predicted outage {bounds.lo:.2f}-{bounds.hi:.2f} s ...",
                    highlight=False,
                )
                results.append(report.to_json(measure.run(running, fault, arguments.cluster_delay)))
    console.print(report.table(results))
    if arguments.json:
        report.write(results, arguments.json)
        console.print(f"results written to {arguments.json}")
    return 0 if all(r["recovered"] for r in results) else 1


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
    removed, skipped = registry.clean(force=arguments.force)
    console.print(f"removed {', '.join(removed)}" if removed else "nothing to clean")
    if skipped:
        console.print(f"left {', '.join(skipped)}: in use by a live run or test (--force removes them too)")
    return 0


COMMANDS = {"up": cmd_up, "status": cmd_status, "run": cmd_run, "down": cmd_down, "clean": cmd_clean}


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
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

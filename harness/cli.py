"""`failover-lab`: a thin command line over the same functions the tests call.

Every user-facing problem prints one line `failover-lab: error: ...` and exits 2 for bad input or
an unfit environment (nothing built), 1 when a lab failed or did not recover; Ctrl-C and SIGTERM
tear the lab down and exit 130; a reader that goes away (`| head -1`) ends the command quietly
with 141, as a shell tool killed by SIGPIPE.

Owns: argument parsing, the output and exit codes of run, demo and report (tune's: harness.tune). Not: any lab logic,
the lab commands' output (harness.lab_commands: up's lines, status, exec, down, clean).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.markup import escape

from harness import (
    faults,
    lab,
    lab_commands,
    policy,
    report,
    result,
    runs,
    scenario,
    timer_search,
    timers,
    tune,
    userfiles,
)
from harness.backends import AUTO, BACKENDS, SSH, backend
from harness.errors import LabError, UsageError

DEMO_PROFILES = (
    ("win2000", True),
    ("win2000-ikev1", True),
    ("win2003-nlbsflags", True),
    ("win2003-nlbsflags-ikev1", True),
    ("strongswan-default", True),
    ("fast", False),
)
"""The demo's profiles and whether the time scale applies (fast runs at its real speed)."""
DEMO_FAULTS = ("graceful", "crash")
DEFAULT_DEMO_SCALE = "1/30"


DEFAULT_PROFILE = "fast"
RUN_DEFAULTS: dict[str, Any] = {
    "policy": policy.DEFAULT,
    "repeat": 1,
    "time_scale": 1.0,
    "cluster_delay": timers.FaultParams().cluster_delay,
    "freeze": timers.FaultParams().freeze,
    "announce_early": timers.FaultParams().announce_early,
    "link_delay": timers.FaultParams().link_delay,
    "firewall_idle": timers.FaultParams().firewall_idle,
    "backend": AUTO,
}
"""What `run` takes for an option not given. The parser leaves them None, so that run knows what
was typed: with a scenario file some override the file and the others are refused."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage problem in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def _one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """An option that takes one of ``choices``: anything else is one line listing them."""

    def check(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return check


def _faults(text: str) -> list[str]:
    """--fault: one or more faults, comma-separated."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in faults.FAULTS] if names else [text]
    if unknown:
        given = ", ".join(repr(name) for name in unknown)
        verb = "is" if len(unknown) == 1 else "are"
        raise argparse.ArgumentTypeError(f"{given} {verb} not one of {', '.join(faults.FAULTS)}")
    return names


def _names(text: str) -> list[str]:
    """--profile: one or more names, comma-separated (checked once the profiles file is read)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no profile")
    return names


def _time_scale(text: str) -> float:
    """--time-scale: the scenario files' rule and message, which argparse prefixes with the option."""
    try:
        return timers.parse_scale(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _seconds(text: str, zero_allowed: bool) -> float:
    """Seconds in [0, SECONDS_MAX] or (0, SECONDS_MAX], as a scenario file's fault takes them."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= scenario.SECONDS_MAX or (value == 0 and not zero_allowed):
        interval = f"{'[' if zero_allowed else '('}0, {scenario.SECONDS_MAX:g}]"
        raise argparse.ArgumentTypeError(f"must be a number of seconds in {interval}, got {text!r}")
    return value


def _seconds_from_zero(text: str) -> float:
    """--cluster-delay: 0 is a standby that takes the VIP at once."""
    return _seconds(text, zero_allowed=True)


def _seconds_above_zero(text: str) -> float:
    """--freeze: a freeze of no time is no fault."""
    return _seconds(text, zero_allowed=False)


def _runs_or_none(text: str) -> int:
    """tune's --repeat: 0 (no lab) or what --repeat takes."""
    return 0 if text.strip() == "0" else _runs(text)


def _runs(text: str) -> int:
    """--repeat: how many runs, 1 to scenario.REPEAT_MAX (as a scenario file's repeat)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= scenario.REPEAT_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {scenario.REPEAT_MAX}, got {text!r}")
    return value


def parser() -> Parser:
    top = Parser(
        prog="failover-lab",
        description="Measure how long IPsec-protected traffic is interrupted when a clustered peer "
        "fails over (an emulated fe -> be1/be2 VIP lab with real strongSwan).",
    )
    commands = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    profiles = ", ".join(timers.PROFILES)

    def common(command: argparse.ArgumentParser, default: str | None = AUTO, scenario_file: bool = False) -> None:
        """--backend and the ssh backend's options (``scenario_file``: they override a scenario file's)."""
        command.add_argument(
            "--backend",
            type=_one_of([AUTO, *BACKENDS, SSH]),
            default=default,
            help=f"where the lab runs: {', '.join([*BACKENDS, SSH])}, or {AUTO} "
            "(default: docker when an engine answers, else netns; never ssh)",
        )
        ssh_options(command, scenario_file=scenario_file)

    def ssh_options(command: argparse.ArgumentParser, required: bool = False, scenario_file: bool = False) -> None:
        command.add_argument(
            "--inventory",
            type=Path,
            required=required,
            help="your hosts, as an inventory file (see inventories/)"
            + ("" if required else ": --backend ssh")
            + ("; overrides a scenario file's inventory" if scenario_file else ""),
        )
        command.add_argument(
            "--insecure-host-keys",
            action="store_true",
            help="accept hosts missing from known_hosts (each unknown key is printed); never needed with hosts up",
        )

    def timing(
        command: argparse.ArgumentParser,
        scale_default: str | None,
        scale_help: str,
        defaults: bool = True,
        freeze: bool = True,
    ) -> None:
        """``defaults=False``: None when not given (run resolves them: RUN_DEFAULTS); ``freeze``:
        whether the command can run the freeze fault at all."""
        params = timers.FaultParams()
        command.add_argument("--time-scale", type=_time_scale, default=scale_default, help=scale_help)
        command.add_argument(
            "--cluster-delay",
            type=_seconds_from_zero,
            default=params.cluster_delay if defaults else None,
            help="seconds until the standby takes the VIP after a crash or link cut, before scaling "
            f"(default {params.cluster_delay:g})",
        )
        if freeze:
            command.add_argument(
                "--freeze",
                type=_seconds_above_zero,
                default=params.freeze if defaults else None,
                help=f"seconds a frozen charon stays stopped, before scaling (default {params.freeze:g})",
            )

    def profile_options(command: argparse.ArgumentParser, several: bool) -> None:
        command.add_argument(
            "--profile",
            action="append",
            type=_names,
            help=f"timer profile{'(s), repeatable or comma-separated, each run with every fault' if several else ''}: "
            f"{profiles} (default {DEFAULT_PROFILE})",
        )
        command.add_argument(
            "--profiles", type=Path, help="a YAML file of your own profiles (see README), used with --profile"
        )

    def policy_option(command: argparse.ArgumentParser, default: str | None = policy.DEFAULT) -> None:
        command.add_argument(
            "--policy",
            type=_one_of(list(policy.POLICIES)),
            default=default,
            help=f"what IPsec protects: {', '.join(policy.POLICIES)} (default {policy.DEFAULT})",
        )

    up = commands.add_parser("up", help="bring a lab up and leave it running")
    profile_options(up, several=False)
    policy_option(up)
    common(up)
    status = commands.add_parser("status", help="nodes, VIP owner and SAs of every running lab")
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    status.add_argument("--backend", type=_one_of(list(BACKENDS)), help="only the labs of this backend")
    run = commands.add_parser(
        "run",
        help="bring up fresh labs, inject faults, measure the outages (or run a scenario file)",
        description="Either `run --fault F [options]` or `run SCENARIO.yaml [options]` (the scenario "
        "says profiles, fault, repeat and expectations; exit 1 if one is not met). With a scenario, "
        "--repeat, --time-scale, --policy, --backend, --inventory and --insecure-host-keys override its own "
        "settings; --fault, --profile, --profiles, --cluster-delay, --freeze, --announce-early, --link-delay and "
        "--firewall-idle are refused (the file defines them).",
    )
    run.add_argument("scenario", nargs="?", type=Path, help="a scenario file (see scenarios/)")
    run.add_argument(
        "--fault",
        action="append",
        type=_faults,
        help=f"fault(s) to inject, repeatable or comma-separated: {', '.join(faults.FAULTS)}",
    )
    profile_options(run, several=True)
    policy_option(run, None)
    run.add_argument(
        "--repeat",
        type=_runs,
        help=f"runs per fault, each on a fresh lab: 1 to {scenario.REPEAT_MAX} (default {RUN_DEFAULTS['repeat']})",
    )
    timing(
        run,
        None,
        "multiply every timer by this: a number in (0, 1] or a fraction like 1/30 (default 1)",
        defaults=False,
    )
    run.add_argument(
        "--announce-early",
        type=_seconds_from_zero,
        help="takeover-announce: seconds before the VIP is on the new owner that its charon begins to "
        f"initiate, before scaling (default {timers.FaultParams.announce_early:g}: once it is there)",
    )
    run.add_argument(
        "--link-delay",
        type=_seconds_from_zero,
        help="reauth: one-way seconds netem adds to everything the active back-end sends (uml only), "
        f"before scaling (default {timers.FaultParams.link_delay:g})",
    )
    run.add_argument(
        "--firewall-idle",
        type=_seconds_from_zero,
        help="graceful: fe sits behind a stateful firewall that lets IKE from the VIP in only on a UDP flow "
        "used within this many seconds, and ESP always (uml only), before scaling "
        f"(default {timers.FaultParams.firewall_idle:g}: no firewall)",
    )
    run.add_argument("--json", type=Path, help="write the results (a JSON list, one object per run) here")
    run.add_argument("--out", type=Path, help="write a report folder (JSON per run, report.md, plots) here")
    common(run, None, scenario_file=True)
    demo = commands.add_parser(
        "demo",
        help="reproduce KB 821839: graceful move and crash under the Windows profiles and strongSwan's",
        description="Graceful move and crash under win2000 and win2003-nlbsflags (IKEv2 and, as Windows "
        "spoke, IKEv1) and strongswan-default (time-scaled) and fast (real time); prints KB 821839's figures, "
        "the prediction and the measurement side by side and writes a report folder.",
    )
    timing(
        demo,
        None,
        f"time scale of the KB and default profiles: a number in (0, 1] or a fraction (default {DEFAULT_DEMO_SCALE}; "
        "not with --policies, which runs fast at real time)",
        freeze=False,
    )
    demo.add_argument("--repeat", type=_runs, default=1, help="runs per profile and fault (default 1)")
    demo.add_argument(
        "--policies",
        action="store_true",
        help="instead: the KB's policy designs side by side (what crosses in clear, the passwords an "
        "eavesdropper reads, graceful and crash outages per protected service), profile fast",
    )
    demo.add_argument(
        "--out",
        type=Path,
        help="report folder (default results/demo; with --policies results/policies, so neither overwrites the other)",
    )
    common(demo)
    tune_command = commands.add_parser(
        "tune",
        help="the least chatty timers whose predicted worst case meets a target outage, measured on a lab",
        description="Searches dpd_delay, the retransmission timeout, base and tries (IKEv1: dpd_timeout) with the "
        "timer model for the settings with the fewest IKE messages per hour between two idle peers whose predicted "
        "worst-case outage meets --target; prints them beside the base profile's, the strongswan.conf and "
        "swanctl.conf lines to paste, then measures them --repeat times on a fresh lab each (real time: each "
        "run lasts about the outage). A target below what the model can reach is refused with its floor and why.",
    )
    tune_command.add_argument("--fault", required=True, type=_one_of(timer_search.TUNABLE), help="crash or graceful")
    tune_command.add_argument(
        "--target", required=True, type=_seconds_above_zero, help="the worst-case outage to meet, in seconds"
    )
    tune_command.add_argument(
        "--base",
        help=f"the profile to start from: {profiles} or one of --profiles FILE (default {tune.DEFAULT_BASE})",
    )
    tune_command.add_argument(
        "--profiles", type=Path, help="a YAML file of your own profiles (see README), used with --base"
    )
    tune_command.add_argument(
        "--ike-version", type=int, choices=(1, 2), help="the IKE version to tune for (default: the base profile's)"
    )
    tune_command.add_argument(
        "--repeat",
        type=_runs_or_none,
        default=tune.DEFAULT_REPEAT,
        help=f"runs to measure, each on a fresh lab: 0 (the model's answer only, no lab) to {scenario.REPEAT_MAX} "
        f"(default {tune.DEFAULT_REPEAT})",
    )
    tune_command.add_argument(
        "--cluster-delay",
        type=_seconds_from_zero,
        default=timers.FaultParams().cluster_delay,
        help=f"crash: seconds until the standby takes the VIP (default {timers.FaultParams().cluster_delay:g})",
    )
    tune_command.add_argument(
        "--vip-move",
        type=_seconds_from_zero,
        default=0.0,
        help="graceful: seconds your cluster takes to move and announce the VIP (default 0: at once; "
        "the uml backend's VMs take 0.2-0.5 s)",
    )
    tune_command.add_argument("--out", type=Path, help="write a report folder of the measured runs here")
    common(tune_command)
    redraw = commands.add_parser(
        "report",
        help="redraw report.md and the plots from saved results",
        description="Given a report folder (written by demo or run --out), redraw its report.md and plots "
        "from its runs/*.json. Given a JSON file (written by run --json: a list of results, or one "
        "result), write a report folder next to it: FILE.json -> FILE-report/.",
    )
    redraw.add_argument("path", type=Path, help="a report folder, or a JSON file of results")
    run_in = commands.add_parser(
        "exec",
        help="run a command inside a node of a running lab: exec [LAB] NODE -- COMMAND",
        description="Run COMMAND inside NODE (fe, be1, be2, dc or sw) of LAB (may be left out when one lab "
        "runs), through the node's agent, with the node's own environment: `failover-lab exec fe -- swanctl "
        "--list-sas` shows fe's SAs. Output (stdout and stderr together) as it comes; the exit code is "
        "COMMAND's. No terminal and no standard input: not for interactive programs.",
    )
    run_in.add_argument("words", nargs=argparse.REMAINDER, help="[LAB] NODE -- COMMAND [ARGUMENTS...]")
    down = commands.add_parser("down", help="tear a running lab down (its backend is in its record)")
    down.add_argument("name", nargs="?", help="the lab to remove (needed when several run)")
    clean = commands.add_parser("clean", help="remove leftovers of any lab of ours on this host")
    clean.add_argument("--force", action="store_true", help="also remove labs that a live run or test uses")
    clean.add_argument("--backend", type=_one_of(list(BACKENDS)), help="only the labs of this backend")
    ssh_options(clean)
    hosts = commands.add_parser(
        "hosts",
        help="test hosts for the ssh backend: four VMs on this machine reachable only over SSH",
        description="`hosts up` boots four User-mode Linux VMs (fe, be1, be2, dc) with sshd on a management "
        "network joined to this machine and writes their inventory (SSH addresses, a key made for them, their "
        "host keys in a known_hosts file); `hosts down` removes them.",
    )
    hosts.add_argument("action", choices=("up", "down"))
    hosts.add_argument(
        "--out", type=Path, default=Path("hosts.yaml"), help="up: where to write the inventory (default hosts.yaml)"
    )
    preflight = commands.add_parser(
        "preflight",
        help="check the hosts of an SSH inventory: what each offers, one line per problem",
        description="Connects to every host of the inventory and checks, without changing anything, what a lab "
        "needs there: root or sudo, strongSwan, an IPsec datapath, tcpdump, a firewall for the fault table, "
        "python3, the lab interface and address, SSH off the lab wire, and the VIP on exactly one back-end. "
        "Prints a table; exit 2 with one line per problem.",
    )
    ssh_options(preflight, required=True)
    return top


def _check_plan(plan: runs.Plan, params: timers.FaultParams) -> None:
    """The timer model accepts every (profile, fault) of ``plan``: refused before any lab exists."""
    for profile, fault, _ in plan:
        try:
            timers.check(profile, fault, params.scaled(profile.time_scale))
        except UsageError as error:
            raise UsageError(f"--profile {profile.name} with --fault {fault}: {error}") from None


def _profiles(arguments: argparse.Namespace) -> list[timers.Profile]:
    """Every --profile (default fast), each a built-in one or one of --profiles FILE, which needs
    --profile; a profile named twice is refused (it would be run twice, or dropped)."""
    user = userfiles.load_profiles(arguments.profiles) if arguments.profiles else {}
    if user and arguments.profile is None:
        raise UsageError(
            f"--profiles {arguments.profiles} needs --profile naming one of its profiles: {', '.join(user)}"
        )
    known = {**timers.PROFILES, **user}
    names = [DEFAULT_PROFILE] if arguments.profile is None else [name for given in arguments.profile for name in given]
    for name in names:
        if name not in known:
            yours = "" if user else " (or one of your own with --profiles FILE)"
            raise UsageError(f"argument --profile: {name!r} is not one of {', '.join(known)}{yours}")
    twice = next((name for index, name in enumerate(names) if name in names[:index]), None)
    if twice is not None:
        raise UsageError(f"--profile {twice} is named twice: name each profile once")
    return [known[name] for name in names]


def _params(arguments: argparse.Namespace) -> timers.FaultParams:
    return timers.FaultParams(
        arguments.cluster_delay,
        getattr(arguments, "freeze", timers.FaultParams.freeze),
        getattr(arguments, "announce_early", timers.FaultParams.announce_early),
        getattr(arguments, "link_delay", timers.FaultParams.link_delay),
        getattr(arguments, "firewall_idle", timers.FaultParams.firewall_idle),
    )


def cmd_up(arguments: argparse.Namespace) -> int:
    chosen = _profiles(arguments)
    if len(chosen) > 1:
        names = ", ".join(profile.name for profile in chosen)
        raise UsageError(f"up brings up one lab with one profile, not {names}: give --profile once")
    (profile,) = chosen
    with lab.running(
        profile,
        arguments.backend,
        keep=True,
        policy_name=policy.policy(arguments.policy).name,
        inventory=arguments.inventory,
        insecure_host_keys=arguments.insecure_host_keys,
    ) as running:
        lab_commands.announce_up(running)
    return 0


FAULT_OPTIONS = {
    "cluster_delay": "--cluster-delay",
    "freeze": "--freeze",
    "announce_early": "--announce-early",
    "link_delay": "--link-delay",
    "firewall_idle": "--firewall-idle",
}
"""Options that set a fault's parameter (scenario.FAULT_PARAMETERS says which faults take it)."""


def cmd_run(arguments: argparse.Namespace) -> int:
    if arguments.scenario is not None:
        return run_scenario(arguments)
    if not arguments.fault:
        raise UsageError("name a fault with --fault, or give a scenario file")
    names = [name for given in arguments.fault for name in given]
    _refuse_unused_fault_options(arguments, names)
    arguments = argparse.Namespace(
        **{**vars(arguments), **{k: v for k, v in RUN_DEFAULTS.items() if getattr(arguments, k) is None}}
    )
    profiles = [_scaled(profile, arguments.time_scale) for profile in _profiles(arguments)]
    chosen = policy.policy(arguments.policy).name
    plan = [(profile, fault, chosen) for profile in profiles for fault in names]
    _check_plan(plan, _params(arguments))
    _require_writable(arguments.json, arguments.out)
    _check_backend(arguments)
    results = _measure_runs(arguments, plan, arguments.out)
    runs.show_runs(results)
    if arguments.json:
        write_json(results, arguments.json)
    if arguments.out:
        runs.console.print(f"report written to {report.write_folder(results, arguments.out)}")
    return 0 if all(r["recovered"] for r in results) else 1


def _check_backend(arguments: argparse.Namespace) -> None:
    """--backend can run here (auto: one can), with --inventory exactly when it is ssh: before any lab."""
    backend(arguments.backend, arguments.inventory, arguments.insecure_host_keys)


def _measure_runs(arguments: argparse.Namespace, plan: runs.Plan, out: Path | None) -> list[result.Result]:
    """``plan`` --repeat times, each run on a fresh lab of --backend (ssh: on the hosts of
    --inventory); each run's evidence goes to the report folder ``out`` (None: no folder)."""
    return runs.measure_runs(
        plan,
        _params(arguments),
        arguments.repeat,
        arguments.backend,
        arguments.inventory,
        arguments.insecure_host_keys,
        out,
    )


def _scaled(profile: timers.Profile, scale: float) -> timers.Profile:
    """--profile at --time-scale; a scale that leaves charon a timer it cannot run is refused."""
    try:
        return profile.scaled(scale)
    except UsageError as error:
        problem = str(error).removeprefix(f"profile {profile.name}: ")
        shown = timers.scale_text(scale)
        raise UsageError(f"--profile {profile.name} at --time-scale {shown}: {problem}") from None


def _refuse_unused_fault_options(arguments: argparse.Namespace, names: Sequence[str]) -> None:
    """--cluster-delay, --freeze or --announce-early without a fault that takes it would be dropped:
    refused."""
    for field, flag in FAULT_OPTIONS.items():
        takers = [kind for kind, parameters in scenario.FAULT_PARAMETERS.items() if field in parameters]
        if getattr(arguments, field) is not None and not set(takers) & set(names):
            which = "it" if len(takers) == 1 else "one of them"
            raise UsageError(f"{flag} applies only to --fault {_and(takers)}: add {which} to --fault, or drop {flag}")


def _and(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _require_writable(json_file: Path | None, out: Path | None) -> None:
    """--json's folder and --out can be written: checked before any lab exists."""
    if json_file is not None:
        report.require_writable(json_file.parent, f"--json {json_file}")
    if out is not None:
        report.require_writable(out, f"--out {out}")


def write_json(results: Sequence[result.Result], path: Path) -> None:
    """--json: the results as one JSON list."""
    with report.writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(list(results), indent=1) + "\n")
    runs.console.print(f"results written to {path}", highlight=False, markup=False)


SCENARIO_DEFINES = {
    "fault": ("--fault", "the file's fault is the run's"),
    "profile": ("--profile", "the file's profiles are the runs"),
    "profiles": ("--profiles", "the file's profiles are the runs"),
    "cluster_delay": ("--cluster-delay", "the file's fault sets the cluster delay"),
    "freeze": ("--freeze", "the file's fault sets the freeze"),
    "announce_early": ("--announce-early", "the file's fault sets when the new owner begins"),
    "link_delay": ("--link-delay", "the file's fault sets the link delay"),
    "firewall_idle": ("--firewall-idle", "the file's fault sets fe's firewall"),
}
"""Options that a scenario file defines itself: refused with one (option, why)."""
SCENARIO_OVERRIDES = {
    "repeat": "--repeat",
    "time_scale": "--time-scale",
    "policy": "--policy",
    "backend": "--backend",
    "inventory": "--inventory",
    "insecure_host_keys": "--insecure-host-keys",
}
"""Options that override the scenario's own setting (scenario.OVERRIDABLE), said before the runs."""


def _scenario_with_options(arguments: argparse.Namespace) -> scenario.Scenario:
    """The scenario file with the options that override it applied (one line each says so); the
    options it defines itself are refused, all in one line, before the file is read. --backend ssh
    and --inventory are refused without each other as without a file, the file's backend and
    inventory standing in for those not given."""
    refused = [SCENARIO_DEFINES[field] for field in SCENARIO_DEFINES if getattr(arguments, field) is not None]
    if refused:
        flags = _and([flag for flag, _ in refused])
        why = " and ".join(dict.fromkeys(reason for _, reason in refused))
        raise UsageError(f"{flags} cannot be combined with a scenario file: {why}; edit the file or drop {flags}")
    loaded = scenario.load(arguments.scenario)
    if arguments.backend == SSH or arguments.inventory is not None:
        backend(arguments.backend or loaded.model.backend or AUTO, arguments.inventory or loaded.inventory)
    changes = _given_overrides(arguments)
    for field, value in changes.items():
        was = getattr(loaded.model, field)
        if was is None or was == value or (field == "inventory" and str(loaded.inventory) == value):
            continue  # the file leaves it to the command line (backend), or says the same
        if field == "insecure_host_keys" and loaded.model.backend != SSH:
            continue  # the file leaves the ssh backend to the command line
        runs.console.print(
            f"overriding the scenario's {field} {_shown(field, was)} with {SCENARIO_OVERRIDES[field]}"
            + ("" if field == "insecure_host_keys" else f" {_shown(field, getattr(arguments, field))}"),
            highlight=False,
            markup=False,
        )
    return scenario.override(loaded, changes) if changes else loaded


def _given_overrides(arguments: argparse.Namespace) -> dict[str, Any]:
    """The options of SCENARIO_OVERRIDES given, as the file would say them: --inventory as an
    absolute path (the file's are relative to its folder), --insecure-host-keys only when given."""
    given = {field: getattr(arguments, field) for field in SCENARIO_OVERRIDES}
    given["inventory"] = None if arguments.inventory is None else os.path.abspath(arguments.inventory)
    given["insecure_host_keys"] = arguments.insecure_host_keys or None
    return {field: value for field, value in given.items() if value is not None}


def _shown(field: str, value: Any) -> str:
    """A setting as the file or the command line says it."""
    if field == "time_scale":
        return timers.scale_text(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def run_scenario(arguments: argparse.Namespace) -> int:
    """A scenario file outside pytest: same runs, same report as the demo, expectations judged."""
    loaded = _scenario_with_options(arguments)
    out = arguments.out or Path("results") / loaded.name
    _require_writable(arguments.json, out)
    chosen = loaded.model.backend or AUTO
    backend(chosen, loaded.inventory, loaded.model.insecure_host_keys)
    results, problems, kept = [], [], []
    for profile in loaded.profiles:
        outcomes = scenario.run(
            loaded, profile, chosen, runs.numbered_runs(loaded.item_name(profile), loaded.model.repeat, True)
        )
        results += [result.to_json(outcome) for outcome in outcomes]
        kept += [outcome.evidence for outcome in outcomes]
        problems += scenario.judge_all(loaded, outcomes)
    runs.show_runs(results)
    if arguments.json:
        write_json(results, arguments.json)
    written = report.write_folder(results, out, kept)
    runs.console.print(f"report written to {written}", highlight=False, markup=False)
    judged = loaded.model.expect is not None
    for problem in problems:  # item names like crash[ours] are text, not markup
        runs.console.print(f"[bold red]{'not met' if judged else 'failed'}:[/] {escape(problem)}", highlight=False)
    if not judged:
        runs.console.print(f"{loaded.name}: no expectations: measured only", highlight=False, markup=False)
    elif not problems:
        runs.console.print(f"{loaded.name}: every expectation met", highlight=False, markup=False)
    return 1 if problems else 0


def cmd_demo(arguments: argparse.Namespace) -> int:
    if arguments.policies and arguments.time_scale is not None:
        raise UsageError("--time-scale does not apply to demo --policies (profile fast at real time): drop it")
    _check_backend(arguments)
    scale = arguments.time_scale if arguments.time_scale is not None else timers.parse_scale(DEFAULT_DEMO_SCALE)
    if arguments.policies:
        fast = timers.profile("fast")
        plan: runs.Plan = [(fast, fault, name) for name in policy.POLICIES for fault in DEMO_FAULTS]
    else:
        plan = [
            (timers.profile(name).scaled(scale if scaled else 1.0), fault, policy.DEFAULT)
            for name, scaled in DEMO_PROFILES
            for fault in DEMO_FAULTS
        ]
    out: Path = arguments.out or Path("results/policies" if arguments.policies else "results/demo")
    _require_writable(None, out)
    results = _measure_runs(arguments, plan, out)
    runs.console.print(report.policy_table(results) if arguments.policies else report.kb_table(results))
    runs.console.print(f"report written to {report.write_folder(results, out)}")
    return 0 if all(r["recovered"] and r["within_prediction"] for r in results) else 1


def cmd_report(arguments: argparse.Namespace) -> int:
    source: Path = arguments.path
    results = result.load(source)
    path = report.redraw(results, source) if source.is_dir() else report.write_folder(results, report_folder_of(source))
    runs.show_summary(results)
    runs.console.print(f"report drawn: {path}")
    return 0


def report_folder_of(results_file: Path) -> Path:
    """Where `report FILE.json` writes its report folder: FILE-report/ next to it."""
    return results_file.with_name(f"{results_file.stem}-report")


COMMANDS = {
    "exec": lab_commands.cmd_exec,
    "up": cmd_up,
    "status": lab_commands.cmd_status,
    "run": cmd_run,
    "demo": cmd_demo,
    "report": cmd_report,
    "tune": tune.cmd_tune,
    "down": lab_commands.cmd_down,
    "clean": lab_commands.cmd_clean,
    "hosts": lab_commands.cmd_hosts,
    "preflight": lab_commands.cmd_preflight,
}


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _warn_in_one_line(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """A warning (a VM booted again, with what its kernel said) as the CLI's own line, not Python's."""
    sys.stderr.write(f"failover-lab: warning: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    warnings.showwarning = _warn_in_one_line
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (`cmd &`)
    try:
        return COMMANDS[arguments.command](arguments)
    except LabError as error:
        for line in str(error).splitlines() or [""]:  # a file's problems: one line each
            sys.stderr.write(f"failover-lab: error: {line}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("failover-lab: interrupted; everything it started was torn down\n")
        return 130
    except BrokenPipeError:  # the reader of our output is gone (`| head -1`): stop quietly, as shell tools do
        _silence_stdout()
        return 128 + signal.SIGPIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail a second time."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())

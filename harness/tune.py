"""`failover-lab tune`: the least chatty timers for a target outage, what they cost, what to paste,
and what they do on a real lab.

Owns: the command's output (the settings beside the base profile's, the configuration lines, the
measured runs' min/median/max beside the prediction) and its exit code. Not: the search
(harness.timer_search), measuring a run (harness.runs).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rich.table import Table

from harness import policy, probe, report, result, runs, timer_search, timers, userfiles
from harness.backends import AUTO, backend
from harness.errors import UsageError

DEFAULT_BASE = "strongswan-default"
"""What tune starts from when --base is not given: strongSwan's own defaults, DPD on."""
DEFAULT_REPEAT = 5


@dataclass(frozen=True)
class Side:
    """One column of the comparison: a profile and what the model says of it."""

    profile: timers.Profile
    goal: timer_search.Goal

    def worst(self, fault: str) -> str:
        try:
            return f"{timer_search.worst_case(self.profile, _for_fault(self.goal, fault)):.2f} s"
        except UsageError:
            return "never recovers"

    def idle(self) -> str:
        fewest, most = timer_search.idle_messages_per_hour(self.profile)
        return f"{fewest:.0f}-{most:.0f}"


def _for_fault(goal: timer_search.Goal, fault: str) -> timer_search.Goal:
    return replace(goal, fault=fault)


def resolution(policy_name: str) -> float:
    """The coarsest probe of what the policy protects: the tolerance of the overall outage."""
    chosen = policy.policy(policy_name)
    protected = [interval for service, interval in probe.INTERVALS.items() if chosen.protects_service(service)]
    return max(protected or probe.INTERVALS.values())


def goal_of(arguments: argparse.Namespace) -> timer_search.Goal:
    """The goal on the backend that will measure it (its setup allowance); with nothing to
    measure and no backend named, the allowance of nodes on this machine's kernel."""
    allowance = timers.SETUP_ALLOWANCE_S
    if arguments.repeat or arguments.backend != AUTO:
        chosen = backend(arguments.backend, arguments.inventory, arguments.insecure_host_keys)
        if arguments.repeat:
            chosen.check()  # before anything is printed: a lab could not run here
        allowance = chosen.setup_allowance_s
    if arguments.vip_move and arguments.fault != "graceful":
        raise UsageError("--vip-move is a graceful move's: a crash's takes --cluster-delay")
    params = timers.FaultParams(cluster_delay=arguments.cluster_delay)
    return timer_search.Goal(
        arguments.fault, arguments.target, params, resolution(policy.DEFAULT), allowance, arguments.vip_move
    )


def base_profile(arguments: argparse.Namespace) -> timers.Profile:
    user = userfiles.load_profiles(arguments.profiles) if arguments.profiles else {}
    return timers.profile(arguments.base or DEFAULT_BASE, user)


def comparison(base: Side, tuned: Side, goal: timer_search.Goal) -> Table:
    """The tuned settings beside the base profile's, with what each costs and predicts."""
    view = Table(title=f"Timers for a {goal.fault} outage of at most {goal.target:g} s", title_justify="left")
    for column in ("", f"base: {base.profile.name}", "tuned"):
        view.add_column(column, justify="left" if not column else "right")
    v1 = tuned.profile.ike_version == 1
    rows: list[tuple[str, Callable[[timers.Profile], str]]] = [
        ("IKE version", lambda p: str(p.ike_version)),
        ("dpd_delay", lambda p: f"{p.dpd_delay} s"),
        *([("dpd_timeout", lambda p: f"{p.dpd_timeout} s" if p.dpd_timeout else "0 (retransmissions)")] if v1 else []),
        ("retransmit_timeout", lambda p: f"{p.retransmit_timeout:g} s"),
        ("retransmit_base", lambda p: f"{p.retransmit_base:g}"),
        ("retransmit_tries", lambda p: str(p.retransmit_tries)),
        ("silent peer given up after", lambda p: f"{timer_search.tolerance(p):.2f} s"),
    ]
    for label, shown in rows:
        view.add_row(label, shown(base.profile), shown(tuned.profile))
    for fault in timer_search.TUNABLE:
        view.add_row(f"{fault}: worst case (model)", base.worst(fault), tuned.worst(fault))
    view.add_row("IKE messages per hour, idle", base.idle(), tuned.idle())
    return view


def configuration(profile: timers.Profile) -> str:
    """The lines to paste: strongswan.conf's retransmission settings, swanctl.conf's DPD."""
    charon = [
        f"    retransmit_timeout = {profile.retransmit_timeout!r}",
        f"    retransmit_base = {profile.retransmit_base!r}",
        f"    retransmit_tries = {profile.retransmit_tries}",
    ]
    if profile.retransmit_jitter:
        charon.append(f"    retransmit_jitter = {profile.retransmit_jitter}")
    if profile.retransmit_limit:
        charon.append(f"    retransmit_limit = {profile.retransmit_limit}")
    connection = [f"        version = {profile.ike_version}", f"        dpd_delay = {profile.dpd_delay}s"]
    if profile.ike_version == 1:
        connection.append(f"        dpd_timeout = {profile.dpd_timeout}s")
    connection.append("        # on the side that re-initiates (fe): dpd_action = restart, keyingtries = 0")
    return "\n".join(
        [
            "# strongswan.conf (on both peers)",
            "charon {",
            *charon,
            "}",
            "# swanctl.conf (on both peers, in each connection between them)",
            "connections {",
            "    <name> {",
            *connection,
            "    }",
            "}",
        ]
    )


def measured_line(results: Sequence[result.Result], worst: float) -> str:
    """min/median/max of the measured outages beside the prediction, and how many stayed in band."""
    outages = [r["outage_s"] for r in results if r["outage_s"] is not None]
    inside = sum(1 for r in results if r["within_prediction"])
    spread = (
        "no run recovered"
        if not outages
        else f"min {min(outages):.3f} s, median {statistics.median(outages):.3f} s, max {max(outages):.3f} s"
    )
    lost = len(results) - len(outages)
    return (
        f"measured over {len(results)} run{'s' if len(results) != 1 else ''}: {spread}"
        + (f", {lost} never recovered" if outages and lost else "")
        + f"; predicted worst case {worst:.2f} s; {inside} of {len(results)} inside their run's predicted band"
    )


def cmd_tune(arguments: argparse.Namespace) -> int:
    if arguments.out is not None:
        report.require_writable(arguments.out, f"--out {arguments.out}")
    base = base_profile(arguments)
    goal = goal_of(arguments)
    found = timer_search.tune(base, goal, arguments.ike_version)
    runs.console.print(comparison(Side(base, goal), Side(found.profile, goal), goal))
    fewest, most = timer_search.idle_messages_per_hour(found.profile)
    runs.console.print(
        f"least chatty within {goal.target:g} s: {fewest:.0f}-{most:.0f} IKE messages per hour between two idle peers "
        f"(one DPD exchange every {found.profile.dpd_delay} s, two when both peers check at once); probes every "
        f"{goal.resolution:g} s, setup allowance {goal.allowance:g} s",
        highlight=False,
        markup=False,
    )
    runs.console.print(configuration(found.profile), highlight=False, markup=False)
    if not arguments.repeat:
        return 0
    plan: runs.Plan = [(found.profile, goal.fault, policy.DEFAULT)]
    results = runs.measure_runs(
        plan,
        goal.params,
        arguments.repeat,
        arguments.backend,
        arguments.inventory,
        arguments.insecure_host_keys,
        arguments.out,
    )
    runs.show_runs(results)
    runs.console.print(measured_line(results, found.worst_s), highlight=False, markup=False)
    if arguments.out is not None:
        runs.console.print(f"report written to {report.write_folder(results, arguments.out)}")
    return 0 if all(r["recovered"] and r["within_prediction"] for r in results) else 1

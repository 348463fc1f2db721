"""What a person sees of runs on the command line, and the runs it shows: the line before each
run (its prediction, the lab's backend and policy), the live lines and bar while it waits
(every IKE event and SA change in time order, the phase on the bar), its result in a line, and
the tables after. The numbers are the result's own
(harness.result, harness.report): nothing here computes an outage or a band.

Owns: running a plan of measurements for the CLI and printing them. Not: argument parsing or
commands (harness.cli), the measurement (harness.measure).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from harness import faults, lab, live, measure, policy, report, result, scenario, timers

console = Console()
if not console.is_terminal:
    console = Console(width=160)

Plan = Sequence[tuple[timers.Profile, str, str]]
"""(profile, fault, policy) per measurement."""


class LiveLines:
    """The live view of one run: its lines in time order (live.InOrder), printed while it waits,
    completed from the run's whole log and SA events when it is over (``finish``); on a terminal
    also a bar of elapsed vs predicted time with the phase and the counts so far."""

    def __init__(self, bar: Progress | None = None, task: TaskID | None = None) -> None:
        self._order = live.InOrder()
        self._bar, self._task = bar, task

    def __call__(self, state: live.Progress) -> None:
        self._order.add(state.news)
        self._print(self._order.due(state.elapsed))
        if self._bar is not None and self._task is not None:
            counts = f"DPD {state.dpd_requests}, retransmissions {state.retransmits}, DELETE {state.deletes}"
            self._bar.update(
                self._task, total=state.predicted.hi, completed=state.elapsed, phase=state.phase, counts=counts
            )

    def finish(self, outcome: measure.Outcome) -> None:
        """Every line not printed yet, the ones the follower missed included, in time order."""
        self._order.add(live.news_of(outcome.t_fault_mono, outcome.log_events, outcome.events))
        self.flush()

    def flush(self) -> None:
        """Every line still held (a run that failed has no outcome to complete them from)."""
        self._print(self._order.rest())

    @staticmethod
    def _print(news: Sequence[live.News]) -> None:
        for at, what in news:
            console.print(f"  {at:8.3f} s  {what}", highlight=False, markup=False)


@contextmanager
def progress_reporter(title: str, predicted: float) -> Iterator[LiveLines]:
    """While a run waits for recovery: every IKE event fe's charon logs (DPD requests,
    retransmissions, DELETE, INITIAL_CONTACT, new SAs) and every SA of fe's with the VIP going
    down or installed, as a line, in seconds since the fault and in time order; on a terminal
    also the bar. The phase on the bar follows the result's rules, so it and the result agree."""
    if not console.is_terminal:
        lines = LiveLines()
        try:
            yield lines
        finally:
            lines.flush()
        return
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.fields[phase]:<12} {task.completed:6.1f} s of {task.total:.1f} s predicted"),
        TextColumn("{task.fields[counts]}"),
        console=console,
        transient=True,
    ) as bar:
        lines = LiveLines(bar, bar.add_task(title, total=predicted, phase="detection", counts=""))
        try:
            yield lines
        finally:
            lines.flush()


def say_rounded(profile: timers.Profile) -> None:
    """The scaled settings charon runs rounded to whole seconds: the prediction uses what runs."""
    for rounded in profile.rounded:
        console.print(f"  note: {rounded.describe()}", highlight=False)


def measure_runs(
    plan: Plan,
    params: timers.FaultParams,
    repeat: int,
    backend_name: str,
    inventory: Path | None = None,
    insecure_host_keys: bool = False,
    evidence_dir: Path | None = None,
) -> list[result.Result]:
    """Each (profile, fault, policy) ``repeat`` times, every run on a fresh lab (backend ssh: on
    the hosts of ``inventory``). ``evidence_dir``: the report folder, where each run's capture,
    charon logs and configuration go as soon as it is measured (harness.evidence)."""
    for _, fault, _ in plan:
        faults.refuse_what_the_backend_cannot_inject(fault, params, backend_name)
    results = []
    for profile, fault, policy_name in plan:
        scaled_params = params.scaled(profile.time_scale)
        for number in range(1, repeat + 1):
            started = time.monotonic()
            with lab.running(
                profile,
                backend_name,
                policy_name=policy_name,
                inventory=inventory,
                insecure_host_keys=insecure_host_keys,
            ) as running:
                title = f"{fault} / {profile.name}" + (f" / {policy_name}" if policy_name != policy.DEFAULT else "")
                title += f" (run {number} of {repeat})" if repeat > 1 else ""
                outcome, before = measure_one(running, title, fault, scaled_params, evidence_dir is not None)
            record = result.to_json(outcome)
            record["run_wall_s"] = round(time.monotonic() - started, 3)
            results.append(record)
            if evidence_dir is not None and outcome.evidence is not None:
                outcome.evidence.write(evidence_dir, result.run_name(len(results), record))
            say_outcome(record, before)
    return results


MEASURED_LATER = {"reboot-announce": " plus the back-end's restart, measured during the run"}
"""Faults whose prediction needs a time the run measures: the result's band includes it."""


def measure_one(
    running: lab.Lab, title: str, fault: str, params: timers.FaultParams, keep_evidence: bool = False
) -> tuple[measure.Outcome, timers.Bounds]:
    """One run with its header (the prediction before it, returned too) and its live lines;
    ``keep_evidence``: measure.run's."""
    bounds = measure.expected(running, fault, params)
    later = MEASURED_LATER.get(fault, "")
    where = f"lab {running.topology.name} (backend {running.backend.name}, policy {running.policy.name})"
    console.print(
        f"{title} on {where}: predicted outage {bounds.lo:.2f}-{bounds.hi:.2f} s{later} "
        "(times below: seconds after the fault)",
        highlight=False,
        markup=False,
    )
    say_rounded(running.profile)
    with progress_reporter(title, bounds.hi) as reporter:
        outcome = measure.run(running, fault, params, reporter, keep_evidence)
        reporter.finish(outcome)
    return outcome, bounds


def show_summary(results: Sequence[result.Result]) -> None:
    """The table a set of results is about: the policy designs side by side, the KB comparison
    for runs with KB figures, else every run."""
    if len({r["policy"] for r in results}) > 1:
        console.print(report.policy_table(results))
    elif any(r["kb_outage_s"] is not None for r in results):
        console.print(report.kb_table(results))
    else:
        show_runs(results)


def show_runs(results: Sequence[result.Result]) -> None:
    """The run table, and the statistics of repeated runs."""
    console.print(report.runs_table(results))
    repeated = report.statistics_table(results)
    if repeated is not None:
        console.print(repeated)


def say_outcome(record: result.Result, before: timers.Bounds) -> None:
    """The run's result in one line, with the numbers of the table and the JSON; when the band
    moved from the one announced before the run, what moved it."""
    console.print(f"  {report.outcome_line(record)}", highlight=False)
    band = (round(record["predicted"]["lo_s"], 2), round(record["predicted"]["hi_s"], 2))
    if band != (round(before.lo, 2), round(before.hi, 2)):
        console.print(f"  (the band counts {report.what_was_measured(record)})", highlight=False)
    if record["outage_s"] is not None:
        console.print(f"  phases: {report.phases_text(record)}", highlight=False)


def numbered_runs(title: str, repeat: int, keep_evidence: bool = False) -> scenario.MeasureOn:
    """Each of a scenario's runs as `run --fault` shows one: its header, live lines and result
    (``keep_evidence``: measure.run's)."""
    numbers = iter(range(1, repeat + 1))

    def measured(running: lab.Lab, fault: str, params: timers.FaultParams) -> measure.Outcome:
        number = next(numbers)
        outcome, before = measure_one(
            running, f"{title} (run {number} of {repeat})" if repeat > 1 else title, fault, params, keep_evidence
        )
        say_outcome(result.to_json(outcome), before)
        return outcome

    return measured

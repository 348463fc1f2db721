"""PNG plots drawn from result JSON alone (matplotlib, no display needed).

timeline    one run: every probe answer per service over time, coloured by the node that
            answered, failed attempts in grey, each service labelled IPsec or clear by the run's
            policy with its own measured outage and predicted band, the fault, the VIP move,
            fe's IKE and CHILD SA events, each kind of charon log event with its own marker, the
            phases and the overall predicted band; a time-scaled run says so in its title and
            has a second axis in unscaled-equivalent seconds
comparison  every run: measured outage (unscaled-equivalent, log scale) against the predicted
            band and the KB 821839 figure (a range), per profile, time scale, policy and fault;
            time-scaled bars hatched and pale, real-time bars solid

Every number written on a plot is the JSON's, formatted as the tables format it (harness.report).
A predicted band is drawn from where the outage it predicts starts: a service's band from its
last answer before the fault, the overall band from the start of the outage (``phases.start_s``),
so a service whose first answer after the fault lands inside its band is one the JSON counts
within its prediction. The overall band (``predicted``) sits on the phases row; the JSON's
``within_prediction`` says whether every service recovered inside its own band, and the phases
row says it in those words (a policy run's overall outage can end outside the overall band while
every service is inside its own). Attempts are drawn as the JSON holds them (answers where they arrived,
failures where they started, attempts without an end where they started); nothing is filled in.
The legend names every kind of mark drawn, and only those. Figures are made without pyplot
(nothing global to close); ``timeline_figure`` and ``comparison_figure`` return them for tests.

Owns: drawing. Not: computing anything a result does not already hold.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from harness import timers
from harness.policy import DEFAULT as DEFAULT_POLICY
from harness.probe import SERVICES

Result = dict[str, Any]
DPI = 110
NODE_COLOURS = {"be1": "tab:blue", "be2": "tab:orange"}
PREDICTED_COLOUR = "tab:green"
BAND_FACE = (0.0, 0.0, 0.0, 0.1)
LINE_MARKERS = ("|", "x", "+", "1", "2", "3", "4", "_")
"""Markers drawn as lines only: their colour is their edge."""


@dataclass(frozen=True)
class Mark:
    """How one kind of event is drawn and named in the legend."""

    marker: str
    colour: str
    label: str
    filled: bool = True

    def handle(self) -> Line2D:
        return Line2D(
            [],
            [],
            marker=self.marker,
            color=self.colour,
            markerfacecolor=self.colour if self.filled else "white",
            linestyle="",
            label=self.label,
        )


LOG_MARKS = {
    "dpd": Mark("o", "tab:purple", "DPD request sent"),
    "retransmit": Mark(">", "tab:brown", "IKE retransmission"),
    "gave-up": Mark("X", "tab:red", "gave up retransmitting"),
    "delete": Mark("D", "black", "DELETE received for the IKE_SA"),
    "initial-contact": Mark("*", "deeppink", "INITIAL_CONTACT: stale IKE_SA destroyed"),
    "acquire": Mark("d", "tab:blue", "acquire: a packet met the trap policy"),
    "initiate": Mark("s", "tab:cyan", "initiating IKE_SA"),
    "ike-established": Mark("P", "darkgreen", "IKE_SA established (log)"),
    "child-established": Mark("h", "tab:olive", "CHILD_SA established (log)"),
}
"""One marker per kind of fe's charon log event (harness.phases.LOG_EVENTS), in lane order from
the bottom of the log row: detection first, negotiation last."""
SA_MARKS = {
    ("ike", True): Mark("^", "tab:green", "IKE SA up (vici)"),
    ("ike", False): Mark("v", "tab:red", "IKE SA down (vici)"),
    ("child", True): Mark("^", "tab:green", "CHILD SA up (vici)", filled=False),
    ("child", False): Mark("v", "tab:red", "CHILD SA down (vici)", filled=False),
}
"""fe's SA events from vici: IKE filled, CHILD hollow; up above the row's middle, down below."""
PHASES = (
    ("detection_s", "tab:red", "detection"),
    ("negotiation_s", "tab:purple", "negotiation"),
    ("data_s", "tab:green", "data"),
)


def _seconds(value: float | None, digits: int = 3, unit: str = "") -> str:
    """A measured time as the tables write it (3 decimals actual, 1 unscaled); no recovery."""
    return "no recovery" if value is None else f"{value:.{digits}f}{unit}"


def _band(lo: float | None, hi: float | None, digits: int = 2) -> str:
    """The same text as harness.report's bands: ``lo-hi``, or one number when they are equal."""
    if lo is None or hi is None:
        return "-"
    return f"{lo:.{digits}f}" if lo == hi else f"{lo:.{digits}f}-{hi:.{digits}f}"


class Legend:
    """Legend entries, each label once, in the order of their rank (then of drawing): an entry
    is added when its mark is drawn, so only what was drawn gets one."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, int, Artist]] = {}

    def add(self, handle: Artist, rank: float) -> None:
        label = str(handle.get_label())
        if label not in self._entries:
            self._entries[label] = (rank, len(self._entries), handle)

    def handles(self) -> list[Artist]:
        return [handle for _, _, handle in sorted(self._entries.values(), key=lambda entry: entry[:2])]


def _scatter(
    axes: Axes, xs: Sequence[float], y: float, mark: Mark, legend: Legend, rank: float, size: float = 40
) -> None:
    if not xs:
        return
    line_only = mark.marker in LINE_MARKERS
    axes.scatter(
        xs,
        [y] * len(xs),
        marker=mark.marker,
        s=size,
        c=mark.colour if line_only or mark.filled else "white",
        edgecolors=None if line_only else mark.colour,
        linewidths=1.2,
        zorder=4,
        label=mark.label,
    )
    legend.add(mark.handle(), rank)


def _title(result: Result) -> str:
    """What ran, on what, and its outage: actual and, for a time-scaled run, unscaled too."""
    predicted = result["predicted"]
    head = f"{result['fault']} / {result['profile']}"
    if result["policy"] != DEFAULT_POLICY:
        head += f", policy {result['policy']}"
    head += f" on {result['backend']} (strongSwan {result['strongswan_version']})"
    scale = result["time_scale"]
    outage = _seconds(result["outage_s"], unit=" s")
    band = _band(predicted["lo_s"], predicted["hi_s"])
    if scale != 1:
        fraction = timers.scale_text(scale)
        measured = (
            "no recovery"
            if result["outage_s"] is None
            else f"outage {outage} actual = {_seconds(result['outage_unscaled_s'], 1, ' s')} unscaled"
        )
        timing = (
            f"TIME-SCALED {fraction} (every timer x {fraction}): {measured}; predicted {band} s actual"
            f" = {_band(predicted['lo_unscaled_s'], predicted['hi_unscaled_s'], 1)} s unscaled"
        )
    else:
        timing = f"real time (scale 1): outage {outage}, predicted {band} s"
    kb = result["kb_outage_s"]
    if kb is not None:
        timing += f"; KB 821839: {_band(kb[0], kb[1], 0)} s"
    return f"{head}\n{timing}"


def timeline_figure(result: Result) -> Figure:
    """The timeline of one run (see the module docstring)."""
    services = {name: result["services"][name] for name in SERVICES if name in result["services"]}
    predicted = result["predicted"]
    phases = result["phases"]
    outage = result["outage_s"]
    reach: list[float] = [outage or 0.0, predicted["hi_s"], phases["start_s"] + predicted["hi_s"], 0.5]
    for service in services.values():
        reach.append(service["last_answer_before_s"] + service["predicted"]["hi_s"])
        if service["first_answer_after_s"] is not None:
            reach.append(service["first_answer_after_s"])
    if outage is None:  # no recovery: show every attempt the JSON holds
        reach += [a[0] if a[1] is None else a[1] for attempts in result["attempts"].values() for a in attempts]
    span = max(reach)
    left, right = -0.15 * span - 0.1, 1.15 * span + 0.1

    def inside(t: float) -> bool:
        return left <= t <= right

    n = len(services)
    ike_row, child_row, log_row, phase_row = n, n + 1, n + 2.5, n + 4
    lanes = {kind: log_row - 0.9 + 1.8 * i / (len(LOG_MARKS) - 1) for i, kind in enumerate(LOG_MARKS)}
    figure = Figure(figsize=(14, 7))
    axes = figure.subplots()
    legend = Legend()
    axes.axvline(0, color="tab:red", linewidth=1.5)
    legend.add(Line2D([], [], color="tab:red", linewidth=1.5, label="fault injected"), 3)
    moved = result.get("vip_moved_s")
    if moved is not None and inside(moved) and result["new_owner"] not in (None, result["old_owner"]):
        axes.axvline(moved, color="0.35", linestyle="--", linewidth=1)
        label = f"VIP moved {result['old_owner']} -> {result['new_owner']}"
        legend.add(Line2D([], [], color="0.35", linestyle="--", label=label), 3.1)
    back = result.get("back_s")
    if back is not None and inside(back):
        axes.axvline(back, color="0.35", linestyle=":", linewidth=1.2)
        legend.add(Line2D([], [], color="0.35", linestyle=":", label=timers.BACK[result["fault"]]), 3.2)

    band_label = "predicted recovery: outage start + predicted outage"
    side_labels: dict[float, str] = {}
    for row, (name, service) in enumerate(services.items()):
        answered: dict[str, list[float]] = {}
        failed: list[float] = []
        endless: list[float] = []
        for t0, t1, node in result["attempts"].get(name, []):
            if t1 is None:  # still in flight when the probe was read: no end, no answer
                if inside(t0):
                    endless.append(t0)
            elif node is None:
                if inside(t0):
                    failed.append(t0)
            elif inside(t1):
                answered.setdefault(node, []).append(t1)
        for node, times in answered.items():
            mark = Mark("|", NODE_COLOURS.get(node, "tab:gray"), f"answer from {node} (where it arrived)")
            rank = list(NODE_COLOURS).index(node) / 10 if node in NODE_COLOURS else 0.5
            _scatter(axes, times, row, mark, legend, rank, 30)
        _scatter(axes, failed, row - 0.22, Mark("x", "0.6", "failed attempt (where it started)"), legend, 1, 6)
        mark = Mark("4", "0.15", "attempt without an end in the JSON (where it started)")
        _scatter(axes, endless, row - 0.22, mark, legend, 1.1, 30)
        start = service["last_answer_before_s"]
        band = service["predicted"]
        axes.add_patch(
            Rectangle(
                (start + band["lo_s"], row - 0.42),
                band["hi_s"] - band["lo_s"],
                0.84,
                color=PREDICTED_COLOUR,
                alpha=0.15,
                linewidth=0,
                gid=f"predicted:{name}",
            )
        )
        legend.add(Patch(color=PREDICTED_COLOUR, alpha=0.15, label=band_label), 2.1)
        end = service["first_answer_after_s"]
        axes.plot(
            [start, right if end is None else end],
            [row + 0.3, row + 0.3],
            color="black",
            linewidth=1,
            marker="|",
            markersize=7,
            gid=f"outage:{name}",
        )
        label = "measured outage: last answer to first answer"
        legend.add(Line2D([], [], color="black", linewidth=1, marker="|", label=label), 2)
        verdict = "in its band" if service["within_prediction"] else "OUT of its band"
        side_labels[row] = (
            f"{_seconds(service['outage_s'], unit=' s')}, predicted {_band(band['lo_s'], band['hi_s'])}"
            + ("" if service["outage_s"] is None else f": {verdict}")
        )

    for event in result["events"]:
        if inside(event["t_s"]):
            sa = (event["sa"], event["up"])
            y = (ike_row if event["sa"] == "ike" else child_row) + (0.12 if event["up"] else -0.12)
            _scatter(axes, [event["t_s"]], y, SA_MARKS[sa], legend, 4 + list(SA_MARKS).index(sa) / 10, 45)
    log_times: dict[str, list[float]] = {}
    for event in result["log_events"]:
        if inside(event["t_s"]):
            log_times.setdefault(event["kind"], []).append(event["t_s"])
    for kind, times in log_times.items():
        if kind in LOG_MARKS:
            _scatter(axes, times, lanes[kind], LOG_MARKS[kind], legend, 5 + list(LOG_MARKS).index(kind) / 10, 36)
        else:  # a kind this module does not know yet: drawn and named all the same
            _scatter(axes, times, log_row, Mark("o", "0.4", f"log: {kind}", filled=False), legend, 5.9, 36)

    start = phases["start_s"]
    causes = {"detection_s": ("by", phases["detected_by"]), "negotiation_s": ("with", phases["negotiated_with"])}
    for index, (key, colour, name) in enumerate(PHASES):
        length = phases[key]
        if length is None:
            continue
        word, cause = causes.get(key, ("", None))
        label = f"phase: {name}" + (f" ({word} {cause})" if cause else "")
        axes.barh(phase_row, length, left=start, height=0.5, color=colour, alpha=0.6, gid=f"phase:{key}")
        legend.add(Patch(color=colour, alpha=0.6, label=label), 6 + index / 10)
        start += length
    axes.add_patch(
        Rectangle(
            (phases["start_s"] + predicted["lo_s"], phase_row - 0.42),
            predicted["hi_s"] - predicted["lo_s"],
            0.84,
            color=PREDICTED_COLOUR,
            alpha=0.15,
            linewidth=0,
            gid="predicted:overall",
        )
    )
    every = "yes" if result["within_prediction"] else "NO"
    side_labels[phase_row] = (
        f"outage {_seconds(outage, unit=' s')}, predicted {_band(predicted['lo_s'], predicted['hi_s'])}\n"
        f"every service in its band: {every}"
    )

    ticks = [float(row) for row in range(n)] + [ike_row, child_row, log_row, phase_row]
    labels = [f"{name} ({'IPsec' if s['protected'] else 'clear'})" for name, s in services.items()]
    axes.set_yticks(ticks, [*labels, "fe IKE SA", "fe CHILD SA", "fe charon log", "phases"])
    for tick, service in zip(axes.get_yticklabels(), services.values(), strict=False):
        if not service["protected"]:
            tick.set_color("0.35")
            tick.set_fontstyle("italic")
    axes.axhline(n - 0.5, color="0.6", linewidth=0.8)
    for boundary in (child_row + 0.5, phase_row - 0.5):
        axes.axhline(boundary, color="0.85", linewidth=0.8)
    axes.set_xlim(left, right)
    axes.set_ylim(-0.7, phase_row + 0.6)
    side = axes.secondary_yaxis("right")
    side.set_yticks(list(side_labels), list(side_labels.values()), fontsize=8)
    scale = result["time_scale"]
    if scale != 1:
        axes.set_xlabel(
            f"seconds after the fault, actual (fe's monotonic clock): the run is time-scaled {timers.scale_text(scale)}"
        )
        top = axes.secondary_xaxis("top", functions=(lambda t: t / scale, lambda t: t * scale))
        inverse = timers.scale_text(float(1 / Fraction(scale).limit_denominator(1000)))
        top.set_xlabel(f"unscaled-equivalent seconds (actual / scale = actual x {inverse})", fontsize=9)
    else:
        axes.set_xlabel("seconds after the fault (fe's monotonic clock), real time")
    axes.set_title(_title(result), fontsize=10)
    if result["rounded"]:
        figure.text(0.01, 0.005, "charon ran rounded timers: " + "; ".join(result["rounded"]), fontsize=7, color="0.3")
    handles = legend.handles()
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.02))
    figure.tight_layout(rect=(0, 0.03 + 0.03 * ((len(handles) + 3) // 4), 1, 1))
    return figure


def timeline(result: Result, path: Path) -> None:
    timeline_figure(result).savefig(path, dpi=DPI)


def _tick_label(profile: str, scale: float, policy: str, name_policy: bool) -> str:
    label = f"{profile}\n{'time-scaled ' + timers.scale_text(scale) if scale != 1 else 'real time'}"
    return label + (f"\npolicy {policy}" if name_policy else "")


TICK_FONT = 8
CHAR_IN = 0.075
"""Width of a character of a tick label (DejaVu Sans at TICK_FONT points) in inches, rounded up."""
LINE_IN = 0.16
"""Height of a line of a tick label in inches."""
FAULT_IN = 1.1
"""Width a column gives each fault's bar, band and KB figure, in inches."""
MARGIN_IN = 4.0
"""The axis label and the legend beside the columns, in inches."""
MAX_WIDTH_IN = 24.0
"""Widest comparison figure: beyond it the tick labels are turned upright instead of widening it."""


@dataclass(frozen=True)
class Ticks:
    """How the comparison's columns are laid out so that no tick label overlaps another."""

    width: float
    """The figure's width in inches."""
    rotation: float
    """0: labels level, each column as wide as its widest label line; 90: upright."""


def tick_layout(labels: Sequence[str], faults: int) -> Ticks:
    """Level labels when they fit the columns the bars need, or the columns can be widened for
    them within MAX_WIDTH_IN; else upright labels (as many lines side by side as a label has)."""
    longest = max((len(line) for label in labels for line in label.split("\n")), default=0)
    bars = FAULT_IN * faults
    wanted = CHAR_IN * longest + 0.3
    level = max(bars, wanted)
    if wanted <= bars or level * len(labels) + MARGIN_IN <= MAX_WIDTH_IN:
        return Ticks(max(8.0, level * len(labels) + MARGIN_IN), 0)
    lines = max((label.count("\n") + 1 for label in labels), default=1)
    upright = max(bars, LINE_IN * lines + 0.15)
    return Ticks(max(8.0, upright * len(labels) + MARGIN_IN), 90)


def comparison_figure(results: Sequence[Result]) -> Figure:
    """Median measured outage per profile, time scale, policy and fault, in unscaled-equivalent
    seconds, in its predicted band (a box), beside the KB figure (a range)."""
    groups: dict[tuple[str, float, str], dict[str, list[Result]]] = {}
    for result in results:
        column = (result["profile"], result["time_scale"], result["policy"])
        groups.setdefault(column, {}).setdefault(result["fault"], []).append(result)
    columns = list(groups)
    faults = list(dict.fromkeys(result["fault"] for result in results))
    name_policy = {policy for _, _, policy in columns} != {DEFAULT_POLICY}
    slot = 0.8 / len(faults)
    bar = slot * 0.62
    labels = [_tick_label(*column, name_policy) for column in columns]
    ticks = tick_layout(labels, len(faults))
    figure = Figure(figsize=(ticks.width, 5.4))
    axes = figure.subplots()
    fault_colour = {fault: f"C{i % 10}" for i, fault in enumerate(faults)}
    values = [
        value
        for result in results
        for value in (
            result["outage_unscaled_s"],
            result["predicted"]["lo_unscaled_s"],
            result["predicted"]["hi_unscaled_s"],
            *(result["kb_outage_s"] or ()),
        )
        if value is not None and value > 0
    ]
    floor = min(values, default=1.0) / 3
    legend = Legend()
    for index, fault in enumerate(faults):
        legend.add(Patch(color=fault_colour[fault], label=fault), index / 100)
    value_box = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
    for c_index, column in enumerate(columns):
        scale = column[1]
        for f_index, fault in enumerate(faults):
            runs = groups[column].get(fault)
            if not runs:
                continue
            x = c_index + (f_index - (len(faults) - 1) / 2) * slot - slot * 0.1
            colour = fault_colour[fault]
            measured = [r["outage_unscaled_s"] for r in runs if r["outage_unscaled_s"] is not None]
            gid = f"{column[0]}:{timers.scale_text(scale)}:{column[2]}:{fault}"
            if measured:
                median = statistics.median(measured)
                if scale != 1:
                    face = to_rgba(colour, 0.3)
                    axes.bar(x, median, bar, facecolor=face, edgecolor=colour, hatch="///", gid=f"bar:{gid}")
                    label = "time-scaled run: hatched, pale (actual / scale)"
                    legend.add(Patch(facecolor=to_rgba("0.5", 0.3), edgecolor="0.3", hatch="///", label=label), 1)
                    text = f"{median:.1f}"  # as the KB table's "measured (unscaled)"
                else:
                    axes.bar(x, median, bar, color=colour, gid=f"bar:{gid}")
                    legend.add(Patch(color="0.4", label="real-time run: solid"), 1.1)
                    text = _seconds(median)  # as the KB table's "measured (actual)"
                axes.annotate(
                    text,
                    (x, median),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    bbox=value_box,
                    zorder=6,
                )
                if len(measured) > 1:
                    axes.scatter([x] * len(measured), measured, s=8, color="black", zorder=5)
                    handle = Line2D([], [], color="black", marker="o", markersize=3, linestyle="", label="one run")
                    legend.add(handle, 1.2)
            if len(measured) < len(runs):
                axes.annotate(
                    f"no recovery x{len(runs) - len(measured)}",
                    (x, floor),
                    xytext=(0, 4),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                    color="tab:red",
                )
            lo = min(r["predicted"]["lo_unscaled_s"] for r in runs)
            hi = max(r["predicted"]["hi_unscaled_s"] for r in runs)
            bottom = max(lo, floor)  # a band from 0 starts at the bottom of the log axis
            axes.add_patch(
                Rectangle(
                    (x - bar / 2, bottom),
                    bar,
                    hi - bottom,
                    facecolor=BAND_FACE,
                    edgecolor="black",
                    linestyle="--",
                    linewidth=1,
                    zorder=3,
                    gid=f"predicted:{gid}",
                )
            )
            band = Patch(facecolor=BAND_FACE, edgecolor="black", linestyle="--", label="predicted band (lo-hi)")
            legend.add(band, 2)
            kb = runs[0]["kb_outage_s"]
            if kb is not None:
                xk = x + bar / 2 + slot * 0.12
                axes.plot(
                    [xk, xk],
                    kb,
                    color="crimson",
                    linewidth=2.5,
                    marker="_",
                    markersize=12,
                    markeredgewidth=2.5,
                    zorder=5,
                    gid=f"kb:{gid}",
                )
                axes.annotate(
                    f"KB {_band(kb[0], kb[1], 0)} s",
                    (xk, kb[1]),
                    xytext=(0, 5),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="crimson",
                    bbox=value_box,
                    zorder=6,
                )
                handle = Line2D(
                    [], [], color="crimson", linewidth=2.5, marker="_", markersize=10, label="KB 821839 figure (lo-hi)"
                )
                legend.add(handle, 3)
    axes.set_yscale("log")
    axes.set_ylim(bottom=floor)
    axes.set_xticks(range(len(columns)), labels, fontsize=TICK_FONT, rotation=ticks.rotation)
    axes.set_ylabel("outage, unscaled-equivalent seconds (actual / time scale)")
    axes.set_title(
        "Outage per profile and fault, unscaled-equivalent seconds:\n"
        "median measured (bars) in the predicted band (boxes), KB 821839 (lo-hi)",
        fontsize=10,
    )
    axes.legend(handles=legend.handles(), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    figure.tight_layout()
    return figure


def comparison(results: Sequence[Result], path: Path) -> None:
    comparison_figure(results).savefig(path, dpi=DPI)

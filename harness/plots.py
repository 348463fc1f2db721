"""PNG plots drawn from result JSON alone (matplotlib, no display needed).

timeline    one run: every probe answer per service over time, coloured by the node that
            answered, failed attempts in grey, the fault, fe's SA events and charon log
            events, the phases and the predicted recovery band
comparison  every run: measured outage (unscaled-equivalent, log scale) against the predicted
            band and the KB 821839 figure, per profile and fault

Owns: drawing. Not: computing anything a result does not already hold.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.probe import SERVICES

NODE_COLOURS = {"be1": "tab:blue", "be2": "tab:orange"}
PHASE_COLOURS = {"detection_s": "tab:red", "negotiation_s": "tab:purple", "data_s": "tab:green"}
Result = dict[str, Any]


def timeline(result: Result, path: Path) -> None:
    outage = result["outage_s"] or 0.0
    predicted = result["predicted"]
    span = max(outage, predicted["hi_s"], 0.5)
    left, right = -0.15 * span - 0.1, 1.15 * span + 0.1
    figure, axes = plt.subplots(figsize=(11, 4.2))
    rows = [*SERVICES, "fe SA", "phases"]
    for row, service in enumerate(SERVICES):
        answered: dict[str, list[float]] = {}
        failed = []
        for t0, t1, node in result["attempts"][service]:
            if not left <= t1 <= right:
                continue
            if node is None:
                failed.append(t0)
            else:
                answered.setdefault(node, []).append(t1)
        for node, times in answered.items():
            axes.scatter(times, [row] * len(times), s=6, color=NODE_COLOURS.get(node, "tab:gray"), marker="|")
        axes.scatter(failed, [row - 0.25] * len(failed), s=4, color="0.6", marker="x")
    sa_row = len(SERVICES)
    for event in result["events"]:
        if left <= event["t_s"] <= right:
            marker = "^" if event["up"] else "v"
            axes.scatter(
                [event["t_s"]],
                [sa_row + (0.15 if event["sa"] == "child" else -0.15)],
                marker=marker,
                color="tab:green" if event["up"] else "tab:red",
                s=30,
                zorder=3,
            )
    for event in result["log_events"]:
        if left <= event["t_s"] <= right and event["kind"] in ("dpd", "retransmit", "gave-up", "delete"):
            axes.scatter([event["t_s"]], [sa_row], marker="|", color="0.3", s=60)
    start = result["phases"]["start_s"]
    phase_row = sa_row + 1
    for key, colour in PHASE_COLOURS.items():
        length = result["phases"][key]
        if length is not None:
            axes.barh(phase_row, length, left=start, height=0.5, color=colour, alpha=0.6)
            start += length
    lo, hi = predicted["lo_s"], predicted["hi_s"]
    axes.axvspan(lo, hi, color="tab:green", alpha=0.12)
    axes.axvline(0, color="tab:red", linewidth=1.5)
    axes.set_yticks(range(len(rows)), rows)
    axes.set_xlim(left, right)
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlabel("seconds after the fault (fe's monotonic clock)")
    scale = result["time_scale"]
    scaled = f", scale {scale:g}: {result['outage_unscaled_s']} s unscaled" if scale != 1 else ""
    axes.set_title(
        f"{result['fault']} / {result['profile']} on {result['backend']} (strongSwan {result['strongswan_version']}): "
        f"outage {outage:.3f} s{scaled}, predicted {lo:.2f}-{hi:.2f} s",
        fontsize=10,
    )
    legend: list[Artist] = [
        Line2D([], [], color=colour, marker="|", linestyle="", label=f"answered by {node}")
        for node, colour in NODE_COLOURS.items()
    ]
    legend += [
        Line2D([], [], color="0.6", marker="x", linestyle="", label="failed attempt"),
        Line2D([], [], color="tab:red", label="fault"),
        Patch(color="tab:green", alpha=0.12, label="predicted recovery"),
        Line2D([], [], color="0.3", marker="|", linestyle="", label="DPD / retransmit / DELETE"),
        *(Patch(color=c, alpha=0.6, label=k.removesuffix("_s")) for k, c in PHASE_COLOURS.items()),
    ]
    axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def comparison(results: Sequence[Result], path: Path) -> None:
    """Median measured outage per profile and fault, unscaled, with predicted band and KB figure."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for result in results:
        groups.setdefault((result["profile"], result["fault"]), []).append(result)
    profiles = list(dict.fromkeys(profile for profile, _ in groups))
    faults = list(dict.fromkeys(fault for _, fault in groups))
    width = 0.8 / len(faults)
    figure, axes = plt.subplots(figsize=(max(7.0, 1.8 * len(profiles) * len(faults) / 2 + 3), 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for f_index, fault in enumerate(faults):
        for p_index, profile in enumerate(profiles):
            runs = groups.get((profile, fault))
            if not runs:
                continue
            x = p_index + (f_index - (len(faults) - 1) / 2) * width
            measured = [r["outage_unscaled_s"] for r in runs if r["outage_unscaled_s"] is not None]
            if measured:
                axes.bar(
                    x,
                    statistics.median(measured),
                    width * 0.9,
                    color=colours[f_index % len(colours)],
                    label=fault if p_index == 0 else None,
                )
            lo = min(r["predicted"]["lo_unscaled_s"] for r in runs)
            hi = max(r["predicted"]["hi_unscaled_s"] for r in runs)
            axes.plot([x, x], [max(lo, 1e-3), hi], color="black", linewidth=2.5, alpha=0.6)
            kb = runs[0]["kb_outage_s"]
            if kb is not None:
                axes.scatter([x], [(kb[0] + kb[1]) / 2], marker="D", color="black", zorder=3)
    axes.set_yscale("log")
    axes.set_xticks(range(len(profiles)), profiles)
    axes.set_ylabel("outage, unscaled-equivalent seconds")
    axes.set_title("Measured outage (bars) vs predicted band (lines) and KB 821839 (diamonds)", fontsize=10)
    handles, _ = axes.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="black", linewidth=2.5, alpha=0.6, label="predicted"),
        Line2D([], [], color="black", marker="D", linestyle="", label="KB 821839"),
    ]
    axes.legend(handles=handles, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

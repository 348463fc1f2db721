"""Outcome -> JSON first; the terminal table is drawn from the JSON, never from live objects.

Every time in a result is in seconds relative to the fault except ``t_fault`` itself, which is
the fault's stamp on fe's monotonic clock (the clock of every probe attempt and SA event).

Owns: the result schema and its rendering. Not: measuring anything.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.measure import Outcome
from harness.probe import SERVICES

SCHEMA = "failover-lab/run/1"
REQUIRED_KEYS = (
    "schema",
    "backend",
    "fault",
    "profile",
    "timers",
    "strongswan_version",
    "outage_s",
    "resolution_s",
    "services",
    "old_owner",
    "new_owner",
    "t_fault",
    "events",
    "plaintext_packets",
    "predicted",
)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def to_json(outcome: Outcome) -> dict[str, Any]:
    t0 = outcome.t_fault_mono
    services = {}
    for name, outage in outcome.outages.items():
        bounds = outcome.predicted_for(outage)
        services[name] = {
            "outage_s": _r(outage.seconds),
            "resolution_s": outage.resolution,
            "last_answer_before_s": _r(outage.last_before - t0),
            "first_answer_after_s": _r(None if outage.first_after is None else outage.first_after - t0),
            "old_owner": outage.old_owner,
            "new_owner": outage.new_owner,
            "predicted": {"lo_s": _r(bounds.lo), "hi_s": _r(bounds.hi)},
            "within_prediction": outage.seconds is not None and outage.seconds in bounds,
        }
    attempts: dict[str, list[list[Any]]] = {name: [] for name in SERVICES}
    for attempt in outcome.attempts:
        attempts[attempt.service].append([_r(attempt.t0 - t0), _r(attempt.t1 - t0), attempt.node])
    return {
        "schema": SCHEMA,
        "backend": outcome.backend,
        "fault": outcome.fault,
        "profile": outcome.profile.name,
        "timers": outcome.profile.timers(),
        "cluster_delay_s": outcome.cluster_delay_s,
        "strongswan_version": outcome.strongswan_version,
        "lab": outcome.lab,
        "started_at": outcome.started_at,
        "t_fault": outcome.t_fault_mono,
        "outage_s": _r(outcome.outage_s),
        "resolution_s": outcome.resolution_s,
        "recovered": outcome.recovered,
        "predicted": {"lo_s": _r(outcome.predicted.lo), "hi_s": _r(outcome.predicted.hi)},
        "within_prediction": outcome.within_prediction,
        "old_owner": outcome.old_owner,
        "new_owner": outcome.new_owner,
        "services": services,
        "events": [
            {"t_s": _r(e.t - t0), "sa": e.kind, "up": e.up, "ike_id": e.ike_id, "remote": e.remote}
            for e in outcome.events
        ],
        "plaintext_packets": outcome.plaintext_packets,
        "wire_packets": outcome.wire_packets,
        "capture_dropped": outcome.capture_dropped,
        "guard_drops": outcome.guard_drops,
        "attempts": attempts,
    }


def write(results: Sequence[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(results), indent=1) + "\n")


def _seconds(value: float | None) -> str:
    return "no recovery" if value is None else f"{value:.3f}"


def table(results: Iterable[dict[str, Any]]) -> Table:
    """One row per run, then min/median/max per fault and profile where a run was repeated."""
    rows = list(results)
    view = Table(title="Measured outages (s)", title_justify="left")
    for column in ("fault", "profile", "strongSwan", "VIP", "outage", "predicted", *SERVICES, "clear pkts"):
        view.add_column(column, justify="left" if column in ("fault", "profile", "VIP") else "right")
    for row in rows:
        bounds = row["predicted"]
        verdict = "" if row["within_prediction"] else " !"
        view.add_row(
            row["fault"],
            row["profile"],
            row["strongswan_version"],
            f"{row['old_owner']} -> {row['new_owner'] or '?'}",
            _seconds(row["outage_s"]) + verdict,
            f"{bounds['lo_s']:.2f}-{bounds['hi_s']:.2f}",
            *(_seconds(row["services"][name]["outage_s"]) for name in SERVICES),
            str(row["plaintext_packets"]),
        )
    groups: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if row["outage_s"] is not None:
            groups.setdefault((row["fault"], row["profile"]), []).append(row["outage_s"])
    for (fault, profile), outages in groups.items():
        if len(outages) > 1:
            view.add_row(
                fault,
                profile,
                "",
                f"{len(outages)} runs",
                f"min {min(outages):.3f} / median {statistics.median(outages):.3f} / max {max(outages):.3f}",
                style="bold",
            )
    return view

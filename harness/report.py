"""Outcome -> JSON first; every table and the Markdown report are drawn from the JSON alone, so
`failover-lab report DIR` can redraw them from saved results.

Times in a result are seconds relative to the fault, except ``t_fault`` (the fault's stamp on
fe's monotonic clock, the clock of every probe attempt and SA event). A time-scaled run reports
actual seconds (``*_s``) and what they stand for at scale 1 (``*_unscaled_s`` = actual / scale).

Owns: the result schema, the terminal tables and report.md. Not: measuring, plotting.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.errors import UsageError
from harness.measure import Outcome
from harness.probe import SERVICES

SCHEMA = "failover-lab/run/1"
REQUIRED_KEYS = (
    "schema",
    "backend",
    "fault",
    "profile",
    "timers",
    "time_scale",
    "strongswan_version",
    "outage_s",
    "outage_unscaled_s",
    "resolution_s",
    "services",
    "old_owner",
    "new_owner",
    "t_fault",
    "events",
    "phases",
    "plaintext_packets",
    "predicted",
    "policy",
    "clear_by_port",
    "credentials_in_clear",
)
Result = dict[str, Any]


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _unscaled(value: float | None, scale: float) -> float | None:
    return None if value is None else round(value / scale, 3)


def to_json(outcome: Outcome) -> Result:
    t0 = outcome.t_fault_mono
    scale = outcome.profile.time_scale
    services = {}
    for name, outage in outcome.outages.items():
        bounds = outcome.predicted_for(outage)
        services[name] = {
            "protected": outcome.policy.protects_service(name),
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
    kb = outcome.profile.kb_outage(outcome.fault)
    phases = outcome.phases
    return {
        "schema": SCHEMA,
        "backend": outcome.backend,
        "fault": outcome.fault,
        "profile": outcome.profile.name,
        "profile_description": outcome.profile.description,
        "timers": outcome.profile.timers(),
        "policy": outcome.policy.name,
        "protected_ports": "all" if outcome.policy.ports is None else [f"{p}/{n}" for p, n in outcome.policy.ports],
        "time_scale": outcome.profile.time_scale,
        "fault_params": outcome.params.values(),
        "strongswan_version": outcome.strongswan_version,
        "lab": outcome.lab,
        "started_at": outcome.started_at,
        "t_fault": outcome.t_fault_mono,
        "outage_s": _r(outcome.outage_s),
        "outage_unscaled_s": _unscaled(outcome.outage_s, scale),
        "resolution_s": outcome.resolution_s,
        "recovered": outcome.recovered,
        "predicted": {
            "lo_s": _r(outcome.predicted.lo),
            "hi_s": _r(outcome.predicted.hi),
            "lo_unscaled_s": _unscaled(outcome.predicted.lo, scale),
            "hi_unscaled_s": _unscaled(outcome.predicted.hi, scale),
        },
        "within_prediction": outcome.within_prediction,
        "kb_outage_s": None if kb is None else list(kb),
        "old_owner": outcome.old_owner,
        "new_owner": outcome.new_owner,
        "vip_moved_s": _r(outcome.vip_moved),
        "announced_s": _r(outcome.back),
        "phases": {
            "start_s": _r(min(o.last_before for o in outcome.outages.values()) - t0),
            "detection_s": _r(phases.detection),
            "negotiation_s": _r(phases.negotiation),
            "data_s": _r(phases.data),
            "detected_by": phases.detected_by,
            "negotiated_with": phases.negotiated_with,
            "dpd_requests": phases.dpd_requests,
            "retransmits": phases.retransmits,
        },
        "services": services,
        "events": [
            {"t_s": _r(e.t - t0), "sa": e.kind, "up": e.up, "ike_id": e.ike_id, "remote": e.remote}
            for e in outcome.events
        ],
        "log_events": [{"t_s": _r(e.t - t0), "kind": e.kind, "text": e.text} for e in outcome.log_events],
        "plaintext_packets": outcome.plaintext_packets,
        "wire_packets": outcome.wire_packets,
        "capture_dropped": outcome.capture_dropped,
        "guard_drops": outcome.guard_drops,
        "esp_packets": outcome.esp_packets,
        "clear_by_port": outcome.clear_by_port,
        "esp_by_child": outcome.esp_by_child,
        "credentials_in_clear": outcome.credentials_in_clear,
        "coverage": outcome.coverage,
        "attempts": attempts,
    }


def run_name(index: int, result: Result) -> str:
    return f"{index:02d}-{result['profile']}-{result['fault']}"


def save(results: Sequence[Result], directory: Path) -> list[Path]:
    """One JSON file per run in ``directory``/runs, numbered in run order."""
    runs = directory / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, result in enumerate(results, 1):
        path = runs / f"{run_name(index, result)}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        paths.append(path)
    return paths


def load(directory: Path) -> list[Result]:
    """The runs saved in ``directory`` (by `save`), in run order."""
    paths = sorted((directory / "runs").glob("*.json"))
    if not paths:
        raise UsageError(f"{directory}: no results (expected runs/*.json written by demo or run --out)")
    results = []
    for path in paths:
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise UsageError(f"{path}: not a failover-lab result: {error}") from None
        if not isinstance(result, dict) or result.get("schema") != SCHEMA:
            raise UsageError(f"{path}: not a failover-lab result (schema {SCHEMA} expected)")
        results.append(result)
    return results


def _seconds(value: float | None) -> str:
    return "no recovery" if value is None else f"{value:.3f}"


def _band(lo: float | None, hi: float | None, digits: int = 2) -> str:
    if lo is None or hi is None:
        return "-"
    return f"{lo:.{digits}f}" if lo == hi else f"{lo:.{digits}f}-{hi:.{digits}f}"


def _phases(result: Result) -> str:
    phases = result["phases"]
    parts = [
        f"{label} {phases[key]:.2f}"
        for label, key in (("detect", "detection_s"), ("negotiate", "negotiation_s"), ("data", "data_s"))
        if phases[key] is not None
    ]
    cause = f" ({phases['detected_by']})" if phases["detected_by"] else ""
    return " + ".join(parts) + cause


def p95(values: Sequence[float]) -> float:
    """95th percentile by linear interpolation (the largest value for fewer than 2 samples)."""
    if len(values) < 2:
        return max(values)
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def summaries(results: Iterable[Result]) -> list[tuple[str, str, list[float]]]:
    """(fault, profile, outages) for each fault and profile measured more than once."""
    groups: dict[tuple[str, str], list[float]] = {}
    for row in results:
        if row["outage_s"] is not None:
            groups.setdefault((row["fault"], row["profile"]), []).append(row["outage_s"])
    return [(fault, profile, values) for (fault, profile), values in groups.items() if len(values) > 1]


def runs_table(results: Iterable[Result]) -> Table:
    """One row per run (measured vs predicted, per service, phases), then min/median/p95/max
    for each fault and profile that was repeated."""
    rows = list(results)
    view = Table(title="Measured outages (s)", title_justify="left")
    columns = ("fault", "profile", "VIP", "outage", "predicted", *SERVICES, "phases", "clear")
    for column in columns:
        view.add_column(column, justify="left" if column in ("fault", "profile", "VIP", "phases") else "right")
    for row in rows:
        verdict = "" if row["within_prediction"] else " !"
        view.add_row(
            row["fault"],
            row["profile"],
            f"{row['old_owner']} -> {row['new_owner'] or '?'}",
            _seconds(row["outage_s"]) + verdict,
            _band(row["predicted"]["lo_s"], row["predicted"]["hi_s"]),
            *(_seconds(row["services"][name]["outage_s"]) for name in SERVICES),
            _phases(row),
            str(row["plaintext_packets"]),
        )
    for fault, profile, values in summaries(rows):
        view.add_row(
            fault,
            profile,
            f"{len(values)} runs",
            f"min {min(values):.3f} median {statistics.median(values):.3f} p95 {p95(values):.3f} max {max(values):.3f}",
            style="bold",
        )
    return view


def kb_rows(results: Iterable[Result]) -> list[list[str]]:
    """Rows of the KB 821839 comparison: unscaled-equivalent seconds first, then actual."""
    rows = []
    for row in results:
        kb = row["kb_outage_s"]
        predicted = row["predicted"]
        rows.append(
            [
                row["profile"],
                row["fault"],
                f"1/{1 / row['time_scale']:.0f}" if row["time_scale"] < 1 else "1",
                "-" if kb is None else _band(kb[0], kb[1], 0),
                _band(predicted["lo_unscaled_s"], predicted["hi_unscaled_s"], 1),
                "no recovery" if row["outage_unscaled_s"] is None else f"{row['outage_unscaled_s']:.1f}",
                _band(predicted["lo_s"], predicted["hi_s"]),
                _seconds(row["outage_s"]),
                "yes" if row["within_prediction"] else "NO",
                str(row["plaintext_packets"]),
            ]
        )
    return rows


KB_COLUMNS = (
    "profile",
    "fault",
    "scale",
    "KB 821839",
    "predicted (unscaled)",
    "measured (unscaled)",
    "predicted (actual)",
    "measured (actual)",
    "in band",
    "clear pkts",
)


def kb_table(results: Iterable[Result]) -> Table:
    view = Table(title="KB 821839 reproduced: outage in seconds", title_justify="left")
    for column in KB_COLUMNS:
        view.add_column(column, justify="left" if column in ("profile", "fault") else "right")
    for row in kb_rows(results):
        view.add_row(*row)
    return view


POLICY_COLUMNS = (
    "policy",
    "protected",
    "seen in clear",
    "passwords readable",
    "graceful: protected / clear",
    "crash: protected / clear",
    "protected pkts in clear",
)


def _worst(result: Result | None, protected: bool) -> str:
    if result is None:
        return "-"
    outages = [s["outage_s"] for s in result["services"].values() if s["protected"] is protected]
    if not outages:
        return "-"
    return "no recovery" if None in outages else f"{max(outages):.2f}"


def policy_rows(results: Iterable[Result]) -> list[list[str]]:
    """One row per policy: coverage on the wire, exposed credentials, outages by protection."""
    by_policy: dict[str, dict[str, Result]] = {}
    for result in results:
        by_policy.setdefault(result["policy"], {})[result["fault"]] = result
    rows = []
    for name, runs in by_policy.items():
        any_run = next(iter(runs.values()))
        protected = any_run["protected_ports"]
        clear = sorted({port for r in runs.values() for port, n in r["clear_by_port"].items() if n})
        exposed = {k: sum(r["credentials_in_clear"][k] for r in runs.values()) for k in any_run["credentials_in_clear"]}
        graceful, crash = runs.get("graceful"), runs.get("crash")
        rows.append(
            [
                name,
                "everything" if protected == "all" else (", ".join(protected) or "nothing"),
                ", ".join(clear) or "nothing",
                ", ".join(f"{k} x{n}" for k, n in exposed.items() if n) or "none",
                f"{_worst(graceful, True)} / {_worst(graceful, False)}",
                f"{_worst(crash, True)} / {_worst(crash, False)}",
                str(sum(r["plaintext_packets"] for r in runs.values())),
            ]
        )
    return rows


def policy_table(results: Iterable[Result]) -> Table:
    view = Table(title="KB 821839 policy designs: the wire and the failover (s)", title_justify="left")
    for column in POLICY_COLUMNS:
        view.add_column(column, justify="right" if "/" in column or "pkts" in column else "left")
    for row in policy_rows(results):
        view.add_row(*row)
    return view


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(results: Sequence[Result], plots: dict[str, str], comparison: str | None) -> str:
    """report.md: the KB table, one section per run with its phases and timeline."""
    versions = sorted({r["strongswan_version"] for r in results})
    backends = sorted({r["backend"] for r in results})
    parts = [
        "# failover-lab report",
        "",
        f"{len(results)} runs on backend {', '.join(backends)}, strongSwan {', '.join(versions)}. "
        "Unscaled = actual seconds / time scale: what the outage would be with the unscaled timers. "
        "At a small scale the harness's own fixed costs (probe resolution, IKE round trips, DPD's "
        "whole-second granularity) weigh more in unscaled terms, which widens the predicted band.",
        "",
        "## KB 821839 comparison",
        "",
        _markdown_table(KB_COLUMNS, kb_rows(results)),
    ]
    if comparison:
        parts += ["", f"![measured vs predicted]({comparison})"]
    if len({r["policy"] for r in results}) > 1:
        parts += [
            "",
            "## Policy designs",
            "",
            "What each design protects, which service ports an eavesdropper on the lab switch saw in "
            "clear, whether the probe's POP3 PASS and IMAP LOGIN could be read, and the worst outage "
            "of the protected and of the clear services.",
            "",
            _markdown_table(POLICY_COLUMNS, policy_rows(results)),
        ]
    parts += ["", "## Runs"]
    for index, result in enumerate(results, 1):
        name = run_name(index, result)
        phases = result["phases"]
        parts += [
            "",
            f"### {name}",
            "",
            f"{result['profile_description']} (scale {result['time_scale']:g}). "
            f"VIP {result['old_owner']} -> {result['new_owner']}; outage {_seconds(result['outage_s'])} s "
            f"(predicted {_band(result['predicted']['lo_s'], result['predicted']['hi_s'])} s); "
            f"phases: {_phases(result) or 'none'}; negotiated with {phases['negotiated_with'] or '-'}; "
            f"{phases['dpd_requests']} DPD requests, {phases['retransmits']} retransmissions; "
            f"{result['plaintext_packets']} protected packets in clear of {result['wire_packets']} on the wire.",
        ]
        if name in plots:
            parts += ["", f"![timeline of {name}]({plots[name]})"]
    return "\n".join(parts) + "\n"


def write_folder(results: Sequence[Result], directory: Path) -> Path:
    """A report folder: runs/*.json, plots/*.png (one timeline per run), comparison.png and
    report.md; returns the path of report.md."""
    save(results, directory)
    return redraw(directory)


def redraw(directory: Path) -> Path:
    """report.md and every plot again, from the JSON in ``directory``/runs alone."""
    from harness import plots  # matplotlib is slow to import; only reports need it

    results = load(directory)
    (directory / "plots").mkdir(exist_ok=True)
    drawn = {}
    for index, result in enumerate(results, 1):
        name = run_name(index, result)
        plots.timeline(result, directory / "plots" / f"{name}.png")
        drawn[name] = f"plots/{name}.png"
    plots.comparison(results, directory / "comparison.png")
    path = directory / "report.md"
    path.write_text(markdown(results, drawn, "comparison.png"))
    return path

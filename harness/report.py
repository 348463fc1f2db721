"""Results drawn for people: every table, report.md and the report folder come from the JSON
results alone (harness.result), so `failover-lab report PATH` can draw them again from saved runs.

Owns: the terminal tables, report.md and the report folder's layout. Not: the result's schema,
saving and loading it (harness.result), measuring, plotting (harness.plots).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

from rich.table import Table

from harness.probe import SERVICES
from harness.result import Result, run_name, save


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
    return redraw(results, directory)


def redraw(results: Sequence[Result], directory: Path) -> Path:
    """report.md and every plot of ``results`` in ``directory`` (its runs/*.json untouched);
    returns the path of report.md."""
    from harness import plots  # matplotlib is slow to import; only reports need it

    (directory / "plots").mkdir(parents=True, exist_ok=True)
    drawn = {}
    for index, result in enumerate(results, 1):
        name = run_name(index, result)
        plots.timeline(result, directory / "plots" / f"{name}.png")
        drawn[name] = f"plots/{name}.png"
    plots.comparison(results, directory / "comparison.png")
    path = directory / "report.md"
    path.write_text(markdown(results, drawn, "comparison.png"))
    return path

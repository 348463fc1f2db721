"""Results drawn for people: every table, report.md and the report folder come from the JSON
results alone (harness.result), so `failover-lab report PATH` can draw them again from saved runs.

Owns: the terminal tables, report.md and the report folder's layout. Not: the result's schema,
saving and loading it (harness.result), measuring, plotting (harness.plots).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.table import Table

from harness import html_report, timers
from harness.errors import UsageError
from harness.evidence import Evidence
from harness.probe import SERVICES
from harness.result import Result, run_name, save


def _seconds(value: float | None) -> str:
    return "no recovery" if value is None else f"{value:.3f}"


def _band(lo: float | None, hi: float | None, digits: int = 2) -> str:
    if lo is None or hi is None:
        return "-"
    return f"{lo:.{digits}f}" if lo == hi else f"{lo:.{digits}f}-{hi:.{digits}f}"


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``0 DPD requests``."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def phases_text(result: Result) -> str:
    """Where the outage went: the phases, and what told fe."""
    phases = result["phases"]
    parts = [
        f"{label} {phases[key]:.2f}"
        for label, key in (("detection", "detection_s"), ("negotiation", "negotiation_s"), ("data", "data_s"))
        if phases[key] is not None
    ]
    if phases["detection_s"] is None and result["outage_s"] is not None:
        parts.insert(0, "fe never noticed:")
    said = [f"detected by {phases['detected_by']}"] if phases["detected_by"] else []
    if phases.get("started_by") == "acquire":  # the trap's way; restart and peer are what detection implies
        said.append("restarted by an acquire")
    cause = f" ({', '.join(said)})" if said else ""
    return " + ".join(parts).replace(": +", ":") + cause


def _in_band(result: Result) -> str:
    return "yes" if result["within_prediction"] else "NO"


def outcome_line(result: Result) -> str:
    """One run in one sentence, with the numbers of the table and the JSON."""
    predicted = result["predicted"]
    if result["outage_s"] is None:
        return f"no recovery (predicted {_band(predicted['lo_s'], predicted['hi_s'])} s)"
    text = (
        f"outage {result['outage_s']:.3f} s, predicted {_band(predicted['lo_s'], predicted['hi_s'])} s: "
        f"{'inside' if result['within_prediction'] else 'OUTSIDE'} the band"
    )
    if result["time_scale"] != 1:
        text += (
            f" (at scale {timers.scale_text(result['time_scale'])}: {result['outage_unscaled_s']:.1f} s unscaled, "
            f"predicted {_band(predicted['lo_unscaled_s'], predicted['hi_unscaled_s'], 1)} s)"
        )
    return f"{text}; {plural(result['plaintext_packets'], 'protected packet')} in clear"


def what_was_measured(result: Result) -> str:
    """The times a run measured that its prediction depends on."""
    parts = []
    if result.get("back_s") is not None:
        parts.append(f"{timers.BACK[result['fault']]} after {result['back_s']:.3f} s, as measured")
    if result.get("vip_moved_s") is not None:
        parts.append(f"the measured VIP move of {result['vip_moved_s']:.3f} s")
    return " and ".join(parts) or "what the run measured"


def p95(values: Sequence[float]) -> float | None:
    """95th percentile by linear interpolation; None for fewer than P95_SAMPLES samples, where it
    would only restate the largest value."""
    if len(values) < P95_SAMPLES:
        return None
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


P95_SAMPLES = 20


def vip_text(result: Result) -> str:
    """Where the VIP went: ``be1 -> be2``, ``be1 (stays)`` when the services answered from the
    node that held it (freeze, reboot), ``be1 -> ?`` when they recovered on different nodes or
    did not recover."""
    old, new = result["old_owner"], result["new_owner"]
    return f"{old} (stays)" if new == old else f"{old} -> {new or '?'}"


RUNS_TITLE = "Measured outages (s)"


def runs_columns(results: Sequence[Result]) -> list[str]:
    """The run table's columns; the unscaled ones only when a run was time-scaled."""
    columns = ["#", "fault", "profile", "VIP", "outage", "predicted", "in band"]
    columns += ["scale", "outage unscaled", "predicted unscaled"] if _scaled(results) else []
    return [*columns, *SERVICES, "phases", "clear pkts"]


def _scaled(results: Sequence[Result]) -> bool:
    return any(row["time_scale"] != 1 for row in results)


def runs_rows(results: Sequence[Result]) -> list[list[str]]:
    """One row per run, numbered as in the report folder: measured vs predicted, in band, per
    service, phases; the unscaled values when a run was time-scaled."""
    scaled = _scaled(results)
    rows = []
    for number, row in enumerate(results, 1):
        predicted = row["predicted"]
        cells = [
            str(number),
            row["fault"],
            row["profile"],
            vip_text(row),
            _seconds(row["outage_s"]),
            _band(predicted["lo_s"], predicted["hi_s"]),
            _in_band(row),
        ]
        if scaled:
            unscaled = row["outage_unscaled_s"]
            cells += [
                timers.scale_text(row["time_scale"]),
                "no recovery" if unscaled is None else f"{unscaled:.1f}",
                _band(predicted["lo_unscaled_s"], predicted["hi_unscaled_s"], 1),
            ]
        cells += [*(_seconds(row["services"][name]["outage_s"]) for name in SERVICES), phases_text(row)]
        cells.append(str(row["plaintext_packets"]))
        rows.append(cells)
    return rows


def runs_table(results: Iterable[Result]) -> Table:
    """The run table (runs_rows) for the terminal."""
    rows = list(results)
    view = Table(title=RUNS_TITLE, title_justify="left")
    for column in runs_columns(rows):
        view.add_column(column, justify="left" if column in ("fault", "profile", "VIP", "phases") else "right")
    for cells in runs_rows(rows):
        view.add_row(*cells)
    return view


def statistics_rows(results: Iterable[Result]) -> list[list[str]]:
    """Per fault, profile and service measured more than once: n, min, median, max (p95 only
    with P95_SAMPLES runs or more), how many inside their band, and the runs that never recovered."""
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for row in results:
        for service in ("overall", *SERVICES):
            groups.setdefault((row["fault"], row["profile"], service), []).append(row)
    rows = []
    for (fault, profile, service), runs in groups.items():
        if len(runs) < 2:
            continue
        measured = [run["outage_s"] if service == "overall" else run["services"][service]["outage_s"] for run in runs]
        values = [value for value in measured if value is not None]
        inside = [
            run["within_prediction"] if service == "overall" else run["services"][service]["within_prediction"]
            for run in runs
        ]
        high = p95(values) if values else None
        rows.append(
            [
                fault,
                profile,
                service,
                str(len(runs)),
                *(f"{f(values):.3f}" if values else "-" for f in (min, statistics.median, max)),
                "-" if high is None else f"{high:.3f}",
                f"{sum(inside)} of {len(runs)}",
                str(len(measured) - len(values)),
            ]
        )
    return rows


STATISTICS_TITLE = f"Repeated runs: outage statistics (s; p95 from {P95_SAMPLES} runs on)"
STATISTICS_COLUMNS = ("fault", "profile", "service", "n", "min", "median", "max", "p95", "in band", "no recovery")


def statistics_table(results: Iterable[Result]) -> Table | None:
    """The repeated runs' statistics (None when nothing was repeated)."""
    rows = statistics_rows(results)
    if not rows:
        return None
    view = Table(title=STATISTICS_TITLE, title_justify="left")
    for column in STATISTICS_COLUMNS:
        view.add_column(column, justify="left" if column in ("fault", "profile", "service") else "right")
    for row in rows:
        view.add_row(*row)
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
                timers.scale_text(row["time_scale"]),
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


KB_TITLE = "KB 821839 reproduced: outage in seconds"


def kb_table(results: Iterable[Result]) -> Table:
    view = Table(title=KB_TITLE, title_justify="left")
    rows = kb_rows(results)
    for column in KB_COLUMNS:
        if column == "profile":  # never cut short: win2003-nlbsflags and win2003-nlbsflags-ikev1 look alike
            view.add_column(column, no_wrap=True, min_width=max((len(row[0]) for row in rows), default=0))
        else:
            view.add_column(column, justify="left" if column == "fault" else "right")
    for row in rows:
        view.add_row(*row)
    return view


POLICY_COLUMNS = (
    "policy",
    "protected",
    "seen in clear",
    "passwords readable",
    "graceful: protected / clear",
    "crash: protected / clear",
    "in band",
    "protected pkts in clear",
)


def _worst(runs: Sequence[Result], protected: bool) -> str:
    """The longest outage of the services the policy protects (or leaves in clear) over ``runs``."""
    outages = [s["outage_s"] for run in runs for s in run["services"].values() if s["protected"] is protected]
    if not outages:
        return "-"
    return "no recovery" if None in outages else f"{max(outages):.2f}"


def policy_rows(results: Iterable[Result]) -> list[list[str]]:
    """One row per policy, named in its first column: coverage on the wire, exposed credentials,
    the worst outage of its protected and of its clear services per fault, and how many of its
    runs stayed inside their predicted bands. Repeated runs all count (worst outage, sums)."""
    by_policy: dict[str, list[Result]] = {}
    for result in results:
        by_policy.setdefault(result["policy"], []).append(result)
    rows = []
    for name, runs in by_policy.items():
        protected = runs[0]["protected_ports"]
        ports = list(dict.fromkeys(port for r in runs for port in r["clear_by_port"]))  # the VIP's, then dc's
        clear = [port for port in ports if any(r["clear_by_port"].get(port) for r in runs)]
        dc_ports = {port for r in runs for answers in r.get("coverage", {}).values() for port in answers}
        if dc_ports and dc_ports <= set(clear):
            clear = [port for port in clear if port not in dc_ports] + ["all of dc's ports"]
        exposed = {k: sum(r["credentials_in_clear"][k] for r in runs) for k in runs[0]["credentials_in_clear"]}
        graceful = [r for r in runs if r["fault"] == "graceful"]
        crash = [r for r in runs if r["fault"] == "crash"]
        rows.append(
            [
                name,
                "everything" if protected == "all" else (", ".join(protected) or "nothing"),
                ", ".join(clear) or "nothing",
                ", ".join(f"{k} x{n}" for k, n in exposed.items() if n) or "none",
                f"{_worst(graceful, True)} / {_worst(graceful, False)}",
                f"{_worst(crash, True)} / {_worst(crash, False)}",
                f"{sum(r['within_prediction'] for r in runs)} of {len(runs)}",
                str(sum(r["plaintext_packets"] for r in runs)),
            ]
        )
    return rows


def policy_table(results: Iterable[Result]) -> Table:
    view = Table(title="KB 821839 policy designs: the wire and the failover (s)", title_justify="left")
    for column in POLICY_COLUMNS:
        numeric = "/" in column or column in ("in band", "protected pkts in clear")
        view.add_column(column, justify="right" if numeric else "left")
    for row in policy_rows(results):
        view.add_row(*row)
    return view


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(results: Sequence[Result], plots: dict[str, str], comparison: str | None) -> str:
    """report.md: the tables the terminal shows (every run numbered, the statistics of repeated
    runs, the KB comparison when a run has a KB figure, the policy designs side by side when
    several ran), the comparison plot, then one section per run with its phases and timeline."""
    versions = sorted({r["strongswan_version"] for r in results})
    backends = sorted({r["backend"] for r in results})
    parts = [
        "# failover-lab report",
        "",
        f"{plural(len(results), 'run')} on backend {', '.join(backends)}, strongSwan {', '.join(versions)}. "
        "Unscaled = actual seconds / time scale: what the outage would be with the unscaled timers. "
        "At a small scale the harness's own fixed costs (probe resolution, IKE round trips, DPD's "
        "whole-second granularity) weigh more in unscaled terms, which widens the predicted band.",
        "",
        f"## {RUNS_TITLE}",
        "",
        _markdown_table(runs_columns(results), runs_rows(results)),
    ]
    repeated = statistics_rows(results)
    if repeated:
        parts += ["", f"## {STATISTICS_TITLE}", "", _markdown_table(STATISTICS_COLUMNS, repeated)]
    if any(r["kb_outage_s"] is not None for r in results):
        parts += ["", f"## {KB_TITLE}", "", _markdown_table(KB_COLUMNS, kb_rows(results))]
    if comparison:
        parts += ["", f"![measured vs predicted]({comparison})"]
    if len({r["policy"] for r in results}) > 1:
        parts += [
            "",
            "## Policy designs",
            "",
            "What each design protects, which service ports an eavesdropper on the lab switch saw in "
            "clear, whether the probe's POP3 PASS and IMAP LOGIN could be read, the worst outage "
            "of the protected and of the clear services (seconds; - when the design has none), and "
            "how many of its runs stayed inside their predicted bands (each run's band is in its "
            "section below).",
            "",
            _markdown_table(POLICY_COLUMNS, policy_rows(results)),
        ]
    parts += ["", "## Runs"]
    for index, result in enumerate(results, 1):
        name = title = run_name(index, result)  # names the policy unless it is the default
        phases = result["phases"]
        parts += [
            "",
            f"### {title}",
            "",
            f"{result['profile_description']} (scale {timers.scale_text(result['time_scale'])}). "
            f"VIP {vip_text(result)}; outage {_seconds(result['outage_s'])} s "
            f"(predicted {_band(result['predicted']['lo_s'], result['predicted']['hi_s'])} s, "
            f"{'every service' if result['within_prediction'] else 'NOT every service'} inside its band); "
            f"phases: {phases_text(result) or 'none'}; negotiated with {phases['negotiated_with'] or '-'}"
            f"{ike_sas_text(result)}; "
            f"{plural(phases['dpd_requests'], 'DPD request')}, {plural(phases['retransmits'], 'retransmission')}; "
            f"{plural(result['plaintext_packets'], 'protected packet')} in clear of {result['wire_packets']} "
            "on the wire.",
        ]
        if name in plots:
            parts += ["", f"![timeline of {title}]({plots[name]})"]
    return "\n".join(parts) + "\n"


def ike_sas_text(result: Result) -> str:
    """`` (fe holds 2 IKE SAs with the VIP)`` when both ends initiated; nothing for one (or none
    counted: no IPsec, a result from before the count)."""
    held = result.get("ike_sas_with_vip")
    return f" (fe holds {held} IKE SAs with the VIP)" if isinstance(held, int) and held > 1 else ""


@contextmanager
def writing(where: Path) -> Iterator[None]:
    """Files written under ``where``: one that cannot be written (permissions, a read-only file
    system, a file where a folder should be) is one UsageError line naming it."""
    try:
        yield
    except OSError as error:
        path = error.filename or where
        reason = error.strerror or str(error)
        raise UsageError(
            f"cannot write {path}: {reason}; fix its permissions or use a folder you can write to"
        ) from None


def require_writable(folder: Path, asked: str) -> None:
    """Refuse ``folder`` (a report folder, or the folder of a results file; ``asked`` names the
    option and value, ``--out results/demo``) before any lab exists when it cannot be created or
    written: a run's results are not lost at its end."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{asked}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{asked}: cannot write in {existing}; fix its permissions or choose another path")


def write_folder(results: Sequence[Result], directory: Path, kept: Sequence[Evidence | None] = ()) -> Path:
    """A report folder: runs/*.json, plots/*.png (one timeline per run), comparison.png,
    report.md and report.html (the same, self-contained), and each run's evidence where ``kept``
    has it (harness.evidence, in run order); returns the path of report.md."""
    with writing(directory):
        save(results, directory)
        for index, (record, evidence) in enumerate(zip(results, kept, strict=False), 1):
            if evidence is not None:
                evidence.write(directory, run_name(index, record))
    return redraw(results, directory)


def redraw(results: Sequence[Result], directory: Path) -> Path:
    """report.md, report.html and every plot of ``results`` in ``directory`` (its runs/*.json and
    evidence untouched); returns the path of report.md."""
    with writing(directory):
        return _draw(results, directory)


def _draw(results: Sequence[Result], directory: Path) -> Path:
    from harness import plots  # matplotlib is slow to import; only reports need it

    (directory / "plots").mkdir(parents=True, exist_ok=True)
    drawn = {}
    for index, result in enumerate(results, 1):
        name = run_name(index, result)
        plots.timeline(result, directory / "plots" / f"{name}.png")
        drawn[name] = f"plots/{name}.png"
    plots.comparison(results, directory / "comparison.png")
    path = directory / "report.md"
    text = markdown(results, drawn, "comparison.png")
    path.write_text(text)
    (directory / "report.html").write_text(html_report.to_html(text, directory))
    return path

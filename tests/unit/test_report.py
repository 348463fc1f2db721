"""Everything drawn from results (tables, report.md, the report folder), filled from synthetic
outcomes (no lab)."""

from pathlib import Path

import pytest
from rich.console import Console

from harness import report, result, timers

from .outcomes import synthetic_outcome


def render(table: object) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


def test_runs_table_has_runs_phases_and_a_summary() -> None:
    rows = [result.to_json(synthetic_outcome(gap)) for gap in (4.8, 5.0, 5.2)]
    text = render(report.runs_table(rows))
    assert "be1 -> be2" in text and "(DPD)" in text
    assert "3 runs" in text and "median" in text and "p95" in text


def test_p95() -> None:
    assert report.p95([1.0]) == 1.0
    assert report.p95([float(v) for v in range(1, 21)]) == pytest.approx(19.05)


def test_kb_table_shows_kb_prediction_and_measurement_side_by_side() -> None:
    profile = timers.profile("win2000").scaled(1 / 30)
    text = render(report.kb_table([result.to_json(synthetic_outcome(11.8, profile))]))
    assert "win2000" in text and "1/30" in text and "360" in text and "yes" in text


def test_folder_round_trip_redraws_from_json_alone(tmp_path: Path) -> None:
    results = [
        result.to_json(synthetic_outcome(0.16, timers.profile("win2000").scaled(1 / 30), fault="graceful")),
        result.to_json(synthetic_outcome(11.8, timers.profile("win2000").scaled(1 / 30))),
    ]
    path = report.write_folder(results, tmp_path / "out")
    assert result.load(tmp_path / "out") == results
    text = path.read_text()
    assert "## KB 821839 comparison" in text and "plots/02-win2000-crash.png" in text
    for png in ("comparison.png", "plots/01-win2000-graceful.png", "plots/02-win2000-crash.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "out" / "report.md").unlink()
    assert report.redraw(result.load(tmp_path / "out"), tmp_path / "out").read_text() == text


def test_the_required_keys_are_all_a_report_needs(tmp_path: Path) -> None:
    full = result.to_json(synthetic_outcome(5.0, design="mail-passwords"))
    bare = {key: full[key] for key in result.REQUIRED_KEYS}
    report.write_folder([bare, dict(bare, fault="graceful")], tmp_path)
    assert (tmp_path / "report.md").read_text().startswith("# failover-lab report")
    for table in (report.runs_table, report.kb_table, report.policy_table):
        render(table([bare]))

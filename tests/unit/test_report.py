"""Everything drawn from results (tables, report.md, the report folder), filled from synthetic
outcomes (no lab)."""

import dataclasses
import html
import io
from pathlib import Path

import pytest
from rich.console import Console

from harness import cli, policy, report, result, runs, timers
from harness.policy import DC_PORTS, SERVICE_PORTS

from .outcomes import synthetic_outcome


def render(table: object) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


def test_runs_table_numbers_the_runs_and_says_in_band() -> None:
    rows = [result.to_json(synthetic_outcome(gap)) for gap in (4.8, 5.0, 5.2)]
    table = report.runs_table(rows)
    text = render(table)
    assert "be1 -> be2" in text and "(detected by DPD)" in text
    assert [c.header for c in table.columns][:7] == ["#", "fault", "profile", "VIP", "outage", "predicted", "in band"]
    assert list(table.columns[0].cells) == ["1", "2", "3"] and list(table.columns[6].cells) == ["yes"] * 3
    assert "unscaled" not in text  # only when a run was time-scaled


def test_a_scaled_run_shows_its_unscaled_outage_and_band() -> None:
    profile = timers.profile("win2000").scaled(1 / 30)
    table = report.runs_table([result.to_json(synthetic_outcome(12.2, profile))])
    cells = {c.header: next(iter(c.cells)) for c in table.columns}
    assert (cells["scale"], cells["outage unscaled"]) == ("1/30", "366.6")  # 12.22 s x 30
    assert cells["predicted unscaled"] == "329.4-393.6"


def test_repeated_runs_get_statistics_per_service_with_n_and_no_p95_from_three() -> None:
    rows = [result.to_json(synthetic_outcome(gap)) for gap in (4.8, 5.0, 5.2)]
    statistics = report.statistics_rows(rows)
    overall = next(row for row in statistics if row[2] == "overall")
    assert overall[:4] == ["crash", "fast", "overall", "3"]
    assert overall[7] == "-" and overall[8] == "3 of 3" and overall[9] == "0"  # no p95 from 3 runs
    assert {row[2] for row in statistics} == {"overall", "udp", "http", "pop3", "imap"}
    assert report.statistics_table(rows[:1]) is None  # nothing repeated, no table


def test_one_run_in_one_sentence() -> None:
    line = report.outcome_line(result.to_json(synthetic_outcome(5.0)))
    assert line == ("outage 5.020 s, predicted 3.98-6.12 s: inside the band; 0 protected packets in clear")
    assert report.phases_text(result.to_json(synthetic_outcome(5.0))) == (
        "detection 4.98 + negotiation 0.01 + data 0.01 (detected by DPD)"
    )
    assert report.plural(1, "run") == "1 run" and report.plural(2, "DPD request") == "2 DPD requests"


def test_a_recovery_through_the_trap_says_so() -> None:
    record = result.to_json(synthetic_outcome(5.0))
    record["phases"]["started_by"] = "acquire"
    assert report.phases_text(record).endswith("(detected by DPD, restarted by an acquire)")


def test_p95() -> None:
    assert report.p95([1.0]) is None  # fewer than 20 runs: no p95, it would restate the maximum
    assert report.p95([float(v) for v in range(1, 20)]) is None
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
    assert "## KB 821839 reproduced: outage in seconds" in text and "plots/02-win2000-crash.png" in text
    for png in ("comparison.png", "plots/01-win2000-graceful.png", "plots/02-win2000-crash.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "out" / "report.md").unlink()
    assert report.redraw(result.load(tmp_path / "out"), tmp_path / "out").read_text() == text


def markdown_table(text: str, heading: str) -> list[list[str]]:
    """The cells of the Markdown table under ``heading`` in report.md (header row first)."""
    lines = text.splitlines()
    start = lines.index(f"## {heading}") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_report_md_has_the_tables_the_terminal_shows() -> None:
    """The numbered run table and the statistics of repeated runs, cell for cell; no KB table
    when no run has a KB figure."""
    results = [result.to_json(synthetic_outcome(gap)) for gap in (4.8, 5.0, 5.2)]
    text = report.markdown(results, {}, None)
    runs_md = markdown_table(text, report.RUNS_TITLE)
    assert runs_md == [report.runs_columns(results), *report.runs_rows(results)]
    assert [row[0] for row in runs_md[1:]] == ["1", "2", "3"]
    terminal = render(report.runs_table(results))
    assert all(cell in terminal for row in runs_md for cell in row)
    statistics_md = markdown_table(text, report.STATISTICS_TITLE)
    assert statistics_md == [list(report.STATISTICS_COLUMNS), *report.statistics_rows(results)]
    assert "KB 821839" not in text
    single = report.markdown(results[:1], {}, None)
    assert report.STATISTICS_TITLE not in single and report.RUNS_TITLE in single


def test_report_html_is_report_md_in_one_self_contained_page(tmp_path: Path) -> None:
    results = [result.to_json(synthetic_outcome(gap)) for gap in (4.8, 5.0)]
    report.write_folder(results, tmp_path)
    page = (tmp_path / "report.html").read_text()
    text = (tmp_path / "report.md").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>failover-lab report</title>" in page
    assert f"<h2>{report.RUNS_TITLE}</h2>" in page
    for row in markdown_table(text, report.RUNS_TITLE)[1:]:
        assert "<tr>" + "".join(f"<td>{html.escape(cell, quote=False)}</td>" for cell in row) + "</tr>" in page
    plots_in_md = text.count("![")
    assert plots_in_md == 3 and page.count('src="data:image/png;base64,') == plots_in_md  # comparison + 2 timelines
    assert "plots/" not in page.replace("alt=", "")  # nothing read from the folder at view time


def test_report_md_has_the_kb_table_when_a_run_has_a_kb_figure() -> None:
    scaled = timers.profile("win2000").scaled(1 / 30)
    results = [result.to_json(synthetic_outcome(11.8, scaled)), result.to_json(synthetic_outcome(4.8))]
    text = report.markdown(results, {}, None)
    assert markdown_table(text, report.KB_TITLE) == [list(report.KB_COLUMNS), *report.kb_rows(results)]
    assert markdown_table(text, report.RUNS_TITLE)[0] == report.runs_columns(results)  # with the unscaled columns


def test_a_vip_that_did_not_move_stays() -> None:
    frozen = result.to_json(dataclasses.replace(synthetic_outcome(3.0, fault="freeze"), new_owner="be1"))
    assert report.vip_text(frozen) == "be1 (stays)"
    assert report.runs_rows([frozen])[0][3] == "be1 (stays)"
    assert "VIP be1 (stays); outage" in report.markdown([frozen], {}, None)
    moved = result.to_json(synthetic_outcome(5.0))
    assert report.vip_text(moved) == "be1 -> be2"
    assert report.vip_text(dict(moved, new_owner=None)) == "be1 -> ?"


def test_a_run_where_both_ends_initiated_says_how_many_ike_sas_fe_holds() -> None:
    doubled = result.to_json(dataclasses.replace(synthetic_outcome(0.04, fault="graceful-announce"), ike_sas=2))
    assert "negotiated with be2 (fe holds 2 IKE SAs with the VIP); " in report.markdown([doubled], {}, None)
    single = result.to_json(dataclasses.replace(synthetic_outcome(1.0, fault="graceful"), ike_sas=1))
    assert "negotiated with be2; " in report.markdown([single], {}, None)


def test_the_required_keys_are_all_a_report_needs(tmp_path: Path) -> None:
    full = result.to_json(synthetic_outcome(5.0, design="mail-passwords"))
    bare = {key: full[key] for key in result.REQUIRED_KEYS}
    report.write_folder([bare, dict(bare, fault="graceful")], tmp_path)
    assert (tmp_path / "report.md").read_text().startswith("# failover-lab report")
    for table in (report.runs_table, report.kb_table, report.policy_table):
        render(table([bare]))


def policies_demo(crash_gaps: tuple[float, ...] = (5.0,)) -> list[result.Result]:
    """What `demo --policies` measures: a graceful move and a crash (repeated once per gap) under
    every design, profile fast."""
    return [
        result.to_json(synthetic_outcome(gap, fault=fault, design=name))
        for name in policy.POLICIES
        for fault, gaps in (("graceful", (1.0,)), ("crash", crash_gaps))
        for gap in gaps
    ]


def test_policy_table_has_one_row_per_design_with_its_runs_in_band() -> None:
    results = policies_demo()
    dc_ports = [f"{proto}/{port}" for proto, port in DC_PORTS]
    vip_ports = [f"{proto}/{port}" for proto, port in SERVICE_PORTS.values()]
    for record in results:
        record["within_prediction"] = not (record["policy"] == "mail-all" and record["fault"] == "crash")
        record["coverage"] = {"fe": dict.fromkeys(dc_ports, True)}
        clear = {"none": vip_ports + dc_ports, "mail-passwords": ["udp/7", "tcp/80", *dc_ports[1:]]}
        seen = clear.get(record["policy"], [])
        record["clear_by_port"] = {port: 3 if port in seen else 0 for port in vip_ports + dc_ports}
    rows = {row[0]: dict(zip(report.POLICY_COLUMNS, row, strict=True)) for row in report.policy_rows(results)}
    assert list(rows) == list(policy.POLICIES)
    assert rows["mail-all"]["in band"] == "1 of 2" and rows["none"]["in band"] == "2 of 2"
    assert rows["none"]["protected"] == "nothing" and rows["all-traffic"]["protected"] == "everything"
    assert rows["mail-passwords"]["protected"] == "tcp/110, tcp/143"
    assert rows["none"]["seen in clear"] == "udp/7, tcp/80, tcp/110, tcp/143, all of dc's ports"
    assert rows["mail-passwords"]["seen in clear"] == "udp/7, tcp/80, " + ", ".join(dc_ports[1:])
    assert rows["all-traffic"]["seen in clear"] == "nothing"
    assert rows["none"]["crash: protected / clear"].startswith("- / ")  # nothing protected
    assert rows["all-traffic"]["crash: protected / clear"].endswith(" / -")  # nothing in clear
    text = render(report.policy_table(results))
    assert all(name in text for name in policy.POLICIES) and "in band" in text


def test_repeated_policy_runs_all_count() -> None:
    """The worst outage over every repetition, credentials and clear packets summed over all runs
    (a repeat used to replace the earlier runs of its fault)."""
    results = policies_demo(crash_gaps=(5.0, 5.5))
    for record in results:
        if record["policy"] == "none":
            record["credentials_in_clear"] = {"pop3 PASS": 3, "imap LOGIN": 2}
    rows = {row[0]: dict(zip(report.POLICY_COLUMNS, row, strict=True)) for row in report.policy_rows(results)}
    worst = max(r["outage_s"] for r in results if r["policy"] == "all-traffic" and r["fault"] == "crash")
    assert rows["all-traffic"]["crash: protected / clear"] == f"{worst:.2f} / -"
    assert rows["none"]["passwords readable"] == "pop3 PASS x9, imap LOGIN x6"
    assert rows["none"]["in band"].endswith(" of 3")


def test_report_md_names_the_policy_of_every_run() -> None:
    text = report.markdown(policies_demo(), {}, None)
    assert "## Policy designs" in text
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == [
        f"### {index:02d}-fast-{fault}" + ("" if name == policy.DEFAULT else f"-{name}")
        for index, (name, fault) in enumerate(
            ((name, fault) for name in policy.POLICIES for fault in ("graceful", "crash")), 1
        )
    ]
    default_only = report.markdown([result.to_json(synthetic_outcome(5.0))], {}, None)
    assert "### 01-fast-crash\n" in default_only


def test_demo_policies_writes_its_own_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`demo --policies` no longer overwrites the KB demo's results/demo: its default is
    results/policies, and its console table is the report's policy table."""
    results = policies_demo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runs, "measure_runs", lambda *args: results)
    monkeypatch.setattr(runs, "console", Console(file=io.StringIO(), width=250, record=True))
    cli.main(["demo", "--policies", "--backend", "netns"])
    assert not (tmp_path / "results" / "demo").exists()
    assert result.load(tmp_path / "results" / "policies") == results
    printed = runs.console.export_text()
    assert render(report.policy_table(results)) in printed
    assert "results/policies/report.md" in printed

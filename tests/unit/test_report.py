"""The result schema and everything drawn from it, filled from synthetic outcomes (no lab)."""

import json
from pathlib import Path

import pytest
from rich.console import Console

from harness import policy, report, timers
from harness.errors import UsageError
from harness.measure import Outcome
from harness.phases import LogEvent, breakdown
from harness.probe import INTERVALS, SERVICES, Attempt, outage
from harness.strongswan import SaEvent

T_FAULT = 1000.0


def synthetic_outcome(gap: float, profile: timers.Profile | None = None, fault: str = "crash") -> Outcome:
    profile = profile or timers.profile("fast")
    attempts = []
    for service in SERVICES:
        step = INTERVALS[service]
        attempts += [
            Attempt(service, T_FAULT - 1 + i * step, T_FAULT - 1 + i * step + 0.002, "be1")
            for i in range(round(1 / step))
        ]
        attempts += [
            Attempt(service, T_FAULT + gap + i * step, T_FAULT + gap + i * step + 0.002, "be2") for i in range(10)
        ]
    outages = {s: outage(attempts, s, T_FAULT, INTERVALS[s]) for s in SERVICES}
    events = [
        SaEvent(T_FAULT + gap - 0.02, "ike", False, "1", "198.18.0.100"),
        SaEvent(T_FAULT + gap - 0.01, "child", True, "2", "198.18.0.100"),
    ]
    log = [LogEvent(T_FAULT + gap - 0.02, "gave-up", "giving up after 2 retransmits")]
    params = timers.FaultParams().scaled(profile.time_scale)
    return Outcome(
        backend="netns",
        fault=fault,
        profile=profile,
        params=params,
        policy=policy.policy("all-traffic"),
        strongswan_version="5.9.8",
        lab="lab0",
        started_at="2026-11-27T00:00:00+0000",
        t_fault_mono=T_FAULT,
        old_owner="be1",
        new_owner="be2",
        outages=outages,
        predicted=timers.predict(fault, profile, params, 0.01),
        phases=breakdown(T_FAULT, T_FAULT, T_FAULT + gap + 0.002, events, log, "be2"),
        events=events,
        log_events=log,
        plaintext_packets=0,
        wire_packets=1234,
        capture_dropped=0,
        attempts=attempts,
    )


def test_result_has_every_required_key_and_survives_json() -> None:
    result = json.loads(json.dumps(report.to_json(synthetic_outcome(5.0))))
    assert set(report.REQUIRED_KEYS) <= set(result)
    assert result["schema"] == report.SCHEMA
    assert result["timers"]["dpd_delay"] == 2
    # last TCP answer before: -1 + 0.98 + 0.002; first answer after: 5 + 0.002
    assert result["outage_s"] == pytest.approx(5.002 - (-1 + 0.98 + 0.002), abs=1e-3)
    assert result["outage_unscaled_s"] == pytest.approx(result["outage_s"], abs=1e-3)
    assert result["resolution_s"] == max(INTERVALS.values())
    assert result["recovered"] and result["within_prediction"]
    assert result["events"][1] == {"t_s": 4.99, "sa": "child", "up": True, "ike_id": "2", "remote": "198.18.0.100"}
    assert result["phases"]["detected_by"] == "DPD" and result["phases"]["negotiated_with"] == "be2"
    assert result["phases"]["detection_s"] == pytest.approx(4.98)
    udp = result["services"]["udp"]
    assert udp["old_owner"] == "be1" and udp["new_owner"] == "be2"
    assert udp["first_answer_after_s"] == pytest.approx(5.002)
    assert len(result["attempts"]["udp"]) == 110


def test_scaled_results_carry_unscaled_equivalents_and_the_kb_figure() -> None:
    profile = timers.profile("win2003-nlbsflags").scaled(1 / 30)
    result = report.to_json(synthetic_outcome(3.8, profile))
    assert result["time_scale"] == pytest.approx(1 / 30)
    assert result["outage_unscaled_s"] == pytest.approx(result["outage_s"] * 30, abs=0.01)
    assert result["predicted"]["hi_unscaled_s"] == pytest.approx(result["predicted"]["hi_s"] * 30, abs=0.01)
    assert result["kb_outage_s"] == [120.0, 120.0]
    assert result["fault_params"]["cluster_delay"] == pytest.approx(1 / 30)


def test_outage_outside_the_prediction_is_flagged() -> None:
    result = report.to_json(synthetic_outcome(9.0))
    assert not result["within_prediction"]
    assert not result["services"]["udp"]["within_prediction"]


def render(table: object) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


def test_runs_table_has_runs_phases_and_a_summary() -> None:
    rows = [report.to_json(synthetic_outcome(gap)) for gap in (4.8, 5.0, 5.2)]
    text = render(report.runs_table(rows))
    assert "be1 -> be2" in text and "(DPD)" in text
    assert "3 runs" in text and "median" in text and "p95" in text


def test_p95() -> None:
    assert report.p95([1.0]) == 1.0
    assert report.p95([float(v) for v in range(1, 21)]) == pytest.approx(19.05)


def test_kb_table_shows_kb_prediction_and_measurement_side_by_side() -> None:
    profile = timers.profile("win2000").scaled(1 / 30)
    text = render(report.kb_table([report.to_json(synthetic_outcome(11.8, profile))]))
    assert "win2000" in text and "1/30" in text and "360" in text and "yes" in text


def test_folder_round_trip_redraws_from_json_alone(tmp_path: Path) -> None:
    results = [
        report.to_json(synthetic_outcome(0.16, timers.profile("win2000").scaled(1 / 30), fault="graceful")),
        report.to_json(synthetic_outcome(11.8, timers.profile("win2000").scaled(1 / 30))),
    ]
    path = report.write_folder(results, tmp_path / "out")
    assert report.load(tmp_path / "out") == results
    text = path.read_text()
    assert "## KB 821839 comparison" in text and "plots/02-win2000-crash.png" in text
    for png in ("comparison.png", "plots/01-win2000-graceful.png", "plots/02-win2000-crash.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "out" / "report.md").unlink()
    assert report.redraw(tmp_path / "out").read_text() == text


def test_load_refuses_what_is_not_a_result(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no results"):
        report.load(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "01-x.json").write_text('{"schema": "something/else"}')
    with pytest.raises(UsageError, match="not a failover-lab result"):
        report.load(tmp_path)

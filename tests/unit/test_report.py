"""The result schema, filled from a synthetic outcome (no lab)."""

import json

import pytest

from harness import report, timers
from harness.measure import Outcome
from harness.probe import INTERVALS, SERVICES, Attempt, outage
from harness.strongswan import SaEvent

T_FAULT = 1000.0


def synthetic_outcome(gap: float) -> Outcome:
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
    profile = timers.profile("fast")
    return Outcome(
        backend="netns",
        fault="crash",
        profile=profile,
        cluster_delay_s=1.0,
        strongswan_version="5.9.8",
        lab="lab0",
        started_at="2026-11-27T00:00:00+0000",
        t_fault_mono=T_FAULT,
        old_owner="be1",
        new_owner="be2",
        outages=outages,
        predicted=timers.predict("crash", profile, 1.0, 0.01),
        events=[SaEvent(T_FAULT + gap - 0.01, "child", True, "2", "198.18.0.100")],
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
    assert result["resolution_s"] == max(INTERVALS.values())
    assert result["recovered"] and result["within_prediction"]
    assert result["events"] == [{"t_s": 4.99, "sa": "child", "up": True, "ike_id": "2", "remote": "198.18.0.100"}]
    udp = result["services"]["udp"]
    assert udp["old_owner"] == "be1" and udp["new_owner"] == "be2"
    assert udp["first_answer_after_s"] == pytest.approx(5.002)
    assert len(result["attempts"]["udp"]) == 110


def test_outage_outside_the_prediction_is_flagged() -> None:
    result = report.to_json(synthetic_outcome(9.0))
    assert not result["within_prediction"]
    assert not result["services"]["udp"]["within_prediction"]


def test_table_renders_runs_and_a_summary() -> None:
    from rich.console import Console

    rows = [report.to_json(synthetic_outcome(gap)) for gap in (4.8, 5.0, 5.2)]
    console = Console(width=200, record=True)
    console.print(report.table(rows))
    text = console.export_text()
    assert "crash" in text and "be1 -> be2" in text
    assert "3 runs" in text and "median" in text

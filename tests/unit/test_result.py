"""The run record: Outcome -> JSON, saved and loaded back from a report folder or a `run --json`
file, and every way a file can fail to be a result refused in one line naming it."""

import dataclasses
import json
from pathlib import Path

import pytest

from harness import result, timers
from harness.errors import UsageError
from harness.phases import LogEvent
from harness.probe import INTERVALS

from .outcomes import T_FAULT, synthetic_outcome


def test_result_has_every_required_key_and_survives_json() -> None:
    record = json.loads(json.dumps(result.to_json(synthetic_outcome(5.0))))
    assert set(result.REQUIRED_KEYS) <= set(record)
    assert record["schema"] == result.SCHEMA
    assert record["timers"]["dpd_delay"] == 2
    # last TCP answer before: -1 + 0.98 + 0.002; first answer after: 5 + 0.002
    assert record["outage_s"] == pytest.approx(5.002 - (-1 + 0.98 + 0.002), abs=1e-3)
    assert record["outage_unscaled_s"] == pytest.approx(record["outage_s"], abs=1e-3)
    assert record["resolution_s"] == max(INTERVALS.values())
    assert record["recovered"] and record["within_prediction"]
    assert record["events"][1] == {"t_s": 4.99, "sa": "child", "up": True, "ike_id": "2", "remote": "198.18.0.100"}
    assert record["phases"]["detected_by"] == "DPD" and record["phases"]["negotiated_with"] == "be2"
    assert record["phases"]["detection_s"] == pytest.approx(4.98)
    udp = record["services"]["udp"]
    assert udp["old_owner"] == "be1" and udp["new_owner"] == "be2"
    assert udp["first_answer_after_s"] == pytest.approx(5.002)
    assert len(record["attempts"]["udp"]) == 110


def test_scaled_results_carry_unscaled_equivalents_and_the_kb_figure() -> None:
    profile = timers.profile("win2003-nlbsflags").scaled(1 / 30)
    record = result.to_json(synthetic_outcome(3.8, profile))
    assert record["time_scale"] == pytest.approx(1 / 30)
    assert record["outage_unscaled_s"] == pytest.approx(record["outage_s"] * 30, abs=0.01)
    assert record["predicted"]["hi_unscaled_s"] == pytest.approx(record["predicted"]["hi_s"] * 30, abs=0.01)
    assert record["kb_outage_s"] == [120.0, 120.0]
    assert record["fault_params"]["cluster_delay"] == pytest.approx(1 / 30)


def test_fault_params_are_those_of_the_fault_that_ran() -> None:
    profile = timers.profile("fast").scaled(1 / 2)
    params = {
        fault: result.to_json(synthetic_outcome(3.0, profile, fault=fault))["fault_params"]
        for fault in ("crash", "link-cut", "freeze", "graceful", "reboot")
    }
    assert params == {
        "crash": {"cluster_delay": 0.5},
        "link-cut": {"cluster_delay": 0.5},
        "freeze": {"freeze": 1.5},
        "graceful": {"firewall_idle": 0.0},
        "reboot": {},
    }


def test_outage_outside_the_prediction_is_flagged() -> None:
    record = result.to_json(synthetic_outcome(9.0))
    assert not record["within_prediction"]
    assert not record["services"]["udp"]["within_prediction"]


def two_results() -> list[result.Result]:
    return [result.to_json(synthetic_outcome(gap)) for gap in (4.8, 5.2)]


def test_a_saved_folder_loads_back_in_run_order(tmp_path: Path) -> None:
    saved = two_results()
    paths = result.save(saved, tmp_path)
    assert [p.name for p in paths] == ["01-fast-crash.json", "02-fast-crash.json"]
    assert result.load(tmp_path) == saved


def test_a_run_json_file_loads_as_it_is_written(tmp_path: Path) -> None:
    saved = two_results()
    listed = tmp_path / "results.json"
    listed.write_text(json.dumps(saved, indent=1) + "\n")  # what `run --json FILE` writes
    assert result.load(listed) == saved
    single = tmp_path / "one.json"
    single.write_text(json.dumps(saved[0]))
    assert result.load(single) == saved[:1]


def test_validate_names_every_missing_key() -> None:
    record = result.to_json(synthetic_outcome(5.0))
    assert result.validate(record, "x.json") is record
    del record["phases"]
    with pytest.raises(UsageError) as error:
        result.validate(record, "x.json")
    assert str(error.value) == "x.json: not a failover-lab result: missing key 'phases'"
    del record["events"]
    with pytest.raises(UsageError) as error:
        result.validate(record, "x.json")
    assert str(error.value) == "x.json: not a failover-lab result: missing keys 'phases', 'events'"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"schema": "something/else"}', "schema 'something/else', expected schema 'failover-lab/run/1'"),
        ('{"outage_s": 1}', "missing key 'schema', expected schema 'failover-lab/run/1'"),
        ('"a result"', "expected a JSON object, got a string"),
        ("3", "expected a JSON object, got a number"),
        ("null", "expected a JSON object, got null"),
        ("{", "not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ],
)
def test_what_is_not_a_result_is_one_line_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(UsageError) as error:
        result.load(path)
    assert str(error.value) == f"{path}: not a failover-lab result: {problem}"


def test_a_bad_entry_of_a_list_is_named_by_its_index(tmp_path: Path) -> None:
    good, broken = two_results()
    del broken["services"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps([good, broken, [good]]))
    with pytest.raises(UsageError) as error:
        result.load(path)
    assert str(error.value) == f"{path}[1]: not a failover-lab result: missing key 'services'"


def test_a_folder_checks_every_required_key_of_every_run(tmp_path: Path) -> None:
    saved = two_results()
    del saved[1]["predicted"]
    result.save(saved, tmp_path)
    with pytest.raises(UsageError) as error:
        result.load(tmp_path)
    assert str(error.value) == f"{tmp_path}/runs/02-fast-crash.json: not a failover-lab result: missing key 'predicted'"


def test_nothing_to_load(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as error:
        result.load(tmp_path)
    assert str(error.value) == f"{tmp_path}: no results (expected runs/*.json written by demo or run --out)"
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(UsageError) as error:
        result.load(empty)
    assert str(error.value) == f"{empty}: no results: the list is empty"
    with pytest.raises(UsageError) as error:
        result.load(tmp_path / "nope.json")
    assert str(error.value) == (
        f"{tmp_path / 'nope.json'}: no such file or folder; give a report folder or a file written by run --json"
    )


def test_a_service_s_band_takes_its_measured_resolution() -> None:
    """A probe that ran late during the outage (a loaded VM) widens that service's band by as much."""
    outcome = synthetic_outcome(4.9)
    udp = outcome.outages["udp"]
    late = dataclasses.replace(outcome, outages={**outcome.outages, "udp": dataclasses.replace(udp, resolution=0.05)})
    before, after = outcome.predictions["udp"], late.predictions["udp"]
    assert (after.lo, after.hi) == pytest.approx((before.lo - 0.04, before.hi + 0.04))
    assert late.predictions["pop3"] == outcome.predictions["pop3"]


def test_a_graceful_band_starts_where_fe_re_initiated_not_where_traffic_stopped() -> None:
    """fe's charon re-initiates while it handles the DELETE and only then removes the old SA: a
    service answered after the re-initiation had part of the first retransmission's wait for free."""
    synthetic = synthetic_outcome(1.0, fault="graceful")
    udp = dataclasses.replace(synthetic.outages["udp"], last_before=T_FAULT + 0.05)  # answered as the fault unfolded
    outcome = dataclasses.replace(synthetic, outages={**synthetic.outages, "udp": udp}, log_events=[])
    initiated = dataclasses.replace(
        outcome, log_events=[LogEvent(T_FAULT + 0.01, "initiate", "initiating IKE_SA vip[3] to 198.18.0.100")]
    )
    assert initiated.overlaps["udp"] == pytest.approx(0.04)
    assert initiated.overlaps["pop3"] == 0.0  # its last answer came before fe re-initiated
    assert initiated.predictions["udp"].lo == pytest.approx(outcome.predictions["udp"].lo - 0.04)
    assert initiated.predictions["udp"].hi == outcome.predictions["udp"].hi
    assert initiated.predictions["pop3"] == outcome.predictions["pop3"]


def test_a_re_initiation_before_the_fault_is_not_the_recovery_s() -> None:
    outcome = synthetic_outcome(1.0, fault="graceful")
    early = dataclasses.replace(outcome, log_events=[LogEvent(T_FAULT - 0.5, "initiate", "initiating IKE_SA vip[1]")])
    assert early.reinitiated is None and set(early.overlaps.values()) == {0.0}

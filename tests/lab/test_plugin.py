"""The pytest plugin in pytest sessions of its own: scenario files as items, run_fault on a
shared lab reset between tests, results written, failures and broken files in one line."""

import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

USER_TESTS = """
from harness.timers import Profile

SLOW = Profile("slow-dpd", "DPD 3 s", dpd_delay=3, retransmit_timeout=1.0, retransmit_base=1.0, retransmit_tries=1)


def test_first(run_fault, failover_lab):
    outcome = run_fault("graceful")
    assert (outcome.lab, outcome.old_owner, outcome.new_owner) == (failover_lab.topology.name, "be1", "be2")


def test_second_reuses_the_reset_lab(run_fault, failover_lab):
    outcome = run_fault("graceful")
    assert (outcome.lab, outcome.old_owner, outcome.new_owner) == (failover_lab.topology.name, "be2", "be1")


def test_another_profile_gets_its_own_lab(run_fault, failover_lab):
    outcome = run_fault("crash", profile=SLOW)
    assert outcome.lab != failover_lab.topology.name and outcome.profile.name == "slow-dpd"
    assert outcome.within_prediction and outcome.plaintext_packets == 0
"""


LAB_BACKENDS = ("netns",)
"""The plugin's behaviour does not depend on the backend: checked on netns."""


def test_run_fault_on_a_shared_lab_reset_between_tests(
    pytester: pytest.Pytester, backend_name: str, tmp_path: Path
) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    results, junit = tmp_path / "results", tmp_path / "junit.xml"
    run = pytester.runpytest_subprocess("-p", "harness.pytest_plugin", "--lab-backend", backend_name,
                                        "--results-dir", str(results), "--junitxml", str(junit))  # fmt: skip
    run.assert_outcomes(passed=3)
    written = sorted(p.name for p in results.iterdir())
    assert written == ["test_another_profile_gets_its_own_lab", "test_first", "test_second_reuses_the_reset_lab"]
    [run_json] = (results / "test_first" / "runs").glob("*.json")
    assert json.loads(run_json.read_text())["fault"] == "graceful"
    assert (results / "test_first" / "report.md").exists()
    assert [p.name for p in (results / "test_first" / "captures").iterdir()] == [f"{run_json.stem}.pcap"]
    case = next(c for c in ElementTree.parse(junit).iter("testcase") if c.get("name") == "test_first")
    recorded = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert (recorded["fault"], recorded["backend"], recorded["profile"]) == ("graceful", backend_name, "fast")
    lo, outage, hi = (float(recorded[name] or "nan") for name in ("predicted_lo_s", "outage_s", "predicted_hi_s"))
    assert lo <= outage <= hi and recorded["within_prediction"] == "True"


def test_scenario_items_and_their_failures(pytester: pytest.Pytester, backend_name: str) -> None:
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "strict.yaml").write_text(
        "profiles: [fast]\nfault: {kind: freeze, freeze: 1}\nexpect: {recovered_on: be2}\n"  # a freeze keeps be1
    )
    (scenarios / "broken.yaml").write_text("profiles: [fast]\nfault: {kind: crsh}\n")
    run = pytester.runpytest_subprocess(
        "-p", "harness.pytest_plugin", "--lab-backend", backend_name, "--continue-on-collection-errors", "scenarios"
    )
    run.assert_outcomes(failed=1, errors=1)
    output = run.stdout.str()
    assert re.search(r"strict\[fast\]: recovered on be1, expected be2 \(", output)
    assert "broken.yaml: fault.kind: 'crsh' is not one of graceful, graceful-noblock, crash" in output
    assert "Traceback" not in output

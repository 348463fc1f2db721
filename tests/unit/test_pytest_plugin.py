"""The pytest plugin's checks that come before any lab: a bad --time-scale is pytest's usage
error, and run_fault refuses a profile the timer model refuses before it builds a lab."""

import argparse

import pytest

from harness import lab, pytest_plugin


def test_the_time_scale_option_parses_like_the_cli() -> None:
    assert pytest_plugin.time_scale_option("1/30") == pytest.approx(1 / 30)
    for bad in ("2", "1/0"):
        with pytest.raises(argparse.ArgumentTypeError) as error:
            pytest_plugin.time_scale_option(bad)
        assert str(error.value) == f"must be a number in (0, 1] or a fraction like 1/30, got {bad!r}"


@pytest.mark.parametrize("bad", ["2", "1/0"])
def test_a_bad_time_scale_stops_the_session_with_one_line(pytester: pytest.Pytester, bad: str) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    run = pytester.runpytest_inprocess("-p", "harness.pytest_plugin", "--time-scale", bad)
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    expected = f"error: argument --time-scale: must be a number in (0, 1] or a fraction like 1/30, got '{bad}'"
    assert any(line.endswith(expected) for line in run.errlines), run.errlines


def test_run_fault_refuses_what_the_model_refuses_before_a_lab_exists(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lab(*args: object, **kwargs: object) -> None:
        raise AssertionError("a lab was about to be built")

    monkeypatch.setattr(lab, "running", no_lab)
    pytester.makepyfile(
        test_user="""
from harness.timers import Profile

def test_no_dpd(run_fault):
    run_fault("link-cut", profile=Profile("nodpd", "", dpd_delay=0))

def test_unknown_fault(run_fault):
    run_fault("crsh")
"""
    )
    run = pytester.runpytest_inprocess("-p", "harness.pytest_plugin")
    run.assert_outcomes(failed=2)
    run.stdout.fnmatch_lines(
        [
            "test_user.py::test_no_dpd: run_fault('link-cut') with profile nodpd: "
            "dpd_delay 0 never detects a crash; set dpd_delay >= 1",
            "test_user.py::test_unknown_fault: unknown fault 'crsh': choose one of graceful, *",
        ]
    )
    assert "a lab was about to be built" not in run.stdout.str()


def test_a_lab_failure_under_a_test_is_one_sentence(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
from harness.errors import NodeLost

def test_lab_breaks():
    raise NodeLost("be2", "the agent closed the connection")
"""
    )
    run = pytester.runpytest_inprocess("-p", "harness.pytest_plugin")
    run.assert_outcomes(failed=1)
    output = run.stdout.str()
    assert "test_user.py::test_lab_breaks: be2: the node is gone (the agent closed the connection)" in output
    assert "Traceback" not in output and "raise NodeLost" not in output
    debugging = pytester.runpytest_inprocess("-p", "harness.pytest_plugin", "--tb=long")
    assert "raise NodeLost" in debugging.stdout.str()  # the traceback, when asked for

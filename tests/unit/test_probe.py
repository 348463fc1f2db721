"""Outage math on synthetic timelines."""

import pytest

from harness.probe import Attempt, answered, outage, overall


def stream(service: str, start: float, stop: float, node: str, step: float = 0.01) -> list[Attempt]:
    count = round((stop - start) / step)
    return [Attempt(service, start + i * step, start + i * step + 0.001, node) for i in range(count)]


def test_gap_around_the_fault() -> None:
    attempts = stream("udp", 0.0, 1.0, "be1") + stream("udp", 5.0, 6.0, "be2")
    result = outage(attempts, "udp", t_fault=0.995, resolution=0.01)
    assert result.seconds == pytest.approx(5.001 - 0.991)
    assert (result.old_owner, result.new_owner) == ("be1", "be2")


def test_answers_while_the_fault_unfolds_do_not_hide_the_gap() -> None:
    # The old owner keeps answering 30 ms after the fault began, then the real gap follows.
    attempts = stream("udp", 0.0, 1.03, "be1") + stream("udp", 2.0, 3.0, "be2")
    result = outage(attempts, "udp", t_fault=1.0, resolution=0.01)
    assert result.last_before == pytest.approx(1.021)
    assert result.first_after == pytest.approx(2.001)


def test_the_new_owner_is_who_answers_once_it_settled_not_right_after_the_longest_gap() -> None:
    """Both ends initiating (graceful-announce): no real outage, only small gaps, and the longest
    may end with the old owner answering what it had in flight."""
    attempts = [*stream("udp", 0.0, 1.0, "be1"), Attempt("udp", 1.0, 1.041, "be1"), *stream("udp", 1.06, 2.0, "be2")]
    result = outage(attempts, "udp", t_fault=0.995, resolution=0.01)
    assert result.first_after == pytest.approx(1.041)  # the longest gap ended with be1's answer
    assert (result.old_owner, result.new_owner) == ("be1", "be2")


def test_failures_are_not_answers() -> None:
    failed = [Attempt("udp", 1.5, 2.5, None, "timeout")]
    attempts = stream("udp", 0.0, 1.0, "be1") + failed + stream("udp", 3.0, 3.5, "be2")
    assert outage(attempts, "udp", 0.995, 0.01).seconds == pytest.approx(3.001 - 0.991)


def test_no_recovery() -> None:
    result = outage(stream("udp", 0.0, 1.0, "be1"), "udp", t_fault=0.995, resolution=0.01)
    assert result.seconds is None
    assert result.new_owner is None


def test_no_answer_before_the_fault_is_an_error() -> None:
    with pytest.raises(ValueError, match="no answer before"):
        outage(stream("udp", 2.0, 3.0, "be2"), "udp", t_fault=1.0, resolution=0.01)


def test_overall_spans_first_silence_to_last_recovery() -> None:
    attempts = (
        stream("udp", 0.0, 1.0, "be1")
        + stream("udp", 2.0, 3.0, "be2")
        + stream("pop3", 0.0, 0.98, "be1", 0.02)
        + stream("pop3", 2.1, 3.0, "be2", 0.02)
    )
    outages = [outage(attempts, s, 0.995, 0.01) for s in ("udp", "pop3")]
    assert overall(outages) == pytest.approx(2.101 - 0.961)
    outages.append(outage(stream("imap", 0.0, 1.0, "be1"), "imap", 0.995, 0.01))
    assert overall(outages) is None


def test_a_probe_running_late_during_the_outage_widens_its_resolution() -> None:
    """Its stamps around the gap may be late by as much as it ran late; lateness outside the gap
    (before the last answer, after the first) does not count."""
    late_before = Attempt("udp", 0.5, 0.501, "be1", late=0.5)
    in_gap = [Attempt("udp", 1.2, 1.7, None, "timeout", late=0.03), Attempt("udp", 1.5, 2.0, None, "timeout", 0.01)]
    late_after = Attempt("udp", 2.5, 2.501, "be2", late=0.2)
    attempts = [*stream("udp", 0.0, 1.0, "be1"), late_before, *in_gap, late_after, *stream("udp", 2.0, 3.0, "be2")]
    assert outage(attempts, "udp", 0.995, 0.01).resolution == pytest.approx(0.04)
    assert (
        outage(stream("udp", 0.0, 1.0, "be1") + stream("udp", 2.0, 3.0, "be2"), "udp", 0.995, 0.01).resolution == 0.01
    )


def test_parse_probe_lines() -> None:
    assert Attempt.parse('{"s":"pop3","t0":1.5,"t1":1.52,"n":"be1"}') == Attempt("pop3", 1.5, 1.52, "be1")
    failed = Attempt.parse('{"s":"udp","t0":1.5,"t1":2.5,"e":"timeout"}')
    assert failed is not None and failed.node is None and failed.error == "timeout"
    late = Attempt.parse('{"s":"udp","t0":1.5,"t1":1.51,"n":"be2","l":0.031}')
    assert late is not None and late.late == 0.031
    assert Attempt.parse("Traceback (most recent call last):") is None
    assert Attempt.parse('{"s":"udp"}') is None


def test_answered_predicate() -> None:
    attempts = stream("udp", 0.0, 0.05, "be1") + stream("pop3", 0.0, 0.1, "be2", 0.02)
    assert answered(["udp", "pop3"], after=0.0, count=5)(attempts)
    assert not answered(["udp", "pop3"], after=0.0, node="be1", count=1)(attempts)
    assert not answered(["udp"], after=0.03, count=3)(attempts)

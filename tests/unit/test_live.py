"""The live view of a run: lines in time order however late they arrive, each once, completed
from the run's whole log at the end, and stating only what happened."""

import io
from collections.abc import Sequence

import pytest
from rich.console import Console

from harness import live, measure, runs, timers
from harness.phases import LogEvent
from harness.sa import SaEvent

from .fakes import fake_lab
from .outcomes import T_FAULT, synthetic_outcome

BAND = timers.Bounds(3.98, 6.12)
VIP = "198.18.0.100"


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(runs, "console", Console(file=buffer, force_terminal=False, width=120))
    return buffer


def test_a_line_that_arrives_late_still_goes_before_later_ones(shown: io.StringIO) -> None:
    """vici's event of 2.050 s reaches the harness after the log line of 2.137 s was read."""
    with runs.progress_reporter("crash / fast", 6.12) as report:
        report(live.Progress(0.1, BAND, news=((0.0, "fault: crash of be1; the VIP moves to be2"),)))
        report(live.Progress(2.2, BAND, news=((2.137, "DPD request sent"),), dpd_requests=1))
        report(live.Progress(2.3, BAND, news=((2.05, "fe's IKE SA #1 with the VIP went down (vici)"),)))
        assert shown.getvalue().splitlines() == ["     0.000 s  fault: crash of be1; the VIP moves to be2"]
        report(live.Progress(2.7, BAND))
        assert shown.getvalue().splitlines()[1:] == [
            "     2.050 s  fe's IKE SA #1 with the VIP went down (vici)",
            "     2.137 s  DPD request sent",
        ]


def test_the_end_of_the_run_adds_what_the_follower_missed_and_nothing_twice(shown: io.StringIO) -> None:
    outcome = synthetic_outcome(4.8)  # gave up at 4.780 s (log), IKE SA 1 down and CHILD_SA of 2 up (vici)
    with runs.progress_reporter("crash / fast", 6.12) as report:
        report(live.Progress(0.1, BAND, news=((0.0, "fault: crash of be1; the VIP moves to be2"),)))
        report(live.Progress(5.5, BAND, news=((4.78, "retransmissions gave up: fe declares the peer dead"),)))
        report.finish(outcome)
    assert shown.getvalue().splitlines() == [
        "     0.000 s  fault: crash of be1; the VIP moves to be2",
        "     4.780 s  retransmissions gave up: fe declares the peer dead",
        "     4.780 s  fe's IKE SA #1 with the VIP went down (vici)",
        "     4.790 s  fe's CHILD_SA of IKE SA #2 with the VIP installed (vici)",
    ]


def test_in_order_holds_each_line_for_the_lag_and_drops_repeats() -> None:
    order = live.InOrder(lag=0.5)
    order.add([(1.0, "b"), (0.2, "a"), (1.0, "b")])
    assert order.due(0.6) == []
    assert order.due(0.75) == [(0.2, "a")]
    order.add([(0.2, "a"), (0.9, "c")])
    assert order.due(1.5) == [(0.9, "c"), (1.0, "b")]
    order.add([(3.0, "d")])
    assert order.rest() == [(3.0, "d")] and order.rest() == []


def rounded(news: Sequence[live.News]) -> list[live.News]:
    return [(round(at, 6), what) for at, what in news]


def test_the_watch_tells_each_event_once_and_only_since_the_fault() -> None:
    told: list[live.Progress] = []
    watch = live.Watch(T_FAULT, BAND, None, told.append, "fault: crash of be1; the VIP moves to be2")
    before = SaEvent(T_FAULT - 5, "ike", False, "0", VIP)
    down = SaEvent(T_FAULT + 4.2, "ike", False, "1", VIP)
    events = [before, down, SaEvent(T_FAULT + 4.2, "child", False, "1", VIP)]
    first = watch.progress(events, now=T_FAULT + 4.3)
    assert rounded(first.news) == [
        (0.0, "fault: crash of be1; the VIP moves to be2"),
        (4.2, "fe's IKE SA #1 with the VIP went down (vici)"),
    ]
    assert first.phase == "negotiation"
    events.append(SaEvent(T_FAULT + 4.5, "child", True, "2", VIP))
    second = watch.progress(events, now=T_FAULT + 4.6)
    assert rounded(second.news) == [(4.5, "fe's CHILD_SA of IKE SA #2 with the VIP installed (vici)")]
    assert second.phase == "data"


def test_log_lines_before_the_fault_are_not_news() -> None:
    events = [
        LogEvent(T_FAULT - 0.5, "dpd", "sending DPD request"),
        LogEvent(T_FAULT + 1, "dpd", "sending DPD request"),
    ]
    assert live.news_of(T_FAULT, events, []) == [(1.0, "DPD request sent")]


def test_live_bar_on_a_terminal_shows_the_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(runs, "console", Console(file=buffer, force_terminal=True, width=160))
    with runs.progress_reporter("crash / fast", 6.12) as report:
        report(live.Progress(2.7, BAND, news=((2.137, "DPD request sent"),), dpd_requests=1, retransmits=2))
    shown = buffer.getvalue()
    assert "DPD request sent" in shown and "DPD 1, retransmissions 2, DELETE 0" in shown


def test_the_line_before_a_run_names_the_backend_and_the_policy(
    shown: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_lab(policy_name="mail-passwords")
    outcome = synthetic_outcome(4.8, design="mail-passwords")
    monkeypatch.setattr(measure, "run", lambda *args, **kwargs: outcome)
    runs.measure_one(fake.lab, "crash / fast", "crash", timers.FaultParams())
    first = shown.getvalue().splitlines()[0]
    assert first.startswith("crash / fast on lab lab0 (backend fake, policy mail-passwords): predicted outage ")


def test_a_run_that_fails_still_shows_the_lines_it_held(shown: io.StringIO) -> None:
    with pytest.raises(RuntimeError), runs.progress_reporter("crash / fast", 6.12) as report:
        report(live.Progress(2.2, BAND, news=((2.137, "DPD request sent"),)))
        raise RuntimeError("fe: charon exited during the run")
    assert shown.getvalue().splitlines() == ["     2.137 s  DPD request sent"]


def test_ikev1_s_dpd_timeout_is_told_as_such() -> None:
    timed_out = LogEvent(1.0, "gave-up", "DPD check timed out, enforcing DPD action")
    assert live.describe(timed_out).startswith("IKEv1 DPD timed out")
    retransmitted = LogEvent(1.0, "gave-up", "giving up after 2 retransmits")
    assert live.describe(retransmitted).startswith("retransmissions gave up")

"""The timer search: what it picks meets the target, nothing less chatty does, an unreachable target
is refused with a floor the search really cannot beat; `tune` prints it, refuses bad input in one
line and exits 2 without a lab."""

import math
from dataclasses import replace

import pytest

from harness import cli, timer_search, timers
from harness.timer_search import Goal, Unreachable

BASES = ("strongswan-default", "fast", "win2000", "win2003-nlbsflags-ikev1")
TARGETS = (2.5, 3.0, 7.5, 30.0, 125.0, 360.0)


def goal(fault: str, target: float, **params: float) -> Goal:
    return Goal(fault, target, timers.FaultParams(**params))


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("target", TARGETS)
def test_a_crash_tuned_meets_its_target_and_one_second_more_of_dpd_would_not(base: str, target: float) -> None:
    wanted = goal("crash", target)
    version: timers.IkeVersion = 2
    tuned = timer_search.tune(timers.profile(base), wanted, version)
    profile = tuned.profile
    assert tuned.worst_s == timer_search.worst_case(profile, wanted) <= target
    assert profile.retransmit_tries >= 1 and profile.retransmit_timeout >= timer_search.MIN_RETRANSMIT_TIMEOUT_S
    longer = replace(profile, dpd_delay=profile.dpd_delay + 1)
    assert all(
        timer_search.worst_case(candidate, wanted) > target
        for candidate in timer_search._candidates(longer)  # every setting searched one second chattier-less
    )
    assert timer_search.idle_messages_per_hour(profile) == (7200 / profile.dpd_delay, 14400 / profile.dpd_delay)


def test_the_most_tolerant_retransmissions_win_at_the_same_dpd_delay() -> None:
    wanted = goal("crash", 3.0)
    tuned = timer_search.tune(timers.profile("fast"), wanted)
    assert tuned.profile.dpd_delay == 1
    meeting = [c for c in timer_search._candidates(tuned.profile) if timer_search.worst_case(c, wanted) <= 3.0]
    assert max(timer_search.tolerance(c) for c in meeting) == pytest.approx(tuned.tolerance_s)


@pytest.mark.parametrize("target", (4.2, 5.5, 9.0, 61.0))
def test_ikev1_outlasts_two_r_u_theres(target: float) -> None:
    tuned = timer_search.tune(timers.profile("win2000-ikev1"), goal("crash", target), 1)
    profile = tuned.profile
    assert profile.ike_version == 1 and profile.dpd_timeout > 2 * profile.dpd_delay
    assert (
        tuned.worst_s
        <= target
        < timer_search.worst_case(replace(profile, dpd_timeout=profile.dpd_timeout + 1), goal("crash", target))
    )
    assert tuned.tolerance_s == profile.dpd_timeout


def test_switching_to_ikev2_drops_ikev1_s_dpd_timeout() -> None:
    tuned = timer_search.tune(timers.profile("win2000-ikev1"), goal("crash", 10.0), 2)
    assert tuned.profile.ike_version == 2 and tuned.profile.dpd_timeout == 0


@pytest.mark.parametrize("target", (0.25, 0.3, 1.0, 4.2))
def test_a_graceful_tuning_changes_the_first_timeout_only(target: float) -> None:
    base = timers.profile("strongswan-default")
    tuned = timer_search.tune(base, goal("graceful", target))
    assert tuned.worst_s <= target
    assert replace(tuned.profile, retransmit_timeout=base.retransmit_timeout) == timer_search.based_on(base, None)
    longer = [t for t in timer_search.RETRANSMIT_TIMEOUTS if t > tuned.profile.retransmit_timeout]
    assert all(
        timer_search.worst_case(replace(tuned.profile, retransmit_timeout=t), goal("graceful", target)) > target
        for t in longer
    )


@pytest.mark.parametrize(
    ("fault", "target", "version", "params"),
    [
        ("crash", 2.0, 2, {}),
        ("crash", 0.5, 2, {}),
        ("crash", 4.0, 1, {}),
        ("crash", 9.0, 2, {"cluster_delay": 10.0}),
        ("graceful", 0.2, 2, {}),
    ],
)
def test_an_unreachable_target_is_refused_with_a_floor_nothing_searched_beats(
    fault: str, target: float, version: timers.IkeVersion, params: dict[str, float]
) -> None:
    wanted = goal(fault, target, **params)
    with pytest.raises(Unreachable) as refused:
        timer_search.tune(timers.profile("fast"), wanted, version)
    floor = refused.value.floor
    assert floor > target
    assert f"the model's floor is {floor:.2f} s" in str(refused.value)
    start = timer_search.based_on(timers.profile("fast"), version)
    searched = (
        [replace(start, retransmit_timeout=t) for t in timer_search.RETRANSMIT_TIMEOUTS]
        if fault == "graceful"
        else [c for d in (1, 2, 3) for c in timer_search._candidates(replace(start, dpd_delay=d))]
    )
    assert min(timer_search.worst_case(c, wanted) for c in searched) == pytest.approx(floor)


def test_the_floor_names_what_it_is_made_of() -> None:
    with pytest.raises(Unreachable, match=r"whole seconds.*dpd_delay \+ 1 = 2 s.*takeover-announce"):
        timer_search.tune(timers.profile("fast"), goal("crash", 2.0))
    with pytest.raises(Unreachable, match=r"standby takes the VIP only 10 s after the crash"):
        timer_search.tune(timers.profile("fast"), goal("crash", 9.0, cluster_delay=10.0))
    with pytest.raises(Unreachable, match=r"outlast two \(at least 3 s with dpd_delay 1\)"):
        timer_search.tune(timers.profile("fast"), goal("crash", 4.0), 1)
    with pytest.raises(Unreachable, match=r"first retransmission reaches the new owner, at least 0.1 s later"):
        timer_search.tune(timers.profile("fast"), goal("graceful", 0.2))


@pytest.mark.parametrize("delay", (1, 2, 3, 30))
@pytest.mark.parametrize("window", (10.0, 30.0, 95.0))
def test_the_idle_message_bounds_hold_one_and_two_exchanges_per_delay(delay: int, window: float) -> None:
    profile = replace(timers.profile("fast"), dpd_delay=delay)
    fewest, most = timer_search.idle_messages(profile, window)
    assert fewest <= 2 * math.floor(window / delay) and 4 * math.floor(window / delay) <= most
    assert timer_search.idle_messages(replace(profile, dpd_delay=0), window) == (0, 0)


def test_tune_without_a_lab_prints_the_settings_and_the_lines_to_paste(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tune", "--fault", "crash", "--target", "2.5", "--repeat", "0"]) == 0
    out = capsys.readouterr().out
    assert "base: strongswan-default" in out and "7200-14400" in out
    assert "retransmit_timeout = 0.19" in out and "retransmit_tries = 1" in out and "dpd_delay = 1s" in out
    assert cli.main(["tune", "--fault", "crash", "--target", "9", "--ike-version", "1", "--repeat", "0"]) == 0
    assert "dpd_timeout = " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--fault", "freeze", "--target", "3"], "argument --fault: 'freeze' is not one of crash, graceful"),
        (["--fault", "crash", "--target", "0"], "argument --target: must be a number of seconds in (0,"),
        (["--fault", "crash", "--target", "2"], "no timers give a crash outage of at most 2 s: the model's floor"),
        (["--fault", "crash", "--target", "3", "--base", "slow"], "unknown profile 'slow'"),
        (["--fault", "crash", "--target", "3", "--repeat", "-1"], "argument --repeat: must be a whole number"),
        (["--fault", "crash", "--target", "3", "--ike-version", "3"], "argument --ike-version: invalid choice"),
    ],
)
def test_tune_refuses_bad_input_in_one_line(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["tune", *argv] if "--repeat" in argv else ["tune", *argv, "--repeat", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err


def exit_code(argv: list[str]) -> int:
    """What the command returns, or exits with (argparse exits on a usage error)."""
    try:
        return cli.main(argv)
    except SystemExit as exited:
        return int(str(exited.code))


def test_tune_says_a_lab_cannot_run_here_before_it_prints_anything(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["tune", "--fault", "crash", "--target", "3", "--backend", "netns"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "needs root" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_a_graceful_move_the_cluster_takes_time_for_counts_in_the_worst_case() -> None:
    base = timers.profile("strongswan-default")
    tuned = timer_search.tune(base, Goal("graceful", 0.7, vip_moved=0.5))
    assert tuned.worst_s <= 0.7 and tuned.profile.retransmit_timeout >= 0.5  # the first retransmission after it
    blind = timer_search.tune(base, goal("graceful", 0.55)).profile  # 0.43 s: fine if the VIP moved at once
    assert timer_search.worst_case(blind, Goal("graceful", 0.55, vip_moved=0.5)) > 0.55
    with pytest.raises(Unreachable, match=r"floor is 0.62 s .*only one sent 0.5 s or more after the fault"):
        timer_search.tune(base, Goal("graceful", 0.55, vip_moved=0.5))

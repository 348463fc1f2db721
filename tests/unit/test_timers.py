"""The timer model against strongSwan's documented table and hand-worked cases."""

import time
from dataclasses import replace

import pytest

from harness import timers
from harness.errors import UsageError
from harness.timers import Profile

DEFAULT = timers.profile("strongswan-default")
FAST = timers.profile("fast")


def test_default_schedule_matches_the_documentation() -> None:
    # strongSwan docs: retransmissions at 4, 11, 24, 47, 89 s, giving up at 165 s.
    sends = timers.send_times(DEFAULT)
    assert [round(t) for t in sends[1:]] == [4, 11, 24, 47, 89]
    assert timers.give_up_after(DEFAULT) == pytest.approx(165.0, abs=0.1)


def test_fast_schedule() -> None:
    assert timers.retransmit_timeouts(FAST) == [1.0, 1.0, 1.0]
    assert timers.send_times(FAST) == [0.0, 1.0, 2.0]
    assert timers.give_up_after(FAST) == 3.0


def test_limit_caps_each_timeout() -> None:
    capped = Profile("capped", "", retransmit_limit=10)
    assert max(timers.retransmit_timeouts(capped)) == 10.0
    assert timers.retransmit_timeouts(capped)[:3] == pytest.approx([4.0, 7.2, 10.0])


def test_jitter_shortens_the_lower_bound_only() -> None:
    jittery = Profile("j", "", retransmit_jitter=20)
    assert timers.retransmit_timeouts(jittery, jitter=True)[0] == pytest.approx(3.2)
    assert timers.retransmit_timeouts(jittery)[0] == pytest.approx(4.0)


def test_graceful_costs_the_first_retransmit() -> None:
    bounds = timers.graceful(FAST, resolution=0.01)
    assert bounds.lo == pytest.approx(0.99)
    assert bounds.hi == pytest.approx(1.0 + timers.SETUP_ALLOWANCE_S + 0.01)
    assert timers.graceful(DEFAULT, 0).lo == pytest.approx(4.0)


def test_what_the_old_sa_carried_after_the_re_initiation_comes_off_the_graceful_lower_bound() -> None:
    assert timers.graceful(FAST, 0.01, overlap=0.05).lo == pytest.approx(0.94)
    assert timers.graceful(FAST, 0.01, overlap=0.05).hi == timers.graceful(FAST, 0.01).hi
    assert timers.graceful(FAST, 0.01, overlap=-1.0) == timers.graceful(FAST, 0.01)
    noblock = timers.predict("graceful-noblock", FAST, timers.FaultParams(), 0.01, overlap=0.05)
    assert noblock.lo == pytest.approx(0.94)


def test_crash_fast_hand_worked() -> None:
    # DPD 2 s +-1 s, then 3 s of retransmissions; the VIP moved after 1 s, long before.
    bounds = timers.crash(FAST, cluster_delay=1.0, resolution=0.01)
    assert bounds.lo == pytest.approx(1 + 3 - 0.01)
    assert bounds.hi == pytest.approx(3 + 3 + timers.SETUP_ALLOWANCE_S + 0.01)


def test_crash_default_hand_worked() -> None:
    # 30 s DPD +-1 s plus 4 * (1 + 1.8 + ... + 1.8**5) = 165.06 s of retransmissions.
    bounds = timers.crash(DEFAULT, cluster_delay=1.0, resolution=0)
    assert bounds.lo == pytest.approx(29 + 165.06112)
    assert bounds.hi == pytest.approx(31 + 165.06112 + timers.SETUP_ALLOWANCE_S)


def test_crash_with_a_slow_cluster_waits_for_the_next_transmission() -> None:
    # fast: the new initiation begins anywhere in 4..6 s and transmits every second (sends at
    # +0, +1, +2 s, a new cycle at +3). A VIP that reaches the standby only at 6.5 s is met by
    # the first transmission after it: at best right then (a restart at 4.5 or 5.5 s), at worst
    # a whole gap later (a restart at 5.49 s misses it at 6.49 s and tries again at 7.49 s).
    bounds = timers.crash(FAST, cluster_delay=6.5, resolution=0)
    assert bounds.lo == pytest.approx(6.5)
    assert bounds.hi == pytest.approx(6.5 + 1.0 + timers.SETUP_ALLOWANCE_S)


@pytest.mark.parametrize("ready", [0.5, 4.2, 5.01, 6.5, 8.3, 19.7, 40.0])
@pytest.mark.parametrize("name", ["fast", "strongswan-default", "win2003-nlbsflags"])
def test_the_crash_band_holds_every_restart_the_timers_allow(name: str, ready: float) -> None:
    """Brute force: whatever moment in the DPD window fe gives up and re-initiates, and whatever
    the standby's delay, the first transmission that reaches it lies in the band."""
    profile = timers.profile(name)
    if name != "fast":
        profile = profile.scaled(1 / 30)
    bounds = timers.crash(profile, ready, resolution=0, allowance=0)
    earliest = profile.dpd_delay - timers.DPD_GRANULARITY_S + timers.give_up_after(profile, jitter=True)
    latest = profile.dpd_delay + timers.DPD_GRANULARITY_S + timers.give_up_after(profile)
    for step in range(501):
        restart = earliest + (latest - earliest) * step / 500
        reached = timers._first_send_reaching(restart, ready, profile, jitter=False)
        assert bounds.lo - 1e-9 <= reached <= bounds.hi + 1e-9, (restart, reached, bounds)


def test_crash_without_dpd_is_refused() -> None:
    with pytest.raises(UsageError, match="dpd_delay 0"):
        timers.crash(Profile("nodpd", "", dpd_delay=0), 1.0, 0.01)


def test_unknown_profile_lists_the_valid_names() -> None:
    with pytest.raises(UsageError) as error:
        timers.profile("fastest")
    assert str(error.value) == (
        "unknown profile 'fastest': choose one of strongswan-default, fast, win2000, win2003-nlbsflags, win2000-ikev1, "
        "win2003-nlbsflags-ikev1"
    )


def test_every_fault_has_a_prediction() -> None:
    from harness.faults import FAULTS

    for fault in FAULTS:
        bounds = timers.predict(fault, FAST, timers.FaultParams(), 0.01)
        assert 0 <= bounds.lo < bounds.hi


def test_kb_profiles_predict_the_kb_figures_at_scale_one() -> None:
    # KB 821839: 6 min after a crash on Windows 2000, 2 min on Windows 2003 with NLBSFlags = 1,
    # 3-6 s after a graceful move.
    for name, minutes in (("win2000", 6), ("win2003-nlbsflags", 2)):
        profile = timers.profile(name)
        crash = timers.crash(profile, cluster_delay=1.0, resolution=0)
        assert crash.lo <= 60 * minutes <= crash.hi
        assert profile.kb_outage("crash") == (60.0 * minutes, 60.0 * minutes)
        assert 3 <= timers.graceful(profile, 0).lo <= timers.graceful(profile, 0).hi <= 6
        assert timers.give_up_after(profile) == 60.0  # "about 1 min of IKE renegotiation"


def test_scaling_multiplies_every_timer_and_rounds_dpd_to_seconds() -> None:
    scaled = timers.profile("win2000").scaled(1 / 30)
    assert scaled.time_scale == pytest.approx(1 / 30)
    assert scaled.retransmit_timeout == pytest.approx(4 / 30)
    assert scaled.dpd_delay == 10
    assert timers.give_up_after(scaled) == pytest.approx(2.0)
    assert timers.profile("fast").scaled(1 / 30).dpd_delay == 1  # never below a whole second
    assert timers.profile("strongswan-default").scaled(0.5).scaled(0.5).time_scale == 0.25
    with pytest.raises(UsageError):
        FAST.scaled(0)


def test_scaled_crash_of_win2003_hand_worked() -> None:
    scaled = timers.profile("win2003-nlbsflags").scaled(1 / 30)
    params = timers.FaultParams().scaled(1 / 30)
    bounds = timers.predict("crash", scaled, params, resolution=0)
    # DPD 2 s +-1 s, then 4/30 s x (1 + 2 + 4 + 8) = 2 s of retransmissions.
    assert bounds.lo == pytest.approx(1 + 2)
    assert bounds.hi == pytest.approx(3 + 2 + timers.SETUP_ALLOWANCE_S)


def test_link_cut_and_reboot_are_found_like_a_crash() -> None:
    params = timers.FaultParams(cluster_delay=1.0)
    assert timers.predict("link-cut", FAST, params, 0.01) == timers.predict("crash", FAST, params, 0.01)
    assert timers.predict("reboot", FAST, params, 0.01) == timers.crash(FAST, 0.0, 0.01)


def test_an_announced_reboot_costs_the_restart_and_one_setup_whatever_the_timers() -> None:
    params = timers.FaultParams()
    for profile in (FAST, timers.profile("win2000")):
        bounds = timers.predict("reboot-announce", profile, params, 0.01, back=0.07)
        assert bounds.lo == 0.0
        assert bounds.hi == pytest.approx(0.07 + timers.SETUP_ALLOWANCE_S + 0.01)
    assert timers.predict("reboot-announce", FAST, params, 0.01).hi < timers.predict("reboot", FAST, params, 0.01).lo


def test_a_takeover_announced_after_the_vip_arrived_costs_the_cluster_delay_and_one_setup() -> None:
    bounds = timers.predict("takeover-announce", DEFAULT, timers.FaultParams(cluster_delay=1.0), 0.01)
    assert bounds == timers.Bounds(1.0 - 0.01, 1.0 + timers.SETUP_ALLOWANCE_S + 0.01)
    measured = timers.predict("takeover-announce", DEFAULT, timers.FaultParams(), 0.01, vip_moved=1.003, back=1.01)
    assert measured.lo == pytest.approx(1.01 - 0.01) and measured.hi == pytest.approx(1.01 + 0.1 + 0.01)


def test_a_takeover_begun_before_the_vip_arrived_costs_a_retransmission() -> None:
    """acassen/keepalived#539: begun 0.5 s before the VIP, the first send cannot leave; the
    retransmission 4 s later (strongswan-default) gets through."""
    params = timers.FaultParams(cluster_delay=1.0, announce_early=0.5)
    bounds = timers.predict("takeover-announce", DEFAULT, params, 0.01)
    assert bounds.lo == pytest.approx(4.5 - 0.01) and bounds.hi == pytest.approx(4.5 + 0.1 + 0.01)


def test_a_standby_initiating_all_along_waits_for_its_backoff() -> None:
    """opnsense/core#3821: begun 11 s before the crash, its sends go out 0, 4, 11.2, 24.16 s after
    it began: the one 13.16 s after the crash is the first after the VIP arrived (1 s)."""
    params = timers.FaultParams(cluster_delay=1.0, announce_early=12.0)
    bounds = timers.predict("takeover-announce", DEFAULT, params, 0.01)
    assert bounds.lo == pytest.approx(13.16 - 0.01) and bounds.hi == pytest.approx(13.16 + 0.1 + 0.01)


def test_a_takeover_announcement_needs_no_dpd_of_fe() -> None:
    params = timers.FaultParams(cluster_delay=1.0, announce_early=12.0)
    no_dpd = replace(DEFAULT, dpd_delay=0)
    assert timers.predict("takeover-announce", no_dpd, params, 0.01) == timers.predict(
        "takeover-announce", DEFAULT, params, 0.01
    )


def test_a_graceful_move_announced_by_the_new_owner_may_cost_nothing_up_to_a_graceful_move() -> None:
    """strongswan/strongswan#2778: the new owner's first IKE_SA_INIT gets through at once, but
    fe's own re-initiation lands a retransmission later and takes the traffic over: the bound
    stays the graceful one (or the announcement's setup, if that came later still)."""
    params = timers.FaultParams()
    announced = timers.predict("graceful-announce", FAST, params, 0.01, vip_moved=0.005, back=0.012)
    own = timers.predict("graceful", FAST, params, 0.01, vip_moved=0.005)
    assert announced == timers.Bounds(0.0, own.hi)
    late = timers.predict("graceful-announce", FAST, params, 0.01, vip_moved=0.005, back=30.0)
    assert late.hi == pytest.approx(30.0 + timers.SETUP_ALLOWANCE_S + 0.01)


def test_a_reauthentication_breaking_first_costs_three_round_trips_and_making_first_none() -> None:
    params = timers.FaultParams(link_delay=0.2)
    breaking = timers.predict("reauth", FAST, params, 0.01)
    assert breaking.lo == pytest.approx(0.6 - 0.01) and breaking.hi == pytest.approx(0.6 + 0.1 + 0.01)
    making = timers.predict("reauth", replace(FAST, make_before_break=True), params, 0.01)
    assert making == timers.Bounds(0.0, 0.1 + 0.01)
    assert timers.predict("reauth", FAST, params, 0.01, protected=False) == timers.Bounds(0.0, 0.1 + 0.01)


def test_a_reauthentication_breaking_first_on_a_fast_link_may_wait_for_the_first_retransmission() -> None:
    """The answer to the new IKE_SA_INIT can come back before charon registered the new IKE SA
    (a round trip shorter than the allowance): dropped, the first retransmission completes it."""
    lan = timers.predict("reauth", FAST, timers.FaultParams(link_delay=0.0), 0.01)
    assert lan == timers.Bounds(0.0, FAST.retransmit_timeout + timers.SETUP_ALLOWANCE_S + 0.01)
    slow = timers.predict("reauth", FAST, timers.FaultParams(link_delay=0.1), 0.01, allowance=0.65)
    assert slow.hi == pytest.approx(0.3 + 0.65 + 0.01)  # a 0.1 s round trip cannot beat charon
    making = timers.predict("reauth", replace(FAST, make_before_break=True), timers.FaultParams(), 0.01)
    assert making == timers.Bounds(0.0, 0.1 + 0.01)  # the old SAs carry the traffic meanwhile


def test_freeze_costs_its_duration() -> None:
    bounds = timers.predict("freeze", FAST, timers.FaultParams(freeze=8.0), 0.01)
    assert bounds.lo == pytest.approx(7.99)
    assert bounds.hi == pytest.approx(8.0 + timers.SETUP_ALLOWANCE_S + 0.01)


def test_a_vm_frozen_whole_costs_until_it_answered_again() -> None:
    """A paused VM works through what queued up for it before it answers: until ``back``."""
    params = timers.FaultParams(freeze=3.0)
    protected = timers.predict("freeze", FAST, params, 0.01, back=3.4)
    assert protected.lo == pytest.approx(2.99)
    assert protected.hi == pytest.approx(3.4 + timers.SETUP_ALLOWANCE_S + 0.01)
    assert timers.predict("freeze", FAST, params, 0.01, back=3.4, protected=False) == protected  # all of it stopped
    assert timers.predict("freeze", FAST, params, 0.01, back=2.0).hi == pytest.approx(3.11)  # never below the freeze
    caught_up = timers.predict("freeze", FAST, params, 0.01, back=3.4, catch_up=1.0)  # what queued up, worked through
    assert caught_up.lo == protected.lo and caught_up.hi == pytest.approx(protected.hi + 1.0)


def test_graceful_without_blocking_spans_both_outcomes_of_the_race() -> None:
    bounds = timers.predict("graceful-noblock", FAST, timers.FaultParams(), 0.01)
    assert bounds.lo == timers.graceful(FAST, 0.01).lo
    assert bounds.hi == timers.crash(FAST, 0.0, 0.01).hi


def test_a_slow_vip_move_costs_the_next_retransmission() -> None:
    # win2003 at 1/30: retransmits at 0.133, 0.4, 0.933 s. A VIP that reaches the new owner only
    # 0.25 s after the fault (Docker: every step is a docker exec) is found at 0.4 s.
    scaled = timers.profile("win2003-nlbsflags").scaled(1 / 30)
    assert timers.graceful(scaled, 0, vip_moved=0.25).hi == pytest.approx(0.4 + timers.SETUP_ALLOWANCE_S)
    assert timers.graceful(scaled, 0, vip_moved=0.25).lo == pytest.approx(4 / 30)
    assert timers.graceful(scaled, 0, vip_moved=0.01) == timers.graceful(scaled, 0)
    params = timers.FaultParams().scaled(1 / 30)
    assert timers.predict("crash", scaled, params, 0, vip_moved=9.0) == timers.crash(scaled, 9.0, 0)


def test_traffic_in_clear_only_waits_for_the_vip() -> None:
    params = timers.FaultParams(cluster_delay=1.0, freeze=3.0)
    crash = timers.predict("crash", FAST, params, 0.01, vip_moved=1.005, protected=False)
    assert crash.lo == pytest.approx(0.99) and crash.hi == pytest.approx(1.005 + timers.SETUP_ALLOWANCE_S + 0.01)
    graceful = timers.predict("graceful", FAST, params, 0.01, vip_moved=0.005, protected=False)
    assert graceful.lo == 0 and graceful.hi < 0.2
    for fault in ("freeze", "reboot", "reboot-announce"):  # charon's troubles do not touch traffic outside IPsec
        assert timers.predict(fault, FAST, params, 0.01, protected=False).hi < 0.2
    rebooted_vm = timers.predict("reboot", FAST, params, 0.01, back=4.0, protected=False)  # a VM rebooted whole
    assert rebooted_vm.lo == 0 and rebooted_vm.hi == pytest.approx(4.0 + timers.SETUP_ALLOWANCE_S + 0.01)


@pytest.mark.parametrize(("given", "scale"), [("1", 1.0), ("1/30", 1 / 30), ("0.5", 0.5), (" 1/2 ", 0.5), (0.25, 0.25)])
def test_a_time_scale_is_a_number_or_a_fraction(given: str | float, scale: float) -> None:
    assert timers.parse_scale(given) == pytest.approx(scale)


@pytest.mark.parametrize("given", ["2", "1/0", "0", "-1/30", "x", "", "nan", "inf", 1.5, 0.0])
def test_a_time_scale_outside_zero_to_one_is_refused_in_words(given: str | float) -> None:
    with pytest.raises(ValueError) as error:
        timers.parse_scale(given)
    assert str(error.value) == f"must be a number in (0, 1] or a fraction like 1/30, got {given!r}"


@pytest.mark.parametrize("fault", ["crash", "link-cut", "reboot", "graceful-noblock"])
def test_check_refuses_no_dpd_where_only_dpd_detects_the_fault(fault: str) -> None:
    with pytest.raises(UsageError) as error:
        timers.check(Profile("nodpd", "", dpd_delay=0), fault, timers.FaultParams())
    assert str(error.value) == "dpd_delay 0 never detects a crash; set dpd_delay >= 1"


@pytest.mark.parametrize("fault", ["graceful", "freeze", "reboot-announce", "takeover-announce"])
def test_check_accepts_no_dpd_where_dpd_plays_no_part(fault: str) -> None:
    timers.check(Profile("nodpd", "", dpd_delay=0), fault, timers.FaultParams())


def test_a_timeout_charon_cannot_count_is_refused() -> None:
    """charon truncates timeouts to whole milliseconds: less than one is no timeout at all."""
    with pytest.raises(UsageError) as error:
        Profile("instant", "", retransmit_timeout=0.0)
    assert str(error.value) == (
        "profile instant: retransmit_timeout must be at least 0.001 s (charon counts whole milliseconds), got 0"
    )
    with pytest.raises(UsageError, match="got 4e-06"):
        timers.profile("win2000").scaled(1e-6)


def test_check_accepts_every_built_in_profile_for_every_fault() -> None:
    from harness.faults import FAULTS

    for profile in timers.PROFILES.values():
        for fault in FAULTS:
            timers.check(profile.scaled(1 / 30), fault, timers.FaultParams().scaled(1 / 30))


def test_a_tiny_retransmission_cycle_is_predicted_at_once() -> None:
    """The first send that reaches a VIP moved long after the fault, with a cycle a billion
    times shorter, is found by arithmetic, not by walking every cycle."""
    tiny = timers.Profile("tiny", "", retransmit_timeout=0.001, retransmit_base=1.0, retransmit_tries=1)
    started = time.monotonic()
    bounds = timers.graceful(tiny, 0.0, vip_moved=1e6)  # a billion cycles of 2 ms later
    assert time.monotonic() - started < 0.1
    assert 1e6 <= bounds.hi - timers.SETUP_ALLOWANCE_S <= 1e6 + 0.001


def test_charon_s_whole_number_settings_are_refused_in_any_other_form() -> None:
    for bad in ({"retransmit_jitter": 12.5}, {"retransmit_limit": 2.0}, {"retransmit_jitter": 21}, {"dpd_delay": -1}):
        with pytest.raises(UsageError, match=f"profile p: {next(iter(bad))} must be"):
            Profile("p", "", **bad)


def test_a_scaled_limit_is_rounded_like_dpd_and_the_rounding_recorded() -> None:
    limited = Profile("limited", "", dpd_delay=300, retransmit_timeout=1.0, retransmit_base=2.0, retransmit_limit=2)
    scaled = limited.scaled(1 / 30)
    assert (scaled.retransmit_limit, scaled.dpd_delay) == (1, 10)  # 2 s x 1/30 is 0.067 s: charon takes 1
    assert [(r.setting, r.used) for r in scaled.rounded] == [("retransmit_limit", 1)]
    assert scaled.rounded[0].asked == pytest.approx(2 / 30)
    assert scaled.rounded[0].describe() == "retransmit_limit 0.0666667 s runs as 1 s (charon takes whole seconds)"
    assert timers.retransmit_timeouts(scaled)[:3] == pytest.approx([1 / 30, 2 / 30, 4 / 30])  # the limit of 1 s


def test_inbound_esp_defers_dpd_before_6_0_1_and_with_nat() -> None:
    assert timers.esp_defers_dpd("5.9.8", nat=False)
    assert timers.esp_defers_dpd("6.0.0", nat=False)
    assert not timers.esp_defers_dpd("6.0.1", nat=False)  # raw ESP, the kernel datapath without NAT
    assert timers.esp_defers_dpd("6.0.1", nat=True)  # libipsec's UDP encapsulation fakes NAT
    assert not timers.esp_defers_dpd("unknown", nat=False)  # taken as the newer rule
    assert timers.version_numbers("5.9.8dr2") == (5, 9, 8)


def test_without_esp_deferring_dpd_a_crash_is_detected_from_at_once_to_dpd_delay_plus_one() -> None:
    """From 6.0.1 without NAT, fe sends DPD every dpd_delay whatever ESP arrives: the next DPD
    after a crash comes (0, dpd_delay + 1] after it; with ESP counting, dpd_delay +-1."""
    profile = Profile("p", "", dpd_delay=10, retransmit_timeout=1.0, retransmit_base=1.0, retransmit_tries=1)
    deferred = timers.crash(profile, 0.0, 0.0, esp_defers_dpd=True)
    periodic = timers.crash(profile, 0.0, 0.0, esp_defers_dpd=False)
    assert deferred.lo == pytest.approx(9 + 2) and periodic.lo == pytest.approx(0 + 2)
    assert deferred.hi == periodic.hi == pytest.approx(11 + 2 + timers.SETUP_ALLOWANCE_S)
    assert timers.predict("crash", profile, timers.FaultParams(0.0), 0.0, esp_defers_dpd=False) == periodic


IKEV1 = Profile("v1", "", retransmit_timeout=1.0, retransmit_base=1.0, retransmit_tries=2, dpd_delay=2, ike_version=1)


def test_ikev1_gives_a_dead_peer_up_after_dpd_timeout_not_after_retransmitting_r_u_there() -> None:
    timed = replace(IKEV1, dpd_timeout=5)
    # R_U_THERE 2 s +-1 after the last answer, the check 5 - 2 s later: 5 s +-1 after it.
    assert timers.ikev1_gives_up(timed, esp_defers_dpd=True) == (4.0, 6.0)
    # Without ESP postponing DPD, R_U_THERE goes out every 2 s: the first after the crash (0, 3] s.
    assert timers.ikev1_gives_up(timed, esp_defers_dpd=False) == (3.0, 6.0)
    bounds = timers.crash(timed, cluster_delay=1.0, resolution=0.01)
    assert (bounds.lo, bounds.hi) == pytest.approx((4 - 0.01, 6 + timers.SETUP_ALLOWANCE_S + 0.01))


def test_ikev1_without_dpd_timeout_falls_back_to_the_retransmission_sum() -> None:
    assert timers.ikev1_dpd_timeout(IKEV1) == 3.0  # 1 + 1 + 1
    assert timers.ikev1_gives_up(IKEV1, esp_defers_dpd=True) == (2.0, 4.0)
    wraps = replace(IKEV1, dpd_delay=30)  # 3 s < 30 s: charon's unsigned subtraction wraps
    with pytest.raises(UsageError, match="never gives a dead peer up; set dpd_timeout above dpd_delay"):
        timers.check(wraps, "crash", timers.FaultParams())


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"dpd_timeout": 5}, "dpd_timeout is IKEv1's"),
        ({"ike_version": 1, "dpd_timeout": 2}, "dpd_timeout 2 must be longer than dpd_delay 2"),
        ({"ike_version": 1, "retransmit_limit": 3}, "with retransmit_limit set, give IKEv1 an explicit dpd_timeout"),
        ({"ike_version": 3}, "ike_version must be 1 or 2, got 3"),
        ({"ike_version": 1, "dpd_timeout": 2.5}, "dpd_timeout must be a whole number >= 0"),
    ],
)
def test_ikev1_settings_charon_would_read_otherwise_are_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        Profile("x", "", dpd_delay=2, **changes)  # type: ignore[arg-type]


def test_the_ikev1_kb_profiles_take_the_idle_timer_where_the_kb_adds_a_minute() -> None:
    for name, minutes in (("win2000-ikev1", 5), ("win2003-nlbsflags-ikev1", 1)):
        profile = timers.profile(name)
        assert profile.ike_version == 1 and profile.dpd_timeout == 60 * minutes
        crash = timers.crash(profile, cluster_delay=1.0, resolution=0)
        assert crash.lo <= 60 * minutes <= crash.hi < 60 * (minutes + 1) == profile.kb_outage("crash")[0]  # type: ignore[index]
        assert 3 <= timers.graceful(profile, 0).lo <= timers.graceful(profile, 0).hi <= 6
        scaled = profile.scaled(1 / 30)
        assert (scaled.dpd_delay, scaled.dpd_timeout) == (1, 2 * minutes)  # still longer than the delay


def test_a_firewall_keeps_the_ike_flow_while_esp_or_dpd_crosses_it() -> None:
    """strongswan/strongswan#1759: ESP in UDP shares the IKE's flow; raw ESP that postpones DPD
    leaves the flow idle; DPDs sent whatever ESP arrives keep it when they come more often than it
    expires (DPD_GRANULARITY_S of slack), and may or may not otherwise."""
    keeps = timers.firewall_keeps_ike
    assert keeps(FAST, 0.0, esp_in_udp=False, esp_defers_dpd=True)  # no firewall
    assert keeps(FAST, 5.0, esp_in_udp=True, esp_defers_dpd=True)
    assert keeps(FAST, 5.0, esp_in_udp=False, esp_defers_dpd=True) is False
    assert keeps(FAST, 3.5, esp_in_udp=False, esp_defers_dpd=False)  # DPD every 2 s +-1
    assert keeps(FAST, 3.0, esp_in_udp=False, esp_defers_dpd=False) is None
    assert keeps(FAST, 1.0, esp_in_udp=False, esp_defers_dpd=False) is None


def test_a_graceful_move_whose_delete_the_firewall_drops_costs_a_crash() -> None:
    """The DELETE never reaches fe: it waits for DPD counted from the old owner's last packet, which
    may come as late as the VIP's move;
    where the firewall may or may not keep the flow, the band spans both."""
    behind = timers.FaultParams(firewall_idle=5.0)
    deleted = timers.graceful(FAST, 0.01, vip_moved=0.5)
    dropped = timers.predict("graceful", FAST, behind, 0.01, vip_moved=0.5, esp_in_udp=False)
    assert dropped == timers.stranded(FAST, 0.01, vip_moved=0.5) and dropped.lo > deleted.hi
    assert timers.predict("graceful", FAST, behind, 0.01, vip_moved=0.5, esp_in_udp=True) == deleted
    assert timers.predict("graceful", FAST, timers.FaultParams(), 0.01, vip_moved=0.5, esp_in_udp=False) == deleted
    either = timers.predict(
        "graceful", FAST, timers.FaultParams(firewall_idle=3.0), 0.01, 0.5, esp_defers_dpd=False, esp_in_udp=False
    )
    assert either == timers.Bounds(deleted.lo, timers.stranded(FAST, 0.01, 0.5, esp_defers_dpd=False).hi)


def test_a_stranded_sa_is_a_crash_counted_from_the_old_owner_s_last_packet() -> None:
    crashed = timers.crash(FAST, 0.0, 0.01)
    assert timers.stranded(FAST, 0.01, vip_moved=2.3) == timers.Bounds(crashed.lo, 2.3 + crashed.hi)

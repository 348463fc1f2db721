"""Every fault on a real lab, measured against the bounds its timers predict."""

import dataclasses

import pytest

from harness import charon, faults, lab, measure, timers
from harness.measure import Outcome

NEW_OWNER: dict[str, str] = {
    "graceful": "be2",
    "graceful-noblock": "be2",
    "crash": "be2",
    "link-cut": "be2",
    "freeze": "be1",
    "reboot": "be1",
    "reboot-announce": "be1",
    "takeover-announce": "be2",
    "reauth": "be1",
    "graceful-announce": "be2",
}
DETECTED_BY: dict[str, set[str | None]] = {
    "graceful": {"DELETE"},
    "graceful-noblock": {"DPD", "DELETE"},  # DPD when fe's re-initiation won the race with the old owner
    "crash": {"DPD"},
    "link-cut": {"DPD"},
    "freeze": {None},  # 3 s is shorter than fast's 4-6 s detection: the SA survives
    "reboot": {"DPD"},
    "reboot-announce": {"INITIAL_CONTACT"},
    "takeover-announce": {"INITIAL_CONTACT"},
    "reauth": {None},  # fe's own reauthentication: nothing failed, nothing to detect
    "graceful-announce": {"DELETE"},
}
IKE_SAS_WITH_VIP = {"graceful-announce": 2}
"""fe's IKE SAs with the VIP once settled: one, but two where both ends initiated
(strongswan/strongswan#2778)."""


def announced_before_dpd(outcome: Outcome) -> bool:
    """The restarted back-end announced itself before fe's DPD could have given up on it (a VM
    boots for longer than fast's DPD takes: then DPD may detect the reboot first)."""
    assert outcome.back is not None
    return outcome.back < timers.crash(outcome.profile, 0.0, 0.0).lo


def detected_by(fault: str, outcome: Outcome) -> set[str | None]:
    if fault == "reboot-announce" and not announced_before_dpd(outcome):
        return DETECTED_BY[fault] | {"DPD"}
    return DETECTED_BY[fault]


def ike_sas_with_vip(fault: str, outcome: Outcome) -> set[int | None]:
    """A VM booting for longer than fast's DPD takes may have fe re-initiate too: then both ends
    initiate, as in graceful-announce."""
    if fault == "reboot-announce" and not announced_before_dpd(outcome):
        return {1, 2}
    return {IKE_SAS_WITH_VIP.get(fault, 1)}


def assert_within_prediction(outcome: Outcome) -> None:
    for service, outage in outcome.outages.items():
        bounds = outcome.predicted_for(outage)
        assert outage.seconds is not None, f"{service} never recovered"
        assert outage.seconds in bounds, f"{service}: {outage.seconds:.3f} s outside {bounds}"


ON_THE_WIRE = {"libipsec": ("tunnel", "udp"), "kernel": ("transport", "raw")}
"""Each datapath's default mode and how its ESP crosses the wire (no NAT in the lab)."""


def assert_clean_wire(outcome: Outcome) -> None:
    assert outcome.plaintext_packets == 0
    assert outcome.capture_dropped == 0 and outcome.wire_packets > 0
    assert (outcome.mode, outcome.encapsulation) == ON_THE_WIRE[outcome.datapath]


def assert_phases_sum_to_the_outage(outcome: Outcome) -> None:
    assert outcome.outage_s is not None
    assert outcome.phases.total() == pytest.approx(outcome.outage_s, abs=outcome.resolution_s)


def test_fault_matrix_covers_every_fault() -> None:
    assert set(NEW_OWNER) == set(DETECTED_BY) == set(faults.FAULTS)


@pytest.mark.parametrize("fault", list(faults.FAULTS))
def test_fault_with_fast_recovers_within_the_prediction(fault: str, fast_lab: lab.Lab) -> None:
    outcome = measure.run(fast_lab, fault)
    assert (outcome.old_owner, outcome.new_owner) == ("be1", NEW_OWNER[fault])
    assert_within_prediction(outcome)
    assert_clean_wire(outcome)
    assert_phases_sum_to_the_outage(outcome)
    assert outcome.phases.detected_by in detected_by(fault, outcome)
    assert outcome.ike_sas in ike_sas_with_vip(fault, outcome)
    if outcome.phases.detected_by is not None:
        assert outcome.phases.negotiated_with == NEW_OWNER[fault]
    if fault == "graceful":
        # fe got the DELETE, re-initiated at once into the blocked old owner and reached the new
        # one with its first retransmission.
        assert outcome.outage_s is not None and outcome.outage_s < 2.0
        assert outcome.phases.retransmits == 1
    if fault == "reboot-announce" and announced_before_dpd(outcome):
        # fe learnt of the reboot from the INITIAL_CONTACT, not from DPD: less than the least a
        # reboot that waits for fe's DPD can cost.
        plain = timers.predict("reboot", fast_lab.profile, outcome.params, outcome.resolution_s)
        assert outcome.phases.dpd_requests == 0
        assert outcome.outage_s is not None and outcome.outage_s < plain.lo
    if outcome.phases.detected_by == "DPD":
        profile = fast_lab.profile
        assert outcome.phases.dpd_requests >= 1
        assert outcome.phases.retransmits >= profile.retransmit_tries
    # The undo left a healthy lab: every back-end's charon answers and the VIP has one owner.
    for name in ("be1", "be2"):
        assert charon.running(fast_lab.nodes[name])
    assert fast_lab.vip_owner() == NEW_OWNER[fault]


def test_a_lab_undone_after_a_crash_measures_the_next_fault(fast_lab: lab.Lab) -> None:
    measure.run(fast_lab, "crash")
    again = measure.run(fast_lab, "graceful")
    assert (again.old_owner, again.new_owner) == ("be2", "be1")
    assert_within_prediction(again)
    assert_clean_wire(again)


@pytest.mark.parametrize("fault", ["graceful", "crash"])
def test_windows_2003_profile_at_a_time_scale(fault: str, backend_name: str) -> None:
    profile = timers.profile("win2003-nlbsflags").scaled(1 / 30)
    params = timers.FaultParams().scaled(1 / 30)
    with lab.running(profile, backend_name) as running:
        outcome = measure.run(running, fault, params)
    assert outcome.new_owner == "be2" and outcome.backend == backend_name
    assert_within_prediction(outcome)
    assert_clean_wire(outcome)
    assert_phases_sum_to_the_outage(outcome)
    assert outcome.phases.detected_by == ("DELETE" if fault == "graceful" else "DPD")


@pytest.mark.parametrize("unique", ["keep", "never"])
def test_fe_s_unique_setting_decides_what_an_announced_reboot_leaves(unique: timers.Unique, backend_name: str) -> None:
    """keep (like no and replace) gives way to INITIAL_CONTACT: the stale IKE SA goes at once.
    never ignores it: traffic moves to the rebooted node's new SA all the same, and fe keeps the
    stale IKE SA beside it (until DPD)."""
    # DPD 30 s: the restarted back-end's INITIAL_CONTACT comes first however long its restart takes (a VM boots)
    profile = dataclasses.replace(timers.profile("fast"), name=f"fast-{unique}", unique=unique, dpd_delay=30)
    with lab.running(profile, backend_name) as running:
        outcome = measure.run(running, "reboot-announce")
        assert_within_prediction(outcome)
        assert_clean_wire(outcome)
    if unique == "never":
        assert outcome.phases.detected_by is None
        assert outcome.ike_sas == 2
    else:
        assert outcome.phases.detected_by == "INITIAL_CONTACT"
        assert outcome.ike_sas == 1

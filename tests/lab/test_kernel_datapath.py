"""The kernel datapath (XFRM) on real labs: recovery through trap policies, tunnel mode on
request, and the kernel's own SAs as `status` shows them. The fault matrix, the timer settings
and the wire checks run on every backend (test_faults.py, test_timer_settings.py, test_lab.py)."""

import dataclasses

import pytest

from harness import lab, measure, registry, timers

from .test_faults import assert_clean_wire, assert_phases_sum_to_the_outage, assert_within_prediction

LAB_BACKENDS = ("uml",)
FAST = timers.profile("fast")


@pytest.mark.parametrize("fault", ["graceful", "crash"])
def test_recovery_through_the_trap_starts_with_an_acquire(fault: str, backend_name: str) -> None:
    """recovery trap: after the DELETE (graceful) or DPD giving up (crash) fe's charon installs a
    trap instead of re-initiating; the probes' next packet meets it and the kernel's acquire
    starts the negotiation: the phases say so, and the outage is what the timers predict."""
    profile = dataclasses.replace(FAST, name="fast-trap", recovery="trap")
    with lab.running(profile, backend_name) as running:
        outcome = measure.run(running, fault)
    assert outcome.new_owner == "be2"
    assert_within_prediction(outcome)
    assert_clean_wire(outcome)
    assert_phases_sum_to_the_outage(outcome)
    assert outcome.phases.started_by == "acquire"
    assert outcome.phases.detected_by == ("DELETE" if fault == "graceful" else "DPD")


def test_restart_recovery_needs_no_acquire(fast_lab: lab.Lab) -> None:
    outcome = measure.run(fast_lab, "crash")
    assert outcome.phases.started_by == "restart"


def test_tunnel_mode_when_the_profile_asks(backend_name: str) -> None:
    profile = dataclasses.replace(FAST, name="fast-tunnel", mode="tunnel")
    with lab.running(profile, backend_name) as running:
        outcome = measure.run(running, "graceful")
    assert (outcome.mode, outcome.encapsulation) == ("tunnel", "raw")
    assert_within_prediction(outcome)
    assert outcome.plaintext_packets == 0


def test_status_shows_the_kernel_sas_of_every_node(fast_lab: lab.Lab) -> None:
    [state] = [s for s in registry.registered() if s.name == fast_lab.topology.name]
    nodes = lab.status(state)["nodes"]
    vip, fe = fast_lab.topology.vip, fast_lab.topology.address("fe")
    owner = fast_lab.vip_owner()
    assert owner is not None
    # one SA per direction between fe and the VIP on fe and on the owner, none on the standby
    for name in ("fe", owner):
        pairs = {(k["src"], k["dst"], k["mode"]) for k in nodes[name]["kernel_sas"]}
        assert {(fe, vip, "transport"), (vip, fe, "transport")} <= pairs
    standby = "be2" if owner == "be1" else "be1"
    assert not [k for k in nodes[standby]["kernel_sas"] if vip in (k["src"], k["dst"])]

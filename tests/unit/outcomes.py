"""Synthetic outcomes for unit tests: a measure.Outcome built from made-up probe attempts around
a fault at T_FAULT, as a lab run would produce them, without a lab."""

from harness import policy, timers
from harness.measure import Outcome
from harness.phases import LogEvent, breakdown
from harness.probe import INTERVALS, SERVICES, Attempt, outage
from harness.sa import SaEvent

T_FAULT = 1000.0


def synthetic_outcome(
    gap: float, profile: timers.Profile | None = None, fault: str = "crash", design: str = "all-traffic"
) -> Outcome:
    """Every service silent for ``gap`` seconds after the fault, the VIP moved from be1 to be2."""
    profile = profile or timers.profile("fast")
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
    events = [
        SaEvent(T_FAULT + gap - 0.02, "ike", False, "1", "198.18.0.100"),
        SaEvent(T_FAULT + gap - 0.01, "child", True, "2", "198.18.0.100"),
    ]
    log = [LogEvent(T_FAULT + gap - 0.02, "gave-up", "giving up after 2 retransmits")]
    params = timers.FaultParams().scaled(profile.time_scale)
    return Outcome(
        backend="netns",
        fault=fault,
        profile=profile,
        params=params,
        policy=policy.policy(design),
        strongswan_version="5.9.8",
        lab="lab0",
        started_at="2026-11-27T00:00:00+0000",
        t_fault_mono=T_FAULT,
        old_owner="be1",
        new_owner="be2",
        outages=outages,
        phases=breakdown(T_FAULT, T_FAULT, T_FAULT + gap + 0.002, events, log, "be2"),
        events=events,
        log_events=log,
        plaintext_packets=0,
        wire_packets=1234,
        capture_dropped=0,
        attempts=attempts,
    )

"""One measured run: probes and a wire capture around one fault on a running lab.

The run waits for steady traffic from the VIP owner, injects the fault, waits until every
service answers from the new owner (deadline from the timer model's upper bound, with room to
measure an outage that overshoots it), then computes the outage per service, fe's SA events
relative to the fault and the packets of protected traffic seen in clear on the wire.

Owns: the sequence of a run and the Outcome it produces. Not: the lab, the faults, the math.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from harness import faults, guard, probe, timers
from harness.errors import LabError
from harness.lab import Lab
from harness.probe import SERVICES, Probe
from harness.strongswan import SaEvent
from harness.topology import NODES
from harness.wire import Capture, plaintext_filter

STEADY_TIMEOUT_S = 10.0
"""How long a fresh lab may take until every service answers through the tunnel."""
ANSWERS_FOR_STEADY = 5
"""Answers per service that prove the tunnel carries traffic (before and after the fault)."""
OVERSHOOT_FACTOR = 2.0
OVERSHOOT_MIN_S = 5.0
"""The recovery wait ends at OVERSHOOT_FACTOR x the predicted upper bound + OVERSHOOT_MIN_S: an
outage beyond the prediction is still measured, a lab that never recovers does not hang."""


@dataclass(frozen=True)
class Outcome:
    """Everything a run measured; times are seconds relative to the fault unless named _mono."""

    backend: str
    fault: str
    profile: timers.Profile
    cluster_delay_s: float
    strongswan_version: str
    lab: str
    started_at: str
    t_fault_mono: float
    old_owner: str
    new_owner: str | None
    outages: dict[str, probe.Outage]
    predicted: timers.Bounds
    events: list[SaEvent] = field(default_factory=list)
    plaintext_packets: int = 0
    wire_packets: int = 0
    capture_dropped: int | None = None
    guard_drops: dict[str, int] = field(default_factory=dict)
    """Packets each node's fail-closed guard stopped from leaving in clear during the run."""
    attempts: list[probe.Attempt] = field(default_factory=list)

    @property
    def outage_s(self) -> float | None:
        return probe.overall(self.outages.values())

    @property
    def resolution_s(self) -> float:
        return max(o.resolution for o in self.outages.values())

    @property
    def recovered(self) -> bool:
        return self.outage_s is not None

    @property
    def within_prediction(self) -> bool:
        return all(o.seconds is not None and o.seconds in self.predicted_for(o) for o in self.outages.values())

    def predicted_for(self, outage: probe.Outage) -> timers.Bounds:
        """The prediction with this service's own probe resolution as tolerance."""
        return timers.predict(self.fault, self.profile, self.cluster_delay_s, outage.resolution)


def run(lab: Lab, fault: str, cluster_delay: float = faults.DEFAULT_CLUSTER_DELAY_S) -> Outcome:
    """Inject ``fault`` into ``lab`` once and measure it; the lab is healthy again afterwards."""
    inject = faults.fault(fault)
    predicted = timers.predict(fault, lab.profile, cluster_delay, probe.UDP_INTERVAL_S)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with contextlib.ExitStack() as running:
        capture = Capture(lab.nodes["sw"], lab.backend.wire_interface)
        running.callback(capture.stop)
        traffic = Probe(lab.fe, lab.topology.vip)
        running.callback(traffic.stop)
        start = time.monotonic()
        owner = lab.vip_owner()
        if not traffic.wait_until(probe.answered(SERVICES, start, owner, ANSWERS_FOR_STEADY), STEADY_TIMEOUT_S):
            raise LabError(
                f"lab {lab.topology.name}: services did not answer through the tunnel within "
                f"{STEADY_TIMEOUT_S:.0f} s (probe said: {' | '.join(traffic.other_output[-3:]) or 'nothing'})"
            )
        with inject(lab, cluster_delay) as injected:
            deadline = injected.t_fault + OVERSHOOT_FACTOR * predicted.hi + OVERSHOOT_MIN_S
            traffic.wait_until(
                probe.answered(SERVICES, injected.t_fault, injected.new_owner, ANSWERS_FOR_STEADY),
                max(0.0, deadline - time.monotonic()),
            )
            guard_drops = {name: guard.dropped(lab.nodes[name]) for name in NODES}
    attempts = traffic.snapshot()
    assert lab.events is not None
    outages = {
        service: probe.outage(attempts, service, injected.t_fault, probe.INTERVALS[service]) for service in SERVICES
    }
    new_owners = {o.new_owner for o in outages.values()}
    return Outcome(
        backend=lab.backend.name,
        fault=fault,
        profile=lab.profile,
        cluster_delay_s=cluster_delay,
        strongswan_version=lab.strongswan_version,
        lab=lab.topology.name,
        started_at=started_at,
        t_fault_mono=injected.t_fault,
        old_owner=injected.old_owner,
        new_owner=new_owners.pop() if len(new_owners) == 1 else None,
        outages=outages,
        predicted=predicted,
        events=list(lab.events.events),
        plaintext_packets=capture.count(plaintext_filter(lab.topology)),
        wire_packets=capture.count("ip"),
        capture_dropped=capture.dropped,
        guard_drops=guard_drops,
        attempts=attempts,
    )

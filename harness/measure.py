"""One measured run: probes and a wire capture around one fault on a running lab.

The run waits for steady traffic from the VIP owner, injects the fault, waits until every
service answers from the new owner (deadline from the timer model's upper bound, with room to
measure an outage that overshoots it), then computes the outage per service, where the time
went (phases), fe's SA events and the packets of protected traffic seen in clear on the wire.

Owns: the sequence of a run and the Outcome it produces. Not: the lab, the faults, the math.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from harness import charon, effective, evidence, faults, guard, probe, sa, strongswan, timers, wire
from harness.effective import Effective
from harness.errors import LabError
from harness.evidence import Evidence
from harness.lab import Lab
from harness.live import LogFollower, Reporter, Watch
from harness.phases import LogEvent, Phases, breakdown, parse_log
from harness.policy import DC_PEERS, DC_PORTS, Policy
from harness.probe import SERVICES, Probe
from harness.sa import SaEvent
from harness.topology import BACKENDS, DOMAIN_CONTROLLER, FRONT_END, NODES
from harness.wire import Wire

DIALOGUE_ATTEMPTS = 5
"""How many of a service's last answered attempts before the fault tell how long one takes."""
STEADY_TIMEOUT_S = 10.0
"""How long a fresh lab may take until every service answers through the tunnel."""
ANSWERS_FOR_STEADY = 5
"""Answers per service that prove the tunnel carries traffic (before and after the fault)."""
OVERSHOOT_FACTOR = 2.0
OVERSHOOT_MIN_S = 5.0
"""The recovery wait ends at OVERSHOOT_FACTOR x the predicted upper bound + OVERSHOOT_MIN_S: an
outage beyond the prediction is still measured, a lab that never recovers does not hang."""
PROGRESS_EVERY_S = 0.1
"""How often a watcher hears where the run stands while it waits for recovery."""
SETTLE_MARGIN_S = 2.0
"""Beyond fe's whole retransmission schedule, how long the IKE SAs of a recovered lab may take
to settle before the harness counts them (a VM's charon answering late)."""


@dataclass(frozen=True)
class Outcome:
    """Everything a run measured; times are on fe's monotonic clock unless said otherwise."""

    backend: str
    fault: str
    profile: timers.Profile
    params: timers.FaultParams
    policy: Policy
    strongswan_version: str
    lab: str
    started_at: str
    t_fault_mono: float
    old_owner: str
    new_owner: str | None
    outages: dict[str, probe.Outage]
    phases: Phases
    vip_moved: float | None = None
    """Seconds from the fault until the new owner had the VIP and announced it (None if it did not move)."""
    back: float | None = None
    """Seconds from the fault until the node was back (harness.faults.Injected.t_back)."""
    allowance: float = timers.SETUP_ALLOWANCE_S
    """What the timers leave out after the transmission that gets through, on this backend."""
    catch_up: float = 0.0
    """What a VM continuing after a freeze takes to work through its backlog, on this backend."""
    events: list[SaEvent] = field(default_factory=list)
    log_events: list[LogEvent] = field(default_factory=list)
    plaintext_packets: int = 0
    wire_packets: int = 0
    capture_dropped: int | None = None
    guard_drops: dict[str, int] = field(default_factory=dict)
    """Packets each node's fail-closed guard stopped from leaving in clear during the run."""
    esp_packets: int = 0
    raw_esp_packets: int = 0
    """Of ``esp_packets``, those sent as raw ESP (IP protocol 50); the rest went in UDP."""
    datapath: str = "libipsec"
    """Where the nodes did ESP: strongSwan's userspace datapath (libipsec) or the kernel's."""
    mode: str = "tunnel"
    """The CHILD_SAs' IPsec mode (transport or tunnel)."""
    clear_by_port: dict[str, int] = field(default_factory=dict)
    """Packets seen in clear per service port ("tcp/110"), protected or not."""
    esp_by_child: dict[str, int] = field(default_factory=dict)
    """Packets carried by each of fe's CHILD_SAs at the end of the run (named by port under a
    port-scoped policy), since it was installed."""
    ike_sas: int | None = None
    """fe's established IKE SAs with the VIP once the recovered lab settled (None without
    IPsec): 1, or more when both ends initiated."""
    credentials_in_clear: dict[str, int] = field(default_factory=dict)
    coverage: dict[str, dict[str, bool]] = field(default_factory=dict)
    """Which of dc's services answered each node (one attempt each, before the fault)."""
    attempts: list[probe.Attempt] = field(default_factory=list)
    effective: Effective | None = None
    """What fe's charon ran with (None without IPsec); the prediction follows it."""
    evidence: Evidence | None = field(default=None, repr=False, compare=False)
    """The run's capture, charon logs and configuration, when the caller asked to keep them."""

    @property
    def outage_s(self) -> float | None:
        return probe.overall(self.outages.values())

    @property
    def resolution_s(self) -> float:
        return max(o.resolution for o in self.outages.values())

    @property
    def encapsulation(self) -> str:
        """How ESP crossed the wire (harness.wire.encapsulation)."""
        return wire.encapsulation(self.raw_esp_packets, self.esp_packets - self.raw_esp_packets)

    @property
    def recovered(self) -> bool:
        return self.outage_s is not None

    @property
    def within_prediction(self) -> bool:
        return all(o.seconds is not None and o.seconds in self.predicted_for(o) for o in self.outages.values())

    @cached_property
    def predictions(self) -> dict[str, timers.Bounds]:
        """Every service's prediction, with the measured VIP move and restart."""
        return predictions(
            self.fault,
            self.profile,
            self.params,
            self.policy,
            self.effective,
            self.vip_moved,
            self.back,
            self.allowance,
            self.catch_up,
            {service: outage.resolution for service, outage in self.outages.items()},
            self.overlaps,
            self.dialogues,
        )

    @property
    def reinitiated(self) -> float | None:
        """When fe first re-initiated after the fault (its charon log; None if it did not)."""
        return next((e.t for e in self.log_events if e.kind == "initiate" and e.t >= self.t_fault_mono), None)

    @cached_property
    def overlaps(self) -> dict[str, float]:
        """How long the old SA still carried each service's answers after fe had re-initiated
        (harness.timers.graceful's ``overlap``)."""
        t = self.reinitiated
        return {s: 0.0 if t is None else max(0.0, o.last_before - t) for s, o in self.outages.items()}

    @cached_property
    def dialogues(self) -> dict[str, float]:
        """How long one answered attempt of each service took just before the fault (the median
        of the last DIALOGUE_ATTEMPTS): over a slow link, a login dialogue's round trips
        (harness.timers.reauth's ``dialogue``)."""
        taken: dict[str, list[float]] = {}
        for attempt in sorted(self.attempts, key=lambda a: a.t1):
            if attempt.node is not None and attempt.t1 <= self.t_fault_mono:
                taken.setdefault(attempt.service, []).append(attempt.t1 - attempt.t0)
        return {service: statistics.median(times[-DIALOGUE_ATTEMPTS:]) for service, times in taken.items()}

    @property
    def predicted(self) -> timers.Bounds:
        """The overall prediction: from the earliest any service may recover to the latest."""
        return overall(self.predictions)

    def predicted_for(self, outage: probe.Outage) -> timers.Bounds:
        """The prediction for this service (protected by the policy or in clear), with its own
        probe resolution as tolerance."""
        return self.predictions[outage.service]


def predictions(
    fault: str,
    profile: timers.Profile,
    params: timers.FaultParams,
    policy: Policy,
    settings: Effective | None,
    vip_moved: float | None = None,
    back: float | None = None,
    allowance: float = timers.SETUP_ALLOWANCE_S,
    catch_up: float = 0.0,
    resolutions: Mapping[str, float] | None = None,
    overlaps: Mapping[str, float] | None = None,
    dialogues: Mapping[str, float] | None = None,
) -> dict[str, timers.Bounds]:
    """The predicted outage of every probed service: protected by the policy or in clear, with
    its own probe resolution as tolerance (``resolutions``: measured, Outage.resolution; else the
    probe's interval), for what charon runs (``settings``); ``overlaps`` and ``dialogues``: as
    measured, Outcome.overlaps and Outcome.dialogues. The one place a run's predictions come
    from: the live view, the result, the tables and the plots show these."""
    defers = settings is None or settings.esp_defers_dpd
    return {
        service: timers.predict(
            fault,
            profile,
            params,
            (resolutions or probe.INTERVALS)[service],
            vip_moved,
            policy.protects_service(service),
            back,
            esp_defers_dpd=defers,
            allowance=allowance,
            catch_up=catch_up,
            overlap=(overlaps or {}).get(service, 0.0),
            dialogue=(dialogues or {}).get(service),
            esp_in_udp=settings is None or settings.nat,
        )
        for service in SERVICES
    }


def overall(bands: dict[str, timers.Bounds]) -> timers.Bounds:
    """The band of the overall outage (first service silent -> last one answering again)."""
    return timers.Bounds(min(b.lo for b in bands.values()), max(b.hi for b in bands.values()))


def read_settings(lab: Lab) -> Effective | None:
    """What fe's charon runs with (None without IPsec); refuses a profile it runs differently."""
    if not lab.policy.ipsec:
        return None
    settings = effective.read(lab.fe, lab.strongswan_version)
    effective.require(settings, lab.profile)
    return settings


def expected(lab: Lab, fault: str, params: timers.FaultParams) -> timers.Bounds:
    """The overall prediction before the run (without the measured VIP move or restart)."""
    settings = read_settings(lab)
    backend = lab.backend
    return overall(
        predictions(
            fault,
            lab.profile,
            params,
            lab.policy,
            settings,
            allowance=backend.setup_allowance_s,
            catch_up=backend.catch_up_s,
        )
    )


def coverage(lab: Lab) -> dict[str, dict[str, bool]]:
    """One attempt at each of dc's services from fe and both back-ends, all at once."""
    ports = ",".join(f"{proto}:{port}" for proto, port in DC_PORTS)
    target = lab.topology.address(DOMAIN_CONTROLLER)
    touches = {
        name: lab.nodes[name].spawn(
            [*lab.nodes[name].agent("touch"), "--target", target, "--ports", ports], capture=True
        )
        for name in DC_PEERS
    }
    found: dict[str, dict[str, bool]] = {}
    for name, process in touches.items():
        answers = [json.loads(line) for line in process.lines() if line.startswith("{")]
        found[name] = {f"{a['proto']}/{a['port']}": bool(a["ok"]) for a in answers}
        process.wait(5)
        process.close()
    return found


def esp_by_child(lab: Lab) -> dict[str, int]:
    """Packets (in + out) of each of fe's installed CHILD_SAs with the VIP."""
    carried: dict[str, int] = {}
    for child in sa.installed_children(charon.sas(lab.fe)):
        if child.remote_ts and child.remote_ts[0].startswith(f"{lab.topology.vip}/"):
            carried[child.name] = carried.get(child.name, 0) + child.packets_in + child.packets_out
    return carried


def negotiated_with(lab: Lab) -> str | None:
    """The back-end holding the IKE SA fe has now (matched by SPIs)."""
    mine = charon.ike_spis(lab.fe)
    return next((name for name in BACKENDS if mine & charon.ike_spis(lab.nodes[name])), None)


def ike_sas_with_vip(lab: Lab, owner: str) -> int:
    """How many established IKE SAs fe holds with the VIP, once every IKE SA between fe and
    ``owner`` (fe's own re-initiation, the owner's announcement) has settled (none connecting,
    rekeying or deleting): more than one means both ends initiated (strongswan/strongswan#2778).
    Waits at most until fe's retransmission schedule would have given up (the timer model's
    give_up_after) and SETTLE_MARGIN_S more."""
    vip, fe_address = lab.topology.vip, lab.topology.address(FRONT_END)
    deadline = time.monotonic() + timers.give_up_after(lab.profile) + SETTLE_MARGIN_S
    while True:
        held = {name: charon.sas(lab.nodes[name]) for name in (FRONT_END, owner)}
        pending = [
            f"{name}: {sa.state}"
            for name, sas in held.items()
            for sa in sas
            if sa.remote_host in (vip, fe_address) and not sa.established
        ]
        if not pending:
            return sum(sa.remote_host == vip for sa in held[FRONT_END])
        if time.monotonic() > deadline:
            raise LabError(
                f"lab {lab.topology.name}: IKE SAs between fe and {owner} still on their way after fe's "
                f"schedule would have given up ({', '.join(pending)})"
            )
        time.sleep(PROGRESS_EVERY_S)


def require_charons(lab: Lab, names: Iterable[str], when: str) -> None:
    """Refuse to go on when a charon the run relies on has exited (killed by hand, crashed):
    otherwise the run would wait for a recovery that cannot come."""
    for name in names:
        process = lab.charons[name]
        if not process.alive():
            raise LabError(
                f"{name}: charon exited {when} (exit code {process.wait(0)}); was it killed by hand? "
                "The run is abandoned and its lab torn down"
            )


def _wait_for_recovery(
    lab: Lab, traffic: Probe, injected: faults.Injected, predicted: timers.Bounds, watch: Watch | None
) -> None:
    assert lab.events is not None
    deadline = injected.t_fault + OVERSHOOT_FACTOR * predicted.hi + OVERSHOOT_MIN_S
    recovered = probe.answered(SERVICES, injected.t_fault, injected.new_owner, ANSWERS_FOR_STEADY)
    needed = dict.fromkeys((FRONT_END, injected.new_owner))
    while True:
        remaining = deadline - time.monotonic()
        done = traffic.wait_until(recovered, max(0.0, min(PROGRESS_EVERY_S, remaining))) or remaining <= 0
        if watch is not None:
            watch.report(watch.progress([e for e in lab.events.events if e.remote == lab.topology.vip]))
        if done:
            return
        require_charons(lab, needed, "during the run")


def run(
    lab: Lab,
    fault: str,
    params: timers.FaultParams | None = None,
    report: Reporter | None = None,
    keep_evidence: bool = False,
) -> Outcome:
    """Inject ``fault`` into ``lab`` once and measure it; the lab is healthy again afterwards.
    ``keep_evidence``: the Outcome carries the run's capture, charon logs and configuration
    (harness.evidence) for its report folder."""
    inject = faults.fault(fault)
    params = params or timers.FaultParams()
    settings = read_settings(lab)
    allowance, catch_up = lab.backend.setup_allowance_s, lab.backend.catch_up_s
    predicted = overall(
        predictions(fault, lab.profile, params, lab.policy, settings, allowance=allowance, catch_up=catch_up)
    )
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    clock = lab.fe.clock()  # fe's probe stamps and charon log onto the harness's clock
    wall_to_monotonic = clock.wall_offset
    with contextlib.ExitStack() as running:
        capture = Wire(lab.nodes, lab.backend.capture_points(lab.topology))
        running.callback(capture.stop)
        traffic = Probe(lab.fe, lab.topology.vip, clock.monotonic_offset)
        running.callback(traffic.stop)
        require_charons(lab, NODES, "before the fault")
        start = time.monotonic()
        owner = lab.vip_owner()
        if not traffic.wait_until(probe.answered(SERVICES, start, owner, ANSWERS_FOR_STEADY), STEADY_TIMEOUT_S):
            raise LabError(
                f"lab {lab.topology.name}: services did not answer through the tunnel within "
                f"{STEADY_TIMEOUT_S:.0f} s (probe said: {' | '.join(traffic.other_output[-3:]) or 'nothing'})"
            )
        covered = coverage(lab)
        follower = LogFollower(lab.fe, wall_to_monotonic) if report is not None else None
        if follower is not None:
            running.callback(follower.stop)

        def watch(injected: faults.Injected) -> Watch | None:
            if report is None:
                return None
            return Watch(injected.t_fault, predicted, follower, report, injected.describe())

        with lab.backend.unattended(lab.topology, lab.nodes), inject(lab, params) as injected:
            _wait_for_recovery(lab, traffic, injected, predicted, watch(injected))
            guard_drops = {name: guard.dropped(lab.nodes[name]) for name in NODES}
            ike_sas = ike_sas_with_vip(lab, injected.new_owner) if lab.policy.ipsec else None  # once settled
            peer = negotiated_with(lab)
            carried = esp_by_child(lab)
    attempts = traffic.snapshot()
    assert lab.events is not None
    outages = {
        service: probe.outage(attempts, service, injected.t_fault, probe.INTERVALS[service] + clock.uncertainty)
        for service in SERVICES
    }
    ends = [o.first_after for o in outages.values()]
    t_recovered = None if None in ends else max(e for e in ends if e is not None)
    log = lab.fe.run(["cat", str(lab.fe.workdir / "charon.log")]).stdout
    log_events = parse_log(log, wall_to_monotonic, since=injected.t_fault - 1, connection=strongswan.CONNECTION)
    sa_events = [e for e in lab.events.events if e.remote == lab.topology.vip]
    kept = evidence.collect(lab, capture.files()) if keep_evidence else None
    new_owners = {o.new_owner for o in outages.values()}
    vip_moved = None if injected.t_vip is None else injected.t_vip - injected.t_fault
    back = None if injected.t_back is None else injected.t_back - injected.t_fault
    return Outcome(
        backend=lab.backend.name,
        fault=fault,
        profile=lab.profile,
        params=params,
        policy=lab.policy,
        strongswan_version=lab.strongswan_version,
        lab=lab.topology.name,
        started_at=started_at,
        t_fault_mono=injected.t_fault,
        old_owner=injected.old_owner,
        new_owner=new_owners.pop() if len(new_owners) == 1 else None,
        outages=outages,
        effective=settings,
        vip_moved=vip_moved,
        back=back,
        allowance=allowance,
        catch_up=catch_up,
        phases=breakdown(
            injected.t_fault, min(o.last_before for o in outages.values()), t_recovered, sa_events, log_events, peer
        ),
        events=sa_events,
        log_events=log_events,
        plaintext_packets=capture.count(wire.protected_filter(lab.policy, lab.topology)),
        wire_packets=capture.count("ip"),
        capture_dropped=capture.dropped,
        guard_drops=guard_drops,
        esp_packets=capture.count(wire.ESP),
        raw_esp_packets=capture.count(wire.RAW_ESP),
        datapath=lab.datapath,
        mode=strongswan.recovery(lab.profile, lab.datapath).mode,
        clear_by_port=wire.clear_by_port(capture.packets(), lab.topology),
        esp_by_child=carried,
        ike_sas=ike_sas,
        credentials_in_clear=capture.credentials(),
        coverage=covered,
        attempts=attempts,
        evidence=kept,
    )

"""measure.run's wiring, on a fake lab (tests/unit/fakes.py) with a graceful move: who is asked
what and in which order (capture on the switch, probe on fe, coverage on fe/be1/be2, the fault
once, the reads while it holds, its undo, the stops and the reads of the capture), and that the
Outcome carries what the fakes answered. The outage math, the phases and the fault's own
commands have their own tests (test_probe.py, test_phases.py, test_faults_sequence.py).

The probe's lines are stamped when the fake probe is read, on the harness's monotonic clock:
answers from be1 once measure.run has asked who owns the VIP (its steady-state window has begun),
answers from be2 once be2 has taken the VIP. No clock is patched.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator

import pytest

from harness import faults, measure, wire
from harness.probe import INTERVALS, SERVICES, Attempt, Outage
from harness.sa import SaEvent
from harness.timers import FaultParams

from .fakes import ADDR_SHOW, SWITCH, WIRE_INTERFACE, FakeLab, fake_lab, ike_sa

VIP = "198.18.0.100"
FE = "198.18.0.10"
DC = "198.18.0.20"
PCAP = "/lab/sw/wire.pcap"
CAPTURE = f"tcpdump -i {WIRE_INTERFACE} --immediate-mode -nn -U -s 2048 -B 8192 -w {PCAP} ip"
PROBE = f"python3 /agents/probe.py --target {VIP} --udp-interval 0.01 --tcp-interval 0.02 --timeout 1.0"
TOUCH = f"python3 /agents/touch.py --target {DC} --ports tcp:389,tcp:88,udp:88,tcp:135,tcp:3268,tcp:53,udp:53"
GUARD = "nft -j list table inet failover_lab_guard"
OWNER = ("be1", "run", shlex.join(ADDR_SHOW))
TAKEN = ("be2", "run", f"ip addr add {VIP}/32 dev eth0")
ANSWERS = 5
"""Answers per service before and after the fault (measure waits for ANSWERS_FOR_STEADY)."""


def vici_read(node: str) -> list[tuple[str, ...]]:
    return [(node, "vici", "connect"), (node, "vici", "list_sas"), (node, "vici", "close")]


def guard_counter(packets: int) -> str:
    return json.dumps(
        {"nftables": [{"rule": {"expr": [{"match": {}}, {"counter": {"packets": packets, "bytes": 0}}]}}]}
    )


def touched(ok: bool) -> list[str]:
    return [json.dumps({"proto": "tcp", "port": 389, "ok": ok, "answer": "dc 389"}) + "\n"]


def script(fake: FakeLab) -> None:
    """Everything but the probe: the capture, coverage, guard counters, SAs and the wire's reads."""
    nodes = fake.nodes
    nodes[SWITCH].script_spawn(
        ["tcpdump", "-i"],
        lines=[
            f"tcpdump: listening on {WIRE_INTERFACE}, link-type EN10MB (Ethernet), snapshot length 2048 bytes\n",
            "1234 packets captured\n",
            "1240 packets received by filter\n",
            "3 packets dropped by kernel\n",
        ],
    )
    for name, ok in (("fe", True), ("be1", True), ("be2", False)):
        nodes[name].script_spawn(["python3", "/agents/touch.py"], lines=["touch: starting\n", *touched(ok)])
    for name, dropped in (("fe", 0), ("be1", 4), ("be2", 0), ("dc", 1)):
        nodes[name].script(shlex.split(GUARD), stdout=guard_counter(dropped))
    # fe's SA with the VIP has the SPIs of be2's: fe negotiated with be2. be1 keeps an old one.
    nodes["fe"].script_sas(
        [
            {"vip": ike_sa(3, VIP, ("aa", "bb"), {"all": (f"{FE}/32", f"{VIP}/32", 50)})},
            {"dc": ike_sa(4, DC, ("cc", "dd"), {"all": (f"{FE}/32", f"{DC}/32", 7)})},
        ]
    )
    nodes["be1"].script_sas([{"vip": ike_sa(7, FE, ("11", "22"))}])
    nodes["be2"].script_sas([{"vip": ike_sa(5, FE, ("aa", "bb"))}])
    read = ["tcpdump", "-nn", "-r", PCAP]
    nodes[SWITCH].script([*read, "ip"], stdout="pkt\n" * 1234)
    nodes[SWITCH].script([*read, wire.ESP], stdout="esp\n" * 600)
    protected = wire.protected_filter(fake.lab.policy, fake.topology)
    assert protected is not None
    nodes[SWITCH].script([*read, protected], stdout="leak\n" * 2)  # the fakes answer, whatever a lab would
    nodes[SWITCH].script(
        ["tcpdump", "-nn", "-q", "-t", "-r", PCAP],
        stdout=f"IP {FE}.40000 > {VIP}.7: UDP, length 3\nIP {VIP}.7 > {FE}.40000: UDP, length 7\n",
    )
    nodes[SWITCH].script(["tcpdump", "-nn", "-A", "-r", PCAP], stdout="PASS probe-password\r\n")


def line(attempt: Attempt) -> str:
    """One attempt as harness/agents/probe.py prints it."""
    record: dict[str, object] = {"s": attempt.service, "t0": attempt.t0, "t1": attempt.t1}
    if attempt.node is not None:
        record["n"] = attempt.node
    else:
        record["e"] = attempt.error
    return json.dumps(record, separators=(",", ":")) + "\n"


def answers(node: str, lo: float, hi: float) -> list[Attempt]:
    """ANSWERS answers per service from ``node``, spread strictly inside (lo, hi)."""
    stamps = [lo + (hi - lo) * (k + 1) / (ANSWERS + 1) for k in range(ANSWERS)]
    return [Attempt(service, t, t, node) for t in stamps for service in SERVICES]


class ScriptedProbe:
    """The probe's output: be1 answers stamped after measure.run asked who owns the VIP, then
    (once be2 took the VIP) one timeout per service and be2's answers; fe's SA events and charon
    log lines are scripted at the same moment."""

    def __init__(self, fake: FakeLab) -> None:
        self.fake = fake
        self.before: list[Attempt] = []
        self.after: list[Attempt] = []
        self.events: list[SaEvent] = []

    def lines(self) -> Iterator[str]:
        yield "probe: warming up\n"  # not an attempt: kept as other output
        asked = self.fake.journal.wait_for(OWNER)
        if asked is None:
            return
        self.before = answers("be1", asked.t, time.monotonic())
        yield from map(line, self.before)
        taken = self.fake.journal.wait_for(TAKEN)
        if taken is None:
            return
        now = time.monotonic()
        self.events = [
            SaEvent(taken.t, "ike", False, "1", VIP),
            SaEvent(taken.t, "child", True, "3", VIP),
            SaEvent(taken.t, "child", True, "4", DC),
        ]
        self.fake.events.events.extend(self.events)
        self.fake.nodes["fe"].script(
            ["cat", "/lab/fe/charon.log"], stdout=f"{time.time():.3f} 07[IKE] received DELETE for IKE_SA vip[1]\n"
        )
        failed = [Attempt(service, taken.t, taken.t, None, "timeout") for service in SERVICES]
        self.after = failed + answers("be2", taken.t, now)
        yield from map(line, self.after)


@pytest.fixture
def fake() -> FakeLab:
    lab = fake_lab()
    script(lab)
    return lab


def fault_steps() -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The graceful move's own steps on a lab scripted the same way (pinned in test_faults_sequence.py)."""
    alone = fake_lab()
    script(alone)
    with faults.graceful(alone.lab, FaultParams()):
        entered = alone.journal.steps()
    return entered, alone.journal.steps()[len(entered) :]


def test_who_is_asked_what_in_which_order(fake: FakeLab) -> None:
    probe = ScriptedProbe(fake)
    fake.nodes["fe"].script_spawn(["python3", "/agents/probe.py"], lines=probe.lines())
    measure.run(fake.lab, "graceful")
    entered, left = fault_steps()
    protected = wire.protected_filter(fake.lab.policy, fake.topology)
    assert protected is not None
    assert fake.journal.steps() == [
        ("fe", "run", "cat /lab/fe/strongswan.conf"),  # what fe's charon runs with, read back first
        *vici_read("fe"),
        ("fe", "vici", "connect"),
        ("fe", "vici", "list_conns"),
        ("fe", "vici", "close"),
        (SWITCH, "spawn+capture", CAPTURE),
        ("fe", "spawn+capture", PROBE),
        OWNER,  # the steady state: answers from the VIP's owner
        ("fe", "spawn+capture", TOUCH),  # coverage: all three at once, then each read to its end
        ("be1", "spawn+capture", TOUCH),
        ("be2", "spawn+capture", TOUCH),
        ("fe", "wait", TOUCH),
        ("fe", "close", TOUCH),
        ("be1", "wait", TOUCH),
        ("be1", "close", TOUCH),
        ("be2", "wait", TOUCH),
        ("be2", "close", TOUCH),
        *entered,  # the fault, once
        ("fe", "run", GUARD),  # while it holds: guard counters, who fe negotiated with, fe's CHILD_SAs
        ("be1", "run", GUARD),
        ("be2", "run", GUARD),
        ("dc", "run", GUARD),
        *vici_read("fe"),  # fe's IKE SAs with the VIP, once those with the new owner settled
        *vici_read("be2"),
        *vici_read("fe"),  # then who fe negotiated with
        *vici_read("be1"),
        *vici_read("be2"),
        *vici_read("fe"),
        *left,  # its undo
        ("fe", "stop", PROBE),
        (SWITCH, "signal SIGINT", CAPTURE),
        (SWITCH, "wait", CAPTURE),
        (SWITCH, "close", CAPTURE),
        ("fe", "run", "cat /lab/fe/charon.log"),
        (SWITCH, "run", shlex.join(["tcpdump", "-nn", "-r", PCAP, protected])),
        (SWITCH, "run", f"tcpdump -nn -r {PCAP} ip"),
        (SWITCH, "run", shlex.join(["tcpdump", "-nn", "-r", PCAP, wire.ESP])),
        (SWITCH, "run", shlex.join(["tcpdump", "-nn", "-r", PCAP, wire.RAW_ESP])),
        (SWITCH, "run", f"tcpdump -nn -q -t -r {PCAP} 'tcp or udp'"),
        (SWITCH, "run", f"tcpdump -nn -A -r {PCAP} 'tcp port 110 or tcp port 143'"),
    ]


def test_the_outcome_carries_what_the_nodes_answered(fake: FakeLab) -> None:
    probe = ScriptedProbe(fake)
    fake.nodes["fe"].script_spawn(["python3", "/agents/probe.py"], lines=probe.lines())
    outcome = measure.run(fake.lab, "graceful")

    assert (outcome.fault, outcome.backend, outcome.lab, outcome.strongswan_version) == (
        "graceful",
        "fake",
        "lab0",
        "5.9.8",
    )
    assert (outcome.profile, outcome.policy, outcome.params) == (fake.lab.profile, fake.lab.policy, FaultParams())
    # The probe's attempts, in the order it printed them, and the outages they make.
    assert outcome.attempts == probe.before + probe.after
    last_before = max(a.t1 for a in probe.before)
    first_after = min(a.t1 for a in probe.after if a.node is not None)
    assert last_before <= outcome.t_fault_mono <= first_after
    assert outcome.outages == {
        service: Outage(service, last_before, first_after, "be1", "be2", INTERVALS[service]) for service in SERVICES
    }
    assert (outcome.old_owner, outcome.new_owner) == ("be1", "be2")
    taken = fake.journal.wait_for(TAKEN, timeout=0)
    assert taken is not None and outcome.vip_moved is not None
    assert taken.t - outcome.t_fault_mono <= outcome.vip_moved
    assert outcome.back is None
    # fe's events with the VIP (not with dc), its charon log, who it negotiated with.
    assert outcome.events == probe.events[:2]
    assert [(e.kind, e.text) for e in outcome.log_events] == [("delete", "received DELETE for IKE_SA vip[1]")]
    assert outcome.phases.negotiated_with == "be2"
    assert outcome.esp_by_child == {"all": 100}
    assert outcome.guard_drops == {"fe": 0, "be1": 4, "be2": 0, "dc": 1}
    assert outcome.coverage == {"fe": {"tcp/389": True}, "be1": {"tcp/389": True}, "be2": {"tcp/389": False}}
    # The wire, as the switch's tcpdump answered.
    assert (outcome.plaintext_packets, outcome.wire_packets, outcome.esp_packets) == (2, 1234, 600)
    assert outcome.capture_dropped == 3
    assert outcome.clear_by_port["udp/7"] == 2 and sum(outcome.clear_by_port.values()) == 2
    assert outcome.credentials_in_clear == {"pop3 PASS": 1, "imap LOGIN": 0}

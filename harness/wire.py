"""The capture of the lab wire: every frame of a run, and what of it crossed in clear.

Where the lab has a switch of its own, tcpdump runs on the switch node (for netns, the bridge's
own namespace; for Docker, a container in the host's network namespace on the lab's bridge) and
writes a pcap in the switch's directory; the pcap is read back on the same node. On the bridge
device, promiscuous, it sees every frame forwarded between ports once. On a user's hosts (ssh)
there is no switch of ours: every host captures what it sends on its lab interface (`-Q out`, the
SSH port left out), and the captures together are every packet a lab node put on the wire, each
once (a Wire adds them up). It runs in immediate mode: otherwise packets still
waiting in the kernel's capture buffer when tcpdump is stopped are counted as "received" but
never written, and the capture would miss the end of a run.

What the wire tells per run: packets of protected traffic in clear (the policy's selectors:
must be 0), packets per service port in clear, ESP packets (in UDP, or raw), and whether the
probe's POP3 PASS and IMAP LOGIN credentials can be read off the wire.

Owns: capturing and reading the capture. Not: deciding what a policy protects (harness.policy).
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from harness.errors import LabError
from harness.node import Node
from harness.policy import DC_PEERS, DC_PORTS, SERVICE_PORTS, Policy
from harness.topology import DOMAIN_CONTROLLER, FRONT_END, Topology

KEYING = "udp port 500 or udp port 4500 or ip proto 50"
"""IKE, ESP in UDP and raw ESP: what charon itself puts on the wire."""
ESP_IN_UDP = "udp port 4500 and udp[8:4] != 0"
"""ESP in UDP: a non-zero SPI where IKE on 4500 has its zero marker (the userspace datapath)."""
RAW_ESP = "ip proto 50"
"""ESP as its own IP protocol (the kernel datapath without NAT)."""
ESP = f"({ESP_IN_UDP}) or {RAW_ESP}"
"""ESP packets, either way."""
IKE = "udp port 500 or (udp port 4500 and udp[8:4] = 0)"
"""IKE messages: on port 500, or on 4500 behind the zero marker (a NAT-T keepalive, one byte,
has no marker to read and does not match)."""


def encapsulation(raw: int, in_udp: int) -> str:
    """How ESP crossed the wire: "raw", "udp", "raw+udp" (both, e.g. the kernel datapath with
    NAT on one SA) or "none"."""
    return "+".join(name for name, count in (("raw", raw), ("udp", in_udp)) if count) or "none"


CREDENTIALS = {"pop3 PASS": "PASS probe-password", "imap LOGIN": 'LOGIN probe "probe-password"'}
"""What the probe's logins put on the wire (harness/agents/probe.py defaults)."""
PACKET = re.compile(r"^IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): (tcp|UDP)")


def protected_filter(policy_: Policy, topology: Topology) -> str | None:
    """tcpdump filter for traffic the policy protects, seen in clear (None: it protects nothing)."""
    fe, vip, dc = topology.address(FRONT_END), topology.vip, topology.address(DOMAIN_CONTROLLER)
    parts = []
    if policy_.ports is None:
        parts.append(f"(host {fe} and host {vip} and not ({KEYING}))")
    elif policy_.ports:
        ports = " or ".join(f"{proto} port {port}" for proto, port in policy_.ports)
        parts.append(f"(host {fe} and host {vip} and ({ports}))")
    if policy_.dc:
        parts += [f"(host {topology.address(peer)} and host {dc} and not ({KEYING}))" for peer in DC_PEERS]
    return " or ".join(parts) or None


@dataclass(frozen=True)
class Packet:
    src: str
    sport: int
    dst: str
    dport: int
    proto: str


def port_keys(topology: Topology) -> dict[str, tuple[str, int, str]]:
    """Every service port of the lab: "tcp/110" -> (proto, port, the server's address)."""
    keys = {f"{proto}/{port}": (proto, port, topology.vip) for proto, port in SERVICE_PORTS.values()}
    keys.update({f"{proto}/{port}": (proto, port, topology.address(DOMAIN_CONTROLLER)) for proto, port in DC_PORTS})
    return keys


def clear_by_port(packets: list[Packet], topology: Topology) -> dict[str, int]:
    """Packets in clear to or from each service port of the lab."""
    counts = dict.fromkeys(port_keys(topology), 0)
    for key, (proto, port, server) in port_keys(topology).items():
        for packet in packets:
            if packet.proto == proto and (
                (packet.dst == server and packet.dport == port) or (packet.src == server and packet.sport == port)
            ):
                counts[key] += 1
    return counts


@dataclass(frozen=True)
class CapturePoint:
    """Where a backend's lab wire is captured: a node and its interface; ``outgoing``: only what
    the node sends (one point per node, so each packet is seen once); ``excluding``: a tcpdump
    filter of packets that are not the lab's (the SSH connection on a user's host)."""

    node: str
    interface: str
    outgoing: bool = False
    excluding: str | None = None


SNAPLEN = 2048
"""Bytes kept of each frame: whole IKE and ESP packets, which the evidence's decryption needs."""
BUFFER_KIB = 8192
"""The kernel's capture buffer: four times libpcap's default, as the snaplen is four times what it
was (512), so that a VM whose tcpdump stalls under load drops nothing (a drop voids the proof that
nothing crossed in clear; 421 were dropped once on SSH test hosts with the default)."""


class Capture:
    """tcpdump on the lab wire (one point of it) for the lifetime of this object."""

    def __init__(
        self,
        switch: Node,
        interface: str,
        name: str = "wire",
        outgoing: bool = False,
        excluding: str | None = None,
    ) -> None:
        self.switch = switch
        self.path = PurePosixPath(switch.workdir) / f"{name}.pcap"
        self.dropped: int | None = None
        direction = ["-Q", "out", "--no-promiscuous-mode"] if outgoing else []
        bpf = "ip" if excluding is None else f"ip and not ({excluding})"
        self.process = switch.spawn(
            ["tcpdump", "-i", interface, *direction, "--immediate-mode", "-nn", "-U", "-s", str(SNAPLEN),
             "-B", str(BUFFER_KIB), "-w", str(self.path), bpf],
            capture=True,
        )  # fmt: skip
        said: list[str] = []
        reader = threading.Thread(target=self._until_listening, args=(said,), daemon=True)
        reader.start()
        reader.join(10)
        if not said or "listening on" not in said[-1]:
            self.process.stop()
            raise LabError(f"capture on {switch.name}/{interface} did not start: {' '.join(said).strip()}")

    def _until_listening(self, said: list[str]) -> None:
        for line in self.process.lines():
            said.append(line)
            if "listening on" in line:
                return

    def stop(self) -> None:
        """Stop tcpdump; remembers how many packets the kernel dropped (None if unknown)."""
        self.process.signal(signal.SIGINT)
        self.process.wait(10)
        summary = "".join(self.process.lines())
        self.process.close()
        found = re.search(r"(\d+) packets? dropped by kernel", summary)
        self.dropped = int(found.group(1)) if found else None

    def count(self, bpf: str | None) -> int:
        """Packets in the capture that match the tcpdump filter ``bpf`` (None matches nothing)."""
        if bpf is None:
            return 0
        return len(self.switch.run(["tcpdump", "-nn", "-r", str(self.path), bpf]).stdout.splitlines())

    def packets(self) -> list[Packet]:
        """Every TCP and UDP packet of the capture, by addresses and ports."""
        listed = self.switch.run(["tcpdump", "-nn", "-q", "-t", "-r", str(self.path), "tcp or udp"]).stdout
        found = (PACKET.match(line) for line in listed.splitlines())
        return [
            Packet(m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5).lower()) for m in found if m
        ]

    def credentials(self) -> dict[str, int]:
        """How often each of the probe's login credentials can be read in clear."""
        text = self.switch.run(["tcpdump", "-nn", "-A", "-r", str(self.path), "tcp port 110 or tcp port 143"]).stdout
        return {name: text.count(secret) for name, secret in CREDENTIALS.items()}


class Wire:
    """The lab wire captured at every point a backend names, read as one capture."""

    def __init__(self, nodes: Mapping[str, Node], points: Sequence[CapturePoint]) -> None:
        self.captures: list[Capture] = []
        try:
            for point in points:
                capture = Capture(
                    nodes[point.node], point.interface, outgoing=point.outgoing, excluding=point.excluding
                )
                self.captures.append(capture)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for capture in self.captures:
            capture.stop()

    @property
    def dropped(self) -> int | None:
        """Packets the kernels dropped, all points together (None if any point could not say)."""
        counts = [capture.dropped for capture in self.captures]
        return None if None in counts else sum(count for count in counts if count is not None)

    def files(self) -> list[tuple[Node, PurePosixPath]]:
        """Where each capture point wrote its pcap: (node, path)."""
        return [(capture.switch, capture.path) for capture in self.captures]

    def count(self, bpf: str | None) -> int:
        return sum(capture.count(bpf) for capture in self.captures)

    def packets(self) -> list[Packet]:
        return [packet for capture in self.captures for packet in capture.packets()]

    def credentials(self) -> dict[str, int]:
        found = [capture.credentials() for capture in self.captures]
        return {name: sum(seen[name] for seen in found) for name in CREDENTIALS}

"""The capture on the lab switch: every frame of a run, and what of it crossed in clear.

tcpdump runs on the switch node (for netns, the bridge's own namespace) and writes a pcap in the
switch's directory; the pcap is read back on the same node with a filter for protected traffic.
On the bridge device, promiscuous, it sees every frame forwarded between ports once. It runs in
immediate mode: otherwise packets still waiting in the kernel's capture buffer when tcpdump is
stopped are counted as "received" but never written, and the capture would miss the end of a run.

Owns: starting/stopping the capture and counting packets by filter. Not: deciding what a
policy protects (the caller passes the filter).
"""

from __future__ import annotations

import re
import signal
import threading
from pathlib import PurePosixPath

from harness.errors import LabError
from harness.node import Node
from harness.topology import Topology

IKE_PORTS = (500, 4500)
SERVICE_FILTER = "tcp port 80 or tcp port 110 or tcp port 143 or udp port 7"


def plaintext_filter(topology: Topology) -> str:
    """Protected traffic in clear: anything between fe and the VIP but IKE and ESP-in-UDP, and
    any packet on a service port anywhere on the wire."""
    fe, vip = topology.address("fe"), topology.vip
    ike = " or ".join(f"udp port {port}" for port in IKE_PORTS)
    return f"(host {fe} and host {vip} and not ({ike})) or {SERVICE_FILTER}"


class Capture:
    """tcpdump on the lab wire for the lifetime of this object."""

    def __init__(self, switch: Node, interface: str, name: str = "wire") -> None:
        self.switch = switch
        self.path = PurePosixPath(switch.workdir) / f"{name}.pcap"
        self.dropped: int | None = None
        self.process = switch.spawn(
            ["tcpdump", "-i", interface, "--immediate-mode", "-nn", "-U", "-s", "256", "-w", str(self.path), "ip"],
            capture=True,
        )
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

    def count(self, bpf: str) -> int:
        """Packets in the capture that match the tcpdump filter ``bpf``."""
        result = self.switch.run(["tcpdump", "-nn", "-r", str(self.path), bpf])
        return len(result.stdout.splitlines())

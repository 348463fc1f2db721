"""Benchmark: what the kernel datapath (uml: XFRM, transport mode, raw ESP) costs and changes
against strongSwan's userspace datapath (netns, docker: libipsec, tunnel mode, ESP in UDP).

1. Memory per node: how much of the host's MemAvailable the running lab takes (before bring-up
   minus with the lab up, after its first SAs), divided by its four nodes (uml: a VM's memory
   file, its kernel and its processes; netns: charon, agent and stand-ins; docker: the
   containers too). Per-process sums overcount a VM, whose memory file every process maps.
2. One IKE setup: fe terminates its SA with the VIP and initiates it again over vici, timed to
   the CHILD_SA's installation (what harness.timers.SETUP_ALLOWANCE_S leaves room for).
3. Bytes on the wire per packet: one UDP echo datagram (5 bytes of payload) and one TCP SYN from
   fe to the VIP, as IP packets in clear would be and as the ESP packets that carry them are,
   read from the switch's capture.

A benchmark, not a test: it prints numbers for BENCHMARKS.md and asserts nothing.

    .venv/bin/python bench/bench_datapath.py [--backend netns --backend uml ...] [--setups 10]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

from harness import charon, lab, strongswan, timers, wire
from harness.topology import NODES

FRAME = re.compile(r" length (\d+): (\d+\.\d+\.\d+\.\d+)(?:\.\d+)? > (\d+\.\d+\.\d+\.\d+)")
"""tcpdump -e: the frame's length and the IP addresses."""
ETHERNET_HEADER = 14
CLEAR_UDP = 20 + 8 + 5
"""An IPv4 UDP packet with touch.py's 5-byte datagram ("probe")."""
CLEAR_SYN = 20 + 40
"""An IPv4 TCP SYN with Linux's usual options (MSS, SACK, timestamps, window scale)."""


def available_mib() -> float:
    """The host's MemAvailable in MiB."""
    found = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    assert found is not None
    return int(found.group(1)) / 1024


def ike_setups(running: lab.Lab, count: int) -> list[float]:
    fe = running.fe
    with charon.session(fe) as session:
        conns = [c for c in session.list_conns() if strongswan.CONNECTION in c]
    child = next(iter(conns[0][strongswan.CONNECTION]["children"]))
    samples = []
    for _ in range(count):
        charon.terminate(fe, strongswan.CONNECTION)
        start = time.monotonic()
        with charon.session(fe) as session:
            for _ in session.initiate({"child": child, "ike": strongswan.CONNECTION, "timeout": 5000}):
                pass
        samples.append(time.monotonic() - start)
    return samples


def wire_bytes(running: lab.Lab) -> dict[str, float]:
    """Mean IP packet size on the wire from fe to the VIP: one UDP echo and one TCP SYN, 20 times."""
    switch, fe = running.nodes["sw"], running.fe
    sizes: dict[str, list[int]] = {}
    for label, ports in (("udp", "udp:7"), ("syn", "tcp:110")):
        capture = wire.Capture(switch, running.backend.wire_interface(running.topology), name=f"bench-{label}")
        try:
            for _ in range(20):
                fe.run([*fe.agent("touch"), "--target", running.topology.vip, "--ports", ports, "--timeout", "0.5"])
        finally:
            capture.stop()
        listed = switch.run(["tcpdump", "-e", "-nn", "-r", str(capture.path), wire.ESP]).stdout
        fe_address = running.topology.address("fe")
        sizes[label] = [
            int(m.group(1)) - ETHERNET_HEADER
            for m in map(FRAME.search, listed.splitlines())
            if m and m.group(2) == fe_address and m.group(3) == running.topology.vip
        ]
    return {label: statistics.mean(values) if values else 0.0 for label, values in sizes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", help="netns, docker, docker:bookworm, uml (default: netns, uml)")
    parser.add_argument("--setups", type=int, default=10)
    arguments = parser.parse_args()
    for backend in arguments.backend or ["netns", "uml"]:
        before = available_mib()
        with lab.running(timers.profile("fast"), backend) as running:
            used = (before - available_mib()) / len(NODES)
            setups = ike_setups(running, arguments.setups)
            sizes = wire_bytes(running)
            mode = strongswan.recovery(running.profile, running.datapath).mode
        print(f"{backend} ({running.datapath}, {mode})")
        print(f"  memory per node: {used:.0f} MiB (host MemAvailable taken by the lab / {len(NODES)})")
        print(
            f"  IKE setup: median {statistics.median(setups) * 1000:.0f} ms, "
            f"min {min(setups) * 1000:.0f}, max {max(setups) * 1000:.0f} ({len(setups)} setups)"
        )
        print(
            f"  on the wire fe -> VIP: UDP echo {CLEAR_UDP} B in clear -> {sizes['udp']:.0f} B of ESP, "
            f"TCP SYN {CLEAR_SYN} B -> {sizes['syn']:.0f} B"
        )


if __name__ == "__main__":
    main()

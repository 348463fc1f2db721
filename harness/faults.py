"""The closed set of faults, each a context manager built only on Node calls: entering injects
the fault and reports when it struck, leaving undoes it so the lab is healthy again (the VIP
stays where the fault moved it; the old owner becomes the standby).

graceful  The active back-end stops accepting new IKE (drops udp/500), deletes its SAs so fe
          gets DELETE, releases the VIP; the standby takes it and sends unsolicited ARP.
crash     The active back-end falls silent (link down) and its charon is SIGKILLed; after the
          cluster-detection delay the standby takes the VIP. Nobody tells fe anything.

Recovery always comes from fe's own strongSwan settings; no fault ever touches fe.

Owns: what each fault does and undoes. Not: measuring its effect (harness.measure).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from harness import strongswan
from harness.errors import LabError, UsageError
from harness.lab import Lab
from harness.node import Node, Process
from harness.topology import Topology

NFT_TABLE = "failover_lab_fault"
BLOCK_NEW_IKE = f"""\
table inet {NFT_TABLE} {{
    chain input {{
        type filter hook input priority 0; policy accept;
        udp dport 500 drop
    }}
}}
"""
DEFAULT_CLUSTER_DELAY_S = 1.0


@dataclass(frozen=True)
class Injected:
    """What a fault did: when it struck (monotonic, the moment traffic was disrupted) and where
    the VIP went."""

    kind: str
    t_fault: float
    old_owner: str
    new_owner: str


def _owner(lab: Lab) -> str:
    owner = lab.vip_owner()
    if owner is None:
        raise LabError(f"lab {lab.topology.name}: no back-end owns the VIP {lab.topology.vip}")
    return owner


def take_vip(node: Node, topology: Topology) -> Process:
    """Configure the VIP on ``node`` and announce it; returns the announcing arping (it lingers
    about a second after sending, so it runs in the background)."""
    node.run(["ip", "addr", "add", f"{topology.vip}/32", "dev", "eth0"])
    return node.spawn(["arping", "-q", "-U", "-c", "1", "-I", "eth0", "-s", topology.vip, topology.vip])


def release_vip(node: Node, topology: Topology) -> None:
    node.run(["ip", "addr", "del", f"{topology.vip}/32", "dev", "eth0"])


@contextlib.contextmanager
def graceful(lab: Lab, cluster_delay: float = DEFAULT_CLUSTER_DELAY_S) -> Iterator[Injected]:
    old = _owner(lab)
    new = Topology.other_backend(old)
    old_node, new_node = lab.nodes[old], lab.nodes[new]
    old_node.run(["nft", "-f", "-"], input=BLOCK_NEW_IKE)
    try:
        t_fault = time.monotonic()
        strongswan.terminate_all(old_node)
        release_vip(old_node, lab.topology)
        announce = take_vip(new_node, lab.topology)
        try:
            yield Injected("graceful", t_fault, old, new)
        finally:
            announce.stop()
    finally:
        old_node.run(["nft", "delete", "table", "inet", NFT_TABLE])


@contextlib.contextmanager
def crash(lab: Lab, cluster_delay: float = DEFAULT_CLUSTER_DELAY_S) -> Iterator[Injected]:
    old = _owner(lab)
    new = Topology.other_backend(old)
    old_node, new_node = lab.nodes[old], lab.nodes[new]
    t_fault = time.monotonic()
    old_node.run(["ip", "link", "set", "dev", "eth0", "down"])
    lab.charons[old].kill()
    lab.charons[old].wait(5)
    time.sleep(max(0.0, t_fault + cluster_delay - time.monotonic()))  # the cluster's own timer
    announce = take_vip(new_node, lab.topology)
    try:
        yield Injected("crash", t_fault, old, new)
    finally:
        announce.stop()
        release_vip(old_node, lab.topology)
        old_node.run(["ip", "link", "set", "dev", "eth0", "up"])
        lab.restart_charon(old)


FAULTS: dict[str, Callable[[Lab, float], contextlib.AbstractContextManager[Injected]]] = {
    "graceful": graceful,
    "crash": crash,
}


def fault(name: str) -> Callable[[Lab, float], contextlib.AbstractContextManager[Injected]]:
    try:
        return FAULTS[name]
    except KeyError:
        raise UsageError(f"unknown fault {name!r}: choose one of {', '.join(FAULTS)}") from None

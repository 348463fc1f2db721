"""The fail-closed guard of every node: protected traffic never leaves a node in clear.

An nftables table on each node drops every packet the lab's policy protects (harness.policy)
that would leave on the wire interface without being charon's own (IKE and ESP-in-UDP, marked
0x42 by socket-default). Packets routed into the tunnel leave on ipsec0 and are not touched.
Without it, the old owner of a graceful move sent the tail of open POP3/IMAP connections to fe
in clear right after deleting its SAs (seen on the wire), and a killed charon takes its routes
into the TUN with it.

The guard is loaded before charon starts and reloaded (idempotently) at every restart. On a
node whose kernel lacks nftables' families (User-mode Linux, the kernel datapath), the same
guard is iptables-legacy, and it tells packets about to be encrypted by their IPsec policy:
without it, the old owner of a graceful move sent the tail of open connections in clear too
(its trap policy for the VIP has no local address to install).

The rules follow the node's role (harness.topology): the front-end guards what it sends to the
VIP, a back-end what it sends from the VIP to the front-end, and under a design that covers dc,
each node its traffic with the domain controller.

Owns: the guard's rules and reading its drop counters. Not: loading them (harness.lab), what a
policy protects (harness.policy).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from harness.errors import NodeLost
from harness.node import Firewall, Node
from harness.policy import DC_PEERS, IKE_MARK, Policy
from harness.topology import DOMAIN_CONTROLLER, FRONT_END, Topology, role_of

TABLE = "failover_lab_guard"
CHAIN = "FLAB_GUARD"
WIRE = "eth0"
"""The lab interface of the harness's own nodes (a real host's is its Node.lab_interface)."""
FILES: dict[Firewall, str] = {"nft": "guard.nft", "iptables-legacy": "guard.sh"}
"""The guard's file in the node's directory, per firewall."""
LOAD: dict[Firewall, str] = {"nft": "nft -f {}", "iptables-legacy": "sh {}"}
"""How the lab loads it (idempotently) before every start of charon."""


@dataclass(frozen=True)
class Drop:
    """Packets the node must not send on the wire in clear."""

    source: str | None
    destinations: tuple[str, ...]
    proto: str | None = None
    port: int | None = None
    direction: str | None = None
    """``sport`` or ``dport``: which of the packet's ports ``port`` is."""


def drops(policy_: Policy, topology: Topology, node: str) -> list[Drop]:
    """What the node's guard drops: what the policy protects that the node sends."""
    if not policy_.ipsec:
        return []
    return [*_vip_drops(policy_, topology, node), *_dc_drops(policy_, topology, node)]


def rules(policy_: Policy, topology: Topology, node: str, wire: str = WIRE) -> str:
    """nft -f input: drop the node's protected packets that would leave on the wire without
    being charon's own (IKE and ESP-in-UDP carry charon's mark). Loading it twice is harmless."""
    rules = "\n".join(
        f'        oifname "{wire}" {_nft(drop)} meta mark != {IKE_MARK} counter drop'
        for drop in drops(policy_, topology, node)
    )
    return f"""\
table inet {TABLE} {{}}
flush table inet {TABLE}
table inet {TABLE} {{
    chain output {{
        type filter hook output priority 0; policy accept;
{rules}
    }}
}}
"""


def iptables_script(policy_: Policy, topology: Topology, node: str, wire: str = WIRE) -> str:
    """The same guard for a kernel datapath node whose nftables lacks the families (User-mode
    Linux): iptables-legacy drops the node's protected packets that leave on the wire outside
    any IPsec policy (``-m policy --pol none``: a packet about to be encrypted has one); ESP and
    IKE themselves pass. Running it twice is harmless, and a reload (a restarted charon) replaces
    the chain's rules in one commit (iptables-legacy-restore): flushing and appending them one by
    one left a moment without any, in which a rebooted VM answered dc's IKEv1 DPD with an ICMP
    port unreachable in clear (seen on the wire under load)."""
    rules_ = [
        f"-A {CHAIN} -p esp -j RETURN",
        f"-A {CHAIN} -p udp --sport 500 -j RETURN",
        f"-A {CHAIN} -p udp --sport 4500 -j RETURN",
    ]
    for drop in drops(policy_, topology, node):
        for destination in drop.destinations:
            match = [*(["-s", drop.source] if drop.source else []), "-d", destination]
            if drop.proto is not None:
                match += ["-p", drop.proto, f"--{drop.direction}", str(drop.port)]
            rules_.append(f"-A {CHAIN} {' '.join(match)} -m policy --dir out --pol none -j DROP")
    table = "\n".join(["*filter", f":{CHAIN} - [0:0]", *rules_, "COMMIT"])  # a declared chain starts empty
    jump = f"OUTPUT -o {wire} -j {CHAIN}"
    return (
        "set -e\n"
        f"iptables-legacy-restore --noflush <<'EOF'\n{table}\nEOF\n"
        f"iptables-legacy -C {jump} 2>/dev/null || iptables-legacy -A {jump}\n"
    )


def unload(firewall: Firewall, wire: str = WIRE) -> list[list[str]]:
    """argv lists that remove the guard again (a real host left as it was); each harmless when
    it is gone already."""
    if firewall == "nft":
        return [["nft", "delete", "table", "inet", TABLE]]
    return [
        ["iptables-legacy", "-D", "OUTPUT", "-o", wire, "-j", CHAIN],
        ["iptables-legacy", "-F", CHAIN],
        ["iptables-legacy", "-X", CHAIN],
    ]


def guard_file(policy_: Policy, topology: Topology, node: str, firewall: Firewall, wire: str = WIRE) -> str:
    """The guard for the node's firewall on its lab interface ``wire``, as its file's content."""
    if firewall == "nft":
        return rules(policy_, topology, node, wire)
    return iptables_script(policy_, topology, node, wire)


def _nft(drop: Drop) -> str:
    parts = [f"ip saddr {drop.source}"] if drop.source else []
    if len(drop.destinations) == 1:
        parts.append(f"ip daddr {drop.destinations[0]}")
    else:
        parts.append(f"ip daddr {{ {', '.join(drop.destinations)} }}")
    if drop.proto is not None:
        parts.append(f"{drop.proto} {drop.direction} {drop.port}")
    return " ".join(parts)


def _vip_drops(policy_: Policy, topology: Topology, node: str) -> list[Drop]:
    """What the node sends between fe and the VIP: fe to the VIP, a back-end from the VIP to fe."""
    fe, vip = topology.address(FRONT_END), topology.vip
    match role_of(node):
        case "front-end":
            return _selector_drops(policy_, None, vip, "dport")
        case "back-end":
            return _selector_drops(policy_, vip, fe, "sport")
        case "domain-controller":
            return []


def _dc_drops(policy_: Policy, topology: Topology, node: str) -> list[Drop]:
    """What the node sends between itself and dc: dc to any of its peers, the others to dc."""
    if not policy_.dc:
        return []
    dc = topology.address(DOMAIN_CONTROLLER)
    if role_of(node) == "domain-controller":
        return [Drop(dc, tuple(topology.address(peer) for peer in DC_PEERS))]
    return [Drop(topology.address(node), (dc,))]


def _selector_drops(policy_: Policy, source: str | None, destination: str, direction: str) -> list[Drop]:
    if policy_.ports is None:
        return [Drop(source, (destination,))]
    return [Drop(source, (destination,), proto, port, direction) for proto, port in policy_.ports]


DROPPED = re.compile(r"^\s*(\d+)\s+\d+\s+DROP\b")


def dropped(node: Node) -> int:
    """Packets the node's guard has dropped since it was (re)loaded (0 for a crashed VM: its
    counters died with its kernel)."""
    try:
        return _dropped(node)
    except NodeLost:
        return 0


def _dropped(node: Node) -> int:
    if node.firewall == "iptables-legacy":
        listed = node.run(["iptables-legacy", "-L", CHAIN, "-v", "-x", "-n"], check=False)
        return sum(int(m.group(1)) for line in listed.stdout.splitlines() if (m := DROPPED.match(line)))
    listed = node.run(["nft", "-j", "list", "table", "inet", TABLE], check=False)
    if listed.returncode != 0:
        return 0
    return sum(
        expression["counter"]["packets"]
        for item in json.loads(listed.stdout)["nftables"]
        for expression in item.get("rule", {}).get("expr", [])
        if "counter" in expression
    )

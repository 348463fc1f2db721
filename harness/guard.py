"""The fail-closed guard of every node: protected traffic never leaves a node in clear.

An nftables table on each node drops every packet the lab's policy protects (harness.policy)
that would leave on the wire interface without being charon's own (IKE and ESP-in-UDP, marked
0x42 by socket-default). Packets routed into the tunnel leave on ipsec0 and are not touched.
Without it, the old owner of a graceful move sent the tail of open POP3/IMAP connections to fe
in clear right after deleting its SAs (seen on the wire), and a killed charon takes its routes
into the TUN with it.

The guard is loaded before charon starts and reloaded (idempotently) at every restart.

The rules follow the node's role (harness.topology): the front-end guards what it sends to the
VIP, a back-end what it sends from the VIP to the front-end, and under a design that covers dc,
each node its traffic with the domain controller.

Owns: the guard's rules and reading its drop counters. Not: loading them (harness.lab), what a
policy protects (harness.policy).
"""

from __future__ import annotations

import json

from harness.node import Node
from harness.policy import DC_PEERS, IKE_MARK, Policy
from harness.topology import DOMAIN_CONTROLLER, FRONT_END, Topology, role_of

TABLE = "failover_lab_guard"
WIRE = "eth0"


def rules(policy_: Policy, topology: Topology, node: str) -> str:
    """nft -f input: drop the node's protected packets that would leave on the wire without
    being charon's own (IKE and ESP-in-UDP carry charon's mark). Loading it twice is harmless."""
    drops = [*_vip_drops(policy_, topology, node), *_dc_drops(policy_, topology, node)] if policy_.ipsec else []
    rules = "\n".join(f'        oifname "{WIRE}" {drop} meta mark != {IKE_MARK} counter drop' for drop in drops)
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


def _vip_drops(policy_: Policy, topology: Topology, node: str) -> list[str]:
    """What the node sends between fe and the VIP: fe to the VIP, a back-end from the VIP to fe."""
    fe, vip = topology.address(FRONT_END), topology.vip
    match role_of(node):
        case "front-end":
            return _selector_drops(policy_, f"ip daddr {vip}", "dport")
        case "back-end":
            return _selector_drops(policy_, f"ip saddr {vip} ip daddr {fe}", "sport")
        case "domain-controller":
            return []


def _dc_drops(policy_: Policy, topology: Topology, node: str) -> list[str]:
    """What the node sends between itself and dc: dc to any of its peers, the others to dc."""
    if not policy_.dc:
        return []
    dc = topology.address(DOMAIN_CONTROLLER)
    if role_of(node) == "domain-controller":
        peers = [topology.address(peer) for peer in DC_PEERS]
        return [f"ip saddr {dc} ip daddr {{ {', '.join(peers)} }}"]
    return [f"ip saddr {topology.address(node)} ip daddr {dc}"]


def _selector_drops(policy_: Policy, selector: str, direction: str) -> list[str]:
    if policy_.ports is None:
        return [selector]
    return [f"{selector} {proto} {direction} {port}" for proto, port in policy_.ports]


def dropped(node: Node) -> int:
    """Packets the node's guard has dropped since it was (re)loaded."""
    listed = node.run(["nft", "-j", "list", "table", "inet", TABLE], check=False)
    if listed.returncode != 0:
        return 0
    return sum(
        expression["counter"]["packets"]
        for item in json.loads(listed.stdout)["nftables"]
        for expression in item.get("rule", {}).get("expr", [])
        if "counter" in expression
    )

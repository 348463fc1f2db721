"""The fail-closed guard of every node: protected traffic never leaves a node in clear.

An nftables table on each node drops every packet the lab's policy protects (harness.policy)
that would leave on the wire interface without being charon's own (IKE and ESP-in-UDP, marked
0x42 by socket-default). Packets routed into the tunnel leave on ipsec0 and are not touched.
Without it, the old owner of a graceful move sent the tail of open POP3/IMAP connections to fe
in clear right after deleting its SAs (seen on the wire), and a killed charon takes its routes
into the TUN with it.

The guard is loaded before charon starts and reloaded (idempotently) at every restart.

Owns: the guard's rules and reading its drop counters. Not: loading them (harness.lab).
"""

from __future__ import annotations

import json

from harness.node import Node
from harness.policy import DC_PEERS, IKE_MARK, Policy
from harness.topology import BACKENDS, Topology

TABLE = "failover_lab_guard"
WIRE = "eth0"


def rules(policy_: Policy, topology: Topology, node: str) -> str:
    """nft -f input: drop the node's protected packets that would leave on the wire without
    being charon's own (IKE and ESP-in-UDP carry charon's mark). Loading it twice is harmless."""
    fe, vip = topology.address("fe"), topology.vip
    drops: list[str] = []
    if policy_.ipsec:
        if node == "fe":
            drops += _selector_drops(policy_, f"ip daddr {vip}", "dport")
        elif node in BACKENDS:
            drops += _selector_drops(policy_, f"ip saddr {vip} ip daddr {fe}", "sport")
        if policy_.dc:
            peers = [topology.address(peer) for peer in DC_PEERS]
            if node == "dc":
                drops += [f"ip saddr {topology.address('dc')} ip daddr {{ {', '.join(peers)} }}"]
            elif node in DC_PEERS:
                drops += [f"ip saddr {topology.address(node)} ip daddr {topology.address('dc')}"]
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

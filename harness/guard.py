"""The fail-closed guard of every node: protected traffic never leaves a node in clear.

An nftables table on each node drops every packet between fe and the VIP that would leave on the
wire interface without being charon's own (IKE and ESP-in-UDP, marked 0x42 by socket-default).
Packets routed into the tunnel leave on ipsec0 and are not touched. Without it, the old owner
of a graceful move sent the tail of open POP3/IMAP connections to fe in clear right after
deleting its SAs (seen on the wire), and a killed charon takes its routes into the TUN with it.

The guard is loaded before charon starts and reloaded (idempotently) at every restart.

Owns: the guard's rules and reading its drop counters. Not: loading them (harness.lab).
"""

from __future__ import annotations

import json

from harness.node import Node
from harness.strongswan import IKE_MARK
from harness.topology import Topology

TABLE = "failover_lab_guard"
WIRE = "eth0"


def rules(topology: Topology, node: str) -> str:
    """nft -f input for ``node``; flushing first makes loading it twice harmless."""
    fe, vip = topology.address("fe"), topology.vip
    protected = f"ip daddr {vip}" if node == "fe" else f"ip saddr {vip} ip daddr {fe}"
    return f"""\
table inet {TABLE} {{}}
flush table inet {TABLE}
table inet {TABLE} {{
    chain output {{
        type filter hook output priority 0; policy accept;
        oifname "{WIRE}" {protected} meta mark != {IKE_MARK} counter drop
    }}
}}
"""


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

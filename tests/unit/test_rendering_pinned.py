"""Everything rendered per node and policy, pinned: connections (in key order, as swanctl.conf
writes them), guard rules, `ip rule`s, SA peers, expected CHILD_SAs, a compose node's responders,
the wire's protected-traffic filter and the PSK's owners. A change here changes what the lab
runs; regenerate after an intended change with UPDATE_GOLDEN=1."""

import json
import os
from pathlib import Path
from typing import Any

from harness import compose_node, guard, policy, strongswan, timers, wire
from harness.topology import NODES, Topology

PINNED = Path(__file__).with_name("pinned") / "rendering-lab3.json"


def rendered(topology: Topology, profile: timers.Profile) -> dict[str, Any]:
    found: dict[str, Any] = {"shared_secret": strongswan.shared_secret(topology, "s3cret")}
    for name, chosen in policy.POLICIES.items():
        found[name] = {
            "protected_filter": wire.protected_filter(chosen, topology),
            "nodes": {
                node: {
                    "peers": chosen.peers(node),
                    "connections": strongswan.connections(topology, node, profile, chosen),
                    "expected_children": strongswan.expected_children(chosen, node),
                    "guard": guard.rules(chosen, topology, node).split("\n"),  # every byte, the last newline too
                    "ip_rules": policy.ip_rules(chosen, topology, node),
                    "responders": compose_node.responders(node, chosen),
                }
                for node in NODES
            },
        }
    return found


def test_rendering_of_every_node_and_policy_is_unchanged() -> None:
    text = json.dumps(rendered(Topology.for_index(3), timers.profile("fast")), indent=1) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        PINNED.parent.mkdir(exist_ok=True)
        PINNED.write_text(text)
    assert text == PINNED.read_text()  # as text: the order of connections and keys counts too

"""The harness's disruption table (harness.disrupt) on real kernels: it cuts a node off its lab
interface and nothing else (the agent's path keeps working), and its heal commands undo it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness import disrupt, lab, timers
from harness.node import Node

LAB_BACKENDS = ("netns", "uml")
"""nftables (netns) and iptables-legacy (uml: its kernel lacks nftables' families)."""


@pytest.fixture(scope="module")
def clear_lab(backend_name: str) -> Iterator[lab.Lab]:
    """A lab without IPsec: plain pings between the back-ends."""
    with lab.running(timers.profile("fast"), backend_name, policy_name="none") as running:
        yield running


def reaches(node: Node, address: str) -> bool:
    """Whether the UDP echo stand-in at ``address`` answers ``node`` (within a second)."""
    tried = node.run([*node.agent("touch"), "--target", address, "--ports", "udp:7", "--timeout", "1"])
    return bool(json.loads(tried.stdout)["ok"])


def test_isolate_cuts_the_lab_interface_only_and_heal_restores_it(clear_lab: lab.Lab) -> None:
    be2, vip = clear_lab.nodes["be2"], clear_lab.topology.vip  # be1 holds it
    assert reaches(be2, vip)
    be2.run(["sh", "-c", disrupt.isolate("eth0", be2.firewall)])
    be2.run(["sh", "-c", disrupt.isolate("eth0", be2.firewall)])  # twice: still one table
    try:
        assert not reaches(be2, vip)
        assert be2.run(["true"]).returncode == 0  # the harness's own path is untouched
    finally:
        for argv in disrupt.heal(be2.firewall):
            be2.run(argv, check=False)
    assert reaches(be2, vip)
    for argv in disrupt.heal(be2.firewall):  # healing again is harmless
        be2.run(argv, check=False)
    assert reaches(be2, vip)

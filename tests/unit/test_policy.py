"""The KB's policy designs rendered into routing rules and the fail-closed guard."""

import pytest

from harness import guard, policy
from harness.errors import UsageError
from harness.topology import NODES, Topology

TOPOLOGY = Topology.for_index(0)
VIP, FE, DC = TOPOLOGY.vip, TOPOLOGY.address("fe"), TOPOLOGY.address("dc")


def test_what_each_policy_protects() -> None:
    protects = {
        name: [s for s in ("udp", "http", "pop3", "imap") if p.protects_service(s)]
        for name, p in policy.POLICIES.items()
    }
    assert protects == {
        "none": [],
        "mail-passwords": ["pop3", "imap"],
        "mail-all": ["http", "pop3", "imap"],
        "all-traffic": ["udp", "http", "pop3", "imap"],
    }
    assert [name for name, p in policy.POLICIES.items() if p.dc] == ["all-traffic"]


def test_sa_peers_follow_the_roles() -> None:
    everything, passwords = policy.policy("all-traffic"), policy.policy("mail-passwords")
    assert {n: everything.peers(n) for n in NODES} == {
        "fe": ["vip", "dc"],
        "be1": ["fe", "dc"],
        "be2": ["fe", "dc"],
        "dc": ["fe", "be1", "be2"],
    }
    assert {n: passwords.peers(n) for n in NODES} == {"fe": ["vip"], "be1": ["fe"], "be2": ["fe"], "dc": []}
    assert all(policy.policy("none").peers(n) == [] for n in NODES)
    assert tuple(n for n in NODES if everything.has_sa_with_dc(n)) == policy.DC_PEERS
    assert not any(passwords.has_sa_with_dc(n) for n in NODES)


def test_port_rules_route_each_protected_port_into_the_tunnel_with_a_prohibit_twin() -> None:
    passwords = policy.policy("mail-passwords")
    assert policy.ip_rules(passwords, TOPOLOGY, "fe") == [
        f"pref 100 to {VIP} ipproto 6 dport 110 lookup 220",
        f"pref 101 to {VIP} ipproto 6 dport 110 prohibit",
        f"pref 102 to {VIP} ipproto 6 dport 143 lookup 220",
        f"pref 103 to {VIP} ipproto 6 dport 143 prohibit",
    ]
    assert (
        policy.ip_rules(passwords, TOPOLOGY, "be2")[0] == f"pref 100 from {VIP} to {FE} ipproto 6 sport 110 lookup 220"
    )
    assert policy.ip_rules(passwords, TOPOLOGY, "dc") == []
    assert policy.ip_rules(policy.policy("all-traffic"), TOPOLOGY, "fe") == []  # charon's own rule


def test_the_guard_drops_exactly_the_protected_traffic_leaving_in_clear() -> None:
    fe = guard.rules(policy.policy("mail-all"), TOPOLOGY, "fe")
    for port in (80, 110, 143):
        assert f'oifname "eth0" ip daddr {VIP} tcp dport {port} meta mark != 0x42 counter drop' in fe
    assert "udp" not in fe
    be = guard.rules(policy.policy("mail-passwords"), TOPOLOGY, "be1")
    assert f"ip saddr {VIP} ip daddr {FE} tcp sport 110" in be
    everything = guard.rules(policy.policy("all-traffic"), TOPOLOGY, "dc")
    assert f"ip saddr {DC} ip daddr {{ {FE}, {TOPOLOGY.address('be1')}, {TOPOLOGY.address('be2')} }}" in everything
    assert "drop" not in guard.rules(policy.policy("none"), TOPOLOGY, "fe")


def test_unknown_policy_lists_the_valid_names() -> None:
    with pytest.raises(
        UsageError, match="unknown policy 'mail': choose one of none, mail-passwords, mail-all, all-traffic"
    ):
        policy.policy("mail")

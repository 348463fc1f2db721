"""The preflight's verdicts from what a host's probe printed (pure logic: the probe itself runs
against the test hosts in tests/lab/test_ssh_hosts.py)."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from harness import preflight
from harness.inventory import Cluster, Host, Inventory

GOOD = {
    "uid": "0",
    "python": "3.11",
    "charon": "yes",
    "strongswan": "5.9.8",
    "kernel_netlink": "yes",
    "kernel_libipsec": "no",
    "xfrm": "yes",
    "esp": "yes",
    "tun": "yes",
    "ike_port_free": "yes",
    "tcpdump": "yes",
    "nft": "yes",
    "iptables_legacy": "no",
    "interface": "yes",
    "address": "yes",
    "vip": "no",
    "ssh_on_lab": "no",
}


def host(role: str, number: int) -> Host:
    return Host(
        role,
        f"10.0.0.{number}",
        22,
        "root",
        None,
        False,
        "eth1",
        ipaddress.IPv4Interface(f"198.18.7.{number}/24"),
        role,
    )


def lab(cluster: Cluster | None = None) -> Inventory:
    hosts = {role: host(role, number) for role, number in (("fe", 10), ("be1", 11), ("be2", 12))}
    return Inventory(Path("lab.yaml"), ipaddress.IPv4Interface("198.18.7.100/24"), False, 30, None, cluster, hosts)


def judged(role: str = "fe", **facts: str) -> preflight.Verdict:
    verdict = preflight.Verdict(host(role, 10), {**GOOD, **facts})
    preflight.judge(verdict)
    return verdict


def test_the_probe_s_lines_become_facts_and_noise_is_ignored() -> None:
    assert preflight.parse("uid=0\npython=3.11\nwarning: something\n=x\nstrongswan= 5.9.8 \n") == {
        "uid": "0",
        "python": "3.11",
        "strongswan": "5.9.8",
    }


def test_a_host_with_everything_has_no_problem_and_offers_the_kernel_datapath() -> None:
    verdict = judged()
    assert verdict.problems == []
    assert verdict.datapaths == ["kernel"]
    assert verdict.firewall == "nft"


@pytest.mark.parametrize(
    ("facts", "problem"),
    [
        ({"uid": "1000"}, "fe (10.0.0.10): commands run as uid 1000, not root: connect as root or set sudo: true"),
        ({"python": "3.7"}, "python3 3.9 or newer is needed for the node agent (found 3.7): install python3"),
        ({"python": ""}, "(found none): install python3"),
        ({"charon": "no"}, "strongSwan's charon and swanctl are missing: apt-get install strongswan-charon"),
        ({"strongswan": ""}, "strongSwan's charon and swanctl are missing"),
        ({"esp": "no"}, "no IPsec datapath: the kernel has no XFRM/ESP (modprobe esp4 xfrm_user)"),
        ({"ike_port_free": "no"}, "something already listens on UDP 500/4500 (the host's own IKE daemon?)"),
        ({"tcpdump": "no"}, "tcpdump is missing (the plaintext check captures on every host): apt-get install tcpdump"),
        ({"nft": "no"}, "neither nft nor iptables-legacy works (the fault table needs one): apt-get install nftables"),
        ({"interface": "no"}, "fe (10.0.0.10): no interface eth1: fix lab_interface in the inventory"),
        (
            {"address": "no"},
            "198.18.7.10 is not on eth1: add it (ip addr add 198.18.7.10/24 dev eth1) or fix lab_address",
        ),
        ({"ssh_on_lab": "yes"}, "the SSH connection runs over the lab interface eth1 (faults would cut it)"),
    ],
)
def test_each_missing_piece_is_one_line_naming_the_host_and_the_fix(facts: dict[str, str], problem: str) -> None:
    verdict = judged(**facts)
    assert len(verdict.problems) == 1
    assert problem in verdict.problems[0]
    assert verdict.problems[0].startswith("fe (10.0.0.10): ")


def test_libipsec_counts_as_a_datapath_only_with_a_tun_device() -> None:
    assert judged(esp="no", kernel_libipsec="yes").datapaths == ["libipsec"]
    assert (
        judged(esp="no", kernel_libipsec="yes", tun="no")
        .problems[0]
        .endswith("(apt-get install libstrongswan-extra-plugins)")
    )
    assert judged(nft="no", iptables_legacy="yes").firewall == "iptables-legacy"


def verdicts(**facts_by_role: dict[str, str]) -> dict[str, preflight.Verdict]:
    numbers = {"fe": 10, "be1": 11, "be2": 12}
    return {
        role: preflight.Verdict(host(role, numbers[role]), {**GOOD, **facts}) for role, facts in facts_by_role.items()
    }


def test_the_lab_runs_the_kernel_datapath_when_every_host_offers_it_with_the_vip_on_one_back_end() -> None:
    assert preflight.judge_lab(lab(), verdicts(fe={}, be1={"vip": "yes"}, be2={})) == ("kernel", "be1", [])
    mixed = verdicts(fe={"kernel_libipsec": "yes"}, be1={"vip": "yes", "kernel_libipsec": "yes"}, be2={"esp": "no"})
    assert preflight.judge_lab(lab(), mixed)[0] is None  # be2 offers nothing: its own problem says so
    apart = verdicts(fe={"esp": "no", "kernel_libipsec": "yes"}, be1={"vip": "yes"}, be2={})
    assert preflight.judge_lab(lab(), apart)[2] == [
        "the hosts share no IPsec datapath (fe libipsec, be1 kernel, be2 kernel): a lab runs one on every host"
    ]


def test_the_vip_must_be_on_exactly_one_back_end() -> None:
    assert preflight.judge_lab(lab(), verdicts(fe={}, be1={}, be2={}))[2] == [
        "no back-end holds the VIP (198.18.7.100 on an interface): ip addr add 198.18.7.100/24 dev "
        "<its lab interface> on be1"
    ]
    assert preflight.judge_lab(lab(), verdicts(fe={}, be1={"vip": "yes"}, be2={"vip": "yes"}))[1:] == (
        None,
        ["both back-ends hold the VIP (198.18.7.100 on an interface): remove it from one"],
    )


def test_with_a_cluster_manager_its_owner_command_says_who_holds_the_vip() -> None:
    cluster = lab(Cluster("crm_resource --locate vip | grep -q $(hostname)", None))
    found = verdicts(fe={}, be1={"vip": "yes", "owner": "no"}, be2={"owner": "yes"})
    assert preflight.judge_lab(cluster, found)[1:] == ("be2", [])
    assert preflight.judge_lab(cluster, verdicts(fe={}, be1={"owner": "no"}, be2={"owner": "no"}))[2] == [
        "no back-end holds the VIP (its owner command): start the cluster"
    ]


def test_a_host_not_reached_has_no_facts_and_decides_nothing_about_the_vip() -> None:
    found = verdicts(fe={}, be1={"vip": "yes"}, be2={})
    found["be2"] = dataclasses.replace(found["be2"], facts={})
    assert preflight.judge_lab(lab(), found) == ("kernel", "be1", [])
    found["be1"] = dataclasses.replace(found["be1"], facts={})
    assert preflight.judge_lab(lab(), found)[2] == []

"""Configuration rendering per role: the settings failover and the userspace datapath need."""

from pathlib import PurePosixPath

from harness import strongswan, timers
from harness.topology import Topology

TOPOLOGY = Topology.for_index(3)
FAST = timers.profile("fast")


def test_strongswan_conf_has_the_datapath_settings_and_the_profile() -> None:
    conf = strongswan.strongswan_conf(PurePosixPath("/lab/fe"), FAST)
    assert "load_modular = no" in conf
    assert "kernel-libipsec" in conf.split("load =")[1].splitlines()[0]
    assert "allow_peer_ts = yes" in conf
    assert "fwmark = !0x42" in conf  # kernel-netlink: unmarked traffic to the peer enters the TUN
    assert "fwmark = 0x42" in conf.split("socket-default {")[1]  # IKE and ESP-in-UDP bypass it
    assert "retransmit_timeout = 1.0" in conf
    assert "retransmit_base = 1.0" in conf
    assert "retransmit_tries = 2" in conf
    assert "path = /lab/fe/charon.log" in conf
    assert "socket = unix:///run/charon.vici" in conf


def test_fe_initiates_to_the_vip_and_recovers_by_itself() -> None:
    conn = strongswan.connection(TOPOLOGY, "fe", FAST)[strongswan.CONNECTION]
    child = conn["children"][strongswan.CHILD]
    assert conn["remote_addrs"] == [TOPOLOGY.vip]
    assert conn["mobike"] == "no"
    assert conn["dpd_delay"] == "2s"
    assert conn["keyingtries"] == "0"
    assert child["dpd_action"] == "restart"
    assert child["close_action"] == "trap|start"
    assert child["start_action"] == "trap|start"
    assert child["local_ts"] == [f"{TOPOLOGY.address('fe')}/32"]
    assert child["remote_ts"] == [f"{TOPOLOGY.vip}/32"]


def test_backends_are_responders_sharing_the_vip_identity() -> None:
    be1 = strongswan.connection(TOPOLOGY, "be1", FAST)[strongswan.CONNECTION]
    be2 = strongswan.connection(TOPOLOGY, "be2", FAST)[strongswan.CONNECTION]
    assert be1 == be2
    assert be1["local"]["id"] == TOPOLOGY.identity("be2") != TOPOLOGY.identity("fe")
    assert be1["remote"]["id"] == TOPOLOGY.identity("fe")
    assert be1["children"][strongswan.CHILD]["start_action"] == "none"
    assert be1["children"][strongswan.CHILD]["close_action"] == "none"
    assert be1["mobike"] == "no"


def test_one_psk_for_fe_and_the_vip() -> None:
    secret = strongswan.shared_secret(TOPOLOGY, "s3cret")
    assert secret["data"] == "s3cret"
    assert set(secret["owners"]) == {TOPOLOGY.identity("fe"), TOPOLOGY.identity("be1")}

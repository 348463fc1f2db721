"""Configuration rendering per role and policy: the settings failover, the userspace datapath and
each KB design need."""

import dataclasses
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import policy, strongswan, timers
from harness.topology import Topology

TOPOLOGY = Topology.for_index(3)
FAST = timers.profile("fast")
ALL = policy.policy("all-traffic")
PASSWORDS = policy.policy("mail-passwords")
VIP, FE, DC = TOPOLOGY.vip, TOPOLOGY.address("fe"), TOPOLOGY.address("dc")


def test_strongswan_conf_has_the_datapath_settings_and_the_profile() -> None:
    conf = strongswan.strongswan_conf(PurePosixPath("/lab/fe"), FAST, ALL)
    assert "load_modular = no" in conf
    assert "kernel-libipsec" in conf.split("load =")[1].splitlines()[0]
    assert "allow_peer_ts = yes" in conf
    assert "fwmark = !0x42" in conf  # kernel-netlink: unmarked traffic to a peer enters the TUN
    assert "fwmark = 0x42" in conf.split("socket-default {")[1]  # IKE and ESP-in-UDP bypass it
    assert "retransmit_timeout = 1.0" in conf
    assert "retransmit_base = 1.0" in conf
    assert "retransmit_tries = 2" in conf
    assert "path = /lab/fe/charon.log" in conf
    assert "socket = unix:///run/charon.vici" in conf


def test_port_scoped_policies_move_charon_s_rule_onto_an_unused_mark() -> None:
    conf = strongswan.strongswan_conf(PurePosixPath("/lab/fe"), FAST, PASSWORDS)
    assert "fwmark = 0x100" in conf.split("kernel-netlink {")[1].splitlines()[1]


def test_fe_initiates_to_the_vip_and_recovers_by_itself() -> None:
    conn = strongswan.connections(TOPOLOGY, "fe", FAST, ALL)[strongswan.CONNECTION]
    child = conn["children"]["all"]
    assert conn["remote_addrs"] == [VIP]
    assert conn["mobike"] == "no"
    assert conn["dpd_delay"] == "2s"
    assert conn["keyingtries"] == "0"
    assert conn["unique"] == "no"  # strongSwan's default: INITIAL_CONTACT removes a stale SA
    assert (conn["local"]["id"], conn["remote"]["id"]) == (TOPOLOGY.identity("fe"), TOPOLOGY.identity("vip"))
    assert child["dpd_action"] == "restart"
    assert child["close_action"] == "trap|start"
    assert child["start_action"] == "trap|start"
    assert (child["local_ts"], child["remote_ts"]) == ([f"{FE}/32"], [f"{VIP}/32"])


def test_backends_are_responders_sharing_the_vip_identity() -> None:
    be1 = strongswan.connections(TOPOLOGY, "be1", FAST, ALL)
    be2 = strongswan.connections(TOPOLOGY, "be2", FAST, ALL)
    assert be1[strongswan.CONNECTION] == be2[strongswan.CONNECTION]
    on_vip = be1[strongswan.CONNECTION]
    assert (on_vip["local"]["id"], on_vip["remote"]["id"]) == (TOPOLOGY.identity("vip"), TOPOLOGY.identity("fe"))
    assert on_vip["children"]["all"]["start_action"] == "none"
    assert on_vip["children"]["all"]["close_action"] == "none"
    assert on_vip["mobike"] == "no"


def test_mail_passwords_has_one_child_per_protected_port() -> None:
    fe = strongswan.connections(TOPOLOGY, "fe", FAST, PASSWORDS)
    assert set(fe) == {strongswan.CONNECTION}  # no SA with dc
    children = fe[strongswan.CONNECTION]["children"]
    assert {name: c["remote_ts"] for name, c in children.items()} == {
        "tcp-110": [f"{VIP}/32[6/110]"],
        "tcp-143": [f"{VIP}/32[6/143]"],
    }
    be1 = strongswan.connections(TOPOLOGY, "be1", FAST, PASSWORDS)[strongswan.CONNECTION]["children"]
    assert be1["tcp-110"]["local_ts"] == [f"{VIP}/32[6/110]"] and be1["tcp-110"]["remote_ts"] == [f"{FE}/32"]
    assert strongswan.connections(TOPOLOGY, "dc", FAST, PASSWORDS) == {}
    assert strongswan.expected_children(PASSWORDS, "fe") == 2


def test_all_traffic_gives_every_node_its_own_sa_with_the_domain_controller() -> None:
    for node in ("fe", "be1", "be2"):
        to_dc = strongswan.connections(TOPOLOGY, node, FAST, ALL)["dc"]
        own = TOPOLOGY.address(node)
        assert (to_dc["local_addrs"], to_dc["remote_addrs"]) == ([own], [DC])
        assert to_dc["local"]["id"] == TOPOLOGY.identity(node)
        assert to_dc["children"]["all"]["start_action"] == "trap|start"
    dc = strongswan.connections(TOPOLOGY, "dc", FAST, ALL)["peers"]
    assert dc["remote_addrs"] == [FE, TOPOLOGY.address("be1"), TOPOLOGY.address("be2")]
    assert dc["children"]["all"]["remote_ts"] == ["dynamic"]
    assert [strongswan.expected_children(ALL, n) for n in ("fe", "be1", "be2")] == [2, 1, 1]


def test_no_ipsec_means_no_connections() -> None:
    none = policy.policy("none")
    assert all(strongswan.connections(TOPOLOGY, n, FAST, none) == {} for n in ("fe", "be1", "be2", "dc"))


def test_one_psk_for_every_identity() -> None:
    secret = strongswan.shared_secret(TOPOLOGY, "s3cret")
    assert secret["data"] == "s3cret"
    assert set(secret["owners"]) == {TOPOLOGY.identity(n) for n in ("fe", "vip", "be1", "be2", "dc")}


PROFILES = st.builds(
    timers.Profile,
    name=st.just("p"),
    description=st.just(""),
    retransmit_timeout=st.floats(min_value=0.031, max_value=3600, allow_nan=False),  # x 1/30: >= 1 ms
    retransmit_base=st.floats(min_value=1, max_value=10, allow_nan=False),
    retransmit_tries=st.integers(0, 30),
    retransmit_jitter=st.integers(0, timers.JITTER_MAX),
    retransmit_limit=st.integers(0, 3600),
    dpd_delay=st.integers(0, 3600),
)


@given(profile=PROFILES, scale=st.sampled_from([1.0, 1 / 30, 1 / 7, 0.5]))
def test_every_profile_reads_back_as_charon_parses_it(profile: timers.Profile, scale: float) -> None:
    """What the harness renders is what charon runs with, scaled or not: no setting falls back
    to charon's default because of its form (a limit of 2.0, a jitter of 12.5)."""
    scaled = profile.scaled(scale)
    conf = strongswan.strongswan_conf(PurePosixPath("/lab/fe"), scaled, ALL)
    read = strongswan.retransmission_as_charon_reads(conf)
    assert read == {name: getattr(scaled, name) for name in strongswan.RETRANSMISSION}


def test_what_charon_does_with_values_it_cannot_parse() -> None:
    """The failure this guards against: charon reads whole numbers strictly, caps the jitter at 20
    and silently uses its default for anything else (settings.c, task_manager.c)."""
    conf = "retransmit_limit = 2.0\nretransmit_jitter = 12.5\nretransmit_timeout = 4s\nretransmit_tries = 3\n"
    assert strongswan.retransmission_as_charon_reads(conf) == {
        "retransmit_timeout": 4.0,
        "retransmit_base": 1.8,
        "retransmit_tries": 3,
        "retransmit_jitter": 0,
        "retransmit_limit": 0,
    }
    assert strongswan.retransmission_as_charon_reads("retransmit_jitter = 50\n")["retransmit_jitter"] == 20


def test_the_kernel_datapath_runs_transport_mode_with_traps_on_every_node() -> None:
    """kernel: every node's trap policies go in at load (nothing protected leaves in clear, with
    or without an SA); fe also starts at once, and after a DELETE or a dead peer re-initiates at
    once (restart) or on the next packet (trap). Ports are traffic selectors, no marks or rules."""
    conf = strongswan.strongswan_conf(PurePosixPath("/lab/fe"), FAST, PASSWORDS, "kernel")
    assert "kernel-libipsec" not in conf and "fwmark" not in conf
    fe = strongswan.connections(TOPOLOGY, "fe", FAST, PASSWORDS, "kernel")[strongswan.CONNECTION]["children"]
    be1 = strongswan.connections(TOPOLOGY, "be1", FAST, PASSWORDS, "kernel")[strongswan.CONNECTION]["children"]
    assert {c["mode"] for c in [*fe.values(), *be1.values()]} == {"transport"}
    assert (fe["tcp-110"]["local_ts"], fe["tcp-110"]["remote_ts"]) == ([f"{FE}/32"], [f"{VIP}/32[6/110]"])
    assert {(c["start_action"], c["close_action"], c["dpd_action"]) for c in fe.values()} == {
        ("trap|start", "start", "restart")
    }
    assert {c["start_action"] for c in be1.values()} == {"trap"}
    trap = dataclasses.replace(FAST, recovery="trap")
    fe_trap = strongswan.connections(TOPOLOGY, "fe", trap, PASSWORDS, "kernel")[strongswan.CONNECTION]["children"]
    assert {(c["close_action"], c["dpd_action"]) for c in fe_trap.values()} == {("trap", "trap")}


def test_a_profile_s_mode_overrides_the_datapath_s() -> None:
    tunnel = dataclasses.replace(FAST, mode="tunnel")
    assert strongswan.recovery(tunnel, "kernel").mode == "tunnel"
    assert strongswan.recovery(FAST, "kernel").mode == "transport"
    assert strongswan.recovery(FAST, "libipsec").mode == "tunnel"


def test_encap_puts_esp_in_udp_on_every_connection_and_only_when_asked() -> None:
    encap = dataclasses.replace(FAST, encap=True)
    for node in ("fe", "be1", "dc"):
        asked = strongswan.connections(TOPOLOGY, node, encap, policy.policy("all-traffic"), "kernel")
        plain = strongswan.connections(TOPOLOGY, node, FAST, policy.policy("all-traffic"), "kernel")
        assert asked and all(conn["encap"] == "yes" for conn in asked.values())
        assert all("encap" not in conn for conn in plain.values())


def test_libipsec_refuses_what_it_cannot_run_as_the_profile_says() -> None:
    transport = strongswan.datapath_refuses(dataclasses.replace(FAST, mode="transport"), "libipsec")
    assert transport is not None and "use --backend uml" in transport
    trap = strongswan.datapath_refuses(dataclasses.replace(FAST, recovery="trap"), "libipsec")
    assert trap is not None and "use --backend uml" in trap
    assert strongswan.datapath_refuses(dataclasses.replace(FAST, mode="transport", recovery="trap"), "kernel") is None
    assert strongswan.datapath_refuses(dataclasses.replace(FAST, mode="tunnel"), "libipsec") is None


def test_on_a_user_s_host_only_the_lab_s_own_xfrm_state_is_forgotten() -> None:
    topology = Topology.for_index(0)
    fe, be1, dc, vip = topology.address("fe"), topology.address("be1"), topology.address("dc"), topology.vip
    pairs = {
        node: {
            (argv[5].removesuffix("/32"), argv[7].removesuffix("/32"))
            for argv in strongswan.forget_lab_ipsec(topology, node)
        }
        for node in ("fe", "be1", "dc")
    }
    assert pairs["fe"] == {(fe, vip), (vip, fe), (fe, dc), (dc, fe)}
    assert pairs["be1"] == {(be1, fe), (fe, be1), (vip, fe), (fe, vip), (be1, dc), (dc, be1), (vip, dc), (dc, vip)}
    assert {(a, b) for a, b in pairs["dc"] if a == dc} == {(dc, topology.address(n)) for n in ("fe", "be1", "be2")}
    every = [argv for node in ("fe", "be1", "be2", "dc") for argv in strongswan.forget_lab_ipsec(topology, node)]
    assert all(
        argv[:3] in (["ip", "xfrm", "state"], ["ip", "xfrm", "policy"]) and argv[3] == "deleteall" for argv in every
    )


def test_policies_go_before_states_when_a_host_forgets_the_lab() -> None:
    """A packet meeting a lab policy whose SA is gone would leave an acquire state that no
    delete reaches (it has no SPI): every policy goes first."""
    kinds = [argv[2] for argv in strongswan.forget_lab_ipsec(Topology.for_index(0), "be1")]
    assert kinds == sorted(kinds, key=lambda kind: kind != "policy") and "state" in kinds


def test_on_a_user_s_host_charon_writes_back_its_acquire_lifetime() -> None:
    for datapath in ("kernel", "libipsec"):
        conf = strongswan.strongswan_conf(PurePosixPath("/lab/fe"), FAST, ALL, datapath, acquire_expires=30)
        assert conf.count("kernel-netlink {") == 1 and "xfrm_acq_expires = 30\n" in conf
    assert "xfrm_acq_expires" not in strongswan.strongswan_conf(PurePosixPath("/lab/fe"), FAST, ALL, "kernel")


@pytest.mark.parametrize("make_first", [False, True])
def test_make_before_break_is_written_for_every_node_and_reads_back(make_first: bool) -> None:
    profile = dataclasses.replace(FAST, make_before_break=make_first)
    conf = strongswan.strongswan_conf(PurePosixPath("/lab/fe"), profile, ALL)
    assert f"    make_before_break = {'yes' if make_first else 'no'}\n" in conf
    assert strongswan.make_before_break_as_charon_reads(conf) is make_first


@pytest.mark.parametrize(
    ("written", "read"), [("YES", True), ("1", True), ("enabled", True), ("maybe", False), ("", False)]
)
def test_make_before_break_reads_as_charon_s_get_bool(written: str, read: bool) -> None:
    assert strongswan.make_before_break_as_charon_reads(f"charon {{\n    make_before_break = {written}\n}}\n") is read
    assert not strongswan.make_before_break_as_charon_reads("charon {\n}\n")  # absent: 5.9.8's default

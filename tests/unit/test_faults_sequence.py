"""Every fault's commands, pinned: which node is asked what, in which order, on entering the
fault and on leaving it (the undo), on a fake lab (tests/unit/fakes.py) where be1 owns the VIP.

These lists are the review surface of a fault: a refactor that changes what a fault does to
the nodes must change a list here. They pin what the harness asks, not whether a lab obeys
(tests/lab/test_faults.py measures that on real labs).

What a fault does NOT undo on leaving (by design, see harness/faults.py): the VIP stays with
its new owner; freeze, reboot and reboot-announce do everything while entering (SIGCONT, the
restart) and leave nothing to undo; reboot-announce leaves its `announce` connection loaded on
the restarted back-end until that charon's next restart, takeover-announce on the new owner.
"""

from __future__ import annotations

import shlex

import pytest

from harness import faults, probe, strongswan
from harness.errors import CommandError, LabError, NotRecovered, UsageError
from harness.faults import Injected
from harness.timers import FaultParams

from .fakes import FakeBackend, FakeLab, FakeProcess, fake_lab, ike_sa

VIP = "198.18.0.100"
FE = "198.18.0.10"
DC = "198.18.0.20"
TINY = FaultParams(cluster_delay=0.001, freeze=0.001)
"""The emulated cluster's delays, short enough for a unit test."""

OWNER = ("be1", "run", "ip -j -4 addr show dev eth0")
"""Who owns the VIP? (be1 answers yes, so be2 is never asked.)"""
BLOCK_NEW_IKE = """\
table inet failover_lab_fault {
    chain input {
        type filter hook input priority 0; policy accept;
        udp dport 500 drop
    }
}
"""
ARPING = f"stdbuf -oL arping -U -c 1 -I eth0 -s {VIP} {VIP}"
"""The new owner announces the VIP; the fault goes on once arping says it sends."""
KNOCK = "python3 /agents/knock.py --target 198.18.0.11 --at"
"""fe knocks on be1's own address (no traffic any policy protects) from the freeze's end on,
until be1 answers on its link again."""
CHARON_START = (
    "sh -c 'nft -f /lab/be1/guard.nft && rm -f /run/charon.pid /run/charon.vici "
    "&& { ip rule del pref 220; ip -6 rule del pref 220; true; } 2>/dev/null "
    "&& { ip xfrm state flush; ip xfrm policy flush; true; } 2>/dev/null "
    "&& exec /usr/lib/ipsec/charon >>/lab/be1/charon.stderr 2>&1'"
)
RESTART_BE1 = [
    ("be1", "spawn", CHARON_START),
    ("be1", "vici", "connect"),  # wait_charon: vici answers
    ("be1", "vici", "close"),
    ("be1", "vici", "connect"),  # configure: the PSK and the connections, as at bring-up
    ("be1", "vici", "load_shared"),
    ("be1", "vici", "load_conn vip"),
    ("be1", "vici", "load_conn dc"),
    ("be1", "vici", "close"),
]

Steps = list[tuple[str, ...]]
CRASH_ENTERED: Steps = [
    OWNER,
    ("be1", "run", "ip link set dev eth0 down"),
    ("be1", "kill", "charon"),
    ("be1", "wait", "charon"),
    ("be1", "close", "charon"),
    ("be2", "run", f"ip addr add {VIP}/32 dev eth0"),  # after the cluster delay
    ("be2", "spawn+capture", ARPING),
]
CRASH_LEFT: Steps = [
    ("be2", "stop", ARPING),
    ("be1", "run", f"ip addr del {VIP}/32 dev eth0"),
    ("be1", "run", "ip link set dev eth0 up"),
    *RESTART_BE1,
]
ANNOUNCE_BE2: Steps = [("be2", "vici", "connect"), ("be2", "vici", "load_conn announce"), ("be2", "vici", "close")]
BLOCK_NEW_IKE_STEP = ("be1", "run", "nft -f -", BLOCK_NEW_IKE)
GRACEFUL_ENTERED: Steps = [
    OWNER,
    BLOCK_NEW_IKE_STEP,
    ("be1", "vici", "connect"),
    ("be1", "vici", "list_sas"),
    ("be1", "vici", "terminate ike-id=7 timeout=2000 force=yes"),  # the VIP's SA: be1's own with dc stays
    ("be1", "vici", "close"),
    ("be1", "run", f"ip addr del {VIP}/32 dev eth0"),
    ("be2", "run", f"ip addr add {VIP}/32 dev eth0"),
    ("be2", "spawn+capture", ARPING),
]
"""A graceful move: new IKE blocked on the old owner, its VIP SA deleted, the VIP moved and announced
(graceful-noblock: the same without the block)."""
SEQUENCES: dict[str, tuple[Steps, Steps]] = {
    # fault: (on entering, on leaving)
    "graceful": (
        GRACEFUL_ENTERED,
        [
            ("be2", "stop", ARPING),
            ("be1", "vici", "connect"),  # terminate again: nothing left, new IKE was blocked
            ("be1", "vici", "list_sas"),
            ("be1", "vici", "close"),
            ("be1", "run", "nft delete table inet failover_lab_fault"),
        ],
    ),
    "graceful-noblock": (
        [step for step in GRACEFUL_ENTERED if step != BLOCK_NEW_IKE_STEP],
        [
            ("be2", "stop", ARPING),
            ("be1", "vici", "connect"),
            ("be1", "vici", "list_sas"),
            ("be1", "vici", "terminate ike-id=9 timeout=2000 force=yes"),  # the SA fe won in the race
            ("be1", "vici", "close"),
        ],
    ),
    "crash": (CRASH_ENTERED, CRASH_LEFT),
    "freeze": (
        [
            OWNER,
            ("be1", "signal SIGSTOP", "charon"),
            ("be1", "signal SIGCONT", "charon"),  # after the freeze, before the block runs
        ],
        [],  # nothing to undo: the charon was continued while entering
    ),
    "link-cut": (
        [
            OWNER,
            ("be1", "run", "ip link set dev eth0 down"),
            ("be1", "run", f"ip addr del {VIP}/32 dev eth0"),  # fenced at once
            ("be2", "run", f"ip addr add {VIP}/32 dev eth0"),  # after the cluster delay
            ("be2", "spawn+capture", ARPING),
        ],
        [
            ("be2", "stop", ARPING),
            ("be1", "vici", "connect"),  # its SA with fe died with the link; charon keeps running
            ("be1", "vici", "list_sas"),
            ("be1", "vici", "terminate ike-id=7 timeout=2000 force=yes"),  # the VIP's SA: be1's own with dc stays
            ("be1", "vici", "close"),
            ("be1", "run", "ip link set dev eth0 up"),
        ],
    ),
    "reboot": (
        [
            OWNER,
            ("be1", "kill", "charon"),
            ("be1", "wait", "charon"),
            ("be1", "close", "charon"),
            *RESTART_BE1,
        ],
        [],  # nothing to undo: the fresh charon is the healthy state
    ),
    "reboot-announce": (
        [
            OWNER,
            ("be1", "kill", "charon"),
            ("be1", "wait", "charon"),
            ("be1", "close", "charon"),
            *RESTART_BE1,
            ("be1", "vici", "connect"),
            ("be1", "vici", "load_conn announce"),
            ("be1", "vici", "close"),
        ],
        [],  # no undo: the announce connection stays loaded until be1's charon restarts
    ),
    "takeover-announce": (
        [*CRASH_ENTERED, *ANNOUNCE_BE2],  # announce_early 0: it begins once it has the VIP
        CRASH_LEFT,  # the announce connection stays loaded on be2
    ),
    "reauth": (
        [OWNER, ("fe", "vici", "connect"), ("fe", "vici", "rekey ike=vip reauth=yes"), ("fe", "vici", "close")],
        [],  # nothing to undo without a link delay: the reauthentication is fe's own business
    ),
    "graceful-announce": (
        [*GRACEFUL_ENTERED, *ANNOUNCE_BE2],  # once it has the VIP, while fe re-initiates on the DELETE
        [
            ("be2", "stop", ARPING),
            ("be1", "vici", "connect"),
            ("be1", "vici", "list_sas"),
            ("be1", "vici", "close"),
            ("be1", "run", "nft delete table inet failover_lab_fault"),
        ],  # the announce connection stays loaded on be2
    ),
}
INJECTED: dict[str, tuple[str, str, bool, bool]] = {
    # fault: (old owner, new owner, the VIP moved (t_vip set), announced (t_back set))
    "graceful": ("be1", "be2", True, False),
    "graceful-noblock": ("be1", "be2", True, False),
    "crash": ("be1", "be2", True, False),
    "freeze": ("be1", "be1", False, False),
    "link-cut": ("be1", "be2", True, False),
    "reboot": ("be1", "be1", False, True),  # t_back: when it was up again (a VM boots)
    "reboot-announce": ("be1", "be1", False, True),
    "takeover-announce": ("be1", "be2", True, True),  # t_back: when the new owner began to initiate
    "reauth": ("be1", "be1", False, False),
    "graceful-announce": ("be1", "be2", True, True),  # t_back: when the new owner began to initiate
}
SERVICES_BE1 = "python3 /agents/services.py --node be1 --vip 198.18.0.100 --role backend --address 198.18.0.11"
BOOT_BE1 = [
    ("be1", "machine", "boot"),  # as fresh as at bring-up: addresses, no VIP, no charon
    ("be1", "spawn+capture", SERVICES_BE1),
    *RESTART_BE1,
    ("be1", "close", SERVICES_BE1),  # its stand-ins said ready
]
TAKE_VIP_BACK = [("be1", "run", f"ip addr add {VIP}/32 dev eth0"), ("be1", "spawn+capture", ARPING)]
MACHINE_SEQUENCES: dict[str, tuple[Steps, Steps]] = {
    # where a VM differs: it is killed, paused and booted whole (graceful moves and link cuts
    # do the same to it as to any node)
    "crash": (
        [
            OWNER,
            ("be1", "machine", "kill"),
            ("be2", "run", f"ip addr add {VIP}/32 dev eth0"),
            ("be2", "spawn+capture", ARPING),
        ],
        [("be2", "stop", ARPING), *BOOT_BE1],  # back as a clean standby
    ),
    "link-cut": (
        [
            OWNER,
            ("be1", "machine", "unplug"),  # its cable pulled at the switch: its own link stays up
            ("be1", "run", f"ip addr del {VIP}/32 dev eth0"),
            ("be2", "run", f"ip addr add {VIP}/32 dev eth0"),
            ("be2", "spawn+capture", ARPING),
        ],
        [
            ("be2", "stop", ARPING),
            ("be1", "vici", "connect"),
            ("be1", "vici", "list_sas"),
            ("be1", "vici", "terminate ike-id=7 timeout=2000 force=yes"),
            ("be1", "vici", "close"),
            ("be1", "machine", "plug"),
        ],
    ),
    "freeze": (
        [OWNER, ("be1", "machine", "stop"), ("fe", "spawn+capture", KNOCK), ("be1", "machine", "cont")],
        [("fe", "stop", KNOCK)],
    ),
    "reboot": (
        [OWNER, ("be1", "machine", "kill"), *BOOT_BE1, *TAKE_VIP_BACK],
        [("be1", "stop", ARPING)],
    ),
    "reboot-announce": (
        [
            OWNER,
            ("be1", "machine", "kill"),
            *BOOT_BE1,
            *TAKE_VIP_BACK,
            ("be1", "vici", "connect"),
            ("be1", "vici", "load_conn announce"),
            ("be1", "vici", "close"),
        ],
        [("be1", "stop", ARPING)],
    ),
    "takeover-announce": (
        [
            OWNER,
            ("be1", "machine", "kill"),
            ("be2", "run", f"ip addr add {VIP}/32 dev eth0"),
            ("be2", "spawn+capture", ARPING),
            *ANNOUNCE_BE2,
        ],
        [("be2", "stop", ARPING), *BOOT_BE1],
    ),
}
STAMPED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # fault: the two consecutive steps between which the fault is stamped (t_fault): what the
    # outage is measured from
    "graceful": (("be1", "run", "nft -f -", BLOCK_NEW_IKE), ("be1", "vici", "connect")),  # the block disrupts nothing
    "graceful-noblock": (OWNER, ("be1", "vici", "connect")),
    "crash": (OWNER, ("be1", "run", "ip link set dev eth0 down")),
    "freeze": (("be1", "signal SIGSTOP", "charon"), ("be1", "signal SIGCONT", "charon")),  # once stopped
    "link-cut": (OWNER, ("be1", "run", "ip link set dev eth0 down")),
    "reboot": (OWNER, ("be1", "kill", "charon")),
    "reboot-announce": (OWNER, ("be1", "kill", "charon")),
    "takeover-announce": (OWNER, ("be1", "run", "ip link set dev eth0 down")),
    "reauth": (OWNER, ("fe", "vici", "connect")),
    "graceful-announce": (("be1", "run", "nft -f -", BLOCK_NEW_IKE), ("be1", "vici", "connect")),
}


BE1_SAS = [{"vip": ike_sa(7, FE)}, {"dc": ike_sa(8, DC)}]


@pytest.fixture
def fake() -> FakeLab:
    """A fake lab where be1 holds an IKE SA with fe (unique id 7) and its own with dc (8); a
    second look finds none, except after graceful-noblock's race (the test scripts that)."""
    lab = fake_lab()
    lab.nodes["be1"].script_sas(BE1_SAS, [])
    return lab


def enter_and_leave(fake: FakeLab, name: str) -> tuple[Injected, Steps, Steps]:
    with faults.fault(name)(fake.lab, TINY) as injected:
        entered = fake.journal.steps()
    return injected, entered, fake.journal.steps()[len(entered) :]


def test_every_fault_is_pinned() -> None:
    assert set(SEQUENCES) == set(INJECTED) == set(STAMPED) == set(faults.FAULTS)


@pytest.mark.parametrize("name", list(faults.FAULTS))
def test_commands_on_entering_and_leaving(fake: FakeLab, name: str) -> None:
    if name == "graceful-noblock":
        fake.nodes["be1"].script_sas(BE1_SAS, [{"vip": ike_sa(9, FE)}])
    _, entered, left = enter_and_leave(fake, name)
    assert (entered, left) == SEQUENCES[name]


@pytest.mark.parametrize("name", list(MACHINE_SEQUENCES))
def test_commands_on_entering_and_leaving_on_machines(name: str) -> None:
    fake = fake_lab(machines=True)
    fake.nodes["be1"].script_sas(BE1_SAS, [])
    injected, entered, left = enter_and_leave(fake, name)
    assert (shortened(entered), shortened(left)) == MACHINE_SEQUENCES[name]
    assert (injected.t_back is not None) == (name in ("freeze", "reboot", "reboot-announce", "takeover-announce"))


def shortened(steps: Steps) -> Steps:
    """Steps with fe's knocking cut before its moment (a monotonic time) and its timings."""
    return [
        (*step[:2], step[2].split(" --at ")[0] + " --at", *step[3:]) if " --at " in step[2] else step for step in steps
    ]


def test_fe_knocks_on_a_paused_vm_from_the_freeze_s_end_on() -> None:
    fake = fake_lab(machines=True)
    params = FaultParams(cluster_delay=0.001, freeze=0.05)
    with faults.freeze(fake.lab, params) as injected:
        knock = next(e for e in fake.journal.entries if e.op == "spawn+capture" and e.node == "fe")
    argv = dict(zip(knock.argv[2::2], knock.argv[3::2], strict=False))
    assert float(argv["--at"]) == pytest.approx(injected.t_fault + params.freeze, abs=1e-6)
    assert (argv["--interval"], argv["--within"]) == ("0.01", "5")
    assert injected.t_back is not None and injected.t_back >= injected.t_fault + params.freeze


def test_a_vm_that_never_answers_after_a_freeze_fails_the_fault() -> None:
    fake = fake_lab(machines=True)
    fake.nodes["fe"].script_spawn(fake.nodes["fe"].agent("knock"), lines=[], exit_code=1)
    with pytest.raises(LabError, match="be1 did not answer fe within 5 s of continuing after a freeze"):
        enter_and_leave(fake, "freeze")


@pytest.mark.parametrize("name", list(faults.FAULTS))
def test_what_was_injected(fake: FakeLab, name: str) -> None:
    injected, _, _ = enter_and_leave(fake, name)
    old, new, moved, announced = INJECTED[name]
    assert (injected.kind, injected.old_owner, injected.new_owner) == (name, old, new)
    assert (injected.t_vip is not None, injected.t_back is not None) == (moved, announced)
    if injected.t_vip is not None:
        assert injected.t_vip >= injected.t_fault
    if injected.t_back is not None:
        assert injected.t_back >= injected.t_fault


@pytest.mark.parametrize("name", list(faults.FAULTS))
def test_the_fault_is_stamped_where_it_strikes(fake: FakeLab, name: str) -> None:
    injected, _, _ = enter_and_leave(fake, name)
    steps, entries = fake.journal.steps(), fake.journal.entries
    before, after = STAMPED[name]
    stamped = steps.index(before)
    assert steps[stamped + 1] == after
    assert entries[stamped].t <= injected.t_fault <= entries[stamped + 1].t


@pytest.mark.parametrize("name", list(faults.FAULTS))
def test_the_undo_also_runs_when_the_measurement_fails(fake: FakeLab, name: str) -> None:
    normal = fake_lab()
    normal.nodes["be1"].script_sas(BE1_SAS, [])
    _, _, undo = enter_and_leave(normal, name)
    with pytest.raises(NotRecovered), faults.fault(name)(fake.lab, TINY):
        entered = len(fake.journal.entries)
        raise NotRecovered("no answer from be2")
    assert fake.journal.steps()[entered:] == undo


@pytest.mark.parametrize("name", ["crash", "link-cut"])
def test_the_standby_takes_the_vip_after_the_cluster_delay(fake: FakeLab, name: str) -> None:
    params = FaultParams(cluster_delay=0.05, freeze=0.001)
    with faults.fault(name)(fake.lab, params) as injected:
        taken = fake.journal.wait_for(("be2", "run", f"ip addr add {VIP}/32 dev eth0"), timeout=0)
    assert taken is not None and taken.t >= injected.t_fault + params.cluster_delay
    assert injected.t_vip is not None and injected.t_vip >= taken.t


def test_freeze_continues_the_charon_after_the_freeze(fake: FakeLab) -> None:
    params = FaultParams(cluster_delay=0.001, freeze=0.05)
    with faults.freeze(fake.lab, params) as injected:
        continued = fake.journal.wait_for(("be1", "signal SIGCONT", "charon"), timeout=0)
    assert continued is not None and continued.t >= injected.t_fault + params.freeze


@pytest.mark.parametrize("name", ["crash", "reboot", "reboot-announce", "takeover-announce"])
def test_a_restarted_charon_replaces_the_labs_handle(fake: FakeLab, name: str) -> None:
    killed = fake.lab.charons["be1"]
    enter_and_leave(fake, name)
    fresh = fake.lab.charons["be1"]
    assert fresh is not killed and shlex.join(fresh.argv) == CHARON_START
    spawned = next(e for e in fake.journal.entries if e.op == "spawn" and e.node == "be1")
    assert spawned.detail == {"STRONGSWAN_CONF": "/lab/be1/strongswan.conf"}


@pytest.mark.parametrize("name", ["crash", "reboot", "reboot-announce", "takeover-announce"])
def test_a_killed_charon_handle_is_closed(fake: FakeLab, name: str) -> None:
    """Its agent channel is released once the process is reaped."""
    killed = fake.lab.charons["be1"]
    assert isinstance(killed, FakeProcess)
    enter_and_leave(fake, name)
    assert [e.op for e in fake.journal.entries if e.argv == killed.argv] == ["kill", "wait", "close"]


def test_reboot_announce_loads_a_connection_that_starts_from_the_vip(fake: FakeLab) -> None:
    enter_and_leave(fake, "reboot-announce")
    loaded = [e.detail for e in fake.journal.entries if e.step() == ("be1", "vici", "load_conn announce")]
    assert len(loaded) == 1
    announce = loaded[0][strongswan.ANNOUNCE]
    assert announce["local_addrs"] == [VIP] and announce["remote_addrs"] == [FE]
    assert {child["start_action"] for child in announce["children"].values()} == {"start"}


def test_an_early_takeover_begins_to_initiate_before_the_vip_is_there(fake: FakeLab) -> None:
    """announce_early: the new owner's charon is told to initiate announce_early seconds before the
    VIP is on it (acassen/keepalived#539), and t_back says when."""
    params = FaultParams(cluster_delay=0.06, announce_early=0.05)
    with faults.takeover_announce(fake.lab, params) as injected:
        pass
    loaded = fake.journal.wait_for(("be2", "vici", "load_conn announce"), timeout=0)
    vip = fake.journal.wait_for(("be2", "run", f"ip addr add {VIP}/32 dev eth0"), timeout=0)
    assert loaded is not None and vip is not None and loaded.t < vip.t
    assert injected.t_back is not None and injected.t_vip is not None
    assert injected.t_back - injected.t_fault >= params.cluster_delay - params.announce_early
    assert injected.t_vip - injected.t_back >= params.announce_early - 0.01  # the VIP came later


def test_a_standby_initiating_all_along_began_before_the_crash(fake: FakeLab) -> None:
    """announce_early longer than the cluster delay: the standby's charon initiates while be1 still
    holds the VIP (opnsense/core#3821); t_back before the fault."""
    params = FaultParams(cluster_delay=0.01, announce_early=0.05)
    with faults.takeover_announce(fake.lab, params) as injected:
        pass
    steps = fake.journal.steps()
    assert steps.index(("be2", "vici", "load_conn announce")) < steps.index(("be1", "run", "ip link set dev eth0 down"))
    assert injected.t_back is not None and injected.t_back < injected.t_fault
    assert injected.t_fault - injected.t_back >= params.announce_early - params.cluster_delay


def test_a_reauthentication_over_a_slow_link_delays_the_owner_first_and_heals_it_after(fake: FakeLab) -> None:
    params = FaultParams(link_delay=0.02)
    with faults.reauth(fake.lab, params) as injected:
        entered = fake.journal.steps()
    netem = ("be1", "run", "tc qdisc add dev eth0 root netem delay 20ms")
    assert entered[1:3] == [netem, ("fe", "vici", "connect")]
    added = fake.journal.wait_for(netem, timeout=0)
    settled = probe.ATTEMPT_TIMEOUT_S + faults.NETEM_SETTLE * params.link_delay
    assert added is not None and injected.t_fault >= added.t + settled
    assert fake.journal.steps()[len(entered) :] == [
        ("be1", "run", "tc qdisc change dev eth0 root netem delay 0ms"),  # what it holds still goes out
        ("be1", "run", "tc qdisc del dev eth0 root"),
    ]


def test_a_link_delay_where_the_kernel_has_no_netem_is_one_line(fake: FakeLab) -> None:
    fake.nodes["be1"].script(["tc", "qdisc", "add"], returncode=2, stderr="Error: Specified qdisc kind is unknown.\n")
    with pytest.raises(UsageError) as raised, faults.reauth(fake.lab, FaultParams(link_delay=0.02)):
        pass
    assert str(raised.value) == (
        "link_delay needs netem in be1's kernel, which refused it (Error: Specified qdisc kind is unknown.): "
        "use --backend uml, or link_delay 0"
    )


def test_a_failed_vip_move_still_unblocks_new_ike(fake: FakeLab) -> None:
    # be2 refuses the VIP: the fault raises the node's CommandError, undoes what it did (be1's
    # VIP SAs once more, the block on new IKE), but the VIP is left on neither back-end (released
    # from be1 already): a lab the plugin treats as unhealthy (no VIP owner) and replaces.
    fake.nodes["be2"].script(["ip", "addr", "add"], returncode=2, stderr="RTNETLINK answers: File exists")
    with pytest.raises(CommandError) as raised:
        enter_and_leave(fake, "graceful")
    assert str(raised.value) == f"be2: `ip addr add {VIP}/32 dev eth0` exited 2: RTNETLINK answers: File exists"
    assert fake.journal.steps()[-6:] == [
        ("be1", "run", f"ip addr del {VIP}/32 dev eth0"),
        ("be2", "run", f"ip addr add {VIP}/32 dev eth0"),
        ("be1", "vici", "connect"),
        ("be1", "vici", "list_sas"),
        ("be1", "vici", "close"),
        ("be1", "run", "nft delete table inet failover_lab_fault"),
    ]


def test_a_crash_that_cannot_reap_the_charon_brings_the_link_back(fake: FakeLab) -> None:
    old = FakeProcess("be1", ["charon"], fake.journal, exit_code=None)  # wait() times out
    fake.lab.charons["be1"] = old
    with pytest.raises(LabError, match="be1: charon did not die within 5 s of SIGKILL"), faults.crash(fake.lab, TINY):
        pass
    assert ("be1", "run", "ip link set dev eth0 up") in fake.journal.steps()


def test_a_link_cut_whose_fencing_fails_brings_the_link_back(fake: FakeLab) -> None:
    fake.nodes["be1"].script(["ip", "addr", "del"], returncode=2, stderr="RTNETLINK answers: Cannot assign")
    with pytest.raises(CommandError), faults.link_cut(fake.lab, TINY):
        pass
    assert fake.journal.steps()[-1] == ("be1", "run", "ip link set dev eth0 up")


def test_a_vip_nobody_could_announce_stops_the_move_in_one_line(fake: FakeLab) -> None:
    # arping fails (an interface without ARP): the new owner has the VIP but fe would go on sending
    # to the old owner's MAC address, so the move is no move; the announcing process is stopped.
    fake.nodes["be2"].script_spawn(
        ["stdbuf", "-oL", "arping", "-U"], lines=["arping: Device eth0 not available."], exit_code=2
    )
    with pytest.raises(LabError) as raised:
        enter_and_leave(fake, "graceful")
    assert str(raised.value) == (
        f"be2 could not announce the VIP {VIP}: arping said 'arping: Device eth0 not available.'"
    )
    assert ("be2", "stop", ARPING) in fake.journal.steps()


FIREWALL_RULE = (
    f"iptables-legacy {{}} INPUT -s {VIP} -p udp -m multiport --dports 500,4500 "
    "-m conntrack '!' --ctstate ESTABLISHED,RELATED -j DROP"
)
UDP_TIMEOUTS = " ".join(faults.CONNTRACK_UDP_TIMEOUTS)


def test_a_graceful_move_behind_fe_s_firewall_waits_for_its_state_to_expire_and_heals_it_after() -> None:
    """strongswan/strongswan#1759: fe's stateful firewall goes up first, its UDP flows expire after
    firewall_idle (whole seconds), the move waits that long, and leaving restores fe as it was."""
    fake = fake_lab(machines=True)
    fake.lab.backend = FakeBackend(name="uml", datapath="kernel")
    fake.nodes["be1"].script_sas(BE1_SAS, [])
    fake.nodes["fe"].script(["cat", *UDP_TIMEOUTS.split()], stdout="30\n120\n")
    params = FaultParams(firewall_idle=0.02)
    with faults.graceful(fake.lab, params) as injected:
        entered = fake.journal.steps()
    on_fe = [
        ("fe", "run", FIREWALL_RULE.format("-A")),
        ("fe", "run", f"cat {UDP_TIMEOUTS}"),
        ("fe", "run", "sh -c 'echo 1 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout && "
         "echo 1 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream'"),
    ]  # fmt: skip
    assert entered[1:4] == on_fe and entered[4:] == GRACEFUL_ENTERED[1:]
    timed_out = fake.journal.wait_for(on_fe[-1], timeout=0)
    assert timed_out is not None and injected.t_fault >= timed_out.t + params.firewall_idle
    assert fake.journal.steps()[len(entered) :][-2:] == [
        ("fe", "run", "sh -c 'echo 30 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout && "
         "echo 120 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream'"),
        ("fe", "run", FIREWALL_RULE.format("-D")),
    ]  # fmt: skip


def test_a_firewall_where_esp_is_always_in_udp_is_one_line(fake: FakeLab) -> None:
    with pytest.raises(UsageError) as raised, faults.graceful(fake.lab, FaultParams(firewall_idle=5)):
        pass
    assert str(raised.value) == (
        "firewall_idle needs raw ESP on VMs of the lab's own (the kernel datapath), which backend fake has not: "
        "use --backend uml, or firewall_idle 0"
    )
    assert all(step[0] != "fe" for step in fake.journal.steps())


def test_a_firewall_is_refused_before_any_lab_where_the_backend_cannot_have_one() -> None:
    behind = FaultParams(firewall_idle=5)
    for backend in ("netns", "docker", "auto", "ssh"):
        with pytest.raises(UsageError, match=f"which backend {backend} has not: use --backend uml"):
            faults.refuse_what_the_backend_cannot_inject("graceful", behind, backend)
    faults.refuse_what_the_backend_cannot_inject("graceful", behind, "uml")
    faults.refuse_what_the_backend_cannot_inject("graceful", FaultParams(), "netns")

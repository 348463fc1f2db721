"""The closed set of faults, each a context manager built only on Node calls: entering injects
the fault and reports when it struck, leaving undoes it so the lab is healthy again (the VIP
stays where the fault moved it; the old owner becomes a clean standby).

graceful          The active back-end stops accepting new IKE (drops udp/500), deletes its SAs
                  with fe (fe gets DELETE), releases the VIP; the standby takes it and sends
                  unsolicited ARP.
graceful-noblock  The same without blocking new IKE first: fe re-initiates within a millisecond
                  of the DELETE and races the VIP move (usually it wins and builds a new SA
                  with the old owner, which then loses the VIP: a black hole until DPD).
crash             The active back-end falls silent (link down) and its charon is SIGKILLed;
                  after the cluster-detection delay the standby takes the VIP.
freeze            The active back-end's charon (and with it the userspace ESP datapath) is
                  SIGSTOPped for a while, then SIGCONTinued; the VIP stays.
link-cut          The active back-end's data link goes down (charon keeps running, isolated);
                  the cluster fences it and the standby takes the VIP after the delay.
reboot            The active back-end's charon is killed and started again at once with no SA
                  state; the node keeps the VIP.
reboot-announce   The same, but the restarted back-end is configured to bring its tunnel to fe up
                  at start (a connection from the VIP with start_action = start): its IKE_AUTH
                  carries INITIAL_CONTACT, and fe (unique = no, strongSwan's default) deletes its
                  stale IKE SA on the spot.

Recovery always comes from fe's own strongSwan settings; no fault ever touches fe. The waits
inside faults (cluster-detection delay, freeze duration) are the emulated world's own timers.
Each undo is registered as soon as its step succeeded, so a fault that fails half-way undoes
what it did. What is not undone, on purpose: the VIP stays on its new owner (graceful, crash,
link-cut); freeze, reboot and reboot-announce need no undo (charon continued, or runs afresh);
reboot-announce leaves its start-at-load connection loaded, as a node configured to bring its
tunnel up at boot keeps it (it acts only when loaded). A graceful move deletes only the VIP's
SAs: the old owner's own SA with dc is no cluster resource and stays.

Owns: what each fault does and undoes. Not: measuring its effect (harness.measure).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from harness import charon, strongswan
from harness.errors import LabError, UsageError
from harness.lab import Lab
from harness.node import Node, Process
from harness.timers import FaultParams
from harness.topology import Topology

NFT_TABLE = "failover_lab_fault"
KILL_TIMEOUT_S = 5.0
"""How long a SIGKILLed charon may take to be reaped."""
BLOCK_NEW_IKE = f"""\
table inet {NFT_TABLE} {{
    chain input {{
        type filter hook input priority 0; policy accept;
        udp dport 500 drop
    }}
}}
"""


@dataclass(frozen=True)
class Injected:
    """What a fault did: when it struck (monotonic, the moment traffic was disrupted) and where
    the VIP went."""

    kind: str
    t_fault: float
    old_owner: str
    new_owner: str
    t_vip: float | None = None
    """When the new owner had the VIP configured (None if the VIP did not move)."""
    t_back: float | None = None
    """When a rebooted back-end's fresh charon was configured and began to initiate to fe."""

    def describe(self) -> str:
        where = f"the VIP moves to {self.new_owner}" if self.new_owner != self.old_owner else "the VIP stays"
        return f"fault: {self.kind} of {self.old_owner}; {where}"


def take_vip(node: Node, topology: Topology) -> Process:
    """Configure the VIP on ``node`` and announce it; returns the announcing arping (it lingers
    about a second after sending, so it runs in the background)."""
    node.run(["ip", "addr", "add", f"{topology.vip}/32", "dev", "eth0"])
    return node.spawn(["arping", "-q", "-U", "-c", "1", "-I", "eth0", "-s", topology.vip, topology.vip])


def release_vip(node: Node, topology: Topology) -> None:
    node.run(["ip", "addr", "del", f"{topology.vip}/32", "dev", "eth0"])


def _pair(lab: Lab) -> tuple[str, str]:
    owner = lab.vip_owner()
    if owner is None:
        raise LabError(f"lab {lab.topology.name}: no back-end owns the VIP {lab.topology.vip}")
    return owner, Topology.other_backend(owner)


def _wait_until(moment: float) -> None:
    """Let the emulated world's own timer run out (a cluster delay, a freeze)."""
    time.sleep(max(0.0, moment - time.monotonic()))


@contextlib.contextmanager
def _move_vip(lab: Lab, old: str, new: str, block_new_ike: bool, kind: str) -> Iterator[Injected]:
    old_node, new_node = lab.nodes[old], lab.nodes[new]
    with contextlib.ExitStack() as undo:
        if block_new_ike:
            old_node.run(["nft", "-f", "-"], input=BLOCK_NEW_IKE)
            undo.callback(old_node.run, ["nft", "delete", "table", "inet", NFT_TABLE])
        t_fault = time.monotonic()
        charon.terminate(old_node, strongswan.CONNECTION)
        undo.callback(charon.terminate, old_node, strongswan.CONNECTION)  # a new SA the old owner won in the race
        release_vip(old_node, lab.topology)
        announce = take_vip(new_node, lab.topology)
        undo.callback(announce.stop)
        yield Injected(kind, t_fault, old, new, time.monotonic())


@contextlib.contextmanager
def graceful(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    old, new = _pair(lab)
    with _move_vip(lab, old, new, block_new_ike=True, kind="graceful") as injected:
        yield injected


@contextlib.contextmanager
def graceful_noblock(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    old, new = _pair(lab)
    with _move_vip(lab, old, new, block_new_ike=False, kind="graceful-noblock") as injected:
        yield injected


@contextlib.contextmanager
def _standby_takes_over(lab: Lab, kind: str, old: str, t_fault: float, delay: float) -> Iterator[Injected]:
    """After the cluster's detection delay the standby takes the VIP and announces it."""
    new = Topology.other_backend(old)
    _wait_until(t_fault + delay)
    announce = take_vip(lab.nodes[new], lab.topology)
    try:
        yield Injected(kind, t_fault, old, new, time.monotonic())
    finally:
        announce.stop()


def _kill_charon(lab: Lab, name: str) -> None:
    """SIGKILL the node's charon and reap it."""
    process = lab.charons[name]
    process.kill()
    try:
        process.wait(KILL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LabError(f"{name}: charon did not die within {KILL_TIMEOUT_S:g} s of SIGKILL") from None
    finally:
        process.close()


@contextlib.contextmanager
def crash(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    old, _ = _pair(lab)
    old_node = lab.nodes[old]
    with contextlib.ExitStack() as undo:
        t_fault = time.monotonic()
        old_node.run(["ip", "link", "set", "dev", "eth0", "down"])
        undo.callback(lab.restart_charon, old)
        undo.callback(old_node.run, ["ip", "link", "set", "dev", "eth0", "up"])
        undo.callback(release_vip, old_node, lab.topology)
        _kill_charon(lab, old)
        with _standby_takes_over(lab, "crash", old, t_fault, params.cluster_delay) as injected:
            yield injected


@contextlib.contextmanager
def link_cut(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    old, _ = _pair(lab)
    old_node = lab.nodes[old]
    with contextlib.ExitStack() as undo:
        t_fault = time.monotonic()
        old_node.run(["ip", "link", "set", "dev", "eth0", "down"])
        undo.callback(old_node.run, ["ip", "link", "set", "dev", "eth0", "up"])
        undo.callback(charon.terminate, old_node, strongswan.CONNECTION)  # its SA with fe died with the link
        release_vip(old_node, lab.topology)  # fenced: an isolated node gives up the cluster's VIP
        with _standby_takes_over(lab, "link-cut", old, t_fault, params.cluster_delay) as injected:
            yield injected


@contextlib.contextmanager
def freeze(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    owner, _ = _pair(lab)
    charon = lab.charons[owner]
    charon.signal(signal.SIGSTOP)
    t_fault = time.monotonic()  # once the node confirmed the stop: the freeze lasts at least as long as asked
    try:
        _wait_until(t_fault + params.freeze)
    finally:
        charon.signal(signal.SIGCONT)
    yield Injected("freeze", t_fault, owner, owner)


def _reboot(lab: Lab) -> tuple[str, float]:
    """Kill the active back-end's charon and start a fresh one; returns the node and the fault's stamp."""
    owner, _ = _pair(lab)
    t_fault = time.monotonic()
    _kill_charon(lab, owner)
    lab.restart_charon(owner)
    return owner, t_fault


@contextlib.contextmanager
def reboot(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    owner, t_fault = _reboot(lab)
    yield Injected("reboot", t_fault, owner, owner)


@contextlib.contextmanager
def reboot_announce(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    owner, t_fault = _reboot(lab)
    t_back = time.monotonic()
    charon.announce(lab.nodes[owner], lab.topology, lab.profile, lab.policy)
    yield Injected("reboot-announce", t_fault, owner, owner, t_back=t_back)


Fault = Callable[[Lab, FaultParams], contextlib.AbstractContextManager[Injected]]
FAULTS: dict[str, Fault] = {
    "graceful": graceful,
    "graceful-noblock": graceful_noblock,
    "crash": crash,
    "freeze": freeze,
    "link-cut": link_cut,
    "reboot": reboot,
    "reboot-announce": reboot_announce,
}


def fault(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise UsageError(f"unknown fault {name!r}: choose one of {', '.join(FAULTS)}") from None

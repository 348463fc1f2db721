"""The closed set of faults, each a context manager built only on Node calls: entering injects
the fault and reports when it struck, leaving undoes it so the lab is healthy again (the VIP
stays where the fault moved it; the old owner becomes a clean standby).

graceful          The active back-end stops accepting new IKE (drops udp/500), deletes its SAs
                  with fe (fe gets DELETE), releases the VIP; the standby takes it and sends
                  unsolicited ARP.
                  With ``firewall_idle``, fe first sits behind a stateful firewall for that
                  long: it lets IKE from the VIP in only on a UDP flow used within that time,
                  and ESP always. With raw ESP, and DPD postponed by the ESP that arrives,
                  nothing IKE crossed it: the DELETE is dropped and fe waits for DPD
                  (strongswan/strongswan#1759; the kernel datapath only, uml).
graceful-noblock  The same without blocking new IKE first: fe re-initiates within a millisecond
                  of the DELETE and races the VIP move (usually it wins and builds a new SA
                  with the old owner, which then loses the VIP: a black hole until DPD).
graceful-announce A graceful move whose new owner, once it has the VIP, brings its tunnel to fe
                  up itself (as takeover-announce) while fe re-initiates on the DELETE: both
                  ends initiate, and fe keeps two IKE SAs with the VIP, each with its
                  CHILD_SAs (strongswan/strongswan#2778).
crash             The active back-end falls silent (link down; on a user's host the harness's
                  table drops everything on its lab interface) and its charon is SIGKILLed;
                  after the cluster-detection delay the standby takes the VIP.
freeze            The active back-end's charon (and with it the userspace ESP datapath) is
                  SIGSTOPped for a while, then SIGCONTinued; a VM is paused whole. The VIP
                  stays. It is over when the node answers fe on its link again (a VM first
                  works through what queued up for it).
link-cut          The active back-end's data link goes down (charon keeps running, isolated;
                  a VM's tap goes down at the switch, its own link stays up; a user's host
                  gets the harness's drop-everything table on its lab interface); the cluster
                  fences it and the standby takes the VIP after the delay.
reboot            The active back-end's charon is killed and started again at once with no SA
                  state; the node keeps the VIP.
reboot-announce   The same, but the restarted back-end is configured to bring its tunnel to fe up
                  at start (a connection from the VIP with start_action = start): its IKE_AUTH
                  carries INITIAL_CONTACT, and fe (unique = no, strongSwan's default) deletes its
                  stale IKE SA on the spot.
takeover-announce A crash whose standby, once it takes the VIP, brings its tunnel to fe up
                  itself (as reboot-announce: INITIAL_CONTACT). ``announce_early`` s before the
                  VIP is on it, its charon already begins: a cluster that starts strongSwan
                  before it adds the VIP (acassen/keepalived#539); longer than the cluster
                  delay, the standby began before the crash: a standby that initiates all
                  along (opnsense/core#3821). Until the VIP is there its IKE_SA_INIT cannot
                  leave (charon logs "error writing to socket", with "Invalid argument" in the
                  report, "Network is unreachable" in the lab) and only a later transmission
                  of its schedule (keyingtries 0: it starts over after giving up) gets through.

Recovery always comes from fe's own strongSwan settings; no fault but reauth touches fe. The waits
inside faults (cluster-detection delay, freeze duration) are the emulated world's own timers.
Each undo is registered as soon as its step succeeded, so a fault that fails half-way undoes
what it did. What is not undone, on purpose: the VIP stays on its new owner (graceful, crash,
link-cut); freeze, reboot and reboot-announce need no undo (charon continued, or runs afresh);
reauth            fe reauthenticates its IKE SA with the VIP's owner (its reauth_time brought
                  forward: a new IKE SA from scratch, the CHILD_SAs with it), over a link
                  whose round trip is ``link_delay`` (netem on the owner's lab interface, set
                  before the fault strikes; User-mode Linux only: the harness's kernel has no
                  netem). The profile's make_before_break decides whether the old SAs go first
                  (opnsense/core#7776). The one fault that acts on fe: what it does there is
                  fe's own schedule, not a failure.

reboot-announce, takeover-announce and graceful-announce leave their start-at-load connection
loaded, as a node configured to bring its tunnel up at boot keeps it (it acts only when loaded;
a graceful move deletes its SAs with the VIP's). A graceful move deletes only the VIP's SAs: the
old owner's own SA with dc is no cluster resource and stays.

On a user's hosts with a cluster manager of their own (an SSH inventory's ``cluster:``), the
VIP is the cluster's: graceful runs its move command on the owner and waits until its owner
command names the standby; crash and link-cut wait for the cluster to fail over by its own
timers; leaving them waits until it has settled on one owner again.

Owns: what each fault does and undoes. Not: measuring its effect (harness.measure).
"""

from __future__ import annotations

import contextlib
import math
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from harness import charon, disrupt, probe, strongswan
from harness.backends import can_firewall_fe
from harness.errors import CommandError, LabError, UsageError
from harness.lab import Lab
from harness.node import Clock, Node, Process
from harness.timers import FaultParams
from harness.topology import BACKENDS, Topology

NFT_TABLE = "failover_lab_fault"
KILL_TIMEOUT_S = 5.0
"""How long a SIGKILLed charon may take to be reaped."""
RESUME_PROBE_S = 0.01
"""How often fe asks a node that continued after a freeze whether it answers again."""
RESUME_DEADLINE_S = 5.0
OWNER_POLL_S = 0.02
"""How often the user's cluster is asked who holds the VIP while it moves."""
CLUSTER_MOVE_TIMEOUT_S = 60.0
"""How long the user's cluster may take to move the VIP, or to settle on one owner after a fault."""
"""How long a continued VM may take to answer (what queued up during its pause comes first)."""
VIP_CONNECTIONS = (strongswan.CONNECTION, strongswan.ANNOUNCE)
"""The connections whose SAs with fe are the VIP's: the back-end's own, and the one it brought up
itself (reboot-announce, takeover-announce)."""
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
    """When the new owner had the VIP configured and announced (None if the VIP did not move)."""
    t_back: float | None = None
    """When the node was back: a frozen VM answered fe on its link again (a node whose charon
    alone stopped never went away), a rebooted one was up (its fresh charon configured), an
    announcing one began to initiate to fe."""

    def describe(self) -> str:
        where = f"the VIP moves to {self.new_owner}" if self.new_owner != self.old_owner else "the VIP stays"
        return f"fault: {self.kind} of {self.old_owner}; {where}"


IPTABLES_BLOCK = [
    "iptables-legacy", "{}", "INPUT", "-p", "udp", "--dport", "500",
    "-m", "u32", "--u32", "0>>22&0x3C@16=0 && 0>>22&0x3C@20=0", "-j", "DROP",
]  # fmt: skip
"""The same on a node whose kernel has no nftables families (User-mode Linux: iptables-legacy),
for IKE_SA_INIT only (a zero responder SPI): without NAT, IKE stays on udp/500, and the DELETE's
answer must still reach the old owner."""


def _block_new_ike(node: Node, undo: contextlib.ExitStack) -> None:
    """Drop IKE_SA_INIT (udp/500) arriving on ``node`` until ``undo`` runs."""
    if node.firewall == "nft":
        node.run(["nft", "-f", "-"], input=BLOCK_NEW_IKE)
        undo.callback(node.run, ["nft", "delete", "table", "inet", NFT_TABLE])
        return
    node.run([part.format("-A") for part in IPTABLES_BLOCK])
    undo.callback(node.run, [part.format("-D") for part in IPTABLES_BLOCK])


def take_vip(node: Node, topology: Topology) -> tuple[float, Process]:
    """Configure the VIP on ``node`` and announce it; returns when the announcement went out
    (from then on fe sends to the new owner: before it, to the old owner's MAC address, measured
    on uml, where starting arping costs tens of milliseconds) and the announcing arping, which
    lingers about a second after sending, in the background. arping says ARPING just before it
    sends (line-buffered by stdbuf: a pipe would hold the line until it exits)."""
    node.run(["ip", "addr", "add", topology.vip_with_prefix, "dev", node.lab_interface])
    process = node.spawn(announce_vip(node, topology), capture=True)
    said = next(process.lines(), "")
    taken = time.monotonic()
    if not said.startswith("ARPING"):
        process.stop()
        raise LabError(f"{node.name} could not announce the VIP {topology.vip}: arping said {said.strip()!r}")
    return taken, process


def announce_vip(node: Node, topology: Topology) -> list[str]:
    """arping's gratuitous ARP for the VIP from ``node``, its lines unbuffered."""
    return ["stdbuf", "-oL", "arping", "-U", "-c", "1", "-I", node.lab_interface, "-s", topology.vip, topology.vip]


def release_vip(node: Node, topology: Topology) -> None:
    node.run(["ip", "addr", "del", topology.vip_with_prefix, "dev", node.lab_interface])


def _pair(lab: Lab) -> tuple[str, str]:
    owner = lab.vip_owner()
    if owner is None:
        raise LabError(f"lab {lab.topology.name}: no back-end owns the VIP {lab.topology.vip}")
    return owner, Topology.other_backend(owner)


def _wait_until(moment: float) -> None:
    """Let the emulated world's own timer run out (a cluster delay, a freeze)."""
    time.sleep(max(0.0, moment - time.monotonic()))


def _until_held(lab: Lab, name: str, since: float) -> float:
    """Until the user's cluster says ``name`` holds the VIP (polled every OWNER_POLL_S); when it
    was seen. The cluster's own timers decide how long (at most CLUSTER_MOVE_TIMEOUT_S)."""
    deadline = since + CLUSTER_MOVE_TIMEOUT_S
    while not lab.holds_vip(name):
        if time.monotonic() > deadline:
            raise LabError(f"your cluster did not move the VIP to {name} within {CLUSTER_MOVE_TIMEOUT_S:g} s")
        time.sleep(OWNER_POLL_S)
    return time.monotonic()


def _until_one_owner(lab: Lab) -> None:
    """Until the user's cluster has settled on one owner again (a fenced node back on the wire)."""
    deadline = time.monotonic() + CLUSTER_MOVE_TIMEOUT_S
    while sum(lab.holds_vip(name) for name in BACKENDS) != 1:
        if time.monotonic() > deadline:
            raise LabError(f"your cluster did not settle on one VIP owner within {CLUSTER_MOVE_TIMEOUT_S:g} s")
        time.sleep(OWNER_POLL_S)


@contextlib.contextmanager
def _move_vip(lab: Lab, old: str, new: str, block_new_ike: bool, kind: str) -> Iterator[Injected]:
    old_node, new_node = lab.nodes[old], lab.nodes[new]
    cluster = lab.backend.cluster
    if cluster is not None and cluster.moves is None:
        raise UsageError(f"{kind} needs cluster.move in the inventory: the harness leaves your cluster's VIP alone")
    with contextlib.ExitStack() as undo:
        if block_new_ike:
            _block_new_ike(old_node, undo)
        t_fault = time.monotonic()
        charon.terminate(old_node, *VIP_CONNECTIONS)
        undo.callback(charon.terminate, old_node, *VIP_CONNECTIONS)  # a new SA the old owner won in the race
        if cluster is not None and cluster.moves is not None:  # the user's cluster moves it
            old_node.run(["sh", "-c", cluster.moves[new]])
            taken = _until_held(lab, new, t_fault)
        else:
            release_vip(old_node, lab.topology)
            taken, announce = take_vip(new_node, lab.topology)
            undo.callback(announce.stop)
        yield Injected(kind, t_fault, old, new, taken)


FIREWALL_RULE = [
    "iptables-legacy", "{action}", "INPUT", "-s", "{vip}", "-p", "udp", "-m", "multiport", "--dports", "500,4500",
    "-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED", "-j", "DROP",
]  # fmt: skip
"""fe's stateful firewall (graceful's firewall_idle): IKE from the VIP gets in only on a UDP flow
conntrack still knows; raw ESP (protocol 50) passes, as firewalls must let it (it has no ports to
track). Installing it loads conntrack, which knows only what it saw since."""
CONNTRACK_UDP_TIMEOUTS = (
    "/proc/sys/net/netfilter/nf_conntrack_udp_timeout",
    "/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream",
)
"""How long conntrack keeps a UDP flow after its last packet: one way, and both ways seen."""


NO_RAW_ESP = (
    "firewall_idle needs raw ESP on VMs of the lab's own (the kernel datapath), which backend {} has not: "
    "use --backend uml, or firewall_idle 0"
)


def refuse_what_the_backend_cannot_inject(fault: str, params: FaultParams, backend_name: str) -> None:
    """Before any lab is built: a fault's parameter the backend cannot honour, in one line."""
    if fault == "graceful" and params.firewall_idle > 0 and not can_firewall_fe(backend_name):
        raise UsageError(NO_RAW_ESP.format(backend_name))


def _firewall_fe(lab: Lab, idle: float, undo: contextlib.ExitStack) -> None:
    """Put fe behind a stateful firewall whose UDP flows expire ``idle`` seconds (whole, at least
    one) after their last packet, until ``undo`` runs; returns once it has watched for ``idle``
    seconds, so that a flow nothing used meanwhile is unknown to it. Refused in one line where
    fe has no kernel of its own or ESP is always in UDP."""
    refuse_what_the_backend_cannot_inject("graceful", FaultParams(firewall_idle=idle), lab.backend.name)
    fe = lab.fe
    vip = lab.topology.vip
    fe.run([part.format(action="-A", vip=vip) for part in FIREWALL_RULE])
    undo.callback(fe.run, [part.format(action="-D", vip=vip) for part in FIREWALL_RULE])
    before = fe.run(["cat", *CONNTRACK_UDP_TIMEOUTS]).stdout.split()
    undo.callback(_set_udp_timeouts, fe, before)
    _set_udp_timeouts(fe, [str(max(1, math.ceil(idle)))] * len(CONNTRACK_UDP_TIMEOUTS))
    _wait_until(time.monotonic() + idle)


def _set_udp_timeouts(node: Node, seconds: list[str]) -> None:
    writes = [f"echo {value} > {path}" for value, path in zip(seconds, CONNTRACK_UDP_TIMEOUTS, strict=True)]
    node.run(["sh", "-c", " && ".join(writes)])


@contextlib.contextmanager
def graceful(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    old, new = _pair(lab)
    with contextlib.ExitStack() as undo:
        if params.firewall_idle > 0:
            _firewall_fe(lab, params.firewall_idle, undo)
        with _move_vip(lab, old, new, block_new_ike=True, kind="graceful") as injected:
            yield injected


@contextlib.contextmanager
def graceful_noblock(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    old, new = _pair(lab)
    with _move_vip(lab, old, new, block_new_ike=False, kind="graceful-noblock") as injected:
        yield injected


@contextlib.contextmanager
def graceful_announce(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    old, new = _pair(lab)
    with _move_vip(lab, old, new, block_new_ike=True, kind="graceful-announce") as moved:
        yield replace(moved, t_back=_begin_announcing(lab, new))


@contextlib.contextmanager
def _standby_takes_over(lab: Lab, kind: str, old: str, t_fault: float, delay: float) -> Iterator[Injected]:
    """After the cluster's detection delay the standby takes the VIP and announces it; the
    user's cluster detects and moves by its own timers (``delay`` does not apply), and settles
    on one owner again once the fault is undone."""
    new = Topology.other_backend(old)
    if lab.backend.cluster is not None:
        taken = _until_held(lab, new, t_fault)
        yield Injected(kind, t_fault, old, new, taken)
        return
    _wait_until(t_fault + delay)
    taken, announce = take_vip(lab.nodes[new], lab.topology)
    try:
        yield Injected(kind, t_fault, old, new, taken)
    finally:
        announce.stop()


def _begin_announcing(lab: Lab, name: str) -> float:
    """``name``'s charon begins to initiate to fe from the VIP (start_action = start); when."""
    charon.announce(lab.nodes[name], lab.topology, lab.profile, lab.policy, lab.datapath)
    return time.monotonic()


@contextlib.contextmanager
def _standby_announces(
    lab: Lab, old: str, t_fault: float, params: FaultParams, began: float | None
) -> Iterator[Injected]:
    """After the cluster's detection delay the standby takes the VIP, its charon initiating to fe
    ``announce_early`` seconds before it has it (``began``: it already did, before the crash), or
    once it has it; ``t_back``: when it began. The user's cluster moves the VIP by its own
    timers: the standby begins once it holds it."""
    new = Topology.other_backend(old)
    if lab.backend.cluster is not None:
        taken = _until_held(lab, new, t_fault)
        yield Injected("takeover-announce", t_fault, old, new, taken, t_back=_begin_announcing(lab, new))
        return
    if began is None and params.announce_early > 0:
        _wait_until(t_fault + params.cluster_delay - params.announce_early)
        began = _begin_announcing(lab, new)
    _wait_until(t_fault + params.cluster_delay)
    taken, announce = take_vip(lab.nodes[new], lab.topology)
    try:
        yield Injected(
            "takeover-announce",
            t_fault,
            old,
            new,
            taken,
            t_back=began if began is not None else _begin_announcing(lab, new),
        )
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


def _halt(lab: Lab, name: str, undo: contextlib.ExitStack) -> None:
    """The node falls silent and dies, and ``undo`` learns how it comes back as a clean standby.
    A machine (a VM) is killed whole: its kernel vanishes with everything in it. A node on the
    harness's kernel loses its link and its charon is SIGKILLed."""
    node = lab.nodes[name]
    if node.machine is not None:
        node.machine.kill()
        undo.callback(_boot, lab, name)
        return
    undo.callback(lab.restart_charon, name)
    _cut_link(lab, node, undo)
    if lab.backend.cluster is None:
        undo.callback(release_vip, node, lab.topology)
    _kill_charon(lab, name)


def _cut_link(lab: Lab, node: Node, undo: contextlib.ExitStack) -> None:
    """Nothing in or out of the node's lab interface until ``undo`` runs: the lab's own node's
    link goes down; a user's host keeps its link, the harness's disruption table drops everything
    on it (harness.disrupt)."""
    if lab.backend.owns_nodes:
        node.run(["ip", "link", "set", "dev", node.lab_interface, "down"])
        undo.callback(node.run, ["ip", "link", "set", "dev", node.lab_interface, "up"])
        return
    node.run(["sh", "-c", disrupt.isolate(node.lab_interface, node.firewall)])
    undo.callback(_heal, node)


def _heal(node: Node) -> None:
    for argv in disrupt.heal(node.firewall):
        node.run(argv)


def _boot(lab: Lab, name: str) -> None:
    """A killed machine booted again as at bring-up (stand-ins, charon configured), without the VIP."""
    machine = lab.nodes[name].machine
    assert machine is not None
    machine.boot()
    lab.start_services(name)
    lab.restart_charon(name)
    lab.wait_services(name)


@contextlib.contextmanager
def crash(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    old, _ = _pair(lab)
    with contextlib.ExitStack() as undo:
        if lab.backend.cluster is not None:
            undo.callback(_until_one_owner, lab)
        t_fault = time.monotonic()
        _halt(lab, old, undo)
        with _standby_takes_over(lab, "crash", old, t_fault, params.cluster_delay) as injected:
            yield injected


@contextlib.contextmanager
def takeover_announce(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    old, new = _pair(lab)
    if lab.backend.cluster is not None and params.announce_early > 0:
        raise UsageError("announce_early needs the harness to move the VIP: your cluster moves it; set it to 0")
    with contextlib.ExitStack() as undo:
        began = None
        if params.announce_early > params.cluster_delay:  # a standby that initiates all along
            began = _begin_announcing(lab, new)
            _wait_until(began + params.announce_early - params.cluster_delay)
        if lab.backend.cluster is not None:
            undo.callback(_until_one_owner, lab)
        t_fault = time.monotonic()
        _halt(lab, old, undo)
        with _standby_announces(lab, old, t_fault, params, began) as injected:
            yield injected


@contextlib.contextmanager
def link_cut(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    old, _ = _pair(lab)
    old_node = lab.nodes[old]
    with contextlib.ExitStack() as undo:
        if lab.backend.cluster is not None:
            undo.callback(_until_one_owner, lab)
        t_fault = time.monotonic()
        if old_node.machine is not None:  # its cable pulled at the switch
            old_node.machine.unplug()
            undo.callback(old_node.machine.plug)
        else:
            _cut_link(lab, old_node, undo)
        undo.callback(charon.terminate, old_node, *VIP_CONNECTIONS)  # its SA with fe died with the link
        if lab.backend.cluster is None:
            release_vip(old_node, lab.topology)  # fenced: an isolated node gives up the cluster's VIP
        with _standby_takes_over(lab, "link-cut", old, t_fault, params.cluster_delay) as injected:
            yield injected


def _stop(lab: Lab, name: str) -> Callable[[], None]:
    """Freeze the node's IPsec, returning how it goes on: a machine stops whole (its kernel's
    datapath with it); elsewhere charon (and with it the userspace datapath) is SIGSTOPped."""
    machine = lab.nodes[name].machine
    if machine is not None:
        machine.stop()
        return machine.cont
    charon_process = lab.charons[name]
    charon_process.signal(signal.SIGSTOP)
    return lambda: charon_process.signal(signal.SIGCONT)


def _knock(lab: Lab, name: str, at: float) -> tuple[Process, Clock]:
    """fe knocks on ``name``'s own address from ``at`` (the harness's clock) on, a TCP SYN every
    RESUME_PROBE_S (harness/agents/knock.py), until its kernel answers: a paused VM first works
    through the packets that queued up for it. Started while the node is paused, so its own
    start costs nothing; fe's SYN to the node's own address is no traffic any policy protects.
    Returns the knocking and fe's clock to read its answer with."""
    clock = lab.fe.clock()
    knock = [
        *lab.fe.agent("knock"),
        "--target",
        lab.topology.address(name),
        "--at",
        f"{at - clock.monotonic_offset:.6f}",
    ]
    argv = [*knock, "--interval", f"{RESUME_PROBE_S:g}", "--within", f"{RESUME_DEADLINE_S:g}"]
    return lab.fe.spawn(argv, capture=True), clock


def _answered(knocking: Process, clock: Clock, name: str) -> float:
    """When (the harness's clock) the node answered the knocking ``_knock`` started."""
    moment = next(iter(knocking.lines()), "").strip()
    if not moment:
        raise LabError(f"{name} did not answer fe within {RESUME_DEADLINE_S:g} s of continuing after a freeze")
    return float(moment) + clock.monotonic_offset


@contextlib.contextmanager
def freeze(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    owner, _ = _pair(lab)
    if lab.nodes[owner].machine is None and lab.datapath == "kernel":
        raise UsageError(
            f"freeze on backend {lab.backend.name}: stopping charon leaves the host's kernel doing ESP, so "
            "traffic does not stop and there is no outage to measure; use crash, link-cut or reboot"
        )
    whole = lab.nodes[owner].machine is not None
    with contextlib.ExitStack() as undo:
        go_on = _stop(lab, owner)
        t_fault = time.monotonic()  # once the node confirmed the stop: the freeze lasts at least as long as asked
        try:
            knocking = _knock(lab, owner, at=t_fault + params.freeze) if whole else None
            if knocking is not None:
                undo.callback(knocking[0].stop)
            _wait_until(t_fault + params.freeze)
        finally:
            go_on()
        back = None if knocking is None else _answered(*knocking, owner)
        yield Injected("freeze", t_fault, owner, owner, t_back=back)


@contextlib.contextmanager
def _reboot(lab: Lab, kind: str) -> Iterator[Injected]:
    """The active back-end restarts without IPsec state and keeps the VIP: a machine is killed
    and booted again (it takes the VIP back once up, as a cluster node that restarted); elsewhere
    its charon is killed and started afresh. ``t_back``: when it was up again."""
    owner, _ = _pair(lab)
    node = lab.nodes[owner]
    t_fault = time.monotonic()
    with contextlib.ExitStack() as undo:
        if node.machine is not None:
            node.machine.kill()
            _boot(lab, owner)
            back, announce = take_vip(node, lab.topology)
            undo.callback(announce.stop)
        else:
            _kill_charon(lab, owner)
            lab.restart_charon(owner)
            back = time.monotonic()
        yield Injected(kind, t_fault, owner, owner, t_back=back)


@contextlib.contextmanager
def reboot(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    with _reboot(lab, "reboot") as injected:
        yield injected


@contextlib.contextmanager
def reboot_announce(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    with _reboot(lab, "reboot-announce") as injected:
        charon.announce(lab.nodes[injected.old_owner], lab.topology, lab.profile, lab.policy, lab.datapath)
        yield replace(injected, t_back=time.monotonic())  # it begins to initiate now


NETEM_SETTLE = 2.0
"""How many link delays pass between adding the delay and striking (after the probe's attempt
timeout: every attempt begun before the delay has ended by then, so the last ones before the
fault ran over the slow link), and between ending it and removing it."""


def _delay_link(node: Node, delay: float, undo: contextlib.ExitStack) -> None:
    """Everything ``node`` sends on its lab interface leaves ``delay`` seconds later (netem)
    until ``undo`` runs; refused in one line where the node's kernel has no netem."""
    interface = node.lab_interface
    try:
        node.run(["tc", "qdisc", "add", "dev", interface, "root", "netem", "delay", f"{delay * 1000:g}ms"])
    except CommandError as error:
        said = error.stderr.strip().splitlines()[-1] if error.stderr.strip() else "no output"
        raise UsageError(
            f"link_delay needs netem in {node.name}'s kernel, which refused it ({said}): "
            "use --backend uml, or link_delay 0"
        ) from None
    undo.callback(_undelay_link, node, delay)
    _wait_until(time.monotonic() + probe.ATTEMPT_TIMEOUT_S + NETEM_SETTLE * delay)


def _undelay_link(node: Node, delay: float) -> None:
    """The link's delay goes without losing what it holds: new packets leave at once, the queued
    ones on their schedule, and the qdisc goes once it is empty (deleting it at once would drop
    them, and every TCP attempt in flight would wait for a retransmission)."""
    interface = node.lab_interface
    node.run(["tc", "qdisc", "change", "dev", interface, "root", "netem", "delay", "0ms"])
    _wait_until(time.monotonic() + NETEM_SETTLE * delay)
    node.run(["tc", "qdisc", "del", "dev", interface, "root"])


@contextlib.contextmanager
def reauth(lab: Lab, params: FaultParams) -> Iterator[Injected]:
    owner, _ = _pair(lab)
    with contextlib.ExitStack() as undo:
        if params.link_delay > 0:
            _delay_link(lab.nodes[owner], params.link_delay, undo)
        t_fault = time.monotonic()
        charon.reauthenticate(lab.fe, strongswan.CONNECTION)
        yield Injected("reauth", t_fault, owner, owner)


Fault = Callable[[Lab, FaultParams], contextlib.AbstractContextManager[Injected]]
FAULTS: dict[str, Fault] = {
    "graceful": graceful,
    "graceful-noblock": graceful_noblock,
    "crash": crash,
    "freeze": freeze,
    "link-cut": link_cut,
    "reboot": reboot,
    "reboot-announce": reboot_announce,
    "takeover-announce": takeover_announce,
    "reauth": reauth,
    "graceful-announce": graceful_announce,
}


def fault(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise UsageError(f"unknown fault {name!r}: choose one of {', '.join(FAULTS)}") from None

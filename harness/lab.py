"""Brings a topology to life on a backend and always tears it down again.

A lab is: the backend's nodes (fe, be1, be2, dc and the switch), its policy's routing rules and
fail-closed guard on every node, one charon per node configured over vici (fresh random PSK per
lab), the service stand-ins on the back-ends and dc and, once every CHILD_SA of the policy is
installed, a lab ready for probes and faults. Every step registers its undo on an ExitStack, so a
failure, an exception or Ctrl-C at any point leaves nothing behind: the last undo, the backend's
destroy, kills every process of every node with the node itself (charon and the stand-ins are not
stopped one by one first). ``failover-lab up`` detaches a lab from its stack (it keeps running,
ownerless); ``down`` and ``clean`` remove it later.

Each lab's files live in its registry directory (mode 0700: sockets and logs are readable by
root only; the PSK is loaded over vici and never written).

Owns: lab lifecycle and status. Not: the registry, faults, probes or measurement.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import shlex
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness import charon, guard, policy, registry, sa, strongswan
from harness.backends import Backend, backend
from harness.charon import EventRecorder
from harness.errors import CharonError, CommandError, LabError, NodeLost, UsageError
from harness.node import Node, Process
from harness.timers import Profile
from harness.topology import BACKENDS as BACKEND_NODES
from harness.topology import DOMAIN_CONTROLLER, FRONT_END, NODES, STAND_INS, Topology, role_of

CHARON_STDERR = "charon.stderr"
START_TIMEOUT_S = 10.0
"""How long charon may take to open its vici socket."""


@dataclass
class Lab:
    """A running lab and the handles the harness holds on it."""

    topology: Topology
    backend: Backend
    profile: Profile
    nodes: Mapping[str, Node]
    directory: Path
    psk: str = field(repr=False)
    charons: dict[str, Process] = field(default_factory=dict)
    services: dict[str, Process] = field(default_factory=dict)
    policy: policy.Policy = policy.POLICIES[policy.DEFAULT]
    strongswan_version: str = ""
    events: EventRecorder | None = None
    """fe's SA events since the lab came up."""
    t_child_up: float = 0.0
    """When fe's first CHILD_SA was installed (monotonic)."""

    @property
    def fe(self) -> Node:
        return self.nodes[FRONT_END]

    @property
    def datapath(self) -> strongswan.Datapath:
        return self.backend.datapath

    def vip_owner(self) -> str | None:
        """The back-end that has the VIP configured right now (None while it is moving); with the
        user's cluster manager, the first that its ``owner`` command names."""
        return next((name for name in BACKEND_NODES if self.holds_vip(name)), None)

    def holds_vip(self, name: str) -> bool:
        """Whether back-end ``name`` holds the VIP: its address, or the cluster's ``owner`` says so."""
        node = self.nodes[name]
        cluster = self.backend.cluster
        if cluster is None:
            return self.topology.vip in addresses(node)
        return node.run(["sh", "-c", cluster.owner], check=False).returncode == 0

    def start_charon(self, name: str) -> None:
        """(Re)start charon on a node with no IPsec state: load the fail-closed guard, remove
        what a killed charon leaves behind (its socket; on the lab's own nodes also its PID
        file, routing rules and every kernel SA and policy; on a user's host only the SAs and
        policies between the lab's addresses), then exec charon (its stdout and stderr go to
        charon.stderr in the node's directory)."""
        node = self.nodes[name]
        guarded = guard.LOAD[node.firewall].format(node.workdir / guard.FILES[node.firewall])
        if self.backend.owns_nodes:
            table = strongswan.ROUTING_TABLE
            leftovers = (
                f"rm -f /run/charon.pid {node.vici_socket} "
                f"&& {{ ip rule del pref {table}; ip -6 rule del pref {table}; true; }} 2>/dev/null "
                "&& { ip xfrm state flush; ip xfrm policy flush; true; } 2>/dev/null"
            )
        else:
            forget = "; ".join(shlex.join(argv) for argv in strongswan.forget_lab_ipsec(self.topology, name))
            leftovers = f"rm -f {node.vici_socket} && {{ {forget}; true; }} 2>/dev/null"
        script = f"{guarded} && {leftovers} && exec {strongswan.CHARON} >>{node.workdir / CHARON_STDERR} 2>&1"
        self.charons[name] = node.spawn(
            ["sh", "-c", script], env={"STRONGSWAN_CONF": str(node.workdir / "strongswan.conf")}
        )

    def wait_charon(self, name: str) -> None:
        """Wait until charon on the node answers on its vici socket."""
        node, process = self.nodes[name], self.charons[name]
        for attempt in Retrying(
            retry=retry_if_exception_type(CharonError),
            wait=wait_fixed(0.005),
            stop=stop_after_delay(START_TIMEOUT_S),
            reraise=True,
        ):
            with attempt:
                if not process.alive():
                    raise LabError(f"{name}: charon exited at start-up: {last_words(node)}")
                node.vici(timeout=1).transport.close()

    def configure(self, name: str) -> None:
        """Load the PSK and the node's connection into its charon (fe initiates at once)."""
        charon.configure(self.nodes[name], self.topology, self.profile, self.policy, self.psk, self.datapath)

    def start_services(self, name: str) -> None:
        """Start the node's service stand-ins (the back-ends' and dc's; fe has none)."""
        stand_ins = STAND_INS.get(role_of(name))
        if stand_ins is not None:
            node = self.nodes[name]
            argv = [*node.agent("services"), "--node", name, "--vip", self.topology.vip, "--role", stand_ins]
            argv += ["--address", self.topology.address(name)]
            self.services[name] = node.spawn(argv, capture=True)

    def wait_services(self, name: str) -> None:
        """Until the node's stand-ins listen (they say ``ready``: a VM's Python takes a while)."""
        process = self.services.get(name)
        if process is None:
            return
        ready = threading.Event()

        def read() -> None:
            for line in process.lines():
                if line.strip() == "ready":
                    ready.set()
                    return

        threading.Thread(target=read, name=f"services-{name}", daemon=True).start()
        try:
            if not ready.wait(START_TIMEOUT_S):
                raise LabError(f"{name}: the service stand-ins did not start within {START_TIMEOUT_S:g} s")
        finally:
            process.close()  # no more of its output; it keeps running

    def restart_charon(self, name: str) -> None:
        """A fresh charon on the node, with no SA state, configured as at bring-up."""
        self.start_charon(name)
        self.wait_charon(name)
        self.configure(name)


def addresses(node: Node) -> list[str]:
    shown = json.loads(node.run(["ip", "-j", "-4", "addr", "show", "dev", node.lab_interface]).stdout or "[]")
    return [info["local"] for link in shown for info in link.get("addr_info", [])]


def last_words(node: Node) -> str:
    """The last line charon printed, else the last line of its log."""
    for name in (CHARON_STDERR, "charon.log"):
        result = node.run(["tail", "-n", "1", str(node.workdir / name)], check=False)
        if result.stdout.strip():
            return result.stdout.strip()
    return "no output"


@contextlib.contextmanager
def running(
    profile: Profile,
    backend_name: str = "netns",
    keep: bool = False,
    policy_name: str = policy.DEFAULT,
    inventory: Path | None = None,
    insecure_host_keys: bool = False,
) -> Iterator[Lab]:
    """A lab with every CHILD_SA of its policy installed, torn down when the block exits; with
    ``keep`` it is left running if the block succeeds (`failover-lab up`). ``inventory``: the
    user's hosts, for backend ssh."""
    chosen = policy.policy(policy_name)
    lab_backend = backend(backend_name, inventory, insecure_host_keys)
    if lab_backend.placement is not None:  # before the preflight, which would find the other lab's charon
        registry.refuse_hosts_in_use(lab_backend.placement)
    lab_backend.check()
    refuse_what_the_datapath_cannot_run(profile, lab_backend)
    with contextlib.ExitStack() as undo:
        state = registry.allocate(lab_backend.name, profile.name, chosen.name, inventory, lab_backend.placement)
        topology = state.topology
        undo.callback(registry.remove, lab_backend, topology.qualified)
        lab = _bring_up(lab_backend, topology, registry.directory(topology.qualified), profile, chosen, undo)
        yield lab
        if keep:
            assert lab.events is not None
            lab.events.close()
            dataclasses.replace(state, owner=None).save()
            undo.pop_all()


def _bring_up(
    lab_backend: Backend,
    topology: Topology,
    directory: Path,
    profile: Profile,
    chosen: policy.Policy,
    undo: contextlib.ExitStack,
) -> Lab:
    nodes = lab_backend.create(topology, directory)
    undo.callback(_close, nodes)
    lab = Lab(topology, lab_backend, profile, nodes, directory, psk=secrets.token_urlsafe(32), policy=chosen)
    for name in NODES:
        node = nodes[name]
        acquire = None if lab_backend.owns_nodes else strongswan.host_acquire_expires(node)
        conf = strongswan.strongswan_conf(node.workdir, profile, chosen, lab.datapath, node.vici_socket, acquire)
        node.put(node.workdir / "strongswan.conf", conf)
        node.put(
            node.workdir / guard.FILES[node.firewall],
            guard.guard_file(chosen, topology, name, node.firewall, node.lab_interface),
        )
        if lab.datapath == "libipsec":  # the kernel datapath takes ports in its traffic selectors
            _route_protected_ports(node, chosen, topology)
        lab.start_charon(name)
    for name in NODES:
        lab.start_services(name)
    for name in NODES:
        lab.wait_charon(name)
        lab.wait_services(name)
    lab.strongswan_version = charon.version(lab.fe)
    for name in lab_backend.wait_datapath(nodes):  # booted again: its charon and stand-ins went with it
        lab.start_charon(name)
        lab.start_services(name)
        lab.wait_charon(name)
        lab.wait_services(name)
    for name in (DOMAIN_CONTROLLER, *BACKEND_NODES):  # responders before the initiators that need them
        lab.configure(name)
    lab.events = EventRecorder(lab.fe)
    undo.callback(lab.events.close)
    started = time.monotonic()
    lab.configure(FRONT_END)
    if chosen.ipsec:
        lab.t_child_up = lab.events.wait_for("child", up=True, after=started, timeout=START_TIMEOUT_S).t
        for name in (FRONT_END, *BACKEND_NODES):
            _wait_children(nodes[name], strongswan.expected_children(chosen, name))
    else:
        lab.t_child_up = time.monotonic()
    return lab


def refuse_what_the_datapath_cannot_run(profile: Profile, lab_backend: Backend) -> None:
    """Before anything is built: a profile this backend's datapath cannot run as it says."""
    problem = strongswan.datapath_refuses(profile, lab_backend.datapath)
    if problem:
        raise UsageError(f"profile {profile.name} on {lab_backend.name}: {problem}")


def _route_protected_ports(node: Node, chosen: policy.Policy, topology: Topology) -> None:
    """The policy's per-port rules; a datapath that cannot express them refuses the policy
    rather than encrypting more or less than it says."""
    rules = policy.ip_rules(chosen, topology, node.name)
    if not rules:
        return
    try:
        node.run(["ip", "-batch", "-"], input="".join(f"rule add {rule}\n" for rule in rules))
    except CommandError as error:
        raise UsageError(
            f"policy {chosen.name} cannot be expressed on {node.name}: its `ip rule` does not take ports "
            f"(iproute2 and kernel 4.17 or newer needed): {error.stderr.strip()}; use all-traffic or none"
        ) from None


def _wait_children(node: Node, expected: int) -> None:
    """Wait until the node has ``expected`` CHILD_SAs installed."""
    for attempt in Retrying(wait=wait_fixed(0.01), stop=stop_after_delay(START_TIMEOUT_S), reraise=True):
        with attempt:
            installed = sa.installed_children(charon.sas(node))
            if len(installed) < expected:
                names = ", ".join(sorted(child.name for child in installed)) or "none"
                raise LabError(
                    f"{node.name}: {len(installed)} of {expected} CHILD_SAs up after {START_TIMEOUT_S:.0f} s "
                    f"(installed: {names}; charon said: {_complaints(node)})"
                )


def _complaints(node: Node) -> str:
    """The last lines of the node's charon log that report a failure (the log goes with the lab)."""
    found = node.run(["grep", "-E", "-i", "-h", "unable|failed|error", str(node.workdir / "charon.log")], check=False)
    lines = [line.split(" ", 1)[-1] for line in found.stdout.strip().splitlines()[-3:]]
    return " / ".join(lines) or "nothing about it"


def _close(nodes: Mapping[str, Node]) -> None:
    for node in nodes.values():
        node.close()


def status(state: registry.State) -> dict[str, Any]:
    """Nodes, VIP owner and SAs of a registered lab, read live from the nodes."""
    topology = state.topology
    report: dict[str, Any] = {
        "name": topology.name,
        "profile": state.profile,
        "policy": state.policy,
        "backend": state.backend,
        "owner": None if state.owner is None else state.owner.pid,
        "owner_alive": state.owner is not None and state.owner.alive(),
        "vip": topology.vip,
        "nodes": {},
    }
    try:
        lab_backend = state.lab_backend()
        nodes = lab_backend.nodes(topology, registry.directory(topology.qualified))
    except LabError as error:
        report["problem"] = str(error)
        return report
    kernel = lab_backend.datapath == "kernel"
    try:
        for name in NODES:
            report["nodes"][name] = _node_status(nodes[name], topology, kernel)
    finally:
        _close(nodes)
    return report


def _node_status(node: Node, topology: Topology, kernel: bool) -> dict[str, Any]:
    """What a node's charon holds; on the kernel datapath also what its kernel does ESP with."""
    entry: dict[str, Any] = {"address": topology.address(node.name)}
    try:
        held = charon.sas(node)
        entry["charon"] = "running"
    except CharonError:
        held, entry["charon"] = [], "not running"
    except NodeLost:
        return {**entry, "charon": "node gone", "sas": []}
    entry["sas"] = [{"state": ike.state, "remote": ike.remote_host, "children": len(ike.children)} for ike in held]
    if kernel:
        state = sa.parse_xfrm_state(node.run(["ip", "xfrm", "state"]).stdout)
        entry["kernel_sas"] = [{"src": k.src, "dst": k.dst, "spi": k.spi, "mode": k.mode} for k in state]
    if node.name in BACKEND_NODES:
        entry["vip"] = topology.vip in addresses(node)
    return entry

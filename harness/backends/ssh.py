"""The ssh backend: a lab on the user's own hosts, named by an SSH inventory (harness.inventory).

``check`` runs the preflight (harness.preflight: one line per problem, nothing touched) and takes
the datapath every host offers. ``create`` connects to every host (harness.ssh_hosts), copies the
node agent into ``/run/failover-lab/<lab>/agents`` and starts it there as a daemon on a unix
socket in the lab's folder (0700); it outlives the SSH session (a lab left running by `up`) and
owns every process of the lab on its host. Every link to it is an SSH channel running the agent's
relay to that socket, so commands, processes, files and vici travel inside the SSH connection. The
hosts keep their addresses, interfaces and VIP: the lab takes them as they are (a Placement).

Each host runs a charon of the harness's own (README: why), with its vici socket in the node's
folder. At creation every host gets its heal file (``heal.json``: the commands that leave it as it
was): its agent kills every process it started (charon, the stand-ins, captures) and exits; the
guard, the disruption table and the lab's SAs and policies (only those between the lab's
addresses) are removed, the VIP goes back to the back-end that held it when the lab came up, and
the lab's folder is removed. ``destroy`` runs it. A dead-man switch started on every host with
the lab (harness/agents/deadman.py) runs it too if, while a fault runs (``unattended``), the
harness stops touching its heartbeat for the inventory's ``deadman_s``: a harness killed
mid-fault leaves no host cut off.

Owns: the lab's life on SSH hosts. Not: SSH and host keys (harness.ssh_hosts), the checks
(harness.preflight), what runs in the lab (harness.lab).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TypeVar

from harness import disrupt, guard, preflight, ssh_hosts, strongswan
from harness.agent import AGENT_SCRIPT, AgentNode
from harness.errors import LabError, UsageError
from harness.inventory import Inventory
from harness.node import Firewall, Node
from harness.strongswan import Datapath
from harness.topology import BACKENDS, NODES, PREFIX, Placement, Topology
from harness.wire import CapturePoint

SETUP_ALLOWANCE_S = 0.65
"""As on uml until measured on real hosts: their processes start slower than in a namespace, and
the test hosts this is measured on are User-mode Linux VMs, which now and then stall."""
BEATS_PER_DEADLINE = 5
"""Heartbeats the harness sends each host per dead-man deadline (one lost beat is harmless)."""
HEAL_FILE, HEARTBEAT, DEADMAN_LOG = "heal.json", "heartbeat", "deadman.log"
FIREWALLS: tuple[Firewall, ...] = ("nft", "iptables-legacy")
"""Whichever the lab used, both are healed."""
Result = TypeVar("Result")


class SshBackend:
    """Labs on the hosts of one inventory."""

    name = "ssh"
    setup_allowance_s = SETUP_ALLOWANCE_S
    catch_up_s = 0.0
    owns_nodes = False

    def __init__(self, inventory: Inventory, insecure_host_keys: bool = False) -> None:
        self.inventory = inventory
        self.insecure_host_keys = insecure_host_keys
        self.placement: Placement | None = inventory.placement()
        self.cluster = inventory.manager()
        self.datapath: Datapath = "kernel"
        self.firewalls: dict[str, Firewall] = dict.fromkeys(NODES, "nft")
        self._connections: dict[str, ssh_hosts.Connection] = {}

    def wire_interface(self, topology: Topology) -> str:
        raise UsageError("a lab on SSH hosts has no switch of its own: its wire is captured on every host")

    def capture_points(self, topology: Topology) -> list[CapturePoint]:
        """What every host sends on its lab interface, its SSH connection left out."""
        return [
            CapturePoint(name, host.lab_interface, outgoing=True, excluding=f"tcp port {host.port}")
            for name, host in self.inventory.hosts.items()
        ]

    def check(self) -> None:
        """The preflight: every problem of every host, one line each, before anything is touched."""
        report = preflight.check(self.inventory, self.insecure_host_keys)
        if report.problems:
            raise UsageError("\n".join(report.problems))
        self.datapath = "libipsec" if report.datapath == "libipsec" else "kernel"
        for role, verdict in report.verdicts.items():
            self.firewalls[role] = "nft" if verdict.firewall == "nft" else "iptables-legacy"

    def create(self, topology: Topology, labdir: Path) -> Mapping[str, Node]:
        """Connect, copy the agents and start one agent daemon per host; the VIP stays where it is."""

        def start(name: str) -> AgentNode:
            connection = self._connection(name)
            folder = _folder(topology.qualified)
            heal = [argv for firewall in FIREWALLS for argv in disrupt.heal(firewall)]  # a fault of a lost harness
            connection.exec(["sh", "-c", "; ".join(f"{shlex.join(argv)} >/dev/null 2>&1" for argv in heal) + "; true"])
            agents = ssh_hosts.install_agents(connection, folder)
            ssh_hosts.start_agent(connection, agents, folder / name / "agent.sock")
            node = self._node(name, folder, agents)
            node.link.request({"op": "ping"})
            return node

        nodes = dict(zip(NODES, _each(start, NODES), strict=True))
        home = _vip_holder(nodes, topology)

        def watch(name: str) -> None:
            node = nodes[name]
            interface = self.inventory.hosts[name].lab_interface
            commands = heal_commands(topology, name, node.workdir, interface, None if self.cluster else home)
            acquire = strongswan.host_acquire_expires(node)  # charon writes it at start: it goes back
            commands.insert(-2, ["sysctl", "-q", "-w", f"{strongswan.ACQUIRE_EXPIRES}={acquire}"])
            node.put(node.workdir / HEAL_FILE, json.dumps(commands))
            switch = [
                *node.agent("deadman"), "--heartbeat", str(node.workdir / HEARTBEAT),
                "--timeout", str(self.inventory.deadman_s), "--heal", str(node.workdir / HEAL_FILE),
                "--log", str(node.workdir / DEADMAN_LOG),
            ]  # fmt: skip
            node.run(switch)

        _each(watch, NODES)
        return nodes

    @contextlib.contextmanager
    def unattended(self, topology: Topology, nodes: Mapping[str, Node]) -> Iterator[None]:
        """The dead-man switch of every host (started with the lab) armed for the block (a fault):
        if the harness stops beating for the inventory's ``deadman_s`` (killed, or its machine lost
        the network), every host runs its heal file. Leaving the block disarms them."""
        timeout = self.inventory.deadman_s
        for node in nodes.values():
            node.put(node.workdir / HEARTBEAT, "")
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(timeout / BEATS_PER_DEADLINE):
                for node in nodes.values():
                    with contextlib.suppress(LabError, OSError):
                        node.put(node.workdir / HEARTBEAT, "")

        beating = threading.Thread(target=beat, name="deadman-heartbeat", daemon=True)
        beating.start()
        try:
            yield
        finally:
            stop.set()
            beating.join()
            for node in nodes.values():
                node.run(["rm", "-f", str(node.workdir / HEARTBEAT)], check=False)

    def nodes(self, topology: Topology, labdir: Path) -> Mapping[str, Node]:
        folder = _folder(topology.qualified)
        return {name: self._node(name, folder, folder / "agents") for name in NODES}

    def wait_datapath(self, nodes: Mapping[str, Node]) -> list[str]:
        """The hosts' kernels are up and running."""
        return []

    def destroy(self, qualified: str) -> None:
        """Every host as it was before the lab (harmless when nothing of the lab is left); a host
        that cannot be reached is named, with what is left on it."""
        folder = _folder(qualified)
        topology = Topology(qualified.removeprefix(f"{PREFIX}-"), 0, self.placement)

        def heal(name: str) -> str | None:
            try:
                connection = self._connection(name)
            except UsageError as error:
                return f"{error} (left on it: {folder})"
            workdir = folder / name
            heal_file = shlex.quote(str(workdir / HEAL_FILE))
            deadman = shlex.join([ssh_hosts.PYTHON, "-I", "-S", str(folder / "agents" / "deadman.py")])
            code, _, _ = connection.exec(
                ["sh", "-c", f"rm -f {shlex.quote(str(workdir / HEARTBEAT))}; "
                 f"[ -f {heal_file} ] && {deadman} --heal {heal_file} --now"]
            )  # fmt: skip
            if code == 0:  # the heal file did it all
                return None
            # a lab that failed before its heal file was written: the same commands, the VIP left as it is
            commands = heal_commands(topology, name, workdir, self.inventory.hosts[name].lab_interface, None)
            script = "; ".join(f"{shlex.join(argv)} >/dev/null 2>&1" for argv in commands) + "; true"
            connection.exec(["sh", "-c", script])
            return None

        problems = [problem for problem in _each(heal, NODES) if problem]
        self.close()
        if problems:
            raise LabError("not every host could be cleaned: " + "; ".join(problems))

    def leftovers(self) -> set[str]:
        """The labs of ours whose folder is on any of the hosts (a host that cannot be reached
        is a UsageError naming it)."""

        def listed(name: str) -> set[str]:
            code, out, _ = self._connection(name).exec(["sh", "-c", f"ls -d {ssh_hosts.REMOTE_ROOT}/{PREFIX}-*"])
            return {PurePosixPath(line).name for line in out.split()} if code == 0 else set()

        return set().union(*_each(listed, tuple(self.inventory.hosts)))

    def close(self) -> None:
        """Close every SSH connection (the hosts keep what runs there)."""
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _connection(self, name: str) -> ssh_hosts.Connection:
        connection = self._connections.get(name)
        if connection is None:
            connection = ssh_hosts.connect(self.inventory.hosts[name], self.inventory, self.insecure_host_keys)
            self._connections[name] = connection
        return connection

    def _node(self, name: str, folder: PurePosixPath, agents: PurePosixPath) -> AgentNode:
        workdir = folder / name
        return ssh_hosts.agent_node(
            self._connection(name),
            name,
            workdir,
            agents,
            workdir / "charon.vici",
            agent_socket=workdir / "agent.sock",
            lab_interface=self.inventory.hosts[name].lab_interface,
            firewall=self.firewalls[name],
        )


def heal_commands(
    topology: Topology, name: str, workdir: PurePosixPath, lab_interface: str, home: str | None
) -> list[list[str]]:
    """What leaves host ``name`` as it was before the lab (harness/agents/deadman.py runs them
    in order, each whatever the one before returned): its agent shuts down (every process of
    the lab with it), the guard and the disruption table go (whichever firewall was used), the
    lab's SAs and policies, the VIP back where it was (``home``; None: the user's cluster manager
    holds it, and settles it once the host is back on the wire), and the lab's folder."""
    agent = [ssh_hosts.PYTHON, "-I", "-S", str(workdir.parent / "agents" / AGENT_SCRIPT)]
    commands = [
        [*agent, "--shutdown", str(workdir / "agent.sock")],
        *(argv for firewall in FIREWALLS for argv in guard.unload(firewall, lab_interface)),
        *(argv for firewall in FIREWALLS for argv in disrupt.heal(firewall)),
        *strongswan.forget_lab_ipsec(topology, name),
    ]
    if name == home:
        commands += [
            ["ip", "addr", "replace", topology.vip_with_prefix, "dev", lab_interface],
            ["arping", "-q", "-U", "-c", "1", "-I", lab_interface, "-s", topology.vip, topology.vip],
        ]
    elif home is not None and name in BACKENDS:
        commands.append(["ip", "addr", "del", topology.vip_with_prefix, "dev", lab_interface])
    return [*commands, ["rm", "-rf", str(workdir.parent)], ["rmdir", str(ssh_hosts.REMOTE_ROOT)]]


def _vip_holder(nodes: Mapping[str, Node], topology: Topology) -> str:
    """The back-end that holds the VIP now (the preflight saw exactly one)."""
    for name in BACKENDS:
        node = nodes[name]
        shown = node.run(["ip", "-o", "-4", "addr", "show", "dev", node.lab_interface]).stdout
        if f" {topology.vip}/" in shown:
            return name
    raise LabError(f"no back-end holds the VIP {topology.vip} any more (it did at the preflight)")


def _folder(qualified: str) -> PurePosixPath:
    return ssh_hosts.REMOTE_ROOT / qualified


def _each(work: Callable[[str], Result], names: tuple[str, ...]) -> list[Result]:
    """``work(name)`` for every host at once, in the order of ``names``."""
    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(work, names))

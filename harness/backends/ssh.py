"""The ssh backend: a lab on the user's own hosts, named by an SSH inventory (harness.inventory).

``check`` runs the preflight (harness.preflight: one line per problem, nothing touched) and takes
the datapath every host offers. ``create`` connects to every host (harness.ssh_hosts), copies the
node agent into ``/run/failover-lab/<lab>/agents`` and starts it there as a daemon on a unix
socket in the lab's folder (0700); it outlives the SSH session (a lab left running by `up`) and
owns every process of the lab on its host. Every link to it is an SSH channel running the agent's
relay to that socket, so commands, processes, files and vici travel inside the SSH connection. The
hosts keep their addresses, interfaces and VIP: the lab takes them as they are (a Placement).

Each host runs a charon of the harness's own (README: why), with its vici socket in the node's
folder. ``destroy`` leaves a host as it was: its agent kills every process it started (charon,
the stand-ins, captures) and exits; the guard, the disruption table and the lab's SAs and policies
(only those between the lab's addresses) are removed, and so is the lab's folder.

Owns: the lab's life on SSH hosts. Not: SSH and host keys (harness.ssh_hosts), the checks
(harness.preflight), what runs in the lab (harness.lab).
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TypeVar

from harness import disrupt, guard, preflight, ssh_hosts, strongswan
from harness.agent import AgentNode
from harness.errors import LabError, UsageError
from harness.inventory import Inventory
from harness.node import Firewall, Node
from harness.strongswan import Datapath
from harness.topology import NODES, PREFIX, Placement, Topology

SETUP_ALLOWANCE_S = 0.3
"""As on uml until measured on real hosts: their processes start slower than in a namespace."""
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
        self.datapath: Datapath = "kernel"
        self.firewalls: dict[str, Firewall] = dict.fromkeys(NODES, "nft")
        self._connections: dict[str, ssh_hosts.Connection] = {}

    def wire_interface(self, topology: Topology) -> str:
        raise UsageError("the ssh backend runs up, status and down so far: faults and measurements come next")

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
            agents = ssh_hosts.install_agents(connection, folder)
            ssh_hosts.start_agent(connection, agents, folder / name / "agent.sock")
            node = self._node(name, folder, agents)
            node.link.request({"op": "ping"})
            return node

        return dict(zip(NODES, _each(start, NODES), strict=True))

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
            if _agent_answers(connection, folder / name / "agent.sock"):
                node = self._node(name, folder, folder / "agents")
                with contextlib.suppress(LabError, OSError):
                    node.link.request({"op": "shutdown"})
                node.close()
            host = self.inventory.hosts[name]
            firewalls: tuple[Firewall, ...] = ("nft", "iptables-legacy")  # whichever the lab used: both go
            commands = [
                *(argv for firewall in firewalls for argv in guard.unload(firewall, host.lab_interface)),
                *(argv for firewall in firewalls for argv in disrupt.heal(firewall)),
                *strongswan.forget_lab_ipsec(topology, name),
                ["rm", "-rf", str(folder)],
                ["rmdir", str(ssh_hosts.REMOTE_ROOT)],  # gone when nothing else of ours is there
            ]
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


def _folder(qualified: str) -> PurePosixPath:
    return ssh_hosts.REMOTE_ROOT / qualified


def _each(work: Callable[[str], Result], names: tuple[str, ...]) -> list[Result]:
    """``work(name)`` for every host at once, in the order of ``names``."""
    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(work, names))


def _agent_answers(connection: ssh_hosts.Connection, socket: PurePosixPath) -> bool:
    code, _, _ = connection.exec(["test", "-S", str(socket)])
    return code == 0

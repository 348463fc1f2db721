"""Network-namespace backend: every node is a namespace on this host, the switch is a bridge in
a namespace of its own, so nothing of the lab lives in the root namespace.

Each namespace runs the node agent (harness/agents/node_agent.py), started once when the node is
created through ``ip netns exec`` (which gives it a private mount namespace) with the node's own
run directory bind-mounted on ``/run``: every command and process the agent starts inherits both,
so each charon finds its compiled-in PID file and default vici socket in a directory of its own,
as in a container. The harness reaches the agent on a unix socket in the node's directory (mode
0700, root only): nothing on the lab wire, nothing a fault can cut. The agent dies with the
namespace; the mount disappears with it; nothing is mounted on the host.

Owns: creating and destroying namespaces, veths and the bridge, and starting their agents.
Not: what runs on the nodes (harness.lab), the Node contract (harness.agent).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from tenacity import Retrying, retry, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

from harness import strongswan, timers
from harness.agent import AGENT_SCRIPT, AgentNode
from harness.errors import CommandError, LabError, UsageError
from harness.inventory import ClusterManager
from harness.node import Node
from harness.strongswan import Datapath
from harness.topology import FIRST_OWNER, NODES, PREFIX, Placement, Topology
from harness.wire import CapturePoint

AGENTS = PurePosixPath(Path(__file__).resolve().parent.parent / "agents")
SWITCH = "sw"
BRIDGE = "br0"
WIRE_INTERFACE = BRIDGE
"""The bridge in the switch namespace: every frame of the lab crosses it."""
PRIVATE_RUN = 'mount --bind "$0/run" /run && exec "$@"'
AGENT_SOCKET = "agent.sock"
AGENT_LOG = "agent.log"
AGENT_START_S = 5.0
"""How long a fresh agent may take to listen."""
NODE_ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
"""The environment a node's agent (and so every command on the node) starts with."""


def agent_node(name: str, workdir: Path) -> AgentNode:
    """The node whose agent listens in ``workdir``."""

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(str(workdir / AGENT_SOCKET))
        except OSError:
            sock.close()
            raise
        return sock

    return AgentNode(name, PurePosixPath(workdir), connect, [sys.executable, "-I"], AGENTS)


def start_agent(netns: str, workdir: Path) -> None:
    """Start the node's agent in its namespace, detached from this process (``setsid --fork``:
    it lives as long as the namespace, also after a `failover-lab up` exits, and the host's init
    reaps it and what it started once the namespace is destroyed)."""
    argv = [
        "setsid", "--fork", "ip", "netns", "exec", netns, "sh", "-c", PRIVATE_RUN, str(workdir),
        sys.executable, "-I", str(AGENTS / AGENT_SCRIPT), "--listen", f"unix:{workdir / AGENT_SOCKET}",
    ]  # fmt: skip
    with open(workdir / AGENT_LOG, "ab") as log:
        subprocess.run(argv, env=NODE_ENVIRONMENT, stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True)


def wait_for_agent(workdir: Path) -> None:
    """Wait until the agent accepts connections on its socket."""
    for attempt in Retrying(
        retry=retry_if_exception_type(OSError),
        wait=wait_fixed(0.002),
        stop=stop_after_delay(AGENT_START_S),
        reraise=True,
    ):
        with attempt, socket.socket(socket.AF_UNIX) as probe:
            probe.connect(str(workdir / AGENT_SOCKET))


def namespace(topology: Topology, node: str) -> str:
    return f"{topology.qualified}-{node}"


def ip_batch(lines: Sequence[str], netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    completed = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if completed.returncode != 0:
        raise CommandError(netns or "host", argv, completed.returncode, completed.stderr)


def _namespaces() -> list[str]:
    if shutil.which("ip") is None:  # no iproute2 (e.g. the harness container): no namespaces of ours
        return []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(f"{PREFIX}-")]


def _pids(netns: str) -> list[int]:
    listed = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
    return [int(pid) for pid in listed.split()]


def _running(pid: int) -> bool:
    """Whether the process still runs (an exiting process has left its namespace but may not be
    a zombie yet; a zombie waits only for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_until_gone(netns_names: tuple[str, ...]) -> list[int]:
    """SIGKILL every process in the namespaces until none is left in them and every one killed
    has finished exiting; returns the survivors after the deadline."""
    killed: set[int] = set()

    @retry(
        retry=retry_if_result(bool),
        wait=wait_fixed(0.005),
        stop=stop_after_delay(5),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else [],
    )
    def sweep() -> list[int]:
        found = [pid for netns in netns_names for pid in _pids(netns)]
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.update(found)
        return sorted(set(found) | {pid for pid in killed if _running(pid)})

    return sweep()


class NetnsBackend:
    """Labs as network namespaces of this host."""

    name = "netns"
    datapath: Datapath = "libipsec"
    setup_allowance_s = timers.SETUP_ALLOWANCE_S
    catch_up_s = 0.0
    owns_nodes = True
    cluster: ClusterManager | None = None
    placement: Placement | None = None

    def wire_interface(self, topology: Topology) -> str:
        return WIRE_INTERFACE

    def capture_points(self, topology: Topology) -> list[CapturePoint]:
        return [CapturePoint(SWITCH, self.wire_interface(topology))]

    def unattended(self, topology: Topology, nodes: Mapping[str, Node]) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def check(self) -> None:
        """Refuse to start where namespaces cannot work, naming what to install or use instead."""
        self._check_host()
        strongswan.check_installed()

    def _check_host(self) -> None:
        if os.geteuid() != 0:
            raise UsageError("the netns backend needs root (network namespaces): run as root, e.g. with sudo")
        missing = [tool for tool in ("ip", "nft", "tcpdump", "arping") if shutil.which(tool) is None]
        if missing:
            raise UsageError(f"missing {', '.join(missing)}: apt-get install iproute2 nftables tcpdump iputils-arping")
        if not os.path.exists("/dev/net/tun"):
            raise UsageError("/dev/net/tun is missing: the userspace IPsec datapath needs the TUN device")

    def nodes(self, topology: Topology, labdir: Path) -> dict[str, AgentNode]:
        """The lab's nodes (switch included) as Node objects; creates nothing."""
        return {name: agent_node(name, labdir / name) for name in (SWITCH, *NODES)}

    def create(self, topology: Topology, labdir: Path) -> dict[str, AgentNode]:
        """Build the namespaces, the bridge and one veth per node, start every node's agent; the
        VIP starts on be1."""
        for node in (SWITCH, *NODES):
            (labdir / node).mkdir(mode=0o700)
            (labdir / node / "run").mkdir(mode=0o700)
        ip_batch([f"netns add {namespace(topology, n)}" for n in (SWITCH, *NODES)])
        lines = [
            f"link add {BRIDGE} type bridge",
            f"link set {BRIDGE} addrgenmode none",
            f"link set {BRIDGE} up",
        ]
        for node in NODES:
            lines += [
                f"link add {node} type veth peer name eth0 netns {namespace(topology, node)}",
                f"link set {node} addrgenmode none",
                f"link set {node} master {BRIDGE} up",
            ]
        ip_batch(lines, namespace(topology, SWITCH))
        for node in NODES:
            lines = [
                "link set lo up",
                "link set eth0 addrgenmode none",
                "link set eth0 up",
                f"addr add {topology.address(node)}/{topology.prefixlen} dev eth0",
            ]
            if node == FIRST_OWNER:
                lines.append(f"addr add {topology.vip}/32 dev eth0")
            ip_batch(lines, namespace(topology, node))
        for name in (SWITCH, *NODES):
            start_agent(namespace(topology, name), labdir / name)
        for name in (SWITCH, *NODES):
            try:
                wait_for_agent(labdir / name)
            except OSError as error:
                raise LabError(f"{name}: its agent did not start ({error}); see {labdir / name / AGENT_LOG}") from None
        return self.nodes(topology, labdir)

    def wait_datapath(self, nodes: Mapping[str, Node]) -> list[str]:
        """libipsec installs SAs as soon as charon runs."""
        return []

    def destroy(self, qualified: str) -> None:
        destroy_namespaces(qualified)

    def leftovers(self) -> set[str]:
        return namespaced_labs()


def destroy_namespaces(qualified: str) -> None:
    """Kill every process in the lab's namespaces, then delete them (veths, taps and bridges go
    too). A lab of VMs dies the same way: each VM is processes in its switch's namespace."""
    destroy_namespaces_named(tuple(n for n in _namespaces() if n.rsplit("-", 1)[0] == qualified))


def destroy_namespaces_named(names: tuple[str, ...]) -> None:
    """Kill every process in these namespaces, then delete them."""
    survivors = _kill_until_gone(names)
    if survivors:
        raise LabError(f"processes {survivors} in {', '.join(names)} do not die; kill them by hand")
    for netns in names:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def namespaced_labs() -> set[str]:
    """The qualified names of every lab of ours that has namespaces on this host."""
    return {n.rsplit("-", 1)[0] for n in _namespaces()}

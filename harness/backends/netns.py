"""Network-namespace backend: every node is a namespace on this host, the switch is a bridge in
a namespace of its own, so nothing of the lab lives in the root namespace.

Every command and process of a node runs through ``ip netns exec`` (which gives it a private
mount namespace) with the node's own run directory bind-mounted on ``/run``: each charon finds
its compiled-in PID file and default vici socket in a directory of its own, as in a container.
The mount disappears with the process; nothing is mounted on the host.

Owns: creating and destroying namespaces, veths and the bridge, and the Node contract on them.
Not: what runs on the nodes (harness.lab).
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

import vici
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from harness import strongswan
from harness.errors import CommandError, LabError, UsageError
from harness.node import LocalProcess, Result, checked
from harness.topology import BACKENDS, NODES, PREFIX, Topology

AGENTS = Path(__file__).resolve().parent.parent / "agents"
SWITCH = "sw"
BRIDGE = "br0"
WIRE_INTERFACE = BRIDGE
"""The bridge in the switch namespace: every frame of the lab crosses it."""
PRIVATE_RUN = 'mount --bind "$0/run" /run && exec "$@"'


class NetnsNode:
    """A lab node that is a network namespace of this host."""

    def __init__(self, name: str, namespace: str, workdir: Path) -> None:
        self.name = name
        self.namespace = namespace
        self.workdir = PurePosixPath(workdir)
        self._dir = workdir

    def _argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, "sh", "-c", PRIVATE_RUN, str(self.workdir), *argv]

    def run(self, argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30) -> Result:
        completed = subprocess.run(self._argv(argv), input=input, capture_output=True, text=True, timeout=timeout)
        result = Result(tuple(argv), completed.returncode, completed.stdout, completed.stderr)
        return checked(self.name, result, check)

    def spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, capture: bool = False
    ) -> LocalProcess:
        popen = subprocess.Popen(
            self._argv(argv),
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        return LocalProcess(self.name, argv, popen)

    def put(self, path: PurePosixPath, data: str, mode: int = 0o600) -> None:
        target = Path(path)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "w") as file:
            file.write(data)
        os.chmod(target, mode)

    def vici(self, timeout: float = 10) -> vici.Session:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(str(self._dir / "run" / "charon.vici"))
        return vici.Session(sock)

    def agent(self, name: str) -> list[str]:
        return [sys.executable, "-I", str(AGENTS / f"{name}.py")]


def namespace(topology: Topology, node: str) -> str:
    return f"{topology.qualified}-{node}"


def _ip_batch(lines: Sequence[str], netns: str | None = None) -> None:
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


@retry(
    retry=retry_if_result(bool),
    wait=wait_fixed(0.005),
    stop=stop_after_delay(5),
    retry_error_callback=lambda state: state.outcome.result() if state.outcome else [],
)
def _kill_until_empty(netns_names: tuple[str, ...]) -> list[int]:
    """SIGKILL every process in the namespaces until none is left; returns the survivors."""
    remaining = [pid for netns in netns_names for pid in _pids(netns)]
    for pid in remaining:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return remaining


class NetnsBackend:
    """Labs as network namespaces of this host."""

    name = "netns"

    def wire_interface(self, topology: Topology) -> str:
        return WIRE_INTERFACE

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

    def nodes(self, topology: Topology, labdir: Path) -> dict[str, NetnsNode]:
        """The lab's nodes (switch included) as Node objects; creates nothing."""
        return {node: NetnsNode(node, namespace(topology, node), labdir / node) for node in (SWITCH, *NODES)}

    def create(self, topology: Topology, labdir: Path) -> dict[str, NetnsNode]:
        """Build the namespaces, the bridge and one veth per node; the VIP starts on be1."""
        for node in (SWITCH, *NODES):
            (labdir / node).mkdir(mode=0o700)
            (labdir / node / "run").mkdir(mode=0o700)
        _ip_batch([f"netns add {namespace(topology, n)}" for n in (SWITCH, *NODES)])
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
        _ip_batch(lines, namespace(topology, SWITCH))
        for node in NODES:
            lines = [
                "link set lo up",
                "link set eth0 addrgenmode none",
                "link set eth0 up",
                f"addr add {topology.address(node)}/{topology.prefixlen} dev eth0",
            ]
            if node == BACKENDS[0]:
                lines.append(f"addr add {topology.vip}/32 dev eth0")
            _ip_batch(lines, namespace(topology, node))
        return self.nodes(topology, labdir)

    def destroy(self, qualified: str) -> None:
        """Kill every process in the lab's namespaces, then delete them (veths and bridge go too)."""
        names = tuple(n for n in _namespaces() if n.rsplit("-", 1)[0] == qualified)
        survivors = _kill_until_empty(names)
        if survivors:
            raise LabError(f"processes {survivors} in {', '.join(names)} do not die; kill them by hand")
        for netns in names:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)

    def leftovers(self) -> set[str]:
        """The qualified names of every lab of ours that has namespaces on this host."""
        return {n.rsplit("-", 1)[0] for n in _namespaces()}

"""User-mode Linux backend: every node (fe, be1, be2, dc) is a virtual machine with a Linux kernel of
its own, so IPsec runs on the kernel datapath (XFRM: transport mode, raw ESP, trap policies) even
where the host's kernel has no ESP. The root of each VM is the host's / through hostfs, read-only;
its directory on the host is mounted read-write at the same path (config, logs). lab/uml/init.sh is
its PID 1.

Each lab's switch is a network namespace (``flab-<lab>-sw``) with two bridges: ``br0``, the lab wire
(one tap per VM, its eth0; captured as on every backend), and ``mgmt0``, the management network
(another tap per VM, its mgmt0, 198.19.254.0/24 in every lab: the namespace keeps it private). The
node agent inside each VM listens on its management address only; the harness reaches it through
the switch's own agent (a host process in that namespace), which relays one TCP connection per VM.
Nothing of the agent is on the lab wire, in a capture, or cut by a fault. Every VM is processes of
the switch's namespace, so destroying the namespace's processes destroys the lab.

A VM is a Machine: crash kills it whole (SIGKILL of its process group: its kernel vanishes),
freeze pauses it whole through its console (uml_mconsole stop/go, from the switch's namespace),
reboot kills it and boots it again. Its clocks are its own (Node.clock maps them).

Owns: the switch namespace, the taps, booting and powering the VMs. Not: what runs in them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import shutil
import signal
import subprocess
import threading
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from tenacity import Retrying, retry_if_exception_type, retry_if_not_exception_type, stop_after_delay, wait_fixed

from harness import strongswan
from harness.agent import AGENT_SCRIPT, AgentNode, ByteStream, ChannelSocket
from harness.backends import netns
from harness.errors import LabError, NodeLost, UsageError
from harness.inventory import ClusterManager
from harness.node import Node
from harness.strongswan import Datapath
from harness.topology import FIRST_OWNER, HOST_NUMBERS, NODES, Placement, Topology
from harness.wire import CapturePoint

REPO = Path(__file__).resolve().parents[2]
KERNEL = Path("/usr/bin/linux.uml")
MODULES = Path("/usr/lib/uml/modules")
MODPROBE = Path("/usr/sbin/modprobe")
MCONSOLE = "/usr/bin/uml_mconsole"
IPTABLES = Path("/usr/sbin/iptables-legacy")
"""The VMs' fail-closed guard (their kernel has the legacy tables and the policy match)."""
NODE_PYTHON = "/usr/bin/python3"
"""The host's Python as the VMs see it (the harness's own may live under /root, which init hides)."""
PACKAGES = "user-mode-linux uml-utilities kmod python3 iptables"
INIT = REPO / "lab" / "uml" / "init.sh"
AGENTS = PurePosixPath(REPO / "harness" / "agents")
SWITCH = netns.SWITCH
WIRE = "br0"
MGMT_BRIDGE = "mgmt0"
MGMT = ipaddress.IPv4Network("198.19.254.0/24")
"""The management network: the same in every lab, private to its switch's namespace."""
AGENT_PORT = 7001
MEMORY = "96M"
SETUP_ALLOWANCE_S = 0.65
"""Everything in a VM takes longer: an IKE setup between two of them takes 49-61 ms (4-9 ms
between namespaces), and now and then a VM stalls: a response charon had sent left its VM 0.58 s
later (BENCHMARKS.md). The allowance covers the setup and the longest stall measured; at three
times harness.timers.SETUP_ALLOWANCE_S (0.3 s) a link cut in CI ended 0.08 s past its band."""
CATCH_UP_S = 1.0
"""A VM that continues after a pause answers what queued up for it in a burst (its kernel in a
few milliseconds, its services' Python in tens to hundreds), and fe's probe works through the
stale answers before fresh ones: fresh traffic resumed 0.06-0.65 s after the VM answered again
in our measurements (BENCHMARKS.md); the allowance leaves room for a loaded machine."""
BOOT_TIMEOUT_S = 90.0
"""How long a VM may take to answer on its agent (four boot side by side on two cores: ~10 s)."""
ESP_REFUSED = "ESP cannot work on this node"
"""What init.sh says last when the VM's kernel keeps refusing the warm-up SA."""
HELPERS = "uml"
"""The lab directory's folder for the VMs' own files (modprobe wrapper, module tree, UML's dir)."""


def management_address(node: str) -> str:
    return str(MGMT[HOST_NUMBERS[node]])


def _mac(kind: int, node: str) -> str:
    return f"02:00:00:00:{kind:02x}:{HOST_NUMBERS[node]:02x}"


def _tap(kind: str, node: str) -> str:
    return f"{kind}-{node}"


class EspRefused(LabError):
    """The VM's kernel refuses ESP SAs for good (init.sh gave up its warm-up)."""


class Vm:
    """One VM of a lab: booting it, and powering it as a Machine."""

    def __init__(self, topology: Topology, labdir: Path, name: str, switch: AgentNode) -> None:
        self.topology = topology
        self.labdir = labdir
        self.name = name
        self.switch = switch
        """The switch's node: the VM's console (mconsole) answers only inside its namespace."""
        self.node: AgentNode | None = None
        """The node's handle, to drop its connection when the VM dies."""
        self._killed = False
        """The harness killed it (a fault): its death is no loss."""

    @property
    def umid(self) -> str:
        return f"{self.topology.qualified}-{self.name}"

    @property
    def workdir(self) -> Path:
        return self.labdir / self.name

    def start(self) -> None:
        """Boot the VM in the switch's namespace, detached (setsid: a process group of its own);
        a previous boot's console log is kept as console.previous.log."""
        (self.workdir / "booted").unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (self.workdir / "console.log").replace(self.workdir / "console.previous.log")
        boot(
            netns.namespace(self.topology, SWITCH),
            self.umid,
            self.labdir / HELPERS,
            INIT,
            self.workdir,
            taps=[(_tap(kind, self.name), _mac(index, self.name)) for index, kind in enumerate("lm")],
            settings={
                "flab_node": self.name,
                "flab_dir": str(self.workdir),
                "flab_mgmt": management_address(self.name),
                "flab_port": str(AGENT_PORT),
                "flab_python": NODE_PYTHON,
                "flab_agent": str(AGENTS / AGENT_SCRIPT),
            },
        )

    def wait(self, node: AgentNode) -> None:
        """Until the VM's agent answers (init.sh goes on loading the IPsec modules meanwhile:
        charon can start, the kernel loads what it asks for on demand)."""
        for attempt in Retrying(
            retry=retry_if_exception_type(NodeLost),
            wait=wait_fixed(0.05),
            stop=stop_after_delay(BOOT_TIMEOUT_S),
            reraise=True,
        ):
            with attempt:
                node.reset()
                node.link.request({"op": "ping"})

    def evidence(self) -> str:
        """What init.sh logged about the kernel's crypto after its warm-up failed."""
        path = self.workdir / "console.log"
        lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        return " / ".join(line.strip() for line in lines[-22:] if "init: " not in line or "refused" in line)

    def _last_words(self) -> str:
        for name in ("console.log", "kernel.log"):
            path = self.workdir / name
            lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
            if lines:
                return lines[-1]
        return "no output"

    def address(self, node: AgentNode) -> None:
        node.run(["ip", "addr", "add", f"{self.topology.address(self.name)}/{self.topology.prefixlen}", "dev", "eth0"])

    def _group(self) -> int | None:
        """The VM's process group (UML's main process leads it: setsid)."""
        try:
            return int((self.labdir / HELPERS / self.umid / "pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _signal(self, signum: int) -> None:
        group = self._group()
        if group is None:
            raise LabError(f"{self.name}: the VM's process is not known (no UML pid file)")
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(group, signum)

    def watch(self) -> None:
        """Once booted: should the VM die without the harness killing it (by hand, out of
        memory), its node is lost at once. Nothing else would tell: the connection to its agent
        runs over TCP to a machine that vanished without a FIN."""
        group = self._group()
        if group is None:
            raise LabError(f"{self.name}: the VM's process is not known (no UML pid file)")
        try:
            death = os.pidfd_open(group)
        except ProcessLookupError:
            death = None
        self._killed = False
        threading.Thread(target=self._mourn, args=(death,), name=f"vm-{self.name}", daemon=True).start()

    def _mourn(self, death: int | None) -> None:
        if death is not None:
            select.select([death], [], [])
            os.close(death)
        if not self._killed and self.node is not None:
            self.node.lose(f"its VM exited: {self._last_words()}")

    def kill(self) -> None:
        self._killed = True
        if self.node is not None:
            self.node.close()
        self._signal(signal.SIGKILL)
        for attempt in Retrying(
            retry=retry_if_exception_type(LabError), wait=wait_fixed(0.02), stop=stop_after_delay(10), reraise=True
        ):
            with attempt:
                if self._running():
                    raise LabError(f"{self.name}: the VM does not die")
        shutil.rmtree(self.labdir / HELPERS / self.umid, ignore_errors=True)  # UML's own files (pid, mconsole)

    def _running(self) -> bool:
        group = self._group()
        if group is None:
            return False
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        state = Path(f"/proc/{group}/stat")
        return state.exists() and state.read_text().rsplit(")", 1)[1].split()[0] != "Z"

    def stop(self) -> None:
        """Pause the whole VM through its console (SIGSTOP would kill it: a stopped UML process
        breaks the ptrace its kernel runs its processes under, and init panics)."""
        self._console("stop")

    def cont(self) -> None:
        self._console("go")

    def unplug(self) -> None:
        self._lab_tap("down")

    def plug(self) -> None:
        self._lab_tap("up")

    def _lab_tap(self, state: str) -> None:
        self.switch.run(["ip", "link", "set", "dev", _tap("l", self.name), state])

    def _console(self, command: str) -> None:
        socket = self.labdir / HELPERS / self.umid / "mconsole"
        self.switch.run([MCONSOLE, str(socket), command])

    def boot(self) -> None:
        """As at bring-up, and once the IPsec modules are loaded and the ESP crypto warmed up
        (init.sh's marker): a restarted node is up when it installs SAs as fast as before. A VM
        whose kernel refuses ESP is booted once more."""
        assert self.node is not None
        for attempt in range(2):
            self.node.reset()
            self.start()
            self.wait(self.node)
            try:
                self.wait_warm()
                break
            except EspRefused:
                if attempt:
                    raise
                warnings.warn(
                    f"{self.name}: the VM's kernel refused ESP, booted again; it said: {self.evidence()}", stacklevel=2
                )
                self.kill()
        self.address(self.node)
        self.watch()

    def boot_again(self) -> None:
        """Kill the VM and boot it as at bring-up (its lab address on; no VIP)."""
        self.kill()
        self.boot()

    def wait_warm(self) -> None:
        """Until init.sh has loaded the IPsec modules and warmed up the ESP crypto (its marker
        file): an SA installed while the kernel still instantiates the algorithm for the first
        time may fail under load, and charon does not retry a CHILD_SA it could not install."""
        for attempt in Retrying(
            retry=retry_if_exception_type(LabError) & retry_if_not_exception_type(EspRefused),
            wait=wait_fixed(0.02),
            stop=stop_after_delay(BOOT_TIMEOUT_S),
            reraise=True,
        ):
            with attempt:
                if not (self.workdir / "booted").exists():
                    said = self._last_words()
                    if ESP_REFUSED in said:
                        raise EspRefused(f"{self.name}: the VM did not finish booting: {said}")
                    raise LabError(f"{self.name}: the VM did not finish booting: {said}")


class UmlBackend:
    """Labs of User-mode Linux VMs on this host."""

    name = "uml"
    datapath: Datapath = "kernel"
    setup_allowance_s = SETUP_ALLOWANCE_S
    catch_up_s = CATCH_UP_S
    owns_nodes = True
    cluster: ClusterManager | None = None
    placement: Placement | None = None

    def wire_interface(self, topology: Topology) -> str:
        return WIRE

    def capture_points(self, topology: Topology) -> list[CapturePoint]:
        return [CapturePoint(SWITCH, self.wire_interface(topology))]

    def unattended(self, topology: Topology, nodes: Mapping[str, Node]) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def check(self) -> None:
        if os.geteuid() != 0:
            raise UsageError("the uml backend needs root (network namespaces and taps): run as root, e.g. with sudo")
        if not KERNEL.exists() or not any(MODULES.glob("*/modules.dep")):
            raise UsageError(f"User-mode Linux is missing: apt-get install {PACKAGES}")
        missing = [str(path) for path in (MODPROBE, Path(NODE_PYTHON), Path(MCONSOLE), IPTABLES) if not path.exists()]
        if missing:
            raise UsageError(
                f"{', '.join(missing)} missing (the VMs run them from the host): apt-get install {PACKAGES}"
            )
        if not os.path.exists("/dev/net/tun"):
            raise UsageError("/dev/net/tun is missing: the VMs' network interfaces are taps")
        tools = [tool for tool in ("ip", "tcpdump", "arping", "setsid") if shutil.which(tool) is None]
        if tools:
            raise UsageError(f"missing {', '.join(tools)}: apt-get install iproute2 tcpdump iputils-arping util-linux")
        if not strongswan.plugin_path("kernel-netlink").exists() or not Path(strongswan.CHARON).exists():
            raise UsageError(
                f"strongSwan is not installed (the VMs run the host's): apt-get install {strongswan.PACKAGES}"
            )

    def nodes(self, topology: Topology, labdir: Path) -> dict[str, AgentNode]:
        """The switch (a namespace with an agent of its own) and one node per VM, reached through
        the switch's agent over the management network."""
        switch = netns.agent_node(SWITCH, labdir / SWITCH)
        found: dict[str, AgentNode] = {SWITCH: switch}
        for name in NODES:
            vm = Vm(topology, labdir, name, switch)
            vm.node = AgentNode(
                name,
                PurePosixPath(labdir / name),
                _relay(switch, management_address(name)),
                [NODE_PYTHON, "-I", "-S"],
                AGENTS,
                own_clock=True,
                machine=vm,
                firewall="iptables-legacy",
            )
            found[name] = vm.node
        return found

    def create(self, topology: Topology, labdir: Path) -> dict[str, AgentNode]:
        """The switch namespace with its bridges and taps, its agent, then every VM booted side
        by side; the VIP starts on be1."""
        for name in (SWITCH, *NODES):
            (labdir / name).mkdir(mode=0o700)
        (labdir / SWITCH / "run").mkdir(mode=0o700)
        install_modprobe(labdir / HELPERS)
        switch = netns.namespace(topology, SWITCH)
        netns.ip_batch([f"netns add {switch}"])
        lines = [
            "link set lo up",
            f"link add {WIRE} type bridge",
            f"link set {WIRE} addrgenmode none",
            f"link set {WIRE} up",
            f"link add {MGMT_BRIDGE} type bridge",
            f"addr add {MGMT[254]}/{MGMT.prefixlen} dev {MGMT_BRIDGE}",
            f"link set {MGMT_BRIDGE} up",
        ]
        for name in NODES:
            for kind, bridge in (("l", WIRE), ("m", MGMT_BRIDGE)):
                lines += [
                    f"tuntap add dev {_tap(kind, name)} mode tap",
                    f"link set {_tap(kind, name)} master {bridge} up",
                ]
        netns.ip_batch(lines, switch)
        netns.start_agent(switch, labdir / SWITCH)
        netns.wait_for_agent(labdir / SWITCH)
        nodes = self.nodes(topology, labdir)
        vms = [_vm(nodes[name]) for name in NODES]
        for vm in vms:
            vm.start()
        with ThreadPoolExecutor(len(vms)) as pool:
            list(pool.map(lambda vm: _booted(vm), vms))
        _hold_vip(nodes[FIRST_OWNER], topology)
        return nodes

    def wait_datapath(self, nodes: Mapping[str, Node]) -> list[str]:
        """Until every VM's kernel can install SAs (Vm.wait_warm); charon and the stand-ins
        start meanwhile. A VM whose kernel refuses ESP (seen about once in a few hundred boots
        on a loaded machine: its first ESP SA refused with ENOSYS for good) is booted again,
        once; its name is returned (what was started on it is gone)."""
        again = []
        for name in NODES:
            vm = _vm(nodes[name])
            try:
                vm.wait_warm()
            except EspRefused:
                warnings.warn(
                    f"{name}: the VM's kernel refused ESP, booted again; it said: {vm.evidence()}", stacklevel=2
                )
                vm.boot_again()
                if name == FIRST_OWNER:
                    _hold_vip(nodes[name], vm.topology)
                again.append(name)
        return again

    def destroy(self, qualified: str) -> None:
        netns.destroy_namespaces(qualified)

    def leftovers(self) -> set[str]:
        return netns.namespaced_labs()


def _hold_vip(node: Node, topology: Topology) -> None:
    """The VIP on the back-end that holds it when a lab comes up (no announcement: nobody asked yet)."""
    node.run(["ip", "addr", "add", f"{topology.vip}/32", "dev", "eth0"])


def _vm(node: Node) -> Vm:
    assert isinstance(node, AgentNode) and isinstance(node.machine, Vm)
    return node.machine


def _booted(vm: Vm) -> None:
    assert vm.node is not None
    vm.wait(vm.node)
    vm.address(vm.node)
    vm.watch()


def _relay(switch: AgentNode, address: str) -> Callable[[], ByteStream]:
    """A new TCP connection to a VM's agent, relayed by the switch's agent (the management
    network lives in the switch's namespace)."""

    def connect() -> ByteStream:
        try:
            channel = switch.link.open({"op": "connect", "tcp": f"{address}:{AGENT_PORT}", "timeout": 2})
            reply = channel.reply(lambda _: True, 5)
        except NodeLost as error:
            raise ConnectionError(str(error)) from None
        if reply is None or "error" in reply:
            channel.close()
            raise ConnectionError(f"{address}: {'no answer' if reply is None else reply['error']}")
        return ChannelSocket(channel)

    return connect


def boot(
    namespace: str,
    umid: str,
    helpers: Path,
    init: Path,
    directory: Path,
    taps: list[tuple[str, str]],
    settings: dict[str, str],
    memory: str = MEMORY,
) -> None:
    """Boot a VM with ``memory`` in ``namespace``, detached (setsid: a process group of its own, led by UML's main
    process): ``init`` as its PID 1 with ``settings`` in its environment (and flab_modprobe, the
    modprobe of ``helpers``), one vector interface per (tap, MAC) of ``taps`` (vec0, vec1, ...),
    UML's output appended to ``directory``/kernel.log. Lab nodes and the SSH test hosts boot so."""
    argv = [
        "setsid", "--fork", "ip", "netns", "exec", namespace, str(KERNEL),
        f"umid={umid}", f"uml_dir={helpers}", f"mem={memory}", "rootfstype=hostfs", "hostfs=/", "ro",
        f"init={init}", "con=null", "con0=fd:0,fd:1",
        *(f"vec{index}:transport=tap,ifname={tap},mac={mac}" for index, (tap, mac) in enumerate(taps)),
        *(f"{key}={value}" for key, value in settings.items()),
        f"flab_modprobe={helpers / 'modprobe.sh'}",
    ]  # fmt: skip
    with open(directory / "kernel.log", "ab") as log:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True)


def install_modprobe(directory: Path) -> None:
    """The VMs' modprobe: the UML kernel's module tree through a tree of symlinks (the host's root
    is read-only in the VM and has no /lib/modules of that kernel)."""
    directory.mkdir(mode=0o700)
    for version in MODULES.iterdir():
        tree = directory / "modroot" / "lib" / "modules"
        tree.mkdir(parents=True, exist_ok=True)
        (tree / version.name).symlink_to(version)
    wrapper = directory / "modprobe.sh"
    wrapper.write_text(f'#!/bin/sh\nexec {MODPROBE} -d {directory / "modroot"} "$@"\n')
    wrapper.chmod(0o700)

"""The backends that can run a lab, picked by name from one dict.

Owns: the Backend protocol and the name -> backend table. Not: any backend's mechanics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from harness.backends.docker import RELEASES, DockerBackend
from harness.backends.netns import NetnsBackend
from harness.backends.ssh import SshBackend
from harness.backends.uml import UmlBackend
from harness.errors import UsageError
from harness.inventory import ClusterManager
from harness.inventory import load as load_inventory
from harness.node import Node
from harness.strongswan import Datapath
from harness.topology import Placement, Topology
from harness.wire import CapturePoint


class Backend(Protocol):
    """Creates and destroys the nodes of a lab; everything else goes through Node."""

    name: str
    datapath: Datapath
    """Where its nodes do ESP: strongSwan's userspace datapath or the kernel's."""
    setup_allowance_s: float
    """What the timer model leaves out after the transmission that gets through (an IKE setup,
    the probe's dialogue through the new SA) on these nodes: harness.timers.SETUP_ALLOWANCE_S
    where they share the harness's kernel, more on slower ones."""
    catch_up_s: float
    """What a node continuing after a freeze takes to work through what queued up for it and its
    peers (0 where a freeze stops charon only: the kernel keeps working)."""
    owns_nodes: bool
    """The nodes are the lab's own (namespaces, containers, VMs it built): what a killed charon
    left is cleared wholesale. False on a user's hosts (ssh): only the lab's own state goes."""
    placement: Placement | None
    """The addresses of hosts that exist already (ssh); None: the lab's own, from its index."""
    cluster: ClusterManager | None
    """The user's cluster manager that holds and moves the VIP (ssh, when the inventory names
    one); None: the harness moves the VIP itself."""

    def wire_interface(self, topology: Topology) -> str:
        """Interface of the switch node on which every frame of the lab can be captured."""
        ...

    def capture_points(self, topology: Topology) -> list[CapturePoint]:
        """Where the lab wire is captured: the switch's interface, or every host's lab interface."""
        ...

    def unattended(self, topology: Topology, nodes: Mapping[str, Node]) -> AbstractContextManager[None]:
        """While a fault runs: what heals the nodes if the harness disappears (ssh: a dead-man
        switch on every host); nothing where the nodes are the lab's own (clean removes them)."""
        ...

    def check(self) -> None:
        """Raise UsageError naming what to install when this backend cannot run here."""
        ...

    def create(self, topology: Topology, labdir: Path) -> Mapping[str, Node]:
        """Build the lab's nodes and switch; the VIP starts on be1."""
        ...

    def nodes(self, topology: Topology, labdir: Path) -> Mapping[str, Node]:
        """Node objects for a lab that already exists."""
        ...

    def wait_datapath(self, nodes: Mapping[str, Node]) -> list[str]:
        """Until every node's datapath can install SAs (uml: its VM's IPsec modules loaded and
        crypto warmed up); at once where the host's kernel or libipsec does ESP. Returns the
        nodes it had to boot again meanwhile (everything started on them is gone)."""
        ...

    def destroy(self, qualified: str) -> None:
        """Remove everything of the lab with this qualified name; harmless if nothing is left."""
        ...

    def leftovers(self) -> set[str]:
        """Qualified names of every lab of ours this backend finds on the host."""
        ...


BACKENDS: dict[str, Backend] = {
    "netns": NetnsBackend(),
    **{DockerBackend(release).name: DockerBackend(release) for release in RELEASES},
    "uml": UmlBackend(),
}
"""netns, docker (Debian trixie nodes, strongSwan 6.0.x), docker:bookworm (strongSwan 5.9.8): the
userspace datapath; uml (User-mode Linux VMs, the host's strongSwan): the kernel datapath."""


AUTO = "auto"
SSH = "ssh"
"""The user's own hosts, named by an inventory: a backend made per inventory, not one of BACKENDS."""


def backend(name: str, inventory: Path | None = None, insecure_host_keys: bool = False) -> Backend:
    """A backend by name; ``auto`` picks docker when an engine answers, else netns when this is
    root Linux with strongSwan, else says what to install; ``ssh`` runs on the hosts of
    ``inventory`` (which only it takes)."""
    if name == SSH:
        if inventory is None:
            raise UsageError("--backend ssh needs --inventory FILE: your hosts (see inventories/example.yaml)")
        return SshBackend(load_inventory(inventory), insecure_host_keys)
    if inventory is not None:
        raise UsageError(f"--inventory is for --backend ssh, not {name}: drop one of them")
    if name == AUTO:
        return choose()
    try:
        return BACKENDS[name]
    except KeyError:
        choices = ", ".join([AUTO, *BACKENDS, SSH])
        raise UsageError(f"unknown backend {name!r}: choose one of {choices}") from None


NETEM_MODULE = "sch_netem"


def can_delay_links(name: str) -> bool:
    """Whether a lab on backend ``name`` can delay a link (netem, the reauth fault's link_delay):
    the VMs' kernel (uml) has it; netns and docker run on this host's kernel, which has it when its
    module or built-in is there; a user's hosts (ssh) answer when asked (the fault says so in one
    line)."""
    if name in ("uml", SSH):
        return True
    return host_has_netem()


def can_firewall_fe(name: str) -> bool:
    """Whether a lab on backend ``name`` can put fe behind a stateful firewall that passes raw ESP
    (the graceful fault's firewall_idle): only VMs of its own with the kernel datapath (uml);
    libipsec always puts ESP in UDP, and a user's fe is not the harness's to firewall."""
    return name == "uml"


def host_has_netem() -> bool:
    """This kernel has netem: loaded, as a module on disk, or built in."""
    modules = Path("/lib/modules") / os.uname().release
    if Path("/sys/module", NETEM_MODULE).exists() or any(modules.glob(f"kernel/net/sched/{NETEM_MODULE}.ko*")):
        return True
    builtin = modules / "modules.builtin"
    return builtin.exists() and f"/{NETEM_MODULE}.ko" in builtin.read_text()


def choose() -> Backend:
    problems = []
    for candidate in (BACKENDS["docker"], BACKENDS["netns"]):
        try:
            candidate.check()
        except UsageError as error:
            problems.append(f"{candidate.name}: {error}")
            continue
        return candidate
    raise UsageError("no backend can run here (" + "; ".join(problems) + ")")

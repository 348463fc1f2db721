"""The one contract every backend implements: what the harness may do to a lab node.

A node runs commands (``run``), starts long-lived processes it can signal later (``spawn``),
receives files (``put``) and opens vici sessions to its own charon (``vici``). Faults, probes
and the lab are written against this contract only, never against a backend. Every backend
implements it the same way, through the node agent (harness.agent); unit tests use a fake.

Errors: ``run`` raises CommandError for a failed command it was asked to check and
CommandTimeout for one that overran; anything may raise NodeLost when the node is gone, and
``vici`` raises CharonError when charon does not answer (harness.errors).

Owns: the Node protocol and its value types. Not: how a backend implements them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # vici is needed by backends only: compose_node runs this module without it
    import vici

from harness.errors import CommandError


@dataclass(frozen=True)
class Result:
    """What a finished command left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


Firewall = Literal["nft", "iptables-legacy"]
VICI_SOCKET = "/run/charon.vici"
"""Where a node's charon listens for vici, unless the node says otherwise (Node.vici_socket)."""


@dataclass(frozen=True)
class Clock:
    """How a node's clocks map onto the harness's monotonic clock (one clock for every time of a
    run): nodes on the harness's own kernel share its clocks; a VM's run on their own."""

    monotonic_offset: float = 0.0
    """harness monotonic = node monotonic + this (probe attempts are stamped on the node)."""
    wall_offset: float = 0.0
    """harness monotonic = node wall clock + this (charon's log is stamped in epoch seconds)."""
    uncertainty: float = 0.0
    """How far off the offsets may be: half the round trip they were measured over (0 where the
    node shares the harness's kernel); a run adds it to its probe resolution."""


class Process(Protocol):
    """A long-running process started on a node; the harness only ever signals PIDs it started."""

    node: str
    argv: tuple[str, ...]

    @property
    def pid(self) -> int: ...

    def signal(self, signum: int) -> None: ...

    def kill(self) -> None: ...

    def alive(self) -> bool: ...

    def wait(self, timeout: float) -> int:
        """The exit code; raises subprocess.TimeoutExpired if still running after ``timeout``."""
        ...

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; releases the handle."""
        ...

    def close(self) -> None: ...

    def lines(self) -> Iterator[str]:
        """Lines of its output as they arrive (nothing if its output was not captured)."""
        ...


class Machine(Protocol):
    """A node that is a whole machine the harness can power (a VM): what a crash, a freeze and
    a reboot do to a real host. Nodes that share the harness's kernel have none."""

    def kill(self) -> None:
        """SIGKILL the whole machine: its kernel vanishes (no FIN, no DELETE)."""
        ...

    def stop(self) -> None:
        """Freeze the whole machine, kernel included."""
        ...

    def cont(self) -> None: ...

    def unplug(self) -> None:
        """Pull its lab cable at the switch: it sees nothing (its link stays up), nothing of it
        reaches the wire and nothing reaches it."""
        ...

    def plug(self) -> None: ...

    def boot(self) -> None:
        """Boot it again after a kill, as fresh as at bring-up (addresses, no VIP, no charon);
        returns once its agent answers."""
        ...


class Node(Protocol):
    """A lab node as the harness sees it, whatever backend runs it."""

    name: str
    workdir: PurePosixPath
    """Directory on the node holding its configuration, logs and the charon run directory."""
    machine: Machine | None
    """How to power the node as a whole, when it is a machine of its own (a VM)."""
    firewall: Firewall
    """What filters packets on the node: nft, or iptables-legacy where the kernel's nftables
    lacks the families (User-mode Linux)."""
    lab_interface: str
    vici_socket: str
    """Where the node's charon listens for vici (its strongswan.conf says so)."""
    """The node's interface on the lab wire (eth0 on the harness's own nodes; a real host's is
    its inventory's lab_interface)."""

    def run(self, argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30) -> Result:
        """Run a command to completion; raises CommandError on a non-zero exit if ``check``."""
        ...

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, capture: bool = False) -> Process:
        """Start a process that outlives this call (stdout readable line by line if ``capture``)."""
        ...

    def put(self, path: PurePosixPath, data: str, mode: int = 0o600) -> None:
        """Write a file on the node, creating its directory (mode 0700)."""
        ...

    def vici(self, timeout: float = 10) -> vici.Session:
        """A new vici session to this node's charon."""
        ...

    def agent(self, name: str) -> list[str]:
        """The command that runs one of harness/agents/<name>.py on this node."""
        ...

    def close(self) -> None:
        """Release the harness's connection to the node (the node keeps running)."""
        ...

    def clock(self) -> Clock:
        """The node's clocks against the harness's monotonic clock, measured now."""
        ...


def checked(node: str, result: Result, check: bool) -> Result:
    """Raise CommandError for a failed command when the caller asked for a check."""
    if check and result.returncode != 0:
        raise CommandError(node, result.argv, result.returncode, result.stderr)
    return result

"""Which labs exist on this host, who owns them, and removing them.

Every lab has a directory /var/lib/failover-lab/flab-<name>/ (mode 0700) holding its state file
``lab.json``: name, index, backend, profile, policy and the owning process (PID and start time), or no
owner for a lab left running by `failover-lab up`; a lab on SSH hosts also its inventory's path and
the hosts' addresses. A lock file hands out lab indexes, so labs
can be created side by side by several processes. ``clean`` removes every lab whose owner is
gone (and, with ``force``, also labs that a live run or test still uses).

Owns: lab directories, state files, index allocation, leftovers. Not: what runs in a lab.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.backends import BACKENDS, Backend, backend
from harness.backends.ssh import SshBackend
from harness.errors import UsageError
from harness.topology import MAX_LABS, PREFIX, Placement, Topology

LAB_ROOT = Path(os.environ.get("FAILOVER_LAB_ROOT", "/var/lib/failover-lab"))
STATE_FILE = "lab.json"


@dataclass(frozen=True)
class Owner:
    """A process, identified by PID and start time so that a reused PID is not mistaken for it."""

    pid: int
    start: str

    @classmethod
    def of(cls, pid: int) -> Owner | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return cls(pid, stat.rsplit(")", 1)[1].split()[19])

    def alive(self) -> bool:
        return Owner.of(self.pid) == self


@dataclass(frozen=True)
class State:
    """What lab.json says about a lab."""

    name: str
    index: int
    backend: str
    profile: str
    policy: str
    owner: Owner | None
    inventory: str | None = None
    """The SSH inventory of a lab on the user's hosts (absolute)."""
    placement: dict[str, Any] | None = None
    """Those hosts' addresses: {"subnet", "vip", "addresses": {node: address}}."""

    @property
    def topology(self) -> Topology:
        if self.placement is None:
            return Topology(self.name, self.index)
        placed = Placement(
            ipaddress.IPv4Network(self.placement["subnet"]),
            self.placement["vip"],
            tuple(self.placement["addresses"].items()),
        )
        return Topology(self.name, self.index, placed)

    def lab_backend(self) -> Backend:
        """The lab's backend (for a lab on SSH hosts: on the hosts of its inventory)."""
        return backend(self.backend, Path(self.inventory) if self.inventory else None)

    def in_use(self) -> bool:
        """Owned by a live process other than this one."""
        return self.owner is not None and self.owner.pid != os.getpid() and self.owner.alive()

    @classmethod
    def load(cls, path: Path) -> State:
        data = json.loads(path.read_text())
        owner = Owner(**data["owner"]) if data.get("owner") else None
        return cls(
            data["name"],
            data["index"],
            data["backend"],
            data["profile"],
            data.get("policy", ""),
            owner,
            data.get("inventory"),
            data.get("placement"),
        )

    def save(self) -> None:
        path = directory(self.topology.qualified) / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def directory(qualified: str) -> Path:
    return LAB_ROOT / qualified


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    LAB_ROOT.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(LAB_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def known(hosts: SshBackend | None = None) -> set[str]:
    """Qualified names of every lab of ours: registered directories and backend leftovers (with
    ``hosts``, also those on the hosts of that inventory)."""
    found = {p.name for p in LAB_ROOT.glob(f"{PREFIX}-*")} if LAB_ROOT.exists() else set()
    for candidate in [*BACKENDS.values(), *([hosts] if hosts is not None else [])]:
        found |= candidate.leftovers()
    return found


def _belongs(qualified: str, state: State | None, only: Backend) -> bool:
    """Whether a lab (registered or a leftover) is one of backend ``only`` (for ssh: on the
    hosts of its inventory)."""
    if isinstance(only, SshBackend):
        on_them = state is not None and state.inventory == str(only.inventory.path.absolute())
        return on_them or qualified in only.leftovers()
    return state.backend == only.name if state is not None else qualified in only.leftovers()


def _destroyers(state: State | None, only: Backend | None) -> list[Backend]:
    """The backends that remove a lab: an inventory's hosts, the lab's own ssh hosts, or every
    backend of this machine (a leftover's backend is not known)."""
    if isinstance(only, SshBackend):
        return [only]
    if state is not None and state.inventory:
        return [state.lab_backend()]
    return list(BACKENDS.values())


def allocate(
    backend: str, profile: str, policy: str, inventory: Path | None = None, placement: Placement | None = None
) -> State:
    """Claim the lowest free lab index for this process and create the lab's directory (a lab on
    SSH hosts: only while no other lab uses them)."""
    with _lock():
        used = known()
        if placement is not None:
            refuse_hosts_in_use(placement)
        for index in range(MAX_LABS):
            topology = Topology.for_index(index)
            if topology.qualified not in used:
                directory(topology.qualified).mkdir(mode=0o700)
                state = State(
                    topology.name,
                    index,
                    backend,
                    profile,
                    policy,
                    Owner.of(os.getpid()),
                    str(inventory.absolute()) if inventory else None,
                    _placement_record(placement),
                )
                state.save()
                return state
    raise UsageError(f"all {MAX_LABS} lab slots are taken: run `failover-lab clean`")


def _placement_record(placement: Placement | None) -> dict[str, Any] | None:
    if placement is None:
        return None
    return {"subnet": str(placement.subnet), "vip": placement.vip, "addresses": dict(placement.addresses)}


def refuse_hosts_in_use(placement: Placement) -> None:
    """One lab at a time on a set of hosts: another one with any of the same lab addresses refuses."""
    wanted = {address for _, address in placement.addresses}
    for state in registered():
        if state.placement and wanted & set(state.placement["addresses"].values()):
            raise UsageError(
                f"lab {state.name} runs on these hosts already (inventory {state.inventory}): "
                f"remove it first (failover-lab down {state.name})"
            )


def registered() -> list[State]:
    """Every lab with a state file on this host, in index order."""
    states = [State.load(p) for p in LAB_ROOT.glob(f"{PREFIX}-*/{STATE_FILE}")] if LAB_ROOT.exists() else []
    return sorted(states, key=lambda state: state.index)


def remove(lab_backend: Backend, qualified: str) -> None:
    """Remove a lab's nodes and its directory, whatever state they are in."""
    lab_backend.destroy(qualified)
    shutil.rmtree(directory(qualified), ignore_errors=True)


def clean(force: bool = False, only: Backend | None = None) -> tuple[list[str], list[str]]:
    """Remove every lab of ours whose owner is gone (all of them with ``force``; those of backend
    ``only`` if given); returns the removed and the skipped (in use) qualified names."""
    removed, skipped = [], []
    with _lock():
        states = {state.topology.qualified: state for state in registered()}
        for qualified in sorted(known(only if isinstance(only, SshBackend) else None)):
            state = states.get(qualified)
            if only is not None and not _belongs(qualified, state, only):
                continue
            if state is not None and state.in_use() and not force:
                skipped.append(qualified)
                continue
            for candidate in _destroyers(state, only):
                candidate.destroy(qualified)
            shutil.rmtree(directory(qualified), ignore_errors=True)
            removed.append(qualified)
    return removed, skipped

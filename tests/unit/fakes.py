"""Fake lab nodes for unit tests of pure harness logic: they record what the harness ASKS the
nodes to do, in order, and answer from a script. They never pretend a lab works: nothing runs,
no address moves, no SA exists unless a test scripted it.

One Journal per fake lab, shared by its nodes, their processes and vici sessions, so the
interleaving across nodes is visible. ``Journal.steps()`` renders it as readable tuples:

    ("be1", "run", "nft -f -", "<input>")            a command (its input, if any, 4th)
    ("be2", "spawn", "stdbuf -oL arping -U ...")    a process started ("spawn+capture" if captured)
    ("be2", "stop", "stdbuf -oL arping -U ...")     what was done to a process: signal SIGINT,
                                                     kill, wait, stop, close
    ("be1", "vici", "terminate ike-id=7 ...")        a vici command; "connect" and "close" frame
                                                     each session
    ("fe", "put", "/lab/fe/x.conf", "<data>")        a file written

Scripting: ``node.script(argv_prefix, stdout=..., returncode=...)`` answers every command that
starts with the prefix (the longest matching prefix wins; default: exit 0, no output; a
non-zero exit raises CommandError through harness.node.checked, as the real nodes do);
``node.script_spawn(argv_prefix, lines=..., exit_code=...)`` scripts the processes it starts;
``node.script_sas(answer, ...)`` scripts what successive ``list_sas`` calls yield (the last
answer repeats); ``node.vici_events`` is what ``listen`` yields before its (None, None) ticks.
Streamed vici commands (list_sas, terminate, initiate, listen) are recorded when first iterated:
the vici package sends nothing before, so a call never iterated leaves no trace.

``fake_lab()`` is a real harness.lab.Lab on such nodes (fe, be1, be2, dc and the switch "sw"),
with a stub backend, charons and stand-ins as FakeProcesses and FakeEvents for fe's SA events.

Owns: the fakes, the Journal and ``fake_lab()``. Not: any lab behaviour.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from harness import policy, timers
from harness.charon import EventRecorder
from harness.errors import NotRecovered
from harness.inventory import ClusterManager
from harness.lab import Lab
from harness.node import Clock, Firewall, Machine, Node, Process, Result, checked
from harness.sa import SaEvent
from harness.strongswan import Datapath, strongswan_conf
from harness.topology import BACKENDS, NODES, Placement, Topology
from harness.wire import CapturePoint

SWITCH = "sw"
WIRE_INTERFACE = "br-lab0"
ADDR_SHOW = ("ip", "-j", "-4", "addr", "show", "dev", "eth0")
"""What Lab.vip_owner asks each back-end."""


@dataclass(frozen=True)
class Entry:
    """One thing the harness asked of a node; ``t`` is when (monotonic)."""

    node: str
    op: str
    argv: tuple[str, ...]
    input: str | None = None
    detail: Any = None
    """The full vici message, a spawn's env and capture flag, a put's mode, a wait's timeout."""
    t: float = field(default_factory=time.monotonic)

    def step(self) -> tuple[str, ...]:
        text = " ".join(self.argv) if self.op == "vici" else shlex.join(self.argv)
        return (self.node, self.op, text) if self.input is None else (self.node, self.op, text, self.input)


class Journal:
    """The ordered record of one fake lab; any thread may record or wait."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._changed = threading.Condition()

    def record(self, entry: Entry) -> None:
        with self._changed:
            self.entries.append(entry)
            self._changed.notify_all()

    def steps(self) -> list[tuple[str, ...]]:
        with self._changed:
            return [entry.step() for entry in self.entries]

    def clear(self) -> None:
        with self._changed:
            self.entries.clear()

    def wait_for(self, step: tuple[str, ...], timeout: float = 5.0) -> Entry | None:
        """The first entry whose step() is ``step`` (waiting for it up to ``timeout``)."""

        def found() -> Entry | None:
            return next((e for e in self.entries if e.step() == step), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None, timeout)
            return found()


_pids = itertools.count(1000)


class FakeProcess:
    """A process on a fake node: records what is done to it; ``lines()`` yields the scripted
    lines, continuing where an earlier ``lines()`` stopped (as a real process's output does)."""

    def __init__(
        self,
        node: str,
        argv: Sequence[str],
        journal: Journal,
        lines: Iterable[str] = (),
        exit_code: int | None = 0,
    ) -> None:
        self.node = node
        self.argv = tuple(argv)
        self.journal = journal
        self.running = True
        """What alive() answers; kill() and stop() end it."""
        self.exit_code = exit_code
        """What wait() returns; None: wait() times out."""
        self._pid = next(_pids)
        self._lines = iter(lines)

    def _record(self, op: str, detail: Any = None) -> None:
        self.journal.record(Entry(self.node, op, self.argv, detail=detail))

    @property
    def pid(self) -> int:
        return self._pid

    def signal(self, signum: int) -> None:
        self._record(f"signal {signal.Signals(signum).name}")

    def kill(self) -> None:
        self._record("kill")
        self.running = False

    def alive(self) -> bool:
        return self.running

    def wait(self, timeout: float) -> int:
        self._record("wait", timeout)
        if self.exit_code is None:
            raise subprocess.TimeoutExpired(self.argv, timeout)
        return self.exit_code

    def stop(self, timeout: float = 2.0) -> None:
        self._record("stop", timeout)
        self.running = False

    def close(self) -> None:
        self._record("close")

    def lines(self) -> Iterator[str]:
        # Not `yield from`: closing an abandoned lines() would close a generator source with it.
        for line in self._lines:  # noqa: UP028
            yield line


class FakeTransport:
    def __init__(self, node: str, journal: Journal) -> None:
        self.node = node
        self.journal = journal

    def close(self) -> None:
        self.journal.record(Entry(self.node, "vici", ("close",)))


def _flat(message: Mapping[str, Any] | None) -> tuple[str, ...]:
    return tuple(f"{key}={value}" for key, value in (message or {}).items())


class FakeVici:
    """A vici session to a fake node's charon: records every command; streamed commands
    (list_sas, terminate, initiate, listen) are generators and record when first iterated, as
    the vici package sends them only then."""

    def __init__(self, node: FakeNode) -> None:
        self._node = node
        self.transport = FakeTransport(node.name, node.journal)

    def _record(self, *argv: str, message: Any = None) -> None:
        self._node.journal.record(Entry(self._node.name, "vici", argv, detail=message))

    def version(self) -> dict[str, bytes]:
        self._record("version")
        return {"daemon": b"charon", "version": self._node.charon_version.encode(), "sysname": b"Linux"}

    def load_shared(self, secret: dict[str, Any]) -> None:
        self._record("load_shared", message=secret)

    def load_conn(self, connection: dict[str, Any]) -> None:
        self._record("load_conn", *connection, message=connection)

    def list_sas(self, filters: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        self._record("list_sas", *_flat(filters), message=filters)
        yield from self._node.next_sas()

    def list_conns(self, filters: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        self._record("list_conns", *_flat(filters), message=filters)
        yield from self._node.conns

    def terminate(self, sa: dict[str, Any]) -> Iterator[dict[str, Any]]:
        self._record("terminate", *_flat(sa), message=sa)
        yield {"group": b"IKE", "level": b"1", "msg": b"deleting IKE_SA"}

    def rekey(self, sa: dict[str, Any]) -> dict[str, Any]:
        self._record("rekey", *_flat(sa), message=sa)
        return {"success": b"yes", "matches": b"1"}

    def initiate(self, sa: dict[str, Any]) -> Iterator[dict[str, Any]]:
        self._record("initiate", *_flat(sa), message=sa)
        yield {"group": b"IKE", "level": b"1", "msg": b"initiating IKE_SA"}

    def listen(
        self, event_types: list[str], timeout: float = 0.05
    ) -> Iterator[tuple[bytes, dict[str, Any]] | tuple[None, None]]:
        self._record("listen", *event_types, message=event_types)
        yield from self._node.vici_events
        while True:  # as vici: a (None, None) tick per timeout without events, until the caller stops
            time.sleep(timeout)
            yield None, None


@dataclass(frozen=True)
class _Script:
    prefix: tuple[str, ...]
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""
    lines: Iterable[str] = ()
    exit_code: int | None = 0


def _best(scripts: list[_Script], argv: tuple[str, ...]) -> _Script | None:
    matching = [s for s in scripts if argv[: len(s.prefix)] == s.prefix]
    return max(reversed(matching), key=lambda s: len(s.prefix), default=None)


class FakeMachine:
    """A Machine (harness.node): what is done to the whole node is recorded as ("be1",
    "machine", "kill"), and so on."""

    def __init__(self, name: str, journal: Journal) -> None:
        self.name = name
        self.journal = journal

    def _record(self, what: str) -> None:
        self.journal.record(Entry(self.name, "machine", (what,)))

    def kill(self) -> None:
        self._record("kill")

    def stop(self) -> None:
        self._record("stop")

    def cont(self) -> None:
        self._record("cont")

    def boot(self) -> None:
        self._record("boot")

    def unplug(self) -> None:
        self._record("unplug")

    def plug(self) -> None:
        self._record("plug")


class FakeNode:
    """A Node (harness.node) that records into ``journal`` and answers from its scripts."""

    def __init__(self, name: str, journal: Journal | None = None) -> None:
        self.name = name
        self.workdir = PurePosixPath("/lab") / name
        self.journal = journal or Journal()
        self.charon_version = "5.9.8"
        self.machine: Machine | None = None
        self.firewall: Firewall = "nft"
        self.lab_interface = "eth0"
        self.vici_socket = "/run/charon.vici"
        self.vici_events: list[tuple[bytes, dict[str, Any]]] = []
        self._runs: list[_Script] = []
        self._spawns: list[_Script] = []
        self._sas: list[list[dict[str, Any]]] = []
        self.conns: list[dict[str, Any]] = []
        """What list_conns yields: {connection: settings} as vici answers (bytes values)."""

    def script(self, prefix: Sequence[str], *, stdout: str = "", stderr: str = "", returncode: int = 0) -> None:
        self._runs.append(_Script(tuple(prefix), returncode, stdout, stderr))

    def script_spawn(self, prefix: Sequence[str], *, lines: Iterable[str] = (), exit_code: int | None = 0) -> None:
        """Processes started with ``prefix`` yield ``lines`` (a generator is consumed by the first)."""
        self._spawns.append(_Script(tuple(prefix), lines=lines, exit_code=exit_code))

    def script_sas(self, *answers: list[dict[str, Any]]) -> None:
        """What successive list_sas calls yield: each answer a list of {connection: sa}."""
        self._sas = list(answers)

    def next_sas(self) -> list[dict[str, Any]]:
        if not self._sas:
            return []
        return self._sas.pop(0) if len(self._sas) > 1 else self._sas[0]

    def clock(self) -> Clock:
        """The harness's own clocks, as a node on its kernel has."""
        return Clock(0.0, time.monotonic() - time.time())

    def run(self, argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30) -> Result:
        argv = tuple(argv)
        self.journal.record(Entry(self.name, "run", argv, input))
        scripted = _best(self._runs, argv) or _Script(argv)
        return checked(self.name, Result(argv, scripted.returncode, scripted.stdout, scripted.stderr), check)

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, capture: bool = False) -> FakeProcess:
        argv = tuple(argv)
        op = "spawn+capture" if capture else "spawn"
        self.journal.record(Entry(self.name, op, argv, detail=dict(env or {})))
        scripted = _best(self._spawns, argv) or _Script(argv)
        return FakeProcess(self.name, argv, self.journal, scripted.lines, scripted.exit_code)

    def put(self, path: PurePosixPath, data: str, mode: int = 0o600) -> None:
        self.journal.record(Entry(self.name, "put", (str(path),), data, mode))

    def vici(self, timeout: float = 10) -> FakeVici:
        self.journal.record(Entry(self.name, "vici", ("connect",), detail=timeout))
        return FakeVici(self)

    def agent(self, name: str) -> list[str]:
        return ["python3", f"/agents/{name}.py"]

    def close(self) -> None:
        self.journal.record(Entry(self.name, "close", ()))


def addr_show(*addresses: str) -> str:
    """`ip -j -4 addr show dev eth0` output listing ``addresses``."""
    infos = [{"family": "inet", "local": a, "prefixlen": 24} for a in addresses]
    return json.dumps([{"ifname": "eth0", "addr_info": infos}])


def ike_sa(
    unique_id: int,
    remote: str,
    spis: tuple[str, str] = ("1111", "2222"),
    children: Mapping[str, tuple[str, str, int]] | None = None,
) -> dict[str, Any]:
    """One established IKE SA as vici's list-sas yields it (bytes values); ``children`` maps a
    CHILD_SA name to (local ts, remote ts, packets in = out)."""
    return {
        "uniqueid": str(unique_id).encode(),
        "state": b"ESTABLISHED",
        "remote-host": remote.encode(),
        "initiator-spi": spis[0].encode(),
        "responder-spi": spis[1].encode(),
        "nat-any": b"yes",  # libipsec's UDP encapsulation fakes NAT
        "child-sas": {
            f"{name}-{n}": {
                "name": name.encode(),
                "state": b"INSTALLED",
                "local-ts": [local.encode()],
                "remote-ts": [remote_ts.encode()],
                "packets-in": str(packets).encode(),
                "packets-out": str(packets).encode(),
            }
            for n, (name, (local, remote_ts, packets)) in enumerate((children or {}).items(), start=1)
        },
    }


class FakeEvents(EventRecorder):
    """fe's SA events as a test scripts them: no thread, no vici session."""

    def __init__(self, node: Node, events: Iterable[SaEvent] = ()) -> None:  # no super(): nothing to listen to
        self.node = node
        self.events = list(events)
        self.closed = False

    def wait_for(self, kind: str, up: bool, after: float, timeout: float) -> SaEvent:
        found = next((e for e in self.events if e.kind == kind and e.up == up and e.t >= after), None)
        if found is None:
            raise NotRecovered(f"{self.node.name}: no {kind} SA went {'up' if up else 'down'} (scripted)")
        return found

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeBackend:
    """The backend of a fake lab: a name and the switch's wire interface; it builds nothing."""

    name: str = "fake"
    datapath: Datapath = "libipsec"
    setup_allowance_s: float = timers.SETUP_ALLOWANCE_S
    catch_up_s: float = 0.0
    interface: str = WIRE_INTERFACE
    owns_nodes: bool = True
    cluster: ClusterManager | None = None
    placement: Placement | None = None

    def wire_interface(self, topology: Topology) -> str:
        return self.interface

    def capture_points(self, topology: Topology) -> list[CapturePoint]:
        return [CapturePoint("sw", self.interface)]

    def unattended(self, topology: Topology, nodes: Mapping[str, Node]) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def check(self) -> None:
        pass

    def create(self, topology: Topology, labdir: Path) -> Mapping[str, Node]:
        raise AssertionError("a fake backend builds no lab")

    def nodes(self, topology: Topology, labdir: Path) -> Mapping[str, Node]:
        raise AssertionError("a fake backend finds no lab")

    def wait_datapath(self, nodes: Mapping[str, Node]) -> list[str]:
        return []

    def destroy(self, qualified: str) -> None:
        raise AssertionError("a fake backend destroys no lab")

    def leftovers(self) -> set[str]:
        return set()


@dataclass
class FakeLab:
    """A real harness.lab.Lab on fake nodes, with typed handles on the fakes."""

    lab: Lab
    journal: Journal
    nodes: dict[str, FakeNode]
    events: FakeEvents

    @property
    def topology(self) -> Topology:
        return self.lab.topology


def fake_lab(profile: str = "fast", policy_name: str = policy.DEFAULT, machines: bool = False) -> FakeLab:
    """fe, be1, be2, dc and the switch on one journal; be1 owns the VIP (its `ip -j addr`
    says so), charons and service stand-ins are processes labelled "charon" and "services".
    With ``machines`` every lab node is a FakeMachine too (as a VM is), whose restarted
    stand-ins say ``ready``, and fe's knocking on a paused one is answered (once)."""
    topology = Topology.for_index(0)
    journal = Journal()
    nodes = {name: FakeNode(name, journal) for name in (*NODES, SWITCH)}
    for name in NODES:
        owned = [topology.vip] if name == BACKENDS[0] else []
        nodes[name].script(ADDR_SHOW, stdout=addr_show(topology.address(name), *owned))
        nodes[name].script_spawn(["stdbuf", "-oL", "arping"], lines=[f"ARPING {topology.vip} from {topology.vip} eth0"])
        if machines:
            nodes[name].machine = FakeMachine(name, journal)
            nodes[name].script_spawn(nodes[name].agent("services"), lines=["ready"])
    if machines:  # fe's knocking on a paused VM is answered the moment it is read
        fe_knocks = nodes["fe"].agent("knock")
        nodes["fe"].script_spawn(fe_knocks, lines=(f"{time.monotonic():.6f}" for _ in range(1)))
    charons: dict[str, Process] = {name: FakeProcess(name, ["charon"], journal) for name in NODES}
    services: dict[str, Process] = {name: FakeProcess(name, ["services"], journal) for name in (*BACKENDS, "dc")}
    events = FakeEvents(nodes["fe"])
    chosen = timers.profile(profile)
    fe = nodes["fe"]
    fe.script(
        ["cat", str(fe.workdir / "strongswan.conf")],
        stdout=strongswan_conf(fe.workdir, chosen, policy.policy(policy_name)),
    )
    fe.conns = [{"vip": {"version": b"IKEv2", "unique": b"UNIQUE_NO", "dpd_delay": str(chosen.dpd_delay).encode()}}]
    lab = Lab(
        topology=topology,
        backend=FakeBackend(),
        profile=chosen,
        nodes=nodes,
        directory=Path("/nonexistent/flab-lab0"),
        psk="fake-psk",
        charons=charons,
        services=services,
        policy=policy.policy(policy_name),
        strongswan_version="5.9.8",
        events=events,
    )
    return FakeLab(lab, journal, nodes, events)

"""The harness's end of the node agent (harness/agents/node_agent.py): one persistent connection
per node, multiplexed into channels, and the Node contract implemented on top of it.

A backend only says how to reach a node's agent (a unix socket in the node's directory for
netns, one `docker exec` stream for Docker, later a TCP port on a management network or an SSH
channel): ``AgentNode`` does everything else the same way on every backend. One reader thread
per connection hands each frame to its channel; any thread may send. A lost connection (the
node removed, its engine stopped) wakes every waiter with NodeLost; a command that overruns its
timeout is killed by the agent and raises CommandTimeout.

Owns: the connection, its channels and AgentNode/AgentProcess. Not: starting agents (backends).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from harness.agents.node_agent import CLOSE, DATA, EOF, HEADER, OPEN, REPLY
from harness.errors import CharonError, CommandError, CommandTimeout, LabError, NodeLost
from harness.node import VICI_SOCKET, Clock, Firewall, Machine, Result, checked

if TYPE_CHECKING:
    import vici

AGENT_SCRIPT = "node_agent.py"
LAB_INTERFACE = "eth0"
"""The lab wire's interface on the harness's own nodes."""
REPLY_MARGIN_S = 5.0
"""How much longer than a command's own timeout the harness waits for the agent's answer."""
CLOCK_SAMPLES = 5
"""Round trips to a VM's agent when its clocks are mapped (the shortest one counts)."""
REQUEST_TIMEOUT_S = 10.0
"""How long a short request (signal, put, connect) may take."""


class ByteStream(Protocol):
    """What a backend hands over: a connected, bidirectional byte stream to the agent."""

    def sendall(self, data: bytes) -> None: ...

    def recv(self, size: int) -> bytes: ...

    def close(self) -> None: ...


class Channel:
    """One request's replies and data, filled by the link's reader thread."""

    def __init__(self, link: Link, number: int) -> None:
        self.link = link
        self.number = number
        self._changed = threading.Condition()
        self._replies: list[dict[str, Any]] = []
        self._data = bytearray()
        self._eof = False
        self.closed = False

    def feed(self, kind: int, payload: bytes) -> None:
        with self._changed:
            if kind == REPLY:
                self._replies.append(json.loads(payload))
            elif kind == DATA:
                self._data += payload
            elif kind == EOF:
                self._eof = True
            self._changed.notify_all()

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def reply(self, wanted: Callable[[dict[str, Any]], bool], timeout: float | None) -> dict[str, Any] | None:
        """The first reply that ``wanted`` accepts; None on timeout; NodeLost if the link went."""
        with self._changed:
            self._changed.wait_for(lambda: self._find(wanted) is not None or self.link.lost is not None, timeout)
            found = self._find(wanted)
        if found is None and self.link.lost is not None:
            raise self.link.lost_error()
        return found

    def _find(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        return next((r for r in self._replies if wanted(r)), None)

    def read(self, size: int, timeout: float | None) -> bytes:
        """Up to ``size`` bytes of data; b"" at its end (or when the link is gone); TimeoutError."""
        with self._changed:
            ready = self._changed.wait_for(
                lambda: self._data or self._eof or self.closed or self.link.lost is not None, timeout
            )
            if not ready:
                raise TimeoutError("timed out")
            chunk = bytes(self._data[:size])
            del self._data[:size]
            return chunk

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.link.send(self.number, kind, payload)

    def close(self) -> None:
        """Tell the agent the harness is done with this channel; further frames are dropped."""
        if not self.closed:
            with self._changed:
                self.closed = True
                self._changed.notify_all()
            self.link.forget(self.number)
            with contextlib.suppress(NodeLost):
                self.send(CLOSE)


class Link:
    """One connection to a node's agent."""

    def __init__(self, node: str, stream: ByteStream) -> None:
        self.node = node
        self._stream = stream
        self._send_lock = threading.Lock()
        self._channels: dict[int, Channel] = {}
        self._numbers = itertools.count(1)
        self._table_lock = threading.Lock()
        self.lost: str | None = None
        self._reader = threading.Thread(target=self._read, name=f"agent-{node}", daemon=True)
        self._reader.start()

    def lost_error(self) -> NodeLost:
        return NodeLost(self.node, self.lost or "connection closed")

    def open(self, request: Mapping[str, Any]) -> Channel:
        with self._table_lock:
            channel = Channel(self, next(self._numbers))
            self._channels[channel.number] = channel
        channel.send(OPEN, json.dumps(request).encode())
        return channel

    def forget(self, number: int) -> None:
        with self._table_lock:
            self._channels.pop(number, None)

    def send(self, number: int, kind: int, payload: bytes = b"") -> None:
        if self.lost is not None:
            raise self.lost_error()
        try:
            with self._send_lock:
                self._stream.sendall(HEADER.pack(len(payload), number, kind) + payload)
        except OSError as error:
            self._lose(f"sending failed: {error.strerror or error}")
            raise self.lost_error() from None

    def request(self, request: Mapping[str, Any], timeout: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        """A request with one reply (signal, put, ping)."""
        channel = self.open(request)
        try:
            reply = channel.reply(lambda _: True, timeout)
        finally:
            self.forget(channel.number)
        if reply is None:
            raise NodeLost(self.node, f"the agent did not answer a {request['op']} request within {timeout:g} s")
        return reply

    def _exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self._stream.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _read(self) -> None:
        reason = "the agent closed the connection"
        try:
            while (header := self._exactly(HEADER.size)) is not None:
                length, number, kind = HEADER.unpack(header)
                payload = self._exactly(length) if length else b""
                if payload is None:
                    break
                with self._table_lock:
                    channel = self._channels.get(number)
                if channel is not None:
                    channel.feed(kind, payload)
        except OSError as error:
            reason = f"connection error: {error.strerror or error}"
        self._lose(reason)

    def _lose(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
        with self._table_lock:
            channels = list(self._channels.values())
        for channel in channels:
            channel.wake()

    def close(self, reason: str = "closed by the harness") -> None:
        self._lose(reason)
        with contextlib.suppress(OSError):
            self._stream.close()


class AgentProcess:
    """A process the agent started on a node; signalled through the agent by its PID."""

    def __init__(self, node: AgentNode, argv: Sequence[str], channel: Channel, pid: int) -> None:
        self.node = node.name
        self.argv = tuple(argv)
        self._owner = node
        self._channel = channel
        self._pid = pid
        self._pending = b""

    @property
    def pid(self) -> int:
        return self._pid

    def _exit(self, timeout: float | None) -> int | None:
        """The exit code, or None if it still runs after ``timeout``; NodeLost if the node is gone."""
        reply = self._channel.reply(lambda r: "exit" in r, timeout)
        return None if reply is None else int(reply["exit"])

    def signal(self, signum: int) -> None:
        if self.alive():
            self._owner.link.request({"op": "signal", "pid": self._pid, "signal": int(signum)})

    def kill(self) -> None:
        self.signal(9)

    def alive(self) -> bool:
        return self._exit(0) is None

    def wait(self, timeout: float) -> int:
        code = self._exit(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.argv, timeout)
        return code

    def stop(self, timeout: float = 2.0) -> None:
        self.signal(15)
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait(5)
        self.close()

    def close(self) -> None:
        self._channel.close()

    def lines(self) -> Iterator[str]:
        """Lines of its output as they arrive, until it ends (or the channel is closed: what
        arrived before is still read)."""
        while chunk := self._channel.read(65536, None):
            self._pending += chunk
            *complete, self._pending = self._pending.split(b"\n")
            for line in complete:
                yield line.decode(errors="replace") + "\n"
        if self._pending:
            rest, self._pending = self._pending, b""
            yield rest.decode(errors="replace")


class ChannelSocket:
    """A channel joined to a unix socket on the node, as the socket-like object vici.Session
    wants (sendall, recv with timeouts, shutdown, close)."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._timeout: float | None = None

    def sendall(self, data: bytes) -> None:
        self._channel.send(DATA, data)

    def recv(self, size: int) -> bytes:
        return self._channel.read(size, self._timeout)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def shutdown(self, how: int) -> None:
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not self._channel.closed and self._channel.link.lost is None:
            self._channel.send(EOF)

    def close(self) -> None:
        if self._channel.link.lost is None:
            self._channel.close()


class AgentNode:
    """A lab node driven through its agent; ``connect`` opens a new stream to the agent."""

    def __init__(
        self,
        name: str,
        workdir: PurePosixPath,
        connect: Callable[[], ByteStream],
        python: Sequence[str],
        agents: PurePosixPath,
        own_clock: bool = False,
        machine: Machine | None = None,
        firewall: Firewall = "nft",
        vici_socket: str = VICI_SOCKET,
        lab_interface: str = LAB_INTERFACE,
    ) -> None:
        self.name = name
        self.lab_interface = lab_interface
        self.vici_socket = vici_socket
        """charon's vici socket on the node (a real host's own charon keeps /run/charon.vici)."""
        self.machine = machine
        self.firewall: Firewall = firewall
        self.workdir = workdir
        self._connect = connect
        self._python = list(python)
        self._agents = agents
        self._own_clock = own_clock
        self._link: Link | None = None
        self._lock = threading.Lock()

    @property
    def link(self) -> Link:
        """The connection to the agent, opened on first use; a lost one is not reopened."""
        with self._lock:
            if self._link is None:
                try:
                    self._link = Link(self.name, self._connect())
                except OSError as error:
                    raise NodeLost(self.name, f"its agent does not answer: {error.strerror or error}") from None
            return self._link

    def run(self, argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30) -> Result:
        request = {"op": "run", "argv": list(argv), "input": input, "timeout": timeout}
        channel = self.link.open(request)
        try:
            reply = channel.reply(lambda _: True, timeout + REPLY_MARGIN_S)
        finally:
            self.link.forget(channel.number)
        if reply is None or reply.get("timeout"):
            raise CommandTimeout(self.name, argv, timeout)
        if "error" in reply:
            raise LabError(f"{self.name}: the agent could not run `{' '.join(argv)}`: {reply['error']}")
        return checked(self.name, Result(tuple(argv), int(reply["rc"]), reply["stdout"], reply["stderr"]), check)

    def spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, capture: bool = False
    ) -> AgentProcess:
        channel = self.link.open({"op": "spawn", "argv": list(argv), "env": dict(env or {}), "capture": capture})
        reply = channel.reply(lambda _: True, REQUEST_TIMEOUT_S)
        if reply is None or "pid" not in reply:
            channel.close()
            problem = "no answer" if reply is None else reply.get("error", reply)
            raise CommandError(self.name, argv, -1, f"could not start: {problem}")
        return AgentProcess(self, argv, channel, int(reply["pid"]))

    def put(self, path: PurePosixPath, data: str, mode: int = 0o600) -> None:
        reply = self.link.request({"op": "put", "path": str(path), "data": data, "mode": mode})
        if "error" in reply:
            raise LabError(f"{self.name}: {reply['error']}")

    def vici(self, timeout: float = 10) -> vici.Session:
        import vici

        channel = self.link.open({"op": "connect", "path": self.vici_socket})
        reply = channel.reply(lambda _: True, timeout)
        if reply is None or "error" in reply:
            channel.close()
            raise CharonError(self.name, f"vici does not answer ({'no reply' if reply is None else reply['error']})")
        stream = ChannelSocket(channel)
        stream.settimeout(timeout)
        return vici.Session(stream)

    def agent(self, name: str) -> list[str]:
        return [*self._python, str(self._agents / f"{name}.py")]

    def close(self) -> None:
        with self._lock:
            if self._link is not None:
                self._link.close()

    def lose(self, reason: str) -> None:
        """The node is gone (its VM died): everything waiting on it, and every later call, gets
        NodeLost with ``reason``."""
        with self._lock:
            if self._link is not None:
                self._link.close(reason)

    def reset(self) -> None:
        """Forget the connection (a VM that was killed and boots again): the next use opens a new one."""
        with self._lock:
            if self._link is not None:
                self._link.close()
            self._link = None

    def clock(self) -> Clock:
        """Same as the harness's on its own kernel; a VM's measured over the agent: of several
        round trips the shortest, its middle taken as the moment the node read its clocks."""
        here = time.monotonic() - time.time()
        if not self._own_clock:
            return Clock(0.0, here)
        samples = []
        for _ in range(CLOCK_SAMPLES):
            sent = time.monotonic()
            reply = self.link.request({"op": "clock"})
            back = time.monotonic()
            samples.append((back - sent, (sent + back) / 2, reply))
        round_trip, middle, reply = min(samples, key=lambda sample: sample[0])
        return Clock(middle - float(reply["monotonic"]), middle - float(reply["time"]), round_trip / 2)

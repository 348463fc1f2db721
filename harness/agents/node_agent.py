"""The node agent: one small program per lab node, started once with the node, through which the
harness runs commands, spawns, signals and reaps processes, reads their output, writes files and
talks to the node's charon (vici), all over one persistent connection.

Standard library only (Python 3.9 or newer): the same file runs in a network namespace, in a node
container, in a User-mode Linux VM and on a real host. Three ways to start it:

    node_agent.py --listen unix:/lab/agent.sock   serve every connection to this socket (the node's
                                                  agent, for the node's lifetime)
    node_agent.py --listen tcp:ADDRESS:PORT       the same on a management network (never the lab wire)
    node_agent.py --stdio                         serve one connection on stdin/stdout, exit at its end
    node_agent.py --relay /lab/agent.sock         join stdin/stdout to a running agent's socket (what
                                                  one `docker exec -i` stream runs); writes b"+" once
                                                  connected, b"-" and exits 1 if nothing answers
    node_agent.py --shutdown /lab/agent.sock      ask the agent there to shut down (what the dead-man
                                                  switch runs on a real host); done when nothing answers

The protocol multiplexes channels over one byte stream. Every frame is a header ``>IIB`` (payload
length, channel number, kind) and its payload. The harness opens a channel with an OPEN frame
carrying a JSON request; the agent answers with REPLY frames (JSON), DATA frames (bytes) and an
EOF frame where a stream ends:

    run      {"argv", "env", "input", "timeout"} -> REPLY {"rc", "stdout", "stderr"} or {"timeout": true, ...}
    spawn    {"argv", "env", "capture"}          -> REPLY {"pid"}, DATA (stdout+stderr) ..., EOF, REPLY {"exit"}
    signal   {"pid", "signal"}                   -> REPLY {"ok": true}: only processes this agent started
    put      {"path", "data", "mode"}            -> REPLY {"ok": true}
    connect  {"path"} or {"tcp": "HOST:PORT"}   -> REPLY {"ok": true}, then DATA both ways (a unix socket:
                                                    charon's vici; or TCP: a VM's agent), EOF when either ends
    ping     {}                                  -> REPLY {"pid", "python"}
    clock    {}                                  -> REPLY {"monotonic", "time"}: the node's clocks
    shutdown {}                                  -> REPLY {"killed"}: SIGKILL every process group it started,
                                                    then the agent exits (a real host's lab torn down)

A failed request gets REPLY {"error": "..."}. The harness sends DATA (bytes for a connected socket),
EOF (half-close) and CLOSE (it has no further interest in the channel: stop relaying; a spawned
process keeps running). Processes started by the agent keep running when a connection ends (a lab
left running by `failover-lab up`); the agent reaps them. It dies with its node.

Owns: executing requests on the node. Not: what the harness asks for, or how it reaches the agent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any, BinaryIO

HEADER = struct.Struct(">IIB")
OPEN, REPLY, DATA, EOF, CLOSE = 1, 2, 3, 4, 5
CHUNK = 65536
TIMEOUT_GRACE_S = 1.0
"""How long a timed-out command's process group may take to die before the reply goes anyway."""
SANE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Stream:
    """The agent's side of one connection: reads frames, writes frames (one writer at a time)."""

    def __init__(self, reader: BinaryIO, write: Any, close: Any) -> None:
        self._reader = reader
        self._write = write
        self._close = close
        self._lock = threading.Lock()
        self.open = True

    def send(self, channel: int, kind: int, payload: bytes = b"") -> None:
        frame = HEADER.pack(len(payload), channel, kind) + payload
        with self._lock:
            if not self.open:
                return
            try:
                self._write(frame)
            except OSError:
                self.open = False

    def reply(self, channel: int, message: dict[str, Any]) -> None:
        self.send(channel, REPLY, json.dumps(message).encode())

    def receive(self) -> tuple[int, int, bytes] | None:
        header = self._exactly(HEADER.size)
        if header is None:
            return None
        length, channel, kind = HEADER.unpack(header)
        payload = self._exactly(length) if length else b""
        return None if payload is None else (channel, kind, payload)

    def _exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            try:
                chunk = self._reader.read(size - len(data))
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def close(self) -> None:
        with self._lock:
            self.open = False
        with contextlib.suppress(OSError):
            self._close()


class Processes:
    """Every process this agent started, so that only those can be signalled; reaped on exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, subprocess.Popen[bytes]] = {}

    def add(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running[process.pid] = process

    def remove(self, pid: int) -> None:
        with self._lock:
            self._running.pop(pid, None)

    def signal(self, pid: int, signum: int) -> str | None:
        """Signal a running process this agent started; an error text otherwise."""
        with self._lock:
            process = self._running.get(pid)
            if process is None or process.poll() is not None:
                return f"process {pid} is not one this agent runs"
            try:
                process.send_signal(signum)
            except OSError as error:
                return f"cannot signal {pid}: {error.strerror}"
        return None

    def kill_all(self) -> list[int]:
        """SIGKILL the process group of every process this agent started (each leads its own
        session) and reap them; the PIDs killed."""
        with self._lock:
            running = [process for process in self._running.values() if process.poll() is None]
        for process in running:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(TIMEOUT_GRACE_S)
        return [process.pid for process in running]


PROCESSES = Processes()


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, **(extra or {})}


def _not_started(error: OSError, argv: list[str]) -> dict[str, Any]:
    """What a shell would say when a command cannot be started (127: not found, 126: not runnable)."""
    code = 127 if isinstance(error, FileNotFoundError) else 126
    return {"rc": code, "stdout": "", "stderr": f"{argv[0] if argv else ''}: {error.strerror}\n"}


def _text(data: bytes) -> str:
    return data.decode(errors="replace")


def run(stream: Stream, channel: int, request: dict[str, Any]) -> None:
    argv = [str(part) for part in request["argv"]]
    given = request.get("input")
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if given is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(request.get("env")),
            start_new_session=True,
        )
    except OSError as error:
        stream.reply(channel, _not_started(error, argv))
        return
    timeout = request.get("timeout")
    try:
        out, err = process.communicate(None if given is None else given.encode(), timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        try:
            out, err = process.communicate(timeout=TIMEOUT_GRACE_S)
        except subprocess.TimeoutExpired:
            out, err = b"", b""
        stream.reply(channel, {"timeout": True, "stdout": _text(out or b""), "stderr": _text(err or b"")})
        return
    stream.reply(channel, {"rc": process.returncode, "stdout": _text(out), "stderr": _text(err)})


class Spawned:
    """A started process: its output goes to the channel until the harness closes it."""

    def __init__(self, stream: Stream, channel: int, process: subprocess.Popen[bytes]) -> None:
        self.stream = stream
        self.channel = channel
        self.process = process
        self.wanted = True

    def pump(self) -> None:
        output = self.process.stdout
        if output is not None:
            while chunk := output.read1(CHUNK):  # type: ignore[attr-defined]
                if self.wanted:
                    self.stream.send(self.channel, DATA, chunk)
            output.close()
            if self.wanted:
                self.stream.send(self.channel, EOF)
        code = self.process.wait()
        PROCESSES.remove(self.process.pid)
        if self.wanted:
            self.stream.reply(self.channel, {"exit": code})


def spawn(stream: Stream, channel: int, request: dict[str, Any]) -> Spawned | None:
    argv = [str(part) for part in request["argv"]]
    capture = bool(request.get("capture"))
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
            env=_environment(request.get("env")),
            start_new_session=True,
        )
    except OSError as error:
        stream.reply(channel, {"error": f"{argv[0] if argv else ''}: {error.strerror}"})
        return None
    PROCESSES.add(process)
    spawned = Spawned(stream, channel, process)
    stream.reply(channel, {"pid": process.pid})
    threading.Thread(target=spawned.pump, daemon=True).start()
    return spawned


def put(request: dict[str, Any]) -> dict[str, Any]:
    path = str(request["path"])
    mode = int(request.get("mode", 0o600))
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "w") as file:
            file.write(str(request["data"]))
        os.chmod(path, mode)
    except OSError as error:
        return {"error": f"cannot write {path}: {error.strerror}"}
    return {"ok": True}


class Connected:
    """A unix socket on the node (charon's vici) joined to a channel."""

    def __init__(self, stream: Stream, channel: int, sock: socket.socket) -> None:
        self.stream = stream
        self.channel = channel
        self.sock = sock
        self.wanted = True

    def pump(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(CHUNK)
            except OSError:
                chunk = b""
            if not chunk:
                break
            if self.wanted:
                self.stream.send(self.channel, DATA, chunk)
        if self.wanted:
            self.stream.send(self.channel, EOF)

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.finish()

    def half_close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def finish(self) -> None:
        self.wanted = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def connect(stream: Stream, channel: int, request: dict[str, Any]) -> Connected | None:
    """A unix socket on the node (``path``: charon's vici) or a TCP address (``tcp``:
    ``HOST:PORT``: the agent of a VM on the switch's management network), joined to a channel."""
    if "tcp" in request:
        host, _, port = str(request["tcp"]).rpartition(":")
        where: Any = (host, int(port))
        sock = socket.socket(socket.AF_INET)
        sock.settimeout(float(request.get("timeout", 5)))
    else:
        where = str(request["path"])
        sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(where)
    except OSError as error:
        sock.close()
        stream.reply(channel, {"error": f"{where}: {error.strerror or error}"})
        return None
    sock.settimeout(None)
    if sock.family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connected = Connected(stream, channel, sock)
    stream.reply(channel, {"ok": True})
    threading.Thread(target=connected.pump, daemon=True).start()
    return connected


def _in_thread(target: Any, *arguments: Any) -> None:
    threading.Thread(target=target, args=arguments, daemon=True).start()


def serve(stream: Stream) -> None:
    """Answer the requests of one connection until it ends."""
    channels: dict[int, Spawned | Connected] = {}
    try:
        while (frame := stream.receive()) is not None:
            channel, kind, payload = frame
            if kind == OPEN:
                request = json.loads(payload)
                operation = request.get("op")
                if operation == "run":
                    _in_thread(run, stream, channel, request)
                elif operation == "spawn":
                    if (spawned := spawn(stream, channel, request)) is not None:
                        channels[channel] = spawned
                elif operation == "connect":
                    if (connected := connect(stream, channel, request)) is not None:
                        channels[channel] = connected
                elif operation == "signal":
                    problem = PROCESSES.signal(int(request["pid"]), int(request["signal"]))
                    stream.reply(channel, {"error": problem} if problem else {"ok": True})
                elif operation == "put":
                    stream.reply(channel, put(request))
                elif operation == "ping":
                    stream.reply(channel, {"pid": os.getpid(), "python": sys.version.split()[0]})
                elif operation == "clock":
                    stream.reply(channel, {"monotonic": time.monotonic(), "time": time.time()})
                elif operation == "shutdown":
                    stream.reply(channel, {"killed": PROCESSES.kill_all()})
                    os._exit(0)
                else:
                    stream.reply(channel, {"error": f"unknown request {operation!r}"})
                continue
            target = channels.get(channel)
            if isinstance(target, Connected) and kind == DATA:
                target.write(payload)
            elif isinstance(target, Connected) and kind == EOF:
                target.half_close()
            elif kind == CLOSE and target is not None:
                channels.pop(channel)
                if isinstance(target, Connected):
                    target.finish()
                else:
                    target.wanted = False
    finally:
        for target in channels.values():
            if isinstance(target, Connected):
                target.finish()
            else:
                target.wanted = False
        stream.close()


def _socket_stream(sock: socket.socket) -> Stream:
    reader = sock.makefile("rb", buffering=0)
    return Stream(reader, sock.sendall, sock.close)  # type: ignore[arg-type]


def listen(address: str) -> None:
    """Serve every connection to ``unix:PATH`` or ``tcp:HOST:PORT``, each in a thread, forever."""
    kind, _, where = address.partition(":")
    if kind == "unix":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(where)
        server = socket.socket(socket.AF_UNIX)
        old = os.umask(0o077)  # the socket is the node's root shell: root only
        try:
            server.bind(where)
        finally:
            os.umask(old)
    elif kind == "tcp":
        host, _, port = where.rpartition(":")
        server = socket.socket(socket.AF_INET)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, int(port)))
    else:
        raise SystemExit(f"node_agent: --listen takes unix:PATH or tcp:HOST:PORT, not {address!r}")
    server.listen(16)
    while True:
        sock, _ = server.accept()
        if kind == "tcp":
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _in_thread(serve, _socket_stream(sock))


def _stdio_stream() -> Stream:
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    return Stream(sys.stdin.buffer, write, out.close)


def relay(path: str, wait: float) -> int:
    """Join stdin/stdout to the agent listening on ``path`` (waiting up to ``wait`` s for it)."""
    out = sys.stdout.buffer
    sock = socket.socket(socket.AF_UNIX)
    deadline = time.monotonic() + wait
    while True:
        try:
            sock.connect(path)
            break
        except OSError:
            if time.monotonic() >= deadline:
                out.write(b"-")
                out.flush()
                return 1
            time.sleep(0.005)
    out.write(b"+")
    out.flush()

    def upstream() -> None:
        while chunk := os.read(0, CHUNK):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True).start()
    while chunk := sock.recv(CHUNK):
        out.write(chunk)
        out.flush()
    return 0


def shutdown(path: str) -> int:
    """Ask the agent listening on ``path`` to kill everything it started and exit; waits for its
    answer (its processes are reaped by then). Nothing listening: nothing to do."""
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(path)
    except OSError:
        return 0
    stream = _socket_stream(sock)
    stream.send(1, OPEN, json.dumps({"op": "shutdown"}).encode())
    frame = stream.receive()
    stream.close()
    print(frame[2].decode() if frame is not None else "{}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--listen", metavar="unix:PATH|tcp:HOST:PORT", help="serve every connection to this address")
    mode.add_argument("--stdio", action="store_true", help="serve one connection on stdin/stdout")
    mode.add_argument("--relay", metavar="PATH", help="join stdin/stdout to the agent listening on PATH")
    mode.add_argument("--shutdown", metavar="PATH", help="ask the agent listening on PATH to shut down")
    parser.add_argument("--wait", type=float, default=10.0, help="--relay: seconds to wait for the agent")
    arguments = parser.parse_args()
    os.environ.setdefault("PATH", SANE_PATH)
    if arguments.relay:
        return relay(arguments.relay, arguments.wait)
    if arguments.shutdown:
        return shutdown(arguments.shutdown)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if arguments.stdio:
        serve(_stdio_stream())
        return 0
    listen(arguments.listen)
    return 0


if __name__ == "__main__":
    sys.exit(main())

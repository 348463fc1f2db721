"""Traffic probe that runs on fe: one stream of attempts per service towards the VIP.

Standard library only (it runs inside a namespace or a node container). Every attempt is
stamped with the node's monotonic clock when it starts (``t0``) and when it ends (``t1``) and
written to stdout as one JSON line:

    {"s": "pop3", "t0": 12.301, "t1": 12.304, "n": "be1"}      answered by be1
    {"s": "pop3", "t0": 12.351, "t1": 13.351, "e": "timeout"}  failed
    {"s": "udp", "t0": 12.412, "t1": 12.413, "n": "be1", "l": 0.031}   started 31 ms late

``l`` (when at least 1 ms) is how late the attempt started against its schedule: the probe was
not running then (a loaded machine, a VM descheduled), so its stamps around that moment may be
late by as much; harness.probe adds it to the resolution of an outage it falls into.

Attempts start on a fixed schedule (the service's interval) whatever happened to earlier
attempts, so a lost TCP SYN never delays the next attempt: the probe resolution is the
interval. On SIGTERM no new attempt starts and the ones in flight are reported when they end
(at most one timeout later), so the last second before a recovery is never missing. UDP echo
datagrams carry a sequence number; TCP attempts are fresh connections that run the service's
login dialogue (POP3 USER/PASS, IMAP LOGIN, HTTP GET).

Owns: sending, timing and reporting attempts. Not: outage math (harness.probe does that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import cast

PORTS = {"http": 80, "pop3": 110, "imap": 143, "udp": 7}


LATE_S = 0.001
"""Lateness below this is not reported (an event loop's ordinary wake-up jitter)."""


def emit(service: str, t0: float, node: str | None = None, error: str | None = None, late: float = 0.0) -> None:
    record: dict[str, object] = {"s": service, "t0": round(t0, 6), "t1": round(time.monotonic(), 6)}
    if late >= LATE_S:
        record["l"] = round(late, 6)
    if node is not None:
        record["n"] = node
    else:
        record["e"] = error or "failed"
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Dialogue:
    """One TCP attempt per call: connect, speak the protocol, return the serving node's name."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password

    async def http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        writer.write(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        response = await reader.read()
        status, _, body = response.partition(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.0 200"):
            raise ValueError("bad HTTP status")
        return body.decode().strip()

    async def pop3(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        await _expect(reader, "+OK")
        writer.write(f"USER {self.user}\r\n".encode())
        await _expect(reader, "+OK")
        writer.write(f"PASS {self.password}\r\n".encode())
        node = (await _expect(reader, "+OK")).split()[1]
        writer.write(b"QUIT\r\n")
        return node

    async def imap(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        await _expect(reader, "* OK")
        writer.write(f'a1 LOGIN {self.user} "{self.password}"\r\n'.encode())
        node = (await _expect(reader, "a1 OK")).split()[2]
        writer.write(b"a2 LOGOUT\r\n")
        return node


async def _expect(reader: asyncio.StreamReader, prefix: str) -> str:
    line = (await reader.readline()).decode(errors="replace")
    if not line.startswith(prefix):
        raise ValueError(f"expected {prefix!r}, got {line!r}")
    return line


Speaker = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[str]]


async def tcp_attempt(service: str, target: str, speak: Speaker, timeout: float, scheduled: float) -> None:
    t0 = time.monotonic()
    late = t0 - scheduled
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target, PORTS[service])
            node = await speak(reader, writer)
        emit(service, t0, node=node, late=late)
    except (OSError, ValueError, IndexError, TimeoutError, asyncio.IncompleteReadError) as error:
        emit(service, t0, error=type(error).__name__, late=late)
    finally:
        if writer is not None:
            writer.transport.abort()


async def tcp_stream(service: str, target: str, speak: Speaker, interval: float, timeout: float) -> None:
    """Attempts on the schedule until cancelled; then the attempts in flight end (answered or
    timed out, at most ``timeout`` later) and are reported before it returns."""
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    n = 0
    try:
        while True:
            task = asyncio.create_task(tcp_attempt(service, target, speak, timeout, start + n * interval))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
    finally:
        if tasks:
            await asyncio.wait(set(tasks))


class EchoClient(asyncio.DatagramProtocol):
    """Sends numbered datagrams and matches the echoes to their send times."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.pending: dict[int, tuple[float, float]] = {}
        """Echoes in flight: sequence -> (sent, how late against the schedule)."""
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            node, sequence = data.decode().split()
            t0, late = self.pending.pop(int(sequence))
        except (ValueError, KeyError):
            return
        emit("udp", t0, node=node, late=late)

    def error_received(self, exc: Exception) -> None:
        pass

    def expire(self) -> None:
        """Report the echoes that have waited longer than the timeout as failed."""
        now = time.monotonic()
        for old, (t0, late) in list(self.pending.items()):
            if now - t0 > self.timeout:
                del self.pending[old]
                emit("udp", t0, error="timeout", late=late)

    async def drain(self) -> None:
        """Wait until every echo in flight is answered or has timed out, and report it."""
        while self.pending:
            oldest = min(t0 for t0, _ in self.pending.values())
            await asyncio.sleep(max(0.001, oldest + self.timeout - time.monotonic()))
            self.expire()

    def send(self, sequence: int, scheduled: float) -> None:
        self.expire()
        now = time.monotonic()
        self.pending[sequence] = (now, now - scheduled)
        if self.transport is not None:
            self.transport.sendto(str(sequence).encode())


async def udp_stream(target: str, interval: float, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_datagram_endpoint(
        lambda: EchoClient(timeout), remote_addr=(target, PORTS["udp"]), family=socket.AF_INET
    )
    start = time.monotonic()
    n = 0
    try:
        while True:
            client.send(n, start + n * interval)
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
    finally:
        await client.drain()


async def main(arguments: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    dialogue = Dialogue(arguments.user, arguments.password)
    streams = [
        asyncio.create_task(udp_stream(arguments.target, arguments.udp_interval, arguments.timeout)),
        *(
            asyncio.create_task(tcp_stream(name, arguments.target, speak, arguments.tcp_interval, arguments.timeout))
            for name, speak in (("http", dialogue.http), ("pop3", dialogue.pop3), ("imap", dialogue.imap))
        ),
    ]
    await stop.wait()
    for stream in streams:  # no new attempts; those in flight end and are reported
        stream.cancel()
    await asyncio.gather(*streams, return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="address of the VIP")
    parser.add_argument("--udp-interval", type=float, default=0.01, help="seconds between echoes")
    parser.add_argument("--tcp-interval", type=float, default=0.05, help="seconds between connections")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds before an attempt fails")
    parser.add_argument("--user", default="probe", help="login name for POP3 and IMAP")
    parser.add_argument("--password", default="probe-password", help="password for POP3 and IMAP")
    asyncio.run(main(parser.parse_args()))

"""Service stand-ins: HTTP, POP3, IMAP4 and a UDP echo on a back-end (role backend), or the
domain controller's LDAP 389, Kerberos 88, RPC endpoint mapper 135, Global Catalog 3268 and
DNS 53 (tcp and udp where they use both) on dc (role dc).

Standard library only, so the same file runs in a network namespace and in a node container.
Every answer names the node that served it, which is how the probe on fe tells the old VIP
owner from the new one. The back-ends' services are bound to the VIP with IP_FREEBIND, so
replies always come from the VIP, also on the standby before it owns the address, and nothing
listens on the node's other addresses (on a user's host, a port 110 of its own stays its own);
dc's are bound to its lab address (``--address``). The domain controller's stand-ins answer each
line (or datagram) with "<node> <port>".

Owns: the wire dialogue of each service. Not: addresses, routing or IPsec (the lab's job).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import cast

HTTP_PORT = 80
POP3_PORT = 110
IMAP_PORT = 143
ECHO_PORT = 7
IP_FREEBIND = 15
DC_TCP_PORTS = (389, 88, 135, 3268, 53)
DC_UDP_PORTS = (88, 53)


async def _http(node: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    body = node.encode() + b"\n"
    writer.write(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    await writer.drain()


async def _pop3(node: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(f"+OK {node} POP3 ready\r\n".encode())
    while line := await reader.readline():
        command = line.split(b" ", 1)[0].strip().upper()
        if command == b"USER":
            writer.write(b"+OK send PASS\r\n")
        elif command == b"PASS":
            writer.write(f"+OK {node} logged in\r\n".encode())
        elif command == b"QUIT":
            writer.write(f"+OK {node} bye\r\n".encode())
            break
        else:
            writer.write(b"-ERR unknown command\r\n")
        await writer.drain()
    await writer.drain()


async def _imap(node: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(f"* OK {node} IMAP4rev1 ready\r\n".encode())
    while line := await reader.readline():
        tag, _, rest = line.decode(errors="replace").strip().partition(" ")
        command = rest.split(" ", 1)[0].upper()
        if command == "LOGIN":
            writer.write(f"{tag} OK {node} LOGIN completed\r\n".encode())
        elif command == "LOGOUT":
            writer.write(f"* BYE {node}\r\n{tag} OK LOGOUT completed\r\n".encode())
            break
        else:
            writer.write(f"{tag} BAD unknown command\r\n".encode())
        await writer.drain()
    await writer.drain()


Handler = Callable[[str, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Connection = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _serve(node: str, handler: Handler) -> Connection:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(handler(node, reader, writer), timeout=10)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return connection


def _directory(port: int) -> Handler:
    async def answer(node: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readline():
            writer.write(f"{node} {port}\r\n".encode())
            await writer.drain()

    return answer


class _Echo(asyncio.DatagramProtocol):
    def __init__(self, node: str) -> None:
        self.node = node.encode()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(self.node + b" " + data, addr)


def _bound(kind: int, address: str, port: int) -> socket.socket:
    """A socket bound to ``address`` even before the node holds it (IP_FREEBIND)."""
    bound = socket.socket(socket.AF_INET, kind)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bound.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    bound.bind((address, port))
    return bound


async def main(node: str, vip: str, role: str, address: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if role == "dc":
        tcp: list[tuple[int, Handler]] = [(port, _directory(port)) for port in DC_TCP_PORTS]
        udp, here = list(DC_UDP_PORTS), address
    else:
        tcp = [(HTTP_PORT, _http), (POP3_PORT, _pop3), (IMAP_PORT, _imap)]
        udp, here = [ECHO_PORT], vip
    servers = [
        await asyncio.start_server(_serve(node, handler), sock=_bound(socket.SOCK_STREAM, here, port))
        for port, handler in tcp
    ]
    transports = []
    for port in udp:
        sock = _bound(socket.SOCK_DGRAM, here, port)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Echo(node), sock=sock)
        transports.append(transport)
    print("ready", flush=True)
    await stop.wait()
    for transport in transports:
        transport.close()
    for server in servers:
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--node", required=True, help="name put into every answer")
    parser.add_argument("--vip", required=True, help="address the back-end's UDP echo answers from")
    parser.add_argument("--role", choices=("backend", "dc"), default="backend", help="which services to run")
    parser.add_argument("--address", default="0.0.0.0", help="dc: the address its services listen on")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.node, arguments.vip, arguments.role, arguments.address))

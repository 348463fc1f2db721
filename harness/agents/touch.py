"""One attempt at each of a list of services, all at once: the coverage check of a policy.

    touch.py --target 198.18.0.20 --ports tcp:389,udp:53 [--timeout 1]

Prints one JSON line per port: {"proto": "tcp", "port": 389, "ok": true, "answer": "dc 389"}.
A TCP attempt sends a line and reads one back; a UDP attempt sends a datagram and waits for one.
Standard library only (it runs on any node). Owns: the attempts. Not: judging them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket


async def tcp(target: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(target, port)
    try:
        writer.write(b"probe\r\n")
        await writer.drain()
        return (await reader.readline()).decode(errors="replace").strip()
    finally:
        writer.transport.abort()


async def udp(target: str, port: int) -> str:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (target, port))
        await loop.sock_sendall(sock, b"probe")
        return (await loop.sock_recv(sock, 512)).decode(errors="replace").strip()
    finally:
        sock.close()


async def attempt(target: str, proto: str, port: int, timeout: float) -> dict[str, object]:
    try:
        async with asyncio.timeout(timeout):
            answer = await (tcp if proto == "tcp" else udp)(target, port)
        return {"proto": proto, "port": port, "ok": bool(answer), "answer": answer}
    except (OSError, TimeoutError) as error:
        return {"proto": proto, "port": port, "ok": False, "answer": type(error).__name__}


async def main(arguments: argparse.Namespace) -> None:
    ports = [(item.split(":")[0], int(item.split(":")[1])) for item in arguments.ports.split(",")]
    results = await asyncio.gather(*(attempt(arguments.target, p, n, arguments.timeout) for p, n in ports))
    for result in results:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--ports", required=True, help="comma-separated proto:port, e.g. tcp:389,udp:53")
    parser.add_argument("--timeout", type=float, default=1.0)
    asyncio.run(main(parser.parse_args()))

"""Relay between stdin/stdout and charon's vici socket, run inside a node container by
`docker exec`: the harness speaks vici over the exec's streams, so the socket never leaves the
node (no bind mount, no TCP port).

Writes one status byte first: b"+" once connected, or b"-" and exits 1 if charon's socket does
not answer. Standard library only.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

SOCKET = "/run/charon.vici"


def _pump(read: int, write: socket.socket) -> None:
    while chunk := os.read(read, 65536):
        write.sendall(chunk)
    write.shutdown(socket.SHUT_WR)


def main() -> int:
    vici = socket.socket(socket.AF_UNIX)
    out = sys.stdout.buffer
    try:
        vici.connect(sys.argv[1] if len(sys.argv) > 1 else SOCKET)
    except OSError:
        out.write(b"-")
        out.flush()
        return 1
    out.write(b"+")
    out.flush()
    threading.Thread(target=_pump, args=(sys.stdin.fileno(), vici), daemon=True).start()
    while chunk := vici.recv(65536):
        out.write(chunk)
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wait until a node's kernel answers on the lab link again: from ``--at`` (this node's
monotonic clock) on, a TCP SYN every ``--interval`` to ``--target`` until one is answered (a
SYN-ACK or, from a closed port, a RST), for at most ``--within`` seconds more.

    knock.py --target 198.18.0.11 [--port 9] [--interval 0.01] [--at 1234.5] [--within 5]

Once answered it prints when (this node's monotonic clock) and exits 0; it exits 1 if nothing
answered in time. A node's kernel answers a SYN whatever runs on it, so this tells when a
paused VM works again (it answers only after the packets that queued up for it while it was
paused). Standard library only (it runs on any node).
Owns: the knocking. Not: what an answer means (harness.faults).
"""

from __future__ import annotations

import argparse
import socket
import sys
import time


def answered(target: str, port: int, wait: float) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(wait)
        try:
            sock.connect((target, port))
        except ConnectionRefusedError:
            return True
        except OSError:  # the timeout (nothing came back yet), an unreachable host
            return False
        return True


def main(arguments: argparse.Namespace) -> int:
    start = time.monotonic() if arguments.at is None else arguments.at
    time.sleep(max(0.0, start - time.monotonic()))
    deadline = time.monotonic() + arguments.within
    while time.monotonic() < deadline:
        started = time.monotonic()
        if answered(arguments.target, arguments.port, arguments.interval):
            print(f"{time.monotonic():.6f}", flush=True)
            return 0
        time.sleep(max(0.0, started + arguments.interval - time.monotonic()))
    return 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--port", type=int, default=9)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--at", type=float, default=None, help="when to begin (this node's monotonic clock)")
    parser.add_argument("--within", type=float, default=5.0)
    sys.exit(main(parser.parse_args()))

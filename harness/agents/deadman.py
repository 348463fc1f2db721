"""Dead-man switch on a real host: heals the host if the harness disappears mid-fault.

    deadman.py --heartbeat FILE --timeout 30 --heal FILE [--log FILE]
    deadman.py --heal FILE --now [--log FILE]     heal at once (a lab's teardown: the same commands)

Forks into the background (a session of its own, SIGHUP ignored: it outlives the SSH connection
and the node agent that started it), prints the background process's PID and returns. It is
started once with the lab and sleeps while the heartbeat FILE does not exist. The harness arms
it by creating FILE when a disruption begins and keeps touching it while it runs; it disarms it
by removing FILE (the switch sleeps again). If FILE is not touched for ``--timeout`` seconds
(the harness was killed, its machine lost the network), the switch runs every command of the
heal file, a JSON list of argv lists (shut the lab's agent down, remove the fault's firewall
table, the lab's SAs, give the VIP back to its owner, remove the lab's folder), logs what each
returned, and exits. When the heal file is gone (the lab was torn down) or on SIGTERM it exits
doing nothing. It records its PID next to the heal file (``<heal>.watcher``): ``--now`` stops
it first, so a teardown leaves no switch behind. Started once, it costs a host one Python start
per lab, not one per fault.

Standard library only (it runs on any host with python3). Owns: watching and healing. Not: what
the heal commands are (the harness writes them when the lab comes up).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time

POLL_S = 0.2
STOP_TIMEOUT_S = 2.0
"""How long a SIGTERMed switch may take to exit (it sleeps POLL_S at most)."""
COMMAND_TIMEOUT_S = 10.0


def heal(path: str, log: str | None) -> None:
    with open(path) as source:
        commands = json.load(source)
    for argv in commands:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
            outcome = f"exit {done.returncode}" + (f": {done.stderr.strip()}" if done.stderr.strip() else "")
        except (OSError, subprocess.TimeoutExpired) as error:
            outcome = f"failed: {error}"
        note(log, f"healed: {' '.join(argv)} -> {outcome}")


def note(log: str | None, line: str) -> None:
    if log is None:
        return
    with open(log, "a") as target:
        target.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {line}\n")


def watch(arguments: argparse.Namespace) -> None:
    stopped = False

    def disarm(signum: int, frame: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, disarm)
    note(arguments.log, f"watching: heal after {arguments.timeout:g} s without a heartbeat once armed")
    armed = False
    while not stopped:
        if not os.path.exists(arguments.heal):
            note(arguments.log, "done: the heal file is gone (the lab was torn down)")
            return
        try:
            silent = time.time() - os.stat(arguments.heartbeat).st_mtime
        except FileNotFoundError:
            if armed:
                note(arguments.log, "disarmed: the heartbeat file is gone")
            armed = False
            time.sleep(POLL_S)
            continue
        if not armed:
            note(arguments.log, "armed: a disruption began")
        armed = True
        if silent > arguments.timeout:
            note(arguments.log, f"no heartbeat for {silent:.1f} s: healing")
            heal(arguments.heal, arguments.log)
            return
        time.sleep(POLL_S)
    note(arguments.log, "stopped: SIGTERM")


def watcher_file(heal_file: str) -> str:
    return f"{heal_file}.watcher"


def stop_watcher(heal_file: str) -> None:
    """SIGTERM the switch watching ``heal_file`` (its recorded PID, if it is still that script)
    and wait until it is gone."""
    try:
        with open(watcher_file(heal_file)) as recorded:
            pid = int(recorded.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if b"deadman.py" not in cmdline.read():
                return
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heartbeat")
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--heal", required=True)
    parser.add_argument("--log")
    parser.add_argument("--now", action="store_true", help="heal at once, in the foreground")
    arguments = parser.parse_args()
    if arguments.now:
        stop_watcher(arguments.heal)
        heal(arguments.heal, arguments.log)
        return
    if arguments.heartbeat is None or arguments.timeout is None:
        parser.error("--heartbeat and --timeout are needed unless --now")
    child = os.fork()
    if child:
        print(child, flush=True)
        return
    os.setsid()
    with open(watcher_file(arguments.heal), "w") as recorded:
        recorded.write(f"{os.getpid()}\n")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(devnull, stream)
    try:
        watch(arguments)
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()

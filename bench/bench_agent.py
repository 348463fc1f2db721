"""Benchmark: the node agent's command channel, and what it buys a graceful move.

1. One `Node.run(["true"])` through each way of reaching a node's agent: netns (a unix socket in
   the node's directory), Docker through one `docker exec -i` relay stream (what the backend
   uses), Docker through a unix socket in a bind-mounted directory (the alternative the design
   allowed; measured in a throwaway container), and, for reference, one `docker exec` per command
   (what the Docker backend did before the agent).
2. ``vip_moved_s`` of a graceful move (fault -> the VIP configured and announced on the new owner) on each
   backend, over several moves on one lab.

A benchmark, not a test: it prints numbers for BENCHMARKS.md and asserts nothing.

    .venv/bin/python bench/bench_agent.py [--runs 200] [--moves 5] [--backend netns --backend docker ...]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed
from timing import median_ms, show

from harness import lab, measure, timers
from harness.agent import AGENT_SCRIPT, AgentNode
from harness.backends.docker import AGENTS, PYTHON, DockerBackend


def bind_mounted_socket(runs: int) -> tuple[float, float, float]:
    """The agent in a throwaway container listening in a bind-mounted host directory."""
    engine = DockerBackend()
    engine.ensure_image()
    api: Any = engine.api
    with tempfile.TemporaryDirectory(prefix="flab-bench-") as directory:
        host = Path(directory)
        command = [*PYTHON, str(AGENTS / AGENT_SCRIPT), "--listen", "unix:/shared/agent.sock"]
        created = api.create_container(
            engine.image,
            entrypoint=command,
            host_config=api.create_host_config(binds=[f"{host}:/shared"], network_mode="none", init=True),
        )
        api.start(created["Id"])
        try:

            def connect() -> socket.socket:
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(str(host / "agent.sock"))
                return sock

            for attempt in Retrying(
                retry=retry_if_exception_type(OSError), stop=stop_after_delay(10), wait=wait_fixed(0.05), reraise=True
            ):
                with attempt:
                    connect().close()
            node = AgentNode("bench", PurePosixPath("/shared"), connect, PYTHON, AGENTS)
            return median_ms(lambda: node.run(["true"]), runs)
        finally:
            api.remove_container(created["Id"], force=True)


def exec_per_command(running: lab.Lab, runs: int) -> tuple[float, float, float]:
    """One `docker exec` per command, as the Docker backend ran commands before the agent."""
    assert isinstance(running.backend, DockerBackend)
    api: Any = running.backend.api
    [container] = [
        c["Id"]
        for c in api.containers(filters={"label": f"com.docker.compose.project={running.topology.qualified}"})
        if c["Labels"]["com.docker.compose.service"] == "fe"
    ]

    def once() -> None:
        created = api.exec_create(container, ["true"])
        api.exec_start(created["Id"])
        api.exec_inspect(created["Id"])

    return median_ms(once, max(10, runs // 10))


def vip_moves(running: lab.Lab, moves: int) -> list[float]:
    moved = []
    for _ in range(moves):
        outcome = measure.run(running, "graceful")
        assert outcome.vip_moved is not None
        moved.append(outcome.vip_moved * 1000)
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--moves", type=int, default=5)
    parser.add_argument("--backend", action="append", help="netns, docker, docker:bookworm (default: all three)")
    arguments = parser.parse_args()
    profile = timers.profile("fast")
    for backend in arguments.backend or ["netns", "docker", "docker:bookworm"]:
        print(f"{backend}:")
        with lab.running(profile, backend) as running:
            show(
                "Node.run(['true']) through the node's agent",
                median_ms(lambda: running.fe.run(["true"]), arguments.runs),
            )
            if backend.startswith("docker"):
                show("one `docker exec` per command (before the agent)", exec_per_command(running, arguments.runs))
            moved = vip_moves(running, arguments.moves)
            print(
                f"  {'graceful: fault -> VIP on the new owner':55s} median {statistics.median(moved):6.2f} ms  "
                f"(min {min(moved):.2f}, max {max(moved):.2f}, {len(moved)} moves)"
            )
        if backend == "docker":
            show("the agent through a bind-mounted unix socket instead", bind_mounted_socket(arguments.runs))


if __name__ == "__main__":
    main()

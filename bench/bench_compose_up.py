"""Benchmark: a plain `docker compose up -d` (no harness) until fe says its tunnels are up, and
`docker compose down -v`, median of several runs with a warm node image. A benchmark, not a
test: it prints numbers for BENCHMARKS.md and asserts nothing.

    .venv/bin/python bench/bench_compose_up.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

from harness import compose_node
from harness.backends.docker import COMPOSE_FILE, REPO, DockerBackend, compose_command


def compose(*arguments: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLAB_")}
    argv = [*compose_command(), "-f", str(COMPOSE_FILE), *arguments]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout


def measure_once() -> tuple[float, float]:
    start = time.monotonic()
    compose("up", "-d")
    deadline = start + compose_node.START_TIMEOUT_S + compose_node.READY_TIMEOUT_S
    while "lab ready" not in compose("logs", "--no-color", "fe"):
        if time.monotonic() > deadline:
            raise SystemExit("fe never said `lab ready`: see docker compose logs")
        time.sleep(0.05)
    ready = time.monotonic() - start
    stop = time.monotonic()
    compose("down", "-v", "-t", "0")
    return ready, time.monotonic() - stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    DockerBackend().ensure_image()
    measure_once()  # warm caches; not counted
    samples = [measure_once() for _ in range(arguments.runs)]
    for label, values in (("up->ready", [s[0] for s in samples]), ("down -v", [s[1] for s in samples])):
        print(
            f"{label:9s} median {statistics.median(values):.3f} s  "
            f"min {min(values):.3f} s  max {max(values):.3f} s  ({len(values)} runs)"
        )


if __name__ == "__main__":
    main()

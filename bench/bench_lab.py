"""Benchmark: lab bring-up (nothing -> fe's first CHILD_SA installed) and teardown, median of
several runs, and the cost of one command on a node (Node.run of `true`). A benchmark, not a
test: it prints numbers for BENCHMARKS.md and asserts nothing.

    .venv/bin/python bench/bench_lab.py [--runs 9] [--profile fast] [--backend netns|docker|docker:bookworm|uml]
    .venv/bin/python bench/bench_lab.py --backend ssh --inventory hosts.yaml   # e.g. the test hosts (hosts up)

On ssh, bring-up counts the preflight too (it runs first, as it does for `up`), then everything
up to fe's first CHILD_SA.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from harness import lab, timers


def measure_once(profile: timers.Profile, backend: str, inventory: Path | None) -> tuple[float, float]:
    start = time.monotonic()
    with lab.running(profile, backend, inventory=inventory) as running:
        bring_up = running.t_child_up - start
        stop = time.monotonic()
    return bring_up, time.monotonic() - stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--backend", default="netns")
    parser.add_argument("--inventory", type=Path, help="--backend ssh: the hosts")
    arguments = parser.parse_args()
    profile = timers.profile(arguments.profile)
    measure_once(profile, arguments.backend, arguments.inventory)  # warm the page cache; not counted
    samples = [measure_once(profile, arguments.backend, arguments.inventory) for _ in range(arguments.runs)]
    with lab.running(profile, arguments.backend, inventory=arguments.inventory) as running:
        execs = []
        for _ in range(20):
            start = time.monotonic()
            running.fe.run(["true"])
            execs.append(time.monotonic() - start)
    measured = (("bring-up", [s[0] for s in samples]), ("teardown", [s[1] for s in samples]), ("exec", execs))
    for label, values in measured:
        print(
            f"{label:9s} median {statistics.median(values):.3f} s  "
            f"min {min(values):.3f} s  max {max(values):.3f} s  ({len(values)} runs, {arguments.backend})"
        )


if __name__ == "__main__":
    main()

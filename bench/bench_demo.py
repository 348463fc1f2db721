"""Benchmark: wall time of the whole default demo and the harness's overhead per run (run wall
time minus the measured outage: bring-up, steady traffic, recovery proof, undo, teardown).
A benchmark, not a test: it prints numbers for BENCHMARKS.md and asserts nothing.

    .venv/bin/python bench/bench_demo.py [--out /tmp/bench-demo]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness.result import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-demo"))
    arguments = parser.parse_args()
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness.cli", "demo", "--out", str(arguments.out)], check=True)
    total = time.monotonic() - start
    results = load(arguments.out)
    overheads = [r["run_wall_s"] - (r["outage_s"] or 0.0) for r in results]
    measuring = sum(r["run_wall_s"] for r in results)
    print(
        f"demo wall time {total:.1f} s for {len(results)} runs ({measuring:.1f} s in runs, "
        f"{total - measuring:.1f} s start-up and report)"
    )
    print(f"harness overhead per run: median {statistics.median(overheads):.2f} s, max {max(overheads):.2f} s")
    for result, overhead in zip(results, overheads, strict=True):
        print(
            f"  {result['profile']:20s} {result['fault']:9s} outage {result['outage_s']:7.3f} s  "
            f"run {result['run_wall_s']:6.2f} s  overhead {overhead:.2f} s"
        )


if __name__ == "__main__":
    main()

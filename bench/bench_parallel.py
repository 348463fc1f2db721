"""Benchmark: a matrix of crash scenarios (bench/scenarios/crash-matrix.yaml, eight labs) run
serially and with pytest-xdist (-n 4): labs spend most of their time waiting on timers, so they
run side by side. A benchmark, not a test: it prints wall times for BENCHMARKS.md.

    .venv/bin/python bench/bench_parallel.py [--backend netns] [--workers 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

MATRIX = Path(__file__).parent / "scenarios"


def timed(*arguments: str) -> tuple[float, int]:
    start = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin", "-q", "-p", "no:cacheprovider", *arguments]
    )
    return time.monotonic() - start, completed.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="netns")
    parser.add_argument("--workers", type=int, default=4)
    arguments = parser.parse_args()
    common = [str(MATRIX), "--lab-backend", arguments.backend]
    serial, serial_rc = timed(*common)
    parallel, parallel_rc = timed(*common, "-n", str(arguments.workers))
    print(
        f"serial {serial:.1f} s (exit {serial_rc}), -n {arguments.workers} {parallel:.1f} s (exit {parallel_rc}): "
        f"{serial / parallel:.2f}x faster ({arguments.backend})"
    )


if __name__ == "__main__":
    main()

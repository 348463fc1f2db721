"""The benchmarks' shared stopwatch: the median, least and most of a repeated action, and how one
line of results is printed.

Owns: timing a callable and printing its numbers. Not: what is timed (each bench script).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(action: Callable[[], object], runs: int) -> tuple[float, float, float]:
    """The median, least and most milliseconds ``action`` took over ``runs`` calls, after one
    warming call."""
    action()  # warm
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, min(samples) * 1000, max(samples) * 1000


def show(label: str, numbers: tuple[float, float, float], width: int = 55) -> None:
    median, low, high = numbers
    print(f"  {label:{width}s} median {median:6.2f} ms  (min {low:.2f}, max {high:.2f})")

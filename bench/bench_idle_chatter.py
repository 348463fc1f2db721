"""Benchmark: the IKE messages two live, idle peers exchange (fe and the VIP's owner, DPD only),
counted on the lab wire, beside what the timer search counts (harness.timer_search): one DPD
exchange per dpd_delay, two when both peers check at once.

A benchmark, not a test: it prints numbers for BENCHMARKS.md and asserts nothing.

    .venv/bin/python bench/bench_idle_chatter.py [--window 60] [--backend netns] [--delay 1 --delay 2 ...]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from harness import chatter, lab, timer_search, timers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60.0, help="seconds of idle time counted per lab")
    parser.add_argument("--backend", action="append", help="backends (default netns)")
    parser.add_argument("--delay", action="append", type=int, help="dpd_delay values (default 1, 2, 5)")
    arguments = parser.parse_args()
    base = timer_search.tune(timers.profile("strongswan-default"), timer_search.Goal("crash", 3.0)).profile
    for backend_name in arguments.backend or ["netns"]:
        for delay in arguments.delay or [1, 2, 5]:
            profile = replace(base, dpd_delay=delay)
            with lab.running(profile, backend_name) as running:
                counted = chatter.idle_ike_messages(running, arguments.window)
            fewest, most = timer_search.idle_messages_per_hour(profile)
            print(
                f"{backend_name:16s} dpd_delay {delay} s: {counted.messages} IKE messages in {counted.inner_s:.1f} s "
                f"= {counted.per_hour:.0f} per hour (model {fewest:.0f}-{most:.0f})",
                flush=True,
            )


if __name__ == "__main__":
    main()

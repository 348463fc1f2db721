"""Benchmark: what keeping a run's evidence costs (harness.evidence.collect: the pcap of every
capture point, four charon logs and configurations, the decryption tables), and how big it is,
after one graceful move with the given profile. A benchmark, not a test: it prints numbers for
BENCHMARKS.md and asserts nothing.

    .venv/bin/python bench/bench_evidence.py [--runs 5] [--profile fast] [--backend netns|docker|docker:bookworm|uml]
"""

from __future__ import annotations

import argparse

from timing import median_ms, show

from harness import evidence, lab, measure, timers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--backend", default="netns")
    arguments = parser.parse_args()
    with lab.running(timers.profile(arguments.profile), arguments.backend) as running:
        outcome = measure.run(running, "graceful", keep_evidence=True)
        kept = outcome.evidence
        assert kept is not None
        files = running.backend.capture_points(running.topology)
        where = [(running.nodes[point.node], running.nodes[point.node].workdir / "wire.pcap") for point in files]
        show(f"collect ({arguments.backend})", median_ms(lambda: evidence.collect(running, where), arguments.runs))
    logs = sum(len(log) for log in kept.logs.values())
    keys = {name: len(text.splitlines()) for name, text in kept.keys.items() if name != "preferences"}
    print(
        f"  capture {len(kept.capture) / 1e6:.2f} MB ({outcome.wire_packets} packets), "
        f"logs {logs / 1e6:.2f} MB, table lines {keys}"
    )


if __name__ == "__main__":
    main()

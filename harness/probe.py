"""Probes on fe and the timeline math: which attempts were answered, by which node, and how long
each service was interrupted around a fault.

The probe agent (harness/agents/probe.py) runs on fe and stamps every attempt with fe's
monotonic clock; the harness stamps the fault with the same clock (one kernel, one clock).

Outage of a service: the longest silence between two consecutive answers, counted from the last
answer at or before the fault onwards. Answers still arriving while the fault unfolds (the old
owner keeps serving until its SAs are gone) therefore shorten nothing and lengthen nothing.
The overall outage runs from the first service falling silent to the last one answering again.

Owns: parsing probe output and Timeline/Outage values. Not: injecting faults (harness.faults).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.node import Node, Process

SERVICES = ("udp", "http", "pop3", "imap")
UDP_INTERVAL_S = 0.01
TCP_INTERVAL_S = 0.02
ATTEMPT_TIMEOUT_S = 1.0
STOP_MARGIN_S = 1.0
"""How long past the attempt timeout a stopping probe may take to report its last attempts."""
Predicate = Callable[[list["Attempt"]], bool]
INTERVALS = {"udp": UDP_INTERVAL_S, "http": TCP_INTERVAL_S, "pop3": TCP_INTERVAL_S, "imap": TCP_INTERVAL_S}


@dataclass(frozen=True)
class Attempt:
    """One probe attempt: started at ``t0``, ended at ``t1``; ``node`` is None if it failed."""

    service: str
    t0: float
    t1: float
    node: str | None
    error: str | None = None
    late: float = 0.0
    """How late it started against the probe's schedule (the probe was not running)."""

    @classmethod
    def parse(cls, line: str, offset: float = 0.0) -> Attempt | None:
        """An attempt from one line of probe output (its stamps + ``offset``: on the harness's
        clock); None for anything else the agent printed."""
        try:
            record = json.loads(line)
            t0, t1 = float(record["t0"]) + offset, float(record["t1"]) + offset
            return cls(record["s"], t0, t1, record.get("n"), record.get("e"), float(record.get("l", 0.0)))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Outage:
    """The interruption of one service around a fault (times on fe's monotonic clock)."""

    service: str
    last_before: float
    """The last answer before the service fell silent."""
    first_after: float | None
    """The first answer after it came back; None if it never did."""
    old_owner: str
    new_owner: str | None
    """Who answers once the service is back: the node of its last answer (right after the longest
    gap an old owner may still answer what it had in flight, when the gaps are small)."""
    resolution: float
    """The probe's interval for the service plus how late the probe ran during the outage (its
    stamps are that uncertain: the answer that ended or resumed the service may have been
    stamped that much late)."""

    @property
    def seconds(self) -> float | None:
        return None if self.first_after is None else self.first_after - self.last_before


def outage(attempts: Iterable[Attempt], service: str, t_fault: float, resolution: float) -> Outage:
    """The longest gap between answers of ``service`` from its last answer before ``t_fault``."""
    answers = sorted((a for a in attempts if a.service == service and a.node is not None), key=lambda a: a.t1)
    before = [a for a in answers if a.t1 <= t_fault]
    if not before:
        raise ValueError(f"{service}: no answer before the fault")
    start = len(before) - 1
    window = answers[start:]
    if len(window) == 1:
        return Outage(service, window[0].t1, None, _node(window[0]), None, resolution)
    gaps = [(b.t1 - a.t1, a, b) for a, b in itertools.pairwise(window)]
    _, last, first = max(gaps, key=lambda gap: gap[0])
    late = max((a.late for a in attempts if a.service == service and last.t0 <= a.t0 <= first.t1), default=0.0)
    return Outage(service, last.t1, first.t1, _node(before[-1]), window[-1].node, resolution + late)


def _node(attempt: Attempt) -> str:
    assert attempt.node is not None
    return attempt.node


def overall(outages: Iterable[Outage]) -> float | None:
    """From the first service falling silent to the last one answering again."""
    items = list(outages)
    if not items or any(o.first_after is None for o in items):
        return None
    return max(o.first_after for o in items if o.first_after is not None) - min(o.last_before for o in items)


class Probe:
    """The probe agent running on fe, its attempts collected by a reader thread."""

    def __init__(self, fe: Node, target: str, offset: float = 0.0) -> None:
        """``offset``: added to fe's stamps to put them on the harness's clock (Node.clock)."""
        self.offset = offset
        self.attempts: list[Attempt] = []
        self.other_output: list[str] = []
        self._changed = threading.Condition()
        self.process: Process = fe.spawn(
            [
                *fe.agent("probe"),
                "--target",
                target,
                "--udp-interval",
                str(UDP_INTERVAL_S),
                "--tcp-interval",
                str(TCP_INTERVAL_S),
                "--timeout",
                str(ATTEMPT_TIMEOUT_S),
            ],
            capture=True,
        )
        self._reader = threading.Thread(target=self._read, name="probe-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.lines():
            attempt = Attempt.parse(line, self.offset)
            with self._changed:
                if attempt is None:
                    self.other_output.append(line.rstrip())
                else:
                    self.attempts.append(attempt)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def snapshot(self) -> list[Attempt]:
        with self._changed:
            return list(self.attempts)

    def wait_until(self, predicate: Predicate, timeout: float) -> bool:
        """Wait until ``predicate(attempts)`` holds or the probe exits; False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: predicate(self.attempts) or not self.process.alive(), timeout
            ) and predicate(self.attempts)

    def stop(self) -> list[Attempt]:
        """Stop the probe; the attempts still in flight end first (answered or timed out) and
        are recorded, so the snapshot after it holds every attempt that was started."""
        self.process.stop(timeout=ATTEMPT_TIMEOUT_S + STOP_MARGIN_S)
        self._reader.join(5)
        return self.snapshot()


def answered(services: Iterable[str], after: float, node: str | None = None, count: int = 3) -> Predicate:
    """Every service has ``count`` answers to attempts started after ``after`` (from ``node``)."""
    wanted = tuple(services)

    def predicate(attempts: list[Attempt]) -> bool:
        tally = dict.fromkeys(wanted, 0)
        for attempt in attempts:
            wanted_node = attempt.node is not None and (node is None or attempt.node == node)
            if wanted_node and attempt.t0 >= after and attempt.service in tally:
                tally[attempt.service] += 1
        return all(n >= count for n in tally.values())

    return predicate

"""What a run shows while it waits for recovery: fe's charon log followed as it is written, each
IKE event (DPD request, retransmission, DELETE, INITIAL_CONTACT, new SAs) as a line the moment it
happens, and the current phase decided by the same rules as the result's (harness.phases.breakdown
on the SA events so far), so the live view and the result never disagree.

Owns: following the log during a run and the Progress value. Not: printing it (the CLI's
reporters), the final phases (harness.phases).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness import strongswan, timers
from harness.node import Node, Process
from harness.phases import LogEvent, breakdown, parse_log
from harness.sa import SaEvent

RETRANSMIT_NUMBER = re.compile(r"retransmit (\d+)")
DESCRIPTIONS = {
    "dpd": "DPD request sent",
    "gave-up": "retransmissions gave up: fe declares the peer dead",
    "delete": "DELETE received from the peer",
    "initial-contact": "INITIAL_CONTACT from the restarted peer: fe drops its stale IKE SA",
    "initiate": "fe initiates a new IKE SA",
    "ike-established": "IKE SA established",
    "child-established": "CHILD_SA established",
}


def describe(event: LogEvent) -> str:
    if event.kind == "retransmit":
        found = RETRANSMIT_NUMBER.search(event.text)
        return f"retransmission {found.group(1) if found else '?'} of the request"
    return DESCRIPTIONS.get(event.kind, event.text)


def boundaries(sa_events: Sequence[SaEvent], t_fault: float) -> tuple[float | None, float | None]:
    """When detection ended and when negotiation ended, in seconds after the fault, by the
    result's own rules (harness.phases.breakdown): fe's IKE SA with the failed peer went down;
    the CHILD_SA that carries traffic again was installed. None: not yet."""
    so_far = breakdown(t_fault, t_fault, None, sa_events, [], None)
    if so_far.detection is None:
        return None, None
    if so_far.negotiation is None:
        return so_far.detection, None
    return so_far.detection, so_far.detection + so_far.negotiation


@dataclass(frozen=True)
class Progress:
    """Where a run stands while it waits for recovery."""

    elapsed: float
    """Seconds since the fault."""
    predicted: timers.Bounds
    detected_at: float | None = None
    """Seconds after the fault when fe's IKE SA with the failed peer went down (None: not yet)."""
    installed_at: float | None = None
    """Seconds after the fault when the CHILD_SA that carries traffic again was installed."""
    news: tuple[tuple[float, str], ...] = ()
    """What happened since the last report: (seconds since the fault, what)."""
    dpd_requests: int = 0
    retransmits: int = 0
    deletes: int = 0

    @property
    def phase(self) -> str:
        if self.installed_at is not None:
            return "data"
        return "negotiation" if self.detected_at is not None else "detection"


Reporter = Callable[[Progress], None]


class LogFollower:
    """fe's charon log as it is written (`tail -F` on the node), parsed into LogEvents on the
    harness's monotonic clock."""

    def __init__(self, fe: Node, wall_to_monotonic: float) -> None:
        self.events: list[LogEvent] = []
        self._offset = wall_to_monotonic
        self._lock = threading.Lock()
        log = fe.workdir / "charon.log"
        self._process: Process = fe.spawn(["tail", "-n", "0", "-F", str(log)], capture=True)
        self._reader = threading.Thread(target=self._read, name="charon-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._process.lines():
            found = parse_log(line, self._offset, since=float("-inf"), connection=strongswan.CONNECTION)
            with self._lock:
                self.events.extend(found)

    def since(self, moment: float) -> list[LogEvent]:
        with self._lock:
            return [event for event in self.events if event.t >= moment]

    def stop(self) -> None:
        self._process.stop()
        self._reader.join(5)


class Watch:
    """Turns the log and the SA events since the fault into Progress reports, each event once."""

    def __init__(
        self, t_fault: float, predicted: timers.Bounds, follower: LogFollower | None, report: Reporter, struck: str
    ) -> None:
        self.t_fault = t_fault
        self.predicted = predicted
        self.follower = follower
        self.report = report
        self._told = 0
        self._struck: tuple[tuple[float, str], ...] = ((0.0, struck),)

    def progress(self, sa_events: Sequence[SaEvent], now: float | None = None) -> Progress:
        logged = self.follower.since(self.t_fault) if self.follower is not None else []
        news = self._struck + tuple((event.t - self.t_fault, describe(event)) for event in logged[self._told :])
        self._told, self._struck = len(logged), ()
        detected, installed = boundaries(sa_events, self.t_fault)
        return Progress(
            elapsed=(now if now is not None else time.monotonic()) - self.t_fault,
            predicted=self.predicted,
            detected_at=detected,
            installed_at=installed,
            news=news,
            dpd_requests=sum(e.kind == "dpd" for e in logged),
            retransmits=sum(e.kind == "retransmit" for e in logged),
            deletes=sum(e.kind == "delete" for e in logged),
        )

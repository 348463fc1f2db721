"""What a run shows while it waits for recovery: fe's charon log followed as it is written, each
IKE event (DPD request, retransmission, DELETE, INITIAL_CONTACT, new SAs) and each of fe's SAs with
the VIP going down or being installed (vici) as a line, and the current phase decided by the same
rules as the result's (harness.phases.breakdown on the SA events so far), so the live view and the
result never disagree.

The log and vici's events reach the harness by different routes (on Docker through exec relays),
so a line may arrive after a later one: ``InOrder`` holds every line ``LAG_S`` before printing it,
and releases them in time order. At the end of the run the lines are completed from what the run
read whole (fe's entire charon log and every SA event, ``news_of``): a line the follower missed
still appears, none twice. Every line states what happened; which phase it ended is the result's
to say, once the run is over (a later SA can still change it).

Owns: following the log during a run, the Progress value and the order of the live lines. Not:
printing them (the CLI's reporters), the final phases (harness.phases).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from harness import strongswan, timers
from harness.node import Node, Process
from harness.phases import LogEvent, breakdown, parse_log
from harness.sa import SaEvent

LAG_S = 0.5
"""How long a live line is held back, so that one that happened earlier and arrives later (a
vici event relayed late, a log line read late) still goes first: vici events reach the harness
up to harness.phases.EVENT_SLACK_S after they happened."""
RETRANSMIT_NUMBER = re.compile(r"retransmit (\d+)")
DESCRIPTIONS = {
    "dpd": "DPD request sent",
    "gave-up": "retransmissions gave up: fe declares the peer dead",
    "delete": "DELETE received from the peer",
    "initial-contact": "INITIAL_CONTACT received: fe destroys its duplicate IKE SA with the peer",
    "acquire": "a packet met fe's trap policy: the kernel asks charon for an SA (acquire)",
    "initiate": "fe initiates a new IKE SA",
    "ike-established": "IKE SA established",
    "child-established": "CHILD_SA established",
}

News = tuple[float, str]
"""A live line: (seconds since the fault, what happened)."""


def describe(event: LogEvent) -> str:
    if event.kind == "gave-up" and event.text.startswith("DPD check timed out"):
        return "IKEv1 DPD timed out (nothing from the peer for dpd_timeout): fe declares the peer dead"
    if event.kind == "retransmit":
        found = RETRANSMIT_NUMBER.search(event.text)
        return f"retransmission {found.group(1) if found else '?'} of the request"
    return DESCRIPTIONS.get(event.kind, event.text)


def describe_sa(event: SaEvent) -> str | None:
    """What one of fe's SA events with the VIP says, as a fact (vici's ike-updown and
    child-updown); None for the kinds the log lines already tell (an IKE SA up, a CHILD_SA down
    with its IKE SA)."""
    if event.kind == "ike" and not event.up:
        return f"fe's IKE SA #{event.ike_id} with the VIP went down (vici)"
    if event.kind == "child" and event.up:
        return f"fe's CHILD_SA of IKE SA #{event.ike_id} with the VIP installed (vici)"
    return None


def news_of(t_fault: float, log_events: Iterable[LogEvent], sa_events: Iterable[SaEvent]) -> list[News]:
    """The live lines of log and SA events from the fault on: those the follower has read so far
    while the run waits, and at its end every one the run recorded (measure.Outcome's
    ``log_events``, read from fe's whole charon log, and ``events``)."""
    found = [(event.t - t_fault, describe(event)) for event in log_events if event.t >= t_fault]
    for event in sa_events:
        what = describe_sa(event)
        if what is not None and event.t >= t_fault:
            found.append((event.t - t_fault, what))
    return found


class InOrder:
    """Live lines in time order, each once: a line is held until ``lag`` seconds after it
    happened, so one that arrives late can still go before it; ``rest`` releases the others."""

    def __init__(self, lag: float = LAG_S) -> None:
        self._lag = lag
        self._held: list[News] = []
        self._seen: set[tuple[float, str]] = set()

    def add(self, news: Iterable[News]) -> None:
        """Lines to show; one already added (the same time to 0.1 ms and text) is dropped."""
        for at, what in news:
            key = (round(at, 4), what)
            if key not in self._seen:
                self._seen.add(key)
                self._held.append((at, what))

    def due(self, elapsed: float) -> list[News]:
        """The lines that happened ``lag`` seconds or more before ``elapsed``, in time order."""
        ready = [item for item in self._held if item[0] <= elapsed - self._lag]
        self._held = [item for item in self._held if item[0] > elapsed - self._lag]
        return sorted(ready, key=lambda item: item[0])

    def rest(self) -> list[News]:
        """Every line still held, in time order."""
        ready, self._held = self._held, []
        return sorted(ready, key=lambda item: item[0])


def boundaries(sa_events: Sequence[SaEvent], t_fault: float) -> tuple[float | None, float | None]:
    """When detection ended and when negotiation ended so far, in seconds after the fault, by
    the result's own rules (harness.phases.breakdown): fe's IKE SA with the VIP went down; the
    last CHILD_SA was installed. None: not yet."""
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
    """Seconds after the fault when fe's IKE SA with the VIP went down (None: not yet)."""
    installed_at: float | None = None
    """Seconds after the fault when the last CHILD_SA with the VIP was installed."""
    news: tuple[News, ...] = ()
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
        self._sa_told = 0
        self._struck: tuple[News, ...] = ((0.0, struck),)

    def progress(self, sa_events: Sequence[SaEvent], now: float | None = None) -> Progress:
        logged = self.follower.since(self.t_fault) if self.follower is not None else []
        since_fault = [event for event in sa_events if event.t >= self.t_fault]
        news = self._struck + tuple(
            news_of(self.t_fault, logged[self._told :], since_fault[self._sa_told :]),
        )
        self._told, self._sa_told, self._struck = len(logged), len(since_fault), ()
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

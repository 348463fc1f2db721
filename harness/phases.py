"""Where an outage goes: detection, negotiation and data, from fe's vici events and charon log.

detection    outage start -> fe's IKE SA with the failed peer goes down (DELETE received, DPD and
             its retransmissions gave up (IKEv1: its DPD check timed out), or a new IKE SA from
             the peer's identity carried INITIAL_CONTACT); absent when fe never noticed (a short
             freeze)
negotiation  -> the CHILD_SA that carries traffic again is installed (the last one before
             recovery: in a race fe may first build an SA that is stranded at once)
data         -> every service answers again

The three telescope from the start of the outage (the last answer before the fault took effect)
to the recovery, so they sum to the outage. The outage start, not the harness's stamp of the
fault, is where the fault acted on the traffic: on Docker a fault's first command takes tens of
milliseconds to arrive. Events count from the harness's stamp on.

Owns: parsing fe's charon log and the Phases value. Not: collecting the events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.sa import SaEvent

LOG_LINE = re.compile(r"^(\d+\.\d+) \d+\[\w+\] (?:<([^|>]*)\|\d+> )?(.*)$")
"""``time_format = %s`` with ms, thread and group, ``ike_name = yes``'s ``<connection|id>`` when
the line belongs to an IKE SA, and the message."""
LOG_EVENTS = {
    "dpd": re.compile(r"^sending DPD request"),
    "retransmit": re.compile(r"^(?:sending )?retransmit \d+ of"),
    "gave-up": re.compile(r"^(?:giving up after \d+ retransmits|DPD check timed out, enforcing DPD action)"),
    "delete": re.compile(r"^received DELETE for IKE_SA"),
    "initial-contact": re.compile(r"^destroying duplicate IKE_SA .*received INITIAL_CONTACT"),
    "acquire": re.compile(r"^creating acquire job for policy"),
    "initiate": re.compile(r"^initiating (?:Main Mode )?IKE_SA"),
    "ike-established": re.compile(r"^IKE_SA \S+ established"),
    "child-established": re.compile(r"^CHILD_SA \S+ established"),
}
DETECTED_BY = {"delete": "DELETE", "gave-up": "DPD", "initial-contact": "INITIAL_CONTACT"}
"""How fe learnt that its IKE SA with the failed peer was gone, by the log line that said so."""
LOG_SLACK_S = 0.002
"""charon stamps its log in milliseconds; a log line may look up to this much later than the
vici event it caused."""
EVENT_SLACK_S = 0.25
"""vici events are stamped when they reach the harness; through Docker's exec relay that can be
after the probe (stamped on the node) already saw the first answer of the new SA."""


@dataclass(frozen=True)
class LogEvent:
    """A line of fe's charon log that matters for failover, on the monotonic clock."""

    t: float
    kind: str
    text: str
    connection: str | None = None
    """The connection of the IKE SA the line is about (None: no IKE SA named)."""


def parse_log(text: str, wall_to_monotonic: float, since: float, connection: str | None = None) -> list[LogEvent]:
    """Interesting lines of a charon log (``time_format = %s`` with ms) at or after ``since``
    (monotonic); ``wall_to_monotonic`` is added to the log's epoch stamps."""
    events = []
    for line in text.splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        t = float(match.group(1)) + wall_to_monotonic
        named, message = match.group(2), match.group(3).strip()
        if connection is not None and named not in (None, connection):
            continue  # another IKE SA's line (fe's SA with dc has DPDs of its own)
        for kind, pattern in LOG_EVENTS.items():
            if t >= since and pattern.match(message):
                events.append(LogEvent(t, kind, message, named))
    return events


RETRANSMIT_NUMBER = re.compile(r"^(?:sending )?retransmit (\d+) of")


def retransmission_gaps(log_events: Sequence[LogEvent]) -> list[list[float]]:
    """Seconds between successive retransmissions of each request fe retransmitted (charon
    numbers them 1, 2, ... per request): the gap after retransmission n is the timeout charon
    ran with for try n, the effective base, limit and jitter, on charon's own clock."""
    requests: list[list[float]] = []
    previous: tuple[int, float] | None = None
    for event in log_events:
        found = RETRANSMIT_NUMBER.match(event.text) if event.kind == "retransmit" else None
        if found is None:
            continue
        number = int(found.group(1))
        if previous is None or number != previous[0] + 1:
            requests.append([])
        elif requests:
            requests[-1].append(round(event.t - previous[1], 3))
        previous = (number, event.t)
    return [gaps for gaps in requests if gaps]


@dataclass(frozen=True)
class Phases:
    """Seconds spent in each phase (None when the phase did not happen)."""

    detection: float | None
    negotiation: float | None
    data: float | None
    detected_by: str | None
    """"DELETE", "DPD" or "INITIAL_CONTACT"; None if fe never noticed."""
    negotiated_with: str | None
    """The back-end that answered the recovering negotiation."""
    started_by: str | None
    """How the recovering negotiation began: "acquire" (a packet met fe's trap policy: the
    kernel datapath with profile recovery ``trap``), "restart" (fe's charon re-initiated by
    itself: dpd_action or close_action), "peer" (the restarted back-end initiated and sent
    INITIAL_CONTACT); None without one."""
    dpd_requests: int
    retransmits: int

    def total(self) -> float:
        return sum(p for p in (self.detection, self.negotiation, self.data) if p is not None)


def _last(events: Iterable[SaEvent], kind: str, up: bool, after: float, until: float) -> SaEvent | None:
    matching = [e for e in events if e.kind == kind and e.up == up and after < e.t <= until]
    return matching[-1] if matching else None


def breakdown(
    t_fault: float,
    t_start: float,
    t_recovered: float | None,
    sa_events: Sequence[SaEvent],
    log_events: Sequence[LogEvent],
    negotiated_with: str | None,
) -> Phases:
    end = t_recovered if t_recovered is not None else max([t_fault, *(e.t for e in sa_events)])
    child_up = _last(sa_events, "child", True, t_fault, end + EVENT_SLACK_S)
    ike_down = _last(sa_events, "ike", False, t_fault, child_up.t if child_up else end)
    detected_by = None
    noticed = t_fault  # when fe's log said it noticed (vici's event may reach the harness later)
    if ike_down is not None:
        causes = [e for e in log_events if e.kind in DETECTED_BY and e.t <= ike_down.t + LOG_SLACK_S]
        if causes:
            detected_by, noticed = DETECTED_BY[causes[-1].kind], causes[-1].t
    detected = min(max(ike_down.t, t_start), end) if ike_down is not None else t_start
    installed = min(max(child_up.t, detected), end) if child_up is not None else detected
    window = [e for e in log_events if t_fault <= e.t <= end + LOG_SLACK_S]
    started_by = None
    if child_up is not None:
        began = [e for e in window if e.kind in ("acquire", "initiate") and noticed <= e.t <= installed]
        acquired = bool(began) and began[0].kind == "acquire"  # a restart's initiation may meet the trap too
        started_by = "peer" if detected_by == "INITIAL_CONTACT" else "acquire" if acquired else "restart"
    return Phases(
        detection=detected - t_start if ike_down is not None else None,
        negotiation=installed - detected if child_up is not None else None,
        data=t_recovered - installed if t_recovered is not None else None,
        detected_by=detected_by,
        negotiated_with=negotiated_with if child_up is not None else None,
        started_by=started_by,
        dpd_requests=sum(e.kind == "dpd" for e in window),
        retransmits=sum(e.kind == "retransmit" for e in window),
    )

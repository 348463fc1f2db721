"""What two live, idle peers send each other: the IKE messages between fe and the VIP's owner,
counted on the lab wire over a window of idle time (no probes run), to set beside what the
timer search counts (harness.timer_search.idle_messages).

Owns: that count. Not: the model of it (harness.timer_search), the capture (harness.wire).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from harness import wire
from harness.lab import Lab
from harness.timer_search import SECONDS_PER_HOUR
from harness.topology import FRONT_END
from harness.wire import Wire


@dataclass(frozen=True)
class Counted:
    """IKE messages seen in an idle window, and how long the capture surely ran (``inner``: from
    listening to stopping) and at most ran (``outer``: from starting it to its end)."""

    messages: int
    inner_s: float
    outer_s: float

    @property
    def per_hour(self) -> float:
        return self.messages * SECONDS_PER_HOUR / self.inner_s


def idle_ike_messages(lab: Lab, window: float) -> Counted:
    """Capture the lab wire for ``window`` seconds of idle time and count the IKE messages
    between fe and the VIP (DPD exchanges, once the SAs are up)."""
    between = f"host {lab.topology.address(FRONT_END)} and host {lab.topology.vip} and ({wire.IKE})"
    opened = time.monotonic()
    capture = Wire(lab.nodes, lab.backend.capture_points(lab.topology))
    listening = time.monotonic()
    try:
        time.sleep(window)  # the window measured, not a wait for something to happen
    finally:
        closing = time.monotonic()
        capture.stop()
    return Counted(capture.count(between), closing - listening, time.monotonic() - opened)

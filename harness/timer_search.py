"""Timers tuned to a target outage: the least chatty settings whose predicted worst case meets it.

Pure: the timer model (harness.timers) decides, nothing here touches a lab.

*Chatty* is what two live, idle peers send each other to find out that they are alive: one DPD
exchange (request and answer) per ``dpd_delay`` from whichever peer checks first, two when both
check at the same moment, which they keep doing once they set the IKE SA up together (measured
on the lab wire: BENCHMARKS.md). Retransmissions cost nothing between live peers, so the rate
depends on ``dpd_delay`` alone, and the least chatty settings are those with the longest
``dpd_delay`` that still meets the target.

Two rules keep a tuned profile usable beyond the lab:

* A live peer is never given up for one lost packet: IKEv2 retransmits the DPD request at least
  once (``retransmit_tries`` >= 1); IKEv1, which never retransmits an R_U_THERE, waits long
  enough for a second one (``dpd_timeout`` > 2 x ``dpd_delay``).
* No retransmission timeout under MIN_RETRANSMIT_TIMEOUT_S: a shorter one sends every request
  twice to a peer whose answer takes a WAN round trip.

Among the settings with the same rate, the one that tolerates a silent live peer longest wins
(the retransmissions' sum for IKEv2, ``dpd_timeout`` for IKEv1), then the one with the most
transmissions. A graceful move costs the first retransmission timeout, nothing else: tuning
for it changes ``retransmit_timeout`` alone, the rest stays the base profile's.

Owns: the search, the idle message rate and the floor of an unreachable target with its
reason. Not: measuring the result on a lab or printing it (harness.tune).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from harness import timers
from harness.errors import UsageError

MIN_RETRANSMIT_TIMEOUT_S = 0.1
"""Shortest retransmission timeout searched: below it a request goes out twice before the
answer across a WAN round trip (up to 100 ms) can arrive."""
RETRANSMIT_TIMEOUTS = tuple(
    sorted(
        {round(0.1 + 0.01 * n, 3) for n in range(91)}
        | {round(1.0 + 0.1 * n, 3) for n in range(91)}
        | {float(n) for n in range(10, 61)}
    )
)
"""retransmit_timeout values searched: 10 ms steps to 1 s, 0.1 s to 10 s, 1 s to 60 s."""
RETRANSMIT_BASES = (1.0, 1.5, 1.8, 2.0)
"""retransmit_base values searched (1.8 is strongSwan's default)."""
RETRANSMIT_TRIES = range(1, 6)
"""retransmit_tries searched: at least one retransmission (a lost packet is no dead peer), at most
strongSwan's default of 5."""
TUNED = "tuned"
"""The name of a tuned profile."""
SECONDS_PER_HOUR = 3600.0
TUNABLE = ("crash", "graceful")
"""The faults tune answers for: a crash (DPD and retransmissions) and a graceful move (the first
retransmission)."""


@dataclass(frozen=True)
class Goal:
    """What to tune for: a fault's worst-case outage at most ``target`` seconds, measured by
    probes of ``resolution`` on nodes that need ``allowance`` for a setup (the backend's)."""

    fault: str
    target: float
    params: timers.FaultParams = field(default_factory=timers.FaultParams)
    resolution: float = 0.02
    allowance: float = timers.SETUP_ALLOWANCE_S
    vip_moved: float = 0.0
    """graceful: seconds from the fault until the new owner has the VIP and announced it (0: the
    cluster acts at once); a crash takes ``params.cluster_delay``."""


@dataclass(frozen=True)
class Tuned:
    """The settings found, with what the model says of them."""

    profile: timers.Profile
    worst_s: float
    """Predicted worst-case outage of the goal's fault."""
    tolerance_s: float
    """How long a live peer may stay silent before it is given up."""


class Unreachable(UsageError):
    """No settings meet the target: ``floor`` is the least worst case the model reaches."""

    def __init__(self, goal: Goal, floor: float, why: str) -> None:
        self.floor = floor
        super().__init__(
            f"no timers give a {goal.fault} outage of at most {goal.target:g} s: the model's floor is "
            f"{floor:.2f} s ({why})"
        )


def idle_messages_per_hour(profile: timers.Profile) -> tuple[float, float]:
    """IKE messages per hour between two live, idle peers (fewest, most): one DPD exchange per
    ``dpd_delay``, or two when both peers check at once; none without DPD."""
    if profile.dpd_delay <= 0:
        return 0.0, 0.0
    exchanges = SECONDS_PER_HOUR / profile.dpd_delay
    return 2 * exchanges, 4 * exchanges


def idle_messages(profile: timers.Profile, window: float) -> tuple[int, int]:
    """IKE messages two live, idle peers exchange in ``window`` seconds (fewest, most): at least
    one exchange per ``dpd_delay`` + 1 s (a check can slip a second when an answer crosses a
    second's boundary), at most two per ``dpd_delay``, plus one cycle of either at the edges."""
    if profile.dpd_delay <= 0:
        return 0, 0
    fewest = 2 * max(0, math.floor(window / (profile.dpd_delay + timers.DPD_GRANULARITY_S)) - 1)
    return fewest, 4 * (math.floor(window / profile.dpd_delay) + 1)


def tolerance(profile: timers.Profile) -> float:
    """How long a live peer may stay silent (all its packets lost) before it is given up: the
    retransmissions' shortest sum (IKEv2), ``dpd_timeout`` (IKEv1)."""
    if profile.ike_version == 1:
        return timers.ikev1_dpd_timeout(profile)
    return timers.give_up_after(profile, jitter=True)


def worst_case(profile: timers.Profile, goal: Goal) -> float:
    """The model's worst-case outage of the goal's fault for protected traffic, whatever the
    datapath does with inbound ESP (harness.timers.esp_defers_dpd) and whether it travels in UDP."""
    return max(
        timers.predict(
            goal.fault,
            profile,
            goal.params,
            goal.resolution,
            goal.vip_moved or None,
            esp_defers_dpd=defers,
            allowance=goal.allowance,
            esp_in_udp=in_udp,
        ).hi
        for defers, in_udp in itertools.product((True, False), repeat=2)
    )


def based_on(base: timers.Profile, ike_version: timers.IkeVersion | None) -> timers.Profile:
    """The base profile under its new name, in the IKE version asked (IKEv2 drops dpd_timeout)."""
    version = base.ike_version if ike_version is None else ike_version
    described = f"tuned from {base.name}"
    return replace(
        base,
        name=TUNED,
        description=described,
        ike_version=version,
        dpd_timeout=base.dpd_timeout if version == 1 else 0,
        kb=(),
        rounded=(),
        time_scale=1.0,
    )


def tune(base: timers.Profile, goal: Goal, ike_version: timers.IkeVersion | None = None) -> Tuned:
    """The least chatty settings for ``goal`` from ``base`` (module docstring); Unreachable with
    the model's floor when none meets the target."""
    if goal.fault not in TUNABLE:
        raise UsageError(f"tune answers for {' and '.join(TUNABLE)}, not {goal.fault}")
    start = based_on(base, ike_version)
    if goal.fault == "graceful":
        return _graceful(start, goal)
    for delay in range(max(1, math.ceil(goal.target)), 0, -1):
        if start.ike_version == 2 and _least_crash(delay, goal) > goal.target:
            continue
        found = _best(replace(start, dpd_delay=delay), goal)
        if found is not None:
            return found
    raise _unreachable(start, goal)


def _least_crash(delay: int, goal: Goal) -> float:
    """A bound no IKEv2 setting searched at ``delay`` gets under: fe may ask the dead peer
    ``delay`` + 1 s after its last packet, waits the shortest retransmissions searched, and the
    first send after that still needs its setup (saves evaluating a hopeless delay)."""
    shortest = MIN_RETRANSMIT_TIMEOUT_S * (1 + min(RETRANSMIT_BASES) ** min(RETRANSMIT_TRIES))
    return delay + timers.DPD_GRANULARITY_S + shortest + goal.allowance + goal.resolution


def _graceful(start: timers.Profile, goal: Goal) -> Tuned:
    """The longest first retransmission timeout that meets the target, nothing else changed."""
    for timeout in sorted(RETRANSMIT_TIMEOUTS, reverse=True):
        profile = replace(start, retransmit_timeout=timeout)
        worst = worst_case(profile, goal)
        if worst <= goal.target:
            return Tuned(profile, worst, tolerance(profile))
    raise _unreachable(start, goal)


def _candidates(profile: timers.Profile) -> Iterator[timers.Profile]:
    """Every setting searched at ``profile``'s dpd_delay: IKEv2 the retransmissions, IKEv1 the
    dpd_timeout that outlasts two R_U_THEREs (its retransmissions only start main mode again: the
    base profile's)."""
    if profile.ike_version == 1:
        for dpd_timeout in range(2 * profile.dpd_delay + 1, 2 * profile.dpd_delay + 1 + 3600):
            yield replace(profile, dpd_timeout=dpd_timeout)
        return
    for timeout in RETRANSMIT_TIMEOUTS:
        for base in RETRANSMIT_BASES:
            for tries in RETRANSMIT_TRIES:
                yield replace(profile, retransmit_timeout=timeout, retransmit_base=base, retransmit_tries=tries)


def _best(profile: timers.Profile, goal: Goal) -> Tuned | None:
    """The most tolerant setting at ``profile``'s dpd_delay that meets the target (None: none).
    IKEv1's worst case grows with dpd_timeout: the search stops at the first that misses."""
    best: Tuned | None = None
    for candidate in _candidates(profile):
        worst = worst_case(candidate, goal)
        if worst > goal.target:
            if profile.ike_version == 1:
                break
            continue
        found = Tuned(candidate, worst, tolerance(candidate))
        if best is None or _rank(found) > _rank(best):
            best = found
    return best


def _rank(tuned: Tuned) -> tuple[float, int, float]:
    """Higher is better at the same dpd_delay: tolerance, transmissions, the first timeout."""
    profile = tuned.profile
    return round(tuned.tolerance_s, 6), profile.retransmit_tries, profile.retransmit_timeout


def _unreachable(start: timers.Profile, goal: Goal) -> Unreachable:
    """The least worst case the search can reach, and what it is made of."""
    setup = (
        f"the IKE setup and the probes' first answer take up to {goal.allowance:g} s, seen within {goal.resolution:g} s"
    )
    if goal.fault == "graceful":
        floor = min(worst_case(replace(start, retransmit_timeout=t), goal) for t in RETRANSMIT_TIMEOUTS)
        why = (
            "fe's first IKE_SA_INIT goes to the old owner, which no longer answers; its first retransmission "
            f"reaches the new owner, at least {MIN_RETRANSMIT_TIMEOUT_S:g} s later (a shorter timeout retransmits "
            f"every request across a WAN round trip)"
            + (
                f", and only one sent {goal.vip_moved:g} s or more after the fault, when the VIP has moved"
                if goal.vip_moved
                else ""
            )
            + f"; {setup}"
        )
        return Unreachable(goal, floor, why)
    fastest = min(
        (Tuned(c, worst_case(c, goal), 0.0) for c in _candidates(replace(start, dpd_delay=1))),
        key=lambda tuned: tuned.worst_s,
    )
    if start.ike_version == 1:
        found = (
            f"IKEv1 never retransmits an R_U_THERE, so to survive one lost packet dpd_timeout must outlast two "
            f"(at least {fastest.profile.dpd_timeout} s with dpd_delay 1), and it gives the peer up dpd_timeout "
            f"+-{timers.DPD_GRANULARITY_S:g} s after its last packet"
        )
    else:
        found = (
            f"DPD decides in whole seconds: a dead peer is first asked up to dpd_delay + "
            f"{timers.DPD_GRANULARITY_S:g} = {1 + timers.DPD_GRANULARITY_S:g} s after its last packet (dpd_delay 1), "
            f"then given up after at least one retransmission of at least {MIN_RETRANSMIT_TIMEOUT_S:g} s "
            f"({timers.give_up_after(fastest.profile):.2f} s)"
        )
    asks = 0 if start.ike_version == 1 else 1  # IKEv1's dpd_timeout runs from the last packet
    restarts = asks + timers.DPD_GRANULARITY_S + tolerance(fastest.profile)
    waits = goal.params.cluster_delay >= restarts
    cluster = f"; and the standby takes the VIP only {goal.params.cluster_delay:g} s after the crash" if waits else ""
    return Unreachable(
        goal,
        fastest.worst_s,
        f"{found}{cluster}; {setup}; only a new owner that announces itself (fault takeover-announce) beats DPD",
    )

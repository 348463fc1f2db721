"""Timer profiles and what they predict: pure functions, no I/O.

strongSwan's documented behaviour (strongswan.conf and swanctl.conf references):

* An IKE request is retransmitted ``retransmit_tries`` times; the relative timeout before
  retransmission n (n = 0 is the first send) is ``retransmit_timeout * retransmit_base**n``,
  capped by ``retransmit_limit`` (0 = no cap) and reduced by up to ``retransmit_jitter`` percent.
  The peer is given up ``sum(timeouts)`` after the first send: 4, 11, 24, 47, 89 s and 165 s
  with the defaults (timeout 4, base 1.8, tries 5).
* Dead-peer detection sends an empty INFORMATIONAL once no packet has arrived for
  ``dpd_delay`` seconds. charon compares whole seconds (``time_monotonic() - last_in >= delay``,
  both truncated) and re-checks ``delay - diff`` seconds later, so the request goes out between
  ``dpd_delay - 1`` and ``dpd_delay + 1`` seconds after the last inbound packet.

Owns: the Profile values, the time scale's syntax, the retransmission schedule, predicted outage
bounds per fault and the check that the model accepts a profile for a fault. Not: rendering them
into strongSwan's configuration (harness.strongswan), turning a bad value into an option's or a
file's error line (the CLI, the pytest plugin and the file models do that at their boundary).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, astuple, dataclass, replace
from fractions import Fraction
from typing import Literal

from harness.errors import UsageError

DPD_GRANULARITY_S = 1.0
"""charon decides about DPD on use times truncated to whole seconds: +-1 s around dpd_delay."""
MAX_CYCLES = 1000
"""Beyond this many retransmission cycles between a restart and the standby's readiness, every
gap of the schedule is taken to be able to straddle it (a bound, computed without the loop)."""
SETUP_ALLOWANCE_S = 0.1
"""What the timers do not model, after the transmission that gets through: the IKE_SA_INIT and
IKE_AUTH round trips, installing the CHILD_SA in the datapath and the probe's own dialogue
through it (a TCP handshake and a login, four round trips). Measured 15-45 ms on a 2-core
machine with nodes on its own kernel; the allowance leaves room for a loaded one. A backend
whose nodes are slower (VMs) declares its own (Backend.setup_allowance_s)."""


Unique = Literal["no", "never", "replace", "keep"]
Recovery = Literal["restart", "trap"]
Mode = Literal["transport", "tunnel"]
IkeVersion = Literal[1, 2]


JITTER_MAX = 20
"""charon caps ``retransmit_jitter`` at 20 percent (RETRANSMIT_JITTER_MAX)."""
MILLISECOND = 0.001
"""charon truncates every retransmission timeout to whole milliseconds: less is no timeout at all."""
WHOLE_SECONDS = ("retransmit_limit", "dpd_delay", "dpd_timeout")
"""Settings charon takes in whole seconds only (``retransmit_limit`` is read with get_int: a
value like 2.0 silently falls back to the default; swanctl's dpd_delay and dpd_timeout are whole
seconds)."""


@dataclass(frozen=True)
class Rounded:
    """A scaled setting charon cannot take as asked, and what it runs with instead."""

    setting: str
    asked: float
    used: int

    def describe(self) -> str:
        return f"{self.setting} {self.asked:g} s runs as {self.used} s (charon takes whole seconds)"


@dataclass(frozen=True)
class Profile:
    """The timers of one configuration, applied to every node of a lab, in the form charon
    parses them (a profile that charon would silently read differently is refused)."""

    name: str
    description: str
    retransmit_timeout: float = 4.0
    retransmit_base: float = 1.8
    retransmit_tries: int = 5
    retransmit_jitter: int = 0
    """Whole percent (0-20) by which each timeout is randomly reduced, drawn anew per send."""
    retransmit_limit: int = 0
    """Cap of a single timeout in whole seconds, 0 = no cap."""
    dpd_delay: int = 30
    """Seconds of silence before a dead-peer check; swanctl's own default (0) disables DPD."""
    ike_version: IkeVersion = 2
    """The IKE version of every node's connections. IKEv2 (the default) detects a dead peer by
    retransmitting its DPD request on the schedule above; IKEv1 (main mode + quick mode, what
    Windows Server 2003 spoke) sends R_U_THERE once per ``dpd_delay`` and gives the peer up when
    nothing arrived for ``dpd_timeout``."""
    dpd_timeout: int = 0
    """IKEv1 only: whole seconds without anything from the peer before DPD gives it up; 0 =
    charon's fallback, the retransmission schedule's sum (as an IKEv2 request would take)."""
    unique: Unique = "no"
    """The uniqueness policy of every node's connections (swanctl.conf ``unique``); fe's decides a
    reboot: with no, replace and keep a rebooted peer's INITIAL_CONTACT removes the stale IKE SA
    at once (measured), never ignores it. Not a timer, but it decides how a reboot ends."""
    recovery: Recovery = "restart"
    """After a DELETE or a dead peer: fe re-initiates at once (restart), or on the next packet
    through the trap policy's acquire (trap: the kernel datapath only). The
    probes send every 10 ms, so both recover within the setup allowance."""
    mode: Mode | None = None
    """IPsec mode: None for the datapath's own (transport on the kernel, tunnel on libipsec,
    which knows no other)."""
    make_before_break: bool = False
    """charon.make_before_break: a reauthentication builds the new IKE SA and its CHILD_SAs before
    it deletes the old ones (strongSwan's default from 6.0.0); no: it deletes first and traffic
    waits for the new IKE setup (the default before 6.0.0). Written for every node, so a lab runs
    the same on 5.9.8 and 6.0.1."""
    encap: bool = False
    """swanctl ``encap``: ESP always in UDP (charon fakes NAT), on the kernel datapath too, so ESP
    shares the IKE's UDP flow (udp/4500) and a stateful firewall that sees ESP sees that flow used
    (libipsec encapsulates whatever this says). No timer, but it decides whether a firewall keeps
    the IKE flow (``firewall_keeps_ike``)."""
    time_scale: float = 1.0
    """Factor every timer was multiplied by (1/30: a 6-minute outage takes 12 s)."""
    rounded: tuple[Rounded, ...] = ()
    """Scaled settings rounded to the whole seconds charon takes (DPD, the retransmission limit)."""
    kb: tuple[tuple[str, float, float], ...] = ()
    """Outages KB 821839 gives for this configuration: (fault, lo, hi) in seconds."""

    def __post_init__(self) -> None:
        problem = charon_refuses(self)
        if problem:
            raise UsageError(f"profile {self.name}: {problem}")

    def timers(self) -> dict[str, float | int | str]:
        """The values charon is configured with (already scaled)."""
        values = asdict(self)
        for key in ("name", "description", "time_scale", "rounded", "kb"):
            del values[key]
        return values

    def kb_outage(self, fault: str) -> tuple[float, float] | None:
        return next(((lo, hi) for name, lo, hi in self.kb if name == fault), None)

    def scaled(self, factor: float) -> Profile:
        """Every timer multiplied by ``factor``. charon takes DPD delays and the retransmission
        limit in whole seconds, so those are rounded (at least 1 s when set): ``rounded`` records
        what was asked and what runs."""
        if factor <= 0:
            raise UsageError(f"time scale must be positive, not {factor}")
        whole = {setting: _whole_seconds(getattr(self, setting) * factor) for setting in WHOLE_SECONDS}
        rounded = tuple(
            Rounded(setting, getattr(self, setting) * factor, whole[setting])
            for setting in WHOLE_SECONDS
            if not math.isclose(getattr(self, setting) * factor, whole[setting])
        )
        return replace(
            self,
            retransmit_timeout=self.retransmit_timeout * factor,
            time_scale=self.time_scale * factor,
            rounded=self.rounded + rounded,
            retransmit_limit=whole["retransmit_limit"],
            dpd_delay=whole["dpd_delay"],
            dpd_timeout=whole["dpd_timeout"],
        )


def _whole_seconds(value: float) -> int:
    """A scaled whole-second setting: rounded, at least 1 unless it was 0 (off)."""
    return max(1, round(value)) if value else 0


def charon_refuses(profile: Profile) -> str | None:
    """Why charon would not take this profile as the model reads it (None: it would)."""
    for setting in ("retransmit_tries", "retransmit_jitter", "retransmit_limit", "dpd_delay"):
        value = getattr(profile, setting)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{setting} must be a whole number >= 0 (charon reads it as one), got {value!r}"
    if profile.ike_version not in (1, 2):
        return f"ike_version must be 1 or 2, got {profile.ike_version!r}"
    if isinstance(profile.dpd_timeout, bool) or not isinstance(profile.dpd_timeout, int) or profile.dpd_timeout < 0:
        return f"dpd_timeout must be a whole number >= 0 (charon reads whole seconds), got {profile.dpd_timeout!r}"
    if profile.dpd_timeout and profile.ike_version == 2:
        return "dpd_timeout is IKEv1's (IKEv2 gives a peer up after its retransmissions): set ike_version 1 or drop it"
    if profile.ike_version == 1 and profile.dpd_delay and 0 < profile.dpd_timeout <= profile.dpd_delay:
        return (
            f"dpd_timeout {profile.dpd_timeout} must be longer than dpd_delay {profile.dpd_delay}: charon raises a "
            "shorter one to dpd_delay and then gives a peer up as soon as an R_U_THERE goes out, live or not"
        )
    if profile.ike_version == 1 and not profile.dpd_timeout and profile.retransmit_limit:
        return (
            "with retransmit_limit set, give IKEv1 an explicit dpd_timeout: charon's fallback (the "
            "retransmissions' sum) ignores the limit up to 5.9.x and applies it from 6.0.1"
        )
    if profile.retransmit_jitter > JITTER_MAX:
        return f"retransmit_jitter must be at most {JITTER_MAX} (charon caps it), got {profile.retransmit_jitter}"
    if not profile.retransmit_timeout >= MILLISECOND:
        return (
            f"retransmit_timeout must be at least {MILLISECOND:g} s (charon counts whole milliseconds), "
            f"got {profile.retransmit_timeout:g}"
        )
    return None


KB_GRACEFUL = ("graceful", 3.0, 6.0)
"""KB 821839: after a graceful move, IKE renegotiates with the new node in 3-6 s."""
WIN2000 = Profile(
    "win2000",
    "KB 821839, Windows 2000: the stale SA lives until the 5-minute idle timer (DPD 300 s), "
    "then about 1 minute of IKE (retransmits 4 s x 2^n, 3 tries: gives up after 60 s) = 6 min",
    retransmit_timeout=4.0,
    retransmit_base=2.0,
    retransmit_tries=3,
    dpd_delay=300,
    kb=(KB_GRACEFUL, ("crash", 360.0, 360.0)),
)
IKEV1_MAPPING = (
    "A quick mode SA idle that long is the peer silent that long: strongSwan's IKEv1 DPD gives it up then "
    "(CHILD_SA inactivity cannot stand in: fe's own probes keep an SA active). strongSwan then starts main "
    "mode at once, where Windows first spent about a minute on quick mode over the dead node's main mode "
    "SA: the crash takes the idle timer, not the KB's idle timer plus a minute"
)
WIN2000_IKEV1 = Profile(
    "win2000-ikev1",
    "KB 821839, Windows 2000 as it spoke: IKEv1 (main mode + quick mode, retransmits 4 s x 2^n, 3 tries), "
    f"its 5-minute quick mode idle timer as dpd_timeout 300 s (R_U_THERE every 30 s). {IKEV1_MAPPING}",
    retransmit_timeout=4.0,
    retransmit_base=2.0,
    retransmit_tries=3,
    dpd_delay=30,
    ike_version=1,
    dpd_timeout=300,
    kb=(KB_GRACEFUL, ("crash", 360.0, 360.0)),
)
PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "strongswan-default",
            "strongSwan's documented retransmission defaults, DPD every 30 s "
            "(swanctl's default is no DPD at all, which never recovers from a crash)",
        ),
        Profile(
            "fast",
            "short timers for quick failover: DPD 2 s, 1 s retransmits, 2 tries",
            retransmit_timeout=1.0,
            retransmit_base=1.0,
            retransmit_tries=2,
            dpd_delay=2,
        ),
        WIN2000,
        replace(  # the same minute of IKE, a shorter idle timer
            WIN2000,
            name="win2003-nlbsflags",
            description="KB 821839, Windows Server 2003 with NLBSFlags = 1: 1-minute idle timer (DPD 60 s) "
            "plus about 1 minute of IKE (as win2000) = 2 min",
            dpd_delay=60,
            kb=(KB_GRACEFUL, ("crash", 120.0, 120.0)),
        ),
        WIN2000_IKEV1,
        replace(
            WIN2000_IKEV1,
            name="win2003-nlbsflags-ikev1",
            description="KB 821839, Windows Server 2003 with NLBSFlags = 1 as it spoke: IKEv1, its 1-minute "
            f"quick mode idle timer as dpd_timeout 60 s (R_U_THERE every 30 s). {IKEV1_MAPPING}",
            dpd_timeout=60,
            kb=(KB_GRACEFUL, ("crash", 120.0, 120.0)),
        ),
    )
}


def parse_scale(value: object) -> float:
    """A time scale: a number in (0, 1] or a fraction like ``1/30``. A ValueError (its message
    names the valid range and the value given) lets every boundary say where the value came from:
    argparse, pydantic and pytest each add the option or the field. Anything else (another type,
    a value too large for a float) gets the same message."""
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError(value)
        scale = float(Fraction(value)) if isinstance(value, str) else float(value)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        scale = 0.0
    if not 0 < scale <= 1:
        raise ValueError(f"must be a number in (0, 1] or a fraction like 1/30, got {value!r}")
    return scale


def scale_text(scale: float) -> str:
    """A time scale as people write it: 1, 1/30, 1/2000, else the number (0.4, 30)."""
    fraction = Fraction(scale).limit_denominator(1_000_000)
    if math.isclose(fraction, scale, rel_tol=1e-9) and fraction.numerator == 1:
        return "1" if fraction.denominator == 1 else f"1/{fraction.denominator}"
    return f"{scale:g}"


def profile(name: str, user: Mapping[str, Profile] | None = None) -> Profile:
    """A built-in profile, or one of ``user`` (loaded from a profiles file)."""
    known = {**PROFILES, **(user or {})}
    try:
        return known[name]
    except KeyError:
        raise UsageError(f"unknown profile {name!r}: choose one of {', '.join(known)}") from None


def retransmit_timeouts(profile: Profile, jitter: bool = False) -> list[float]:
    """Relative timeout after send n, n = 0..tries; with ``jitter`` the shortest possible."""
    factor = 1 - profile.retransmit_jitter / 100 if jitter else 1.0
    timeouts = []
    for n in range(profile.retransmit_tries + 1):
        timeout = profile.retransmit_timeout * profile.retransmit_base**n
        if profile.retransmit_limit:
            timeout = min(timeout, profile.retransmit_limit)
        timeouts.append(timeout * factor)
    return timeouts


def send_times(profile: Profile, jitter: bool = False) -> list[float]:
    """When each transmission of one request goes out, relative to the first (0.0 first)."""
    times = [0.0]
    for timeout in retransmit_timeouts(profile, jitter)[:-1]:
        times.append(times[-1] + timeout)
    return times


def give_up_after(profile: Profile, jitter: bool = False) -> float:
    """Seconds from the first send of a request until charon declares the peer dead."""
    return sum(retransmit_timeouts(profile, jitter))


@dataclass(frozen=True)
class FaultParams:
    """The emulated cluster's own timers, in seconds."""

    cluster_delay: float = 1.0
    """From a crash or link cut until the standby owns the VIP."""
    freeze: float = 3.0
    """How long a frozen charon stays stopped."""
    announce_early: float = 0.0
    """takeover-announce: how long before the VIP is on the new owner its charon begins to
    initiate to fe (0: once it is there; longer than ``cluster_delay``: before the crash)."""
    link_delay: float = 0.0
    """reauth: one-way delay added to everything the active back-end sends (netem), as a link
    with that round trip: each IKE exchange takes it."""
    firewall_idle: float = 0.0
    """graceful: fe sits behind a stateful firewall that lets IKE from the VIP in only on a UDP
    flow that crossed it within the last ``firewall_idle`` seconds, and ESP always (0: none)."""

    def scaled(self, factor: float) -> FaultParams:
        return FaultParams(*(value * factor for value in astuple(self)))

    def values(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Bounds:
    """Predicted outage range in seconds, tolerances included."""

    lo: float
    hi: float

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.lo <= value <= self.hi


def _first_send_reaching(start: float, ready: float, profile: Profile, jitter: bool) -> float:
    """First (re)transmission of an initiation begun at ``start`` that goes out at or after
    ``ready``; charon starts over after giving up because fe retries forever (keyingtries 0)."""
    cycle = give_up_after(profile, jitter)
    if cycle <= 0:
        raise UsageError("the retransmissions take no time; set retransmit_timeout > 0")
    start += max(0, math.floor((ready - start) / cycle) - 1) * cycle  # skip whole cycles: a tiny one loops long
    while True:
        for offset in send_times(profile, jitter):
            if start + offset >= ready:
                return start + offset
        start += cycle


def _latest_send_reaching(restarts: tuple[float, float], ready: float, profile: Profile) -> float:
    """The latest the first transmission at or after ``ready`` can go out when the initiation
    begins anywhere in ``restarts`` (earliest, latest): at the latest restart, or, when
    ``ready`` falls inside the schedule, right after a transmission that just missed it: one
    gap of the schedule after ``ready`` (the gap after the last transmission runs to the next
    cycle's first). Jitter only brings transmissions earlier, so it widens which gaps can
    straddle ``ready`` but not the gaps."""
    latest = _first_send_reaching(restarts[1], ready, profile, jitter=False)
    offsets, shortest = send_times(profile), send_times(profile, jitter=True)
    cycle, short_cycle = give_up_after(profile), give_up_after(profile, jitter=True)
    gaps = [b - a for a, b in itertools.pairwise([*offsets, cycle])]
    if ready - restarts[0] > MAX_CYCLES * short_cycle:  # so many cycles before ready: any gap may straddle it
        return max(latest, ready + max(gaps))
    candidates = [latest]
    for k in range(max(0, math.floor((ready - restarts[1]) / cycle) - 1), MAX_CYCLES + 2):
        for i, gap in enumerate(gaps):
            # restarting in (ready - latest offset, ready - earliest offset] misses ready by a hair
            missed_from, missed_to = ready - (k * cycle + offsets[i]), ready - (k * short_cycle + shortest[i])
            if missed_from <= restarts[1] and missed_to > restarts[0]:
                candidates.append(ready + gap)
        if ready - k * short_cycle < restarts[0]:
            break
    return max(candidates)


def graceful(
    profile: Profile,
    resolution: float,
    vip_moved: float = 0.0,
    allowance: float = SETUP_ALLOWANCE_S,
    overlap: float = 0.0,
) -> Bounds:
    """The old owner deletes its SAs after it stopped accepting IKE: fe re-initiates at once,
    that IKE_SA_INIT is dropped, and the first retransmission that goes out once the VIP is on
    the new owner (``vip_moved`` seconds after the fault at most) reaches it. ``overlap``: how
    long the old SA still carried the service's answers after fe had re-initiated, as measured
    (charon re-initiates while it handles the DELETE and removes the old SA from the kernel
    only afterwards: milliseconds, more on a loaded VM); that part of the first wait is no
    outage."""
    ready = max(vip_moved, 1e-9)  # the first send always meets the old owner
    first_lo = retransmit_timeouts(profile, jitter=True)[0]
    reaching = _first_send_reaching(0.0, ready, profile, jitter=False)
    return Bounds(first_lo - max(0.0, overlap) - resolution, reaching + allowance + resolution)


def firewall_keeps_ike(profile: Profile, firewall_idle: float, esp_in_udp: bool, esp_defers_dpd: bool) -> bool | None:
    """Whether fe's stateful firewall (``FaultParams.firewall_idle``) still knows the IKE flow when
    the old owner's DELETE arrives (strongswan/strongswan#1759). True: there is no firewall, ESP
    travels in the IKE's UDP flow (the probes keep it fresh), or fe's DPDs, sent whatever ESP
    arrives, cross it more often than its state expires. False: ESP postpones fe's DPDs, so with
    raw ESP nothing IKE crossed it for ``firewall_idle`` and the DELETE is dropped. None: DPD
    exchanges about as far apart as the state lasts: either."""
    if firewall_idle <= 0 or esp_in_udp:
        return True
    if esp_defers_dpd:
        return False
    return True if profile.dpd_delay + DPD_GRANULARITY_S < firewall_idle else None


def esp_defers_dpd(version: str, nat: bool) -> bool:
    """Whether ESP arriving from the peer counts as inbound activity that postpones IKEv2 DPD:
    always before strongSwan 6.0.1; from 6.0.1 only with NAT detected or faked (libipsec's UDP
    encapsulation fakes it; raw ESP and the kernel datapath without NAT do not), NEWS 6.0.1 and
    ike_sa.c get_use_time. An unreadable version counts as the newer rule."""
    numbers = version_numbers(version)
    return nat or (bool(numbers) and numbers < (6, 0, 1))


BACK = {
    "freeze": "the frozen VM answering again",
    "reboot": "the back-end up again",
    "reboot-announce": "the restarted back-end initiating",
    "takeover-announce": "the new owner beginning to initiate",
    "graceful-announce": "the new owner beginning to initiate",
}
"""What the model's ``back`` (a result's ``back_s``) is for each fault that sets it
(harness.faults.Injected.t_back)."""


def version_numbers(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string: "6.0.1" -> (6, 0, 1), "5.9.8dr1" -> (5, 9, 8)."""
    numbers = []
    for part in version.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def crash(
    profile: Profile,
    cluster_delay: float,
    resolution: float,
    esp_defers_dpd: bool = True,
    allowance: float = SETUP_ALLOWANCE_S,
) -> Bounds:
    """The active node dies: fe sends DPD ``dpd_delay`` (+-1 s) after the last packet (with
    ``esp_defers_dpd``: the probes' ESP until the crash; without, fe's DPDs go out every
    ``dpd_delay`` whatever arrives, so the next one comes (0, dpd_delay + 1] after the crash),
    gives up after the retransmission schedule and re-initiates (IKEv1: ikev1_gives_up); the
    first transmission after the VIP reached the standby (``cluster_delay``) gets through."""
    if profile.dpd_delay <= 0:
        raise UsageError(f"dpd_delay {profile.dpd_delay} never detects a crash; set dpd_delay >= 1")
    if profile.ike_version == 1:
        restarts = ikev1_gives_up(profile, esp_defers_dpd)
    else:
        earliest = max(0.0, profile.dpd_delay - DPD_GRANULARITY_S) if esp_defers_dpd else 0.0
        latest = profile.dpd_delay + DPD_GRANULARITY_S
        restarts = (earliest + give_up_after(profile, jitter=True), latest + give_up_after(profile))
    return Bounds(
        max(restarts[0], cluster_delay) - resolution,
        _latest_send_reaching(restarts, cluster_delay, profile) + allowance + resolution,
    )


def ikev1_dpd_timeout(profile: Profile) -> float:
    """How long IKEv1 DPD waits for anything from the peer before giving it up: ``dpd_timeout``,
    else the retransmission schedule's sum without jitter (charon's fallback)."""
    return float(profile.dpd_timeout) if profile.dpd_timeout else give_up_after(profile)


def ikev1_gives_up(profile: Profile, esp_defers_dpd: bool) -> tuple[float, float]:
    """When IKEv1 DPD gives a dead peer up (earliest, latest), seconds after the last packet from
    it, and re-initiates at once (dpd_action restart). charon sends R_U_THERE once, never again
    retransmitted, and schedules a check ``timeout - dpd_delay`` later that gives the peer up if
    nothing arrived since the R_U_THERE went out (ESP included, in whole seconds). With
    ``esp_defers_dpd`` the R_U_THERE goes out ``dpd_delay`` +-1 s after the last packet: the
    peer is given up ``timeout`` +-1 s after it. Without, R_U_THERE goes out every ``dpd_delay``
    whatever ESP arrives, the first one after the last packet up to ``dpd_delay`` + 1 s later."""
    timeout = ikev1_dpd_timeout(profile)
    if timeout < profile.dpd_delay:  # charon subtracts in unsigned 32 bits: the check lands ~49.7 days out
        raise UsageError(
            f"IKEv1 with dpd_timeout 0 falls back to the retransmissions' sum ({timeout:g} s), below dpd_delay "
            f"{profile.dpd_delay}: charon then never gives a dead peer up; set dpd_timeout above dpd_delay"
        )
    earliest = timeout - DPD_GRANULARITY_S if esp_defers_dpd else timeout - profile.dpd_delay
    return max(0.0, earliest), timeout + DPD_GRANULARITY_S


def freeze(
    duration: float,
    resolution: float,
    back: float | None = None,
    allowance: float = SETUP_ALLOWANCE_S,
    catch_up: float = 0.0,
) -> Bounds:
    """The owner's charon, and with it the userspace ESP datapath, stops for ``duration`` (a VM
    stops whole); everything queued for it is answered when it continues. ``back``: seconds
    until a VM answered on its link again, as measured (its kernel first works through its
    backlog); ``catch_up``: what its services and fe's probe then take to work through theirs."""
    return Bounds(duration - resolution, max(duration, back or 0.0) + catch_up + allowance + resolution)


def graceful_noblock(
    profile: Profile,
    resolution: float,
    vip_moved: float = 0.0,
    esp_defers_dpd: bool = True,
    allowance: float = SETUP_ALLOWANCE_S,
    overlap: float = 0.0,
) -> Bounds:
    """A race: if fe's immediate re-initiation reaches the new owner it costs a retransmit
    (graceful); if the old owner answers it first, fe builds an SA that the VIP move strands
    ``vip_moved`` seconds later, and only DPD gets it out (a crash from then on)."""
    raced = stranded(profile, resolution, vip_moved, esp_defers_dpd, allowance)
    return Bounds(graceful(profile, resolution, vip_moved, allowance, overlap).lo, raced.hi)


def stranded(
    profile: Profile,
    resolution: float,
    vip_moved: float = 0.0,
    esp_defers_dpd: bool = True,
    allowance: float = SETUP_ALLOWANCE_S,
) -> Bounds:
    """fe sits on an SA whose peer answers until ``vip_moved`` after the fault at the latest (the
    VIP leaves it) and only DPD gets it out: a crash counted from that peer's last packet, which
    may come after a service's last answer."""
    found = crash(profile, 0.0, resolution, esp_defers_dpd, allowance)
    return Bounds(found.lo, vip_moved + found.hi)


def graceful_announce(
    profile: Profile,
    resolution: float,
    vip_moved: float = 0.0,
    back: float = 0.0,
    allowance: float = SETUP_ALLOWANCE_S,
    overlap: float = 0.0,
) -> Bounds:
    """A graceful move whose new owner begins to initiate to fe ``back`` seconds after the fault
    (once it has the VIP): its first IKE_SA_INIT gets through, so traffic may come back within
    one setup. fe's own re-initiation lands a retransmission later all the same, and its CHILD_SA
    takes over the traffic from the announced one: what is in flight then may be lost, so the
    bound stays the graceful one (``graceful()``). What it costs for sure is a second IKE SA."""
    own = graceful(profile, resolution, vip_moved, allowance, overlap)
    return Bounds(0.0, max(own.hi, back + allowance + resolution))


def reboot_announce(resolution: float, back: float, allowance: float = SETUP_ALLOWANCE_S) -> Bounds:
    """The rebooted back-end initiates to fe ``back`` seconds after the fault (its charon killed,
    restarted and configured); fe takes the INITIAL_CONTACT at once, so only the new SA's setup
    remains. No timer of the profile is involved: without the announcement this is a crash."""
    return Bounds(0.0, back + allowance + resolution)


def takeover_announce(
    profile: Profile,
    resolution: float,
    begins: float,
    ready: float,
    esp_defers_dpd: bool = True,
    allowance: float = SETUP_ALLOWANCE_S,
) -> Bounds:
    """The standby takes over a crashed owner and initiates to fe itself from the VIP, beginning
    ``begins`` seconds after the fault; the VIP is on it ``ready`` seconds after the fault. A
    transmission before then cannot leave (the VIP is no address of the node yet: "error
    writing to socket"), so the first one at or after ``ready`` gets through, and fe takes its
    INITIAL_CONTACT at once. Begun after ``ready``, that is the first; begun before, a
    retransmission (acassen/keepalived#539: one retransmit_timeout lost); begun long before
    (``begins`` < 0: a standby that initiates all along, opnsense/core#3821), wherever its
    schedule happens to be, starting over after each give-up (keyingtries 0). fe's own DPD may
    find the crash first (``crash()``)."""
    first = _first_send_reaching(begins, ready, profile, jitter=False)
    earliest = _first_send_reaching(begins, ready, profile, jitter=True)
    if earliest > first:  # jitter can bring a transmission just below ``ready``: the next one reaches
        earliest = ready
    announced = Bounds(max(earliest, begins) - resolution, _latest_send_reaching((begins, begins), ready, profile))
    announced = Bounds(announced.lo, announced.hi + allowance + resolution)
    if profile.dpd_delay <= 0:  # fe never finds the crash itself: only the announcement recovers
        return announced
    found = crash(profile, ready, resolution, esp_defers_dpd, allowance)
    return Bounds(min(announced.lo, found.lo), min(announced.hi, found.hi))


def reauth(
    profile: Profile,
    resolution: float,
    link_delay: float = 0.0,
    allowance: float = SETUP_ALLOWANCE_S,
    dialogue: float | None = None,
) -> Bounds:
    """fe reauthenticates its IKE SA with the VIP's owner, which sends everything ``link_delay``
    late (the round trip). Break-before-make (``make_before_break`` no): the owner drops the old
    SAs as fe's DELETE arrives (its last answers still reach fe a round trip later), fe installs
    the new ones after the DELETE's answer, IKE_SA_INIT and IKE_AUTH (three round trips), and the
    first attempt begun then is answered a ``dialogue`` later: what one attempt of the service
    took before the fault, as measured (without: one round trip, a datagram's echo). charon
    sends the new IKE_SA_INIT before it registers the new IKE SA (ike_sa.c reestablish): an
    answer back sooner than that can find no IKE SA and is dropped, and the first retransmission
    completes the setup (``dropped_first_answer``; measured: 1 in 40 reauthentications on
    namespaces).
    Make-before-break: the new SAs are up before the old go, so nothing waits but what the
    switch between them costs (within the allowance)."""
    if profile.make_before_break:
        return Bounds(0.0, allowance + resolution)
    waits = 3 * link_delay - link_delay + (link_delay if dialogue is None else dialogue)
    dropped = dropped_first_answer(profile, link_delay)
    return Bounds(max(0.0, waits - resolution), waits + dropped + allowance + resolution)


def dropped_first_answer(profile: Profile, link_delay: float) -> float:
    """What a reauthentication's re-initiation may wait when the answer to its first IKE_SA_INIT
    arrives before charon has registered the new IKE SA (it sends first, ike_sa.c reestablish):
    the first retransmission timeout, on a link whose round trip (``link_delay``: netem delays
    only what the owner sends) is shorter than SETUP_ALLOWANCE_S, which bounds charon's own work
    on a machine's own kernel (registering takes it a millisecond); 0 on a slower link, whose
    answer cannot come back that soon."""
    return retransmit_timeouts(profile)[0] if link_delay < SETUP_ALLOWANCE_S else 0.0


def unprotected(
    fault: str,
    params: FaultParams,
    resolution: float,
    vip_moved: float | None,
    back: float | None = None,
    allowance: float = SETUP_ALLOWANCE_S,
    catch_up: float = 0.0,
) -> Bounds:
    """Traffic outside IPsec only waits for the VIP: a crash or link cut for the cluster to move
    it, a graceful move for the move itself; a frozen or restarted charon does not touch it, a VM
    frozen or rebooted whole holds it until it is back (``back``, as measured)."""
    moved = vip_moved or 0.0
    if fault in ("crash", "link-cut", "takeover-announce"):
        return Bounds(params.cluster_delay - resolution, max(moved, params.cluster_delay) + allowance + resolution)
    if fault in ("graceful", "graceful-noblock", "graceful-announce"):
        return Bounds(0.0, moved + allowance + resolution)
    if fault == "freeze" and back is not None:  # a VM stopped whole, and everything in it
        return freeze(params.freeze, resolution, back, allowance, catch_up)
    if fault in ("freeze", "reboot", "reboot-announce"):
        return Bounds(0.0, (back or 0.0) + allowance + resolution)
    if fault == "reauth":  # IKE's business: traffic in clear only rides the same link
        return Bounds(0.0, allowance + resolution)
    raise ValueError(f"no prediction for fault {fault!r}")


def predict(
    fault: str,
    profile: Profile,
    params: FaultParams,
    resolution: float,
    vip_moved: float | None = None,
    protected: bool = True,
    back: float | None = None,
    esp_defers_dpd: bool = True,
    allowance: float = SETUP_ALLOWANCE_S,
    catch_up: float = 0.0,
    overlap: float = 0.0,
    dialogue: float | None = None,
    esp_in_udp: bool = True,
) -> Bounds:
    """Predicted outage of ``fault`` (a name from harness.faults.FAULTS) for traffic the policy
    protects (or, with ``protected=False``, for traffic in clear). ``vip_moved``: seconds from the
    fault until the new owner had the VIP, as measured; without it the cluster is taken to act at
    once (graceful) or after exactly its delay (crash, link cut). ``back``: seconds until the node
    was back (a frozen VM answered again, a rebooted back-end was up or announced itself, a new
    owner began to initiate), as measured. ``esp_defers_dpd``: what the strongSwan version and
    datapath do with inbound ESP (``esp_defers_dpd()``). ``allowance``: what the timers leave out
    after the transmission that gets through (SETUP_ALLOWANCE_S; a backend whose nodes are slower
    declares more). ``catch_up``: what a VM that continues after a freeze takes to work through the
    packets that queued up for it and for its peers (a backend of VMs declares it; nodes on the
    harness's kernel never stop whole). ``overlap``: how long the old SA carried the service after
    fe re-initiated (graceful: ``graceful()``), as measured. ``dialogue``: how long one attempt of the
    service took before the fault (reauth: ``reauth()``), as measured. ``esp_in_udp``: ESP crosses
    the wire in UDP (libipsec, ``encap``, NAT), which decides what a firewall keeps
    (``firewall_keeps_ike``)."""
    if not protected:
        return unprotected(fault, params, resolution, vip_moved, back, allowance, catch_up)
    if fault == "graceful":
        deleted = graceful(profile, resolution, vip_moved or 0.0, allowance, overlap)
        keeps = firewall_keeps_ike(profile, params.firewall_idle, esp_in_udp, esp_defers_dpd)
        if keeps:
            return deleted
        dropped = stranded(profile, resolution, vip_moved or 0.0, esp_defers_dpd, allowance)  # no DELETE came
        return dropped if keeps is False else Bounds(deleted.lo, dropped.hi)
    if fault == "graceful-announce":
        return graceful_announce(profile, resolution, vip_moved or 0.0, back or 0.0, allowance, overlap)
    if fault == "graceful-noblock":
        return graceful_noblock(profile, resolution, vip_moved or 0.0, esp_defers_dpd, allowance, overlap)
    if fault in ("crash", "link-cut"):
        moved = max(params.cluster_delay, vip_moved or 0.0)
        return crash(profile, moved, resolution, esp_defers_dpd, allowance)
    if fault == "reboot":  # fe's re-initiation reaches the back-end once it is up again
        return crash(profile, back or 0.0, resolution, esp_defers_dpd, allowance)
    if fault == "reboot-announce":
        return reboot_announce(resolution, back or 0.0, allowance)
    if fault == "freeze":
        return freeze(params.freeze, resolution, back, allowance, catch_up)
    if fault == "reauth":
        return reauth(profile, resolution, params.link_delay, allowance, dialogue)
    if fault == "takeover-announce":
        ready = max(params.cluster_delay, vip_moved or 0.0)
        begins = params.cluster_delay - params.announce_early if back is None else back
        return takeover_announce(profile, resolution, begins, ready, esp_defers_dpd, allowance)
    raise ValueError(f"no prediction for fault {fault!r}")


def check(profile: Profile, fault: str, params: FaultParams) -> None:
    """Raise the UsageError ``predict`` raises when the model refuses ``profile`` for ``fault``
    (no DPD for a crash, retransmissions that take no time): a pure check that runs before any
    lab exists. The message names the problem and the fix, not the profile: callers add where
    the profile came from."""
    predict(fault, profile, params, resolution=0.0, esp_in_udp=profile.encap)

"""Every timer setting means to charon what it means to the model. For each setting a real lab
runs a profile that sets it, and the measured outage must land inside the prediction AND outside
what the prediction would be had charon ignored the setting (the same profile with the setting
at charon's default), so the test fails if charon stops honouring it. fe's settings are also
read back from charon (measure refuses a profile charon runs differently). The uniqueness
policy has its own test: tests/lab/test_faults.py::test_fe_s_unique_setting_decides_what_an_announced_reboot_leaves."""

import dataclasses
import time
from typing import Any

import pytest

from harness import effective, lab, measure, timers
from harness.errors import UsageError
from harness.measure import Outcome
from harness.phases import retransmission_gaps
from harness.probe import Probe
from harness.timers import Profile


def profile(name: str, **timers_: Any) -> Profile:
    return Profile(name, f"sets {name}", **timers_)


CASES: dict[str, tuple[str, Profile, Any]] = {
    # setting: (fault, a profile that sets it, charon's default: what it would run with instead)
    "retransmit_timeout": (
        "graceful",  # the outage is the first retransmission: 1.5 s, not 4 s
        profile("timeout", retransmit_timeout=1.5, retransmit_base=1.0, retransmit_tries=2, dpd_delay=2),
        4.0,
    ),
    "retransmit_base": (
        "crash",  # gives up after 0.5 + 1.5 + 4.5 s, not 0.5 + 0.9 + 1.62 s
        profile("base", retransmit_timeout=0.5, retransmit_base=3.0, retransmit_tries=2, dpd_delay=1),
        1.8,
    ),
    "retransmit_tries": (
        "crash",  # gives up after 2 transmissions, not 6
        profile("tries", retransmit_timeout=1.0, retransmit_base=1.0, retransmit_tries=1, dpd_delay=1),
        5,
    ),
    "retransmit_limit": (
        "crash",  # the example: 1, 2, 2, 2, 2, 2 s = 11 s, not 1, 2, 4, ..., 32 s = 63 s
        profile(
            "limited", retransmit_timeout=1.0, retransmit_base=2.0, retransmit_tries=5, retransmit_limit=2, dpd_delay=2
        ),
        0,
    ),
    "dpd_delay": (
        "crash",  # DPD after 3 s: without it (swanctl's default, off) a crash is never detected
        profile("dpd", retransmit_timeout=1.0, retransmit_base=1.0, retransmit_tries=1, dpd_delay=3),
        0,
    ),
}
JITTERY = profile(
    "jitter", retransmit_timeout=4.0, retransmit_base=1.0, retransmit_tries=2, retransmit_jitter=20, dpd_delay=2
)
"""The first retransmission of a graceful move lands anywhere in (3.2, 4.0] s, drawn per send."""
JITTER_MOVES = 4


def ignoring(setting: str, chosen: Profile, default: Any) -> Profile:
    return dataclasses.replace(chosen, name=f"{chosen.name}-ignored", **{setting: default})


def assert_inside(outcome: Outcome) -> None:
    for service, outage in outcome.outages.items():
        assert outage.seconds is not None, f"{service} never recovered"
        assert outage.seconds in outcome.predicted_for(outage), f"{service}: {outage.seconds:.3f} s outside the band"
    assert outcome.plaintext_packets == 0


def band_without(outcome: Outcome, ignored: Profile) -> timers.Bounds | None:
    """The overall prediction had charon run ``ignored`` (None: it would never recover)."""
    try:
        return timers.predict(
            outcome.fault,
            ignored,
            outcome.params,
            outcome.resolution_s,
            outcome.vip_moved,
            back=outcome.back,
            esp_defers_dpd=outcome.effective is None or outcome.effective.esp_defers_dpd,
        )
    except UsageError:
        return None


@pytest.mark.parametrize("setting", list(CASES))
def test_charon_honours_the_setting(setting: str, backend_name: str) -> None:
    fault, chosen, default = CASES[setting]
    with lab.running(chosen, backend_name) as running:
        outcome = measure.run(running, fault)
    assert_inside(outcome)
    assert outcome.outage_s is not None
    other = band_without(outcome, ignoring(setting, chosen, default))
    assert other is None or outcome.outage_s not in other, f"{outcome.outage_s:.3f} s is also what {other} predicts"
    assert outcome.effective is not None and outcome.effective.differences(chosen) == []
    if setting == "retransmit_limit":  # the gaps between charon's retransmissions, from its log: capped at 2 s
        [gaps, *_] = retransmission_gaps(outcome.log_events)
        assert gaps[0] == pytest.approx(2.0, abs=0.1) and all(gap == pytest.approx(2.0, abs=0.1) for gap in gaps), gaps


def test_charon_honours_the_jitter(backend_name: str) -> None:
    """Jitter shortens each timeout by a random 0-20 %: every move inside the band, and not all of
    them where the band would be without jitter: one at least shorter than it could be without
    (the chance that four draws all land within the probe's tolerance of no jitter at all is about
    1e-5). Each move is judged with its own resolution: a VM that stalled during one move widens
    that move's tolerance, not the others'."""
    seen: list[tuple[float, timers.Bounds]] = []
    with lab.running(JITTERY, backend_name) as running:
        for _ in range(JITTER_MOVES):
            outcome = measure.run(running, "graceful")
            assert_inside(outcome)
            assert outcome.outage_s is not None
            without = band_without(outcome, ignoring("retransmit_jitter", JITTERY, 0))
            assert without is not None
            seen.append((outcome.outage_s, without))
    shorter = [outage for outage, without in seen if outage < without.lo]
    assert shorter, f"{seen}: no move shorter than it could be without jitter"


def dpd_exchanges_while(running: lab.Lab, seconds: float, traffic: bool) -> int:
    """DPDs on fe's IKE SA with the VIP during ``seconds``, with or without the probes' traffic:
    sent by fe, or by the VIP's owner (fe parses an empty INFORMATIONAL request). Whichever side's
    whole-second check fires first keeps the other side's DPD quiet."""
    log = running.fe.workdir / "charon.log"
    before = len(running.fe.run(["cat", str(log)]).stdout.splitlines())
    probe = Probe(running.fe, running.topology.vip) if traffic else None
    try:
        time.sleep(seconds)  # the observation window itself, not a wait for a condition
    finally:
        if probe is not None:
            probe.stop()
    lines = running.fe.run(["cat", str(log)]).stdout.splitlines()[before:]
    on_the_vip = [line for line in lines if "<vip|" in line]
    return sum("sending DPD request" in line or "parsed INFORMATIONAL request" in line for line in on_the_vip)


def test_inbound_esp_defers_dpd_on_this_datapath(backend_name: str) -> None:
    """Whether the probes' ESP counts as activity that postpones DPD is what the model says for
    this strongSwan version and datapath (timers.esp_defers_dpd): libipsec's UDP encapsulation
    fakes NAT, so there it always does; the kernel datapath without NAT does only before 6.0.1
    (the host's strongSwan, which the uml VMs run). Deferring: no DPD while the probes run;
    not deferring: DPDs every dpd_delay all the same. Without traffic DPDs go every dpd_delay
    (the check can see them). The model's crash band starts accordingly."""
    fast = timers.profile("fast")
    with lab.running(fast, backend_name) as running:
        settings = effective.read(running.fe, running.strongswan_version)
        defers = timers.esp_defers_dpd(running.strongswan_version, settings.nat)
        assert settings.esp_defers_dpd == defers
        assert settings.nat == (running.datapath == "libipsec")  # no NAT in the lab: only libipsec fakes it
        window = 3 * fast.dpd_delay + timers.DPD_GRANULARITY_S
        with_traffic = dpd_exchanges_while(running, window, traffic=True)
        assert with_traffic == 0 if defers else with_traffic >= 2
        assert dpd_exchanges_while(running, window, traffic=False) >= 2

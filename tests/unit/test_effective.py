"""What fe's charon runs with against what the profile asks: a run refuses to predict for a
profile charon would run differently, and inbound ESP defers DPD by version and NAT."""

import pytest

from harness import effective, timers
from harness.errors import LabError

LIMITED = timers.Profile("limited", "", retransmit_timeout=1.0, retransmit_base=2.0, retransmit_limit=2, dpd_delay=2)


def running_as(
    profile: timers.Profile, version: str = "5.9.8", nat: bool = True, **changed: object
) -> effective.Effective:
    retransmission: dict[str, float | int] = {
        "retransmit_timeout": profile.retransmit_timeout,
        "retransmit_base": profile.retransmit_base,
        "retransmit_tries": profile.retransmit_tries,
        "retransmit_jitter": profile.retransmit_jitter,
        "retransmit_limit": profile.retransmit_limit,
    }
    connection = {"version": "IKEv2", "unique": profile.unique, "dpd_delay": profile.dpd_delay, "dpd_timeout": 0}
    for name, value in changed.items():
        (retransmission if name in retransmission else connection)[name] = value  # type: ignore[assignment]
    return effective.Effective(version, retransmission, connection, nat)


def test_a_profile_charon_runs_as_asked_has_no_differences() -> None:
    assert running_as(LIMITED).differences(LIMITED) == []
    effective.require(running_as(LIMITED), LIMITED)


def test_a_setting_charon_runs_differently_stops_the_run() -> None:
    """The failure the issue found: a limit rendered as 2.0 read back as charon's default, 0."""
    ignored = running_as(LIMITED, retransmit_limit=0, dpd_delay=0)
    assert ignored.differences(LIMITED) == ["retransmit_limit 0 (asked 2)", "dpd_delay 0 (asked 2)"]
    with pytest.raises(LabError, match=r"^fe's charon runs with retransmit_limit 0 \(asked 2\), dpd_delay 0"):
        effective.require(ignored, LIMITED)


def test_esp_defers_dpd_follows_the_version_and_nat() -> None:
    assert running_as(LIMITED, "5.9.8", nat=False).esp_defers_dpd
    assert running_as(LIMITED, "6.0.1", nat=True).esp_defers_dpd
    assert not running_as(LIMITED, "6.0.1", nat=False).esp_defers_dpd
    assert running_as(LIMITED, "6.0.1", nat=False).values()["esp_defers_dpd"] is False

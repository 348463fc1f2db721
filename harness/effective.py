"""What fe's charon actually runs with, read back from the lab, and what that means for the model.

charon exposes a loaded connection's settings over vici (list-conns: IKE version, uniqueness
policy, DPD delay and timeout) and the NAT state of each IKE SA (list-sas), but not the
retransmission settings and make_before_break of strongswan.conf: those are read back from the
file on the node and parsed the way charon parses them (harness.strongswan.retransmission_as_charon_reads), so a
value charon would silently replace with its default shows up here, not in the profile. The
strongSwan version and the NAT state decide whether inbound ESP postpones DPD
(timers.esp_defers_dpd). A run refuses to predict with a profile charon does not run.

Owns: reading the effective settings and comparing them with a profile. Not: the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import charon, strongswan, timers
from harness.errors import LabError
from harness.node import Node


@dataclass(frozen=True)
class Effective:
    """fe's settings as charon runs them."""

    strongswan_version: str
    retransmission: dict[str, float | int]
    """charon.retransmit_* as charon parses fe's strongswan.conf."""
    connection: dict[str, Any]
    """fe's connection to the VIP as charon reports it."""
    nat: bool
    """NAT detected or faked on fe's IKE SA with the VIP."""
    make_before_break: bool = False
    """charon.make_before_break as charon reads fe's strongswan.conf."""

    @property
    def esp_defers_dpd(self) -> bool:
        return timers.esp_defers_dpd(self.strongswan_version, self.nat)

    def differences(self, profile: timers.Profile) -> list[str]:
        """Every setting charon runs differently from the profile (empty: the model's view)."""
        asked: dict[str, Any] = {name: getattr(profile, name) for name in strongswan.RETRANSMISSION}
        running: dict[str, Any] = dict(self.retransmission)
        asked |= {
            "ike_version": f"IKEv{profile.ike_version}",
            "dpd_delay": profile.dpd_delay,
            "dpd_timeout": profile.dpd_timeout,
            "unique": profile.unique,
            "make_before_break": profile.make_before_break,
        }
        running |= {
            "ike_version": self.connection["version"],
            "dpd_delay": self.connection["dpd_delay"],
            "dpd_timeout": self.connection["dpd_timeout"],
            "unique": self.connection["unique"],
            "make_before_break": self.make_before_break,
        }
        return [f"{name} {running[name]!r} (asked {asked[name]!r})" for name in asked if running[name] != asked[name]]

    def values(self) -> dict[str, Any]:
        return {
            "retransmission": dict(self.retransmission),
            "connection": dict(self.connection),
            "nat": self.nat,
            "make_before_break": self.make_before_break,
            "esp_defers_dpd": self.esp_defers_dpd,
        }


def read(fe: Node, version: str) -> Effective:
    """fe's effective settings for its connection to the VIP."""
    conf = fe.run(["cat", str(fe.workdir / "strongswan.conf")]).stdout
    with_vip = [sa for sa in charon.sas(fe) if sa.connection == strongswan.CONNECTION and sa.established]
    return Effective(
        strongswan_version=version,
        retransmission=strongswan.retransmission_as_charon_reads(conf),
        connection=charon.connection_settings(fe, strongswan.CONNECTION),
        nat=any(sa.nat_any for sa in with_vip),
        make_before_break=strongswan.make_before_break_as_charon_reads(conf),
    )


def require(effective: Effective, profile: timers.Profile) -> None:
    """Refuse to predict for a profile charon does not run as the model reads it."""
    differences = effective.differences(profile)
    if differences:
        raise LabError(
            f"fe's charon runs with {', '.join(differences)} where profile {profile.name} says otherwise: "
            "the prediction would be wrong"
        )

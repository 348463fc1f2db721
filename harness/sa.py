"""IKE and CHILD SAs as values: what a node's charon holds, and SAs going up or down.

Plain frozen dataclasses that the timer math, the phases, the backends and the tests can import
without the vici controller (harness.charon builds them from vici's answers and events).

Owns: the SA value types. Not: reading them from charon (harness.charon).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INSTALLED = "INSTALLED"
ESTABLISHED = "ESTABLISHED"


@dataclass(frozen=True)
class ChildSa:
    """One CHILD_SA of an IKE SA."""

    name: str
    """The child's name in the connection (``all``, or ``tcp-110`` under a port-scoped policy)."""
    state: str
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    packets_in: int = 0
    packets_out: int = 0

    @property
    def installed(self) -> bool:
        return self.state == INSTALLED


@dataclass(frozen=True)
class IkeSa:
    """One IKE SA of a node and its CHILD_SAs."""

    connection: str
    unique_id: str
    state: str
    remote_host: str
    initiator_spi: str
    responder_spi: str
    children: tuple[ChildSa, ...] = ()
    nat_any: bool = False
    """NAT detected on either side, or faked (libipsec's UDP encapsulation fakes it)."""

    @property
    def established(self) -> bool:
        return self.state == ESTABLISHED

    @property
    def spis(self) -> tuple[str, str]:
        return self.initiator_spi, self.responder_spi


def installed_children(sas: list[IkeSa]) -> list[ChildSa]:
    """The CHILD_SAs in state INSTALLED of the established IKE SAs."""
    return [child for sa in sas if sa.established for child in sa.children if child.installed]


@dataclass(frozen=True)
class SaEvent:
    """An IKE or CHILD SA going up or down on a node, stamped on the harness's monotonic clock."""

    t: float
    kind: str
    """"ike" or "child"."""
    up: bool
    ike_id: str
    """charon's unique id of the IKE SA (the CHILD SA's parent for child events)."""
    remote: str
    """Address of the peer."""


@dataclass(frozen=True)
class KernelSa:
    """One SA in a node's kernel (``ip xfrm state``): the kernel datapath's view, one per
    direction of each CHILD_SA."""

    src: str
    dst: str
    proto: str
    spi: str
    mode: str
    selector: str = ""
    """Its traffic selector (``sel`` line): e.g. ``src 198.18.0.10/32 dst 198.18.0.100/32 proto tcp dport 110``."""


XFRM_SA = re.compile(r"^src (\S+) dst (\S+)$")
XFRM_ID = re.compile(r"^proto (\S+) spi (\S+)(?: reqid \d+)? mode (\S+)")


def parse_xfrm_state(text: str) -> list[KernelSa]:
    """The SAs in ``ip xfrm state`` output (a ``src .. dst ..`` line opens each)."""
    found: list[KernelSa] = []
    current: dict[str, str] = {}

    def close() -> None:
        if {"src", "dst", "proto", "spi", "mode"} <= current.keys():
            found.append(KernelSa(**current))

    for line in text.splitlines():
        stripped = line.strip()
        if (opened := XFRM_SA.match(stripped)) is not None and not line[:1].isspace():
            close()
            current = {"src": opened.group(1), "dst": opened.group(2)}
        elif (ident := XFRM_ID.match(stripped)) is not None:
            current.update(proto=ident.group(1), spi=ident.group(2), mode=ident.group(3))
        elif stripped.startswith("sel "):
            current["selector"] = stripped.removeprefix("sel ")
    close()
    return found

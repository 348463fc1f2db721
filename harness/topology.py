"""Inert description of one lab: its name, subnet, node addresses and the VIP.

Every lab gets its own index, which picks its name prefix and its /24 inside 198.18.0.0/16, so
labs can run side by side on one host. 198.19.0.0/16 is left for the Docker backend's address
pool. A lab on the user's own hosts (the ssh backend) takes the addresses its inventory gives
instead (a Placement), in whatever subnet the hosts are. Nothing here touches the system;
``check()`` rejects a description that cannot work.

Every node has one role: the front-end ``fe``, a back-end of the clustered pair ``be1``/``be2``
(sharing the VIP and its identity), or the domain controller ``dc``. Code that renders per node
asks ``role_of(node)`` and names nodes by the constants below, never by comparing name strings.

Owns: names, roles and addresses. Not: bringing them to life (harness.lab and the backends), nor
what each role protects or renders (harness.policy, harness.guard, harness.strongswan).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from harness.errors import UsageError

LAB_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
LAB_SUBNETS = ipaddress.IPv4Network("198.18.0.0/16")
PREFIX = "flab"
"""Every namespace, directory and container of ours starts with this, so `clean` can find them."""

Role = Literal["front-end", "back-end", "domain-controller"]
FRONT_END = "fe"
BACKENDS = ("be1", "be2")
"""The clustered back-end pair, sharing the VIP."""
DOMAIN_CONTROLLER = "dc"
ROLES: dict[str, Role] = {
    FRONT_END: "front-end",
    BACKENDS[0]: "back-end",
    BACKENDS[1]: "back-end",
    DOMAIN_CONTROLLER: "domain-controller",
}
"""Every node of a lab and its role."""
NODES = tuple(ROLES)
"""fe (the front-end), be1/be2 (the clustered back-end) and dc (a domain controller)."""
FIRST_OWNER = BACKENDS[0]
"""The back-end that owns the VIP when a lab comes up."""
VIP_PEER = "vip"
"""The back-end pair as one peer behind the VIP: fe's peer (Policy.peers) and the IKE identity both
back-ends share (Topology.identity)."""
STAND_INS: dict[Role, str] = {"back-end": "backend", "domain-controller": "dc"}
"""The service stand-ins each role runs, as harness/agents/services.py's --role names them (the
front-end runs none: it is where the probes run)."""
HOST_NUMBERS = {FRONT_END: 10, BACKENDS[0]: 11, BACKENDS[1]: 12, DOMAIN_CONTROLLER: 20}
VIP_NUMBER = 100
MAX_LABS = 256
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,7}$")


def role_of(node: str) -> Role:
    """The role of one of NODES (KeyError for any other name: a programming error)."""
    return ROLES[node]


@dataclass(frozen=True)
class Placement:
    """The addresses of hosts that exist already (an SSH inventory's): their subnet, the VIP and
    each node's lab address."""

    subnet: ipaddress.IPv4Network
    vip: str
    addresses: tuple[tuple[str, str], ...]
    """(node, address) for every node of NODES."""


@dataclass(frozen=True)
class Topology:
    """One lab: fe, the back-end pair be1/be2 and dc on one L2 segment, the VIP on one back-end."""

    name: str
    index: int
    placement: Placement | None = None
    """The user's hosts' addresses; None: the lab's own, from its index."""

    @classmethod
    def for_index(cls, index: int) -> Topology:
        topology = cls(name=f"lab{index}", index=index)
        topology.check()
        return topology

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        if self.placement is not None:
            return self.placement.subnet
        return ipaddress.IPv4Network((int(LAB_SUBNETS.network_address) + 256 * self.index, 24))

    @property
    def vip(self) -> str:
        return self.placement.vip if self.placement is not None else str(self.subnet[VIP_NUMBER])

    @property
    def vip_with_prefix(self) -> str:
        """The VIP as a back-end configures it: /32 in the lab's own nodes; on a user's hosts with
        the inventory's prefix, as their cluster has it."""
        return f"{self.vip}/{self.subnet.prefixlen if self.placement is not None else 32}"

    def address(self, node: str) -> str:
        if self.placement is not None:
            return dict(self.placement.addresses)[node]
        return str(self.subnet[HOST_NUMBERS[node]])

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen

    @property
    def qualified(self) -> str:
        """`flab-<name>`: the prefix of every system object of this lab."""
        return f"{PREFIX}-{self.name}"

    def identity(self, node: str) -> str:
        """A node's own IKE identity (VIP_PEER for the identity both back-ends share on the VIP)."""
        return f"{node}.{self.name}.failover-lab.test"

    @staticmethod
    def other_backend(node: str) -> str:
        return BACKENDS[1] if node == BACKENDS[0] else BACKENDS[0]

    def check(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise UsageError(
                f"lab name {self.name!r} is invalid: use 1-8 lowercase letters and digits, starting with a letter"
            )
        if not 0 <= self.index < MAX_LABS:
            raise UsageError(f"lab index {self.index} is out of range 0-{MAX_LABS - 1}")
        addresses = [self.address(node) for node in NODES] + [self.vip]
        if len(set(addresses)) != len(addresses):
            raise UsageError(f"lab {self.name}: duplicate addresses {addresses}")
        allowed = self.subnet if self.placement is not None else LAB_NETWORK
        if not all(ipaddress.IPv4Address(a) in allowed for a in addresses):
            raise UsageError(f"lab {self.name}: addresses must lie in {allowed}")

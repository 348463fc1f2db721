"""The KB 821839 IPsec policy designs: what each protects, and the routing and fail-closed rules
that make strongSwan's userspace datapath honour exactly that.

none            no IPsec at all (the "before" of the before/after demo)
mail-passwords  POP3 110 and IMAP4 143 between fe and the VIP (basic-auth passwords)
mail-all        HTTP 80, POP3 110 and IMAP4 143 between fe and the VIP
all-traffic     everything between fe and the VIP, and between fe, be1, be2 and the domain
                controller dc (each with its own SAs)

kernel-libipsec installs one route per peer into table 220 and ignores ports, so a port-scoped
design cannot use charon's catch-all rule. Port-scoped designs therefore move charon's rule onto
a mark nothing carries (fwmark 0x100) and add one `ip rule` per protected port that looks the
packet up in table 220 (fe: to the VIP with that destination port; back-ends: from the VIP to fe
with that source port), each followed by a `prohibit` twin so a missing route never falls
through to the wire. all-traffic keeps charon's own rule (everything not marked 0x42 by charon's
sockets goes through the tunnel). On every design an nftables guard drops protected packets that
would leave on the wire anyway, so a dead or killed charon never lets them out in clear.

Who has SAs with whom follows from the nodes' roles (harness.topology): the front-end with the
VIP, each back-end with the front-end, and, under a design that covers dc, the front-end and both
back-ends each with the domain controller.

Owns: policy definitions, the SA peers of each role and the routing rules. Not: node names and
roles (harness.topology), connections (harness.strongswan), the guard's rules (harness.guard).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError
from harness.topology import BACKENDS, DOMAIN_CONTROLLER, FRONT_END, VIP_PEER, Topology, role_of

IKE_MARK = "0x42"
UNUSED_MARK = "0x100"
"""charon's routing rule moves onto this mark under port-scoped designs: no packet carries it."""
RULE_PRIORITY = 100
"""Our port rules sit before charon's own rule (220) and the main table (32766)."""

SERVICE_PORTS = {"udp": ("udp", 7), "http": ("tcp", 80), "pop3": ("tcp", 110), "imap": ("tcp", 143)}
"""The back-ends' services behind the VIP (the probe's names)."""
DC_PORTS = (("tcp", 389), ("tcp", 88), ("udp", 88), ("tcp", 135), ("tcp", 3268), ("tcp", 53), ("udp", 53))
"""The domain controller's services: LDAP, Kerberos, RPC endpoint mapper, Global Catalog, DNS."""
DC_PEERS = (FRONT_END, *BACKENDS)
"""The nodes with SAs of their own with dc under a design that covers dc."""


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    ports: tuple[tuple[str, int], ...] | None
    """Protected (protocol, port) between fe and the VIP; None: every packet between them."""
    dc: bool = False
    """Whether fe and both back-ends protect their traffic to dc (each with its own SAs)."""

    @property
    def ipsec(self) -> bool:
        return self.ports != ()

    @property
    def port_scoped(self) -> bool:
        return bool(self.ports)

    def protects(self, proto: str, port: int) -> bool:
        """Whether this (protocol, port) between fe and the VIP is protected."""
        return self.ports is None or (proto, port) in self.ports

    def protects_service(self, service: str) -> bool:
        return self.protects(*SERVICE_PORTS[service])

    def peers(self, node: str) -> list[str]:
        """The nodes ``node`` has SAs with (VIP_PEER for fe's SA with the VIP's owner)."""
        if not self.ipsec:
            return []
        to_dc = [DOMAIN_CONTROLLER] if self.dc else []
        match role_of(node):
            case "front-end":
                return [VIP_PEER, *to_dc]
            case "back-end":
                return [FRONT_END, *to_dc]
            case "domain-controller":
                return list(DC_PEERS) if self.dc else []

    def has_sa_with_dc(self, node: str) -> bool:
        """Whether ``node`` has an SA of its own with dc (it initiates it)."""
        return self.ipsec and self.dc and role_of(node) != "domain-controller"

    def kernel_fwmark(self) -> str:
        """kernel-netlink's fwmark: charon's own rule for every packet not marked by its sockets,
        or, for port-scoped designs, a mark nothing carries (our port rules route instead)."""
        return UNUSED_MARK if self.port_scoped else f"!{IKE_MARK}"


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("none", "no IPsec: everything in clear", ports=()),
        Policy(
            "mail-passwords",
            "POP3 (110) and IMAP4 (143) between fe and the back-end encrypted, to protect basic-auth passwords",
            ports=(("tcp", 110), ("tcp", 143)),
        ),
        Policy(
            "mail-all",
            "HTTP (80), POP3 (110) and IMAP4 (143) between fe and the back-end encrypted",
            ports=(("tcp", 80), ("tcp", 110), ("tcp", 143)),
        ),
        Policy(
            "all-traffic",
            "every packet between fe, the back-ends and the domain controller encrypted",
            ports=None,
            dc=True,
        ),
    )
}
DEFAULT = "all-traffic"


def policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise UsageError(f"unknown policy {name!r}: choose one of {', '.join(POLICIES)}") from None


IP_PROTOCOLS = {"tcp": 6, "udp": 17}
"""By number: slim images have no /etc/protocols, and `ip rule` then refuses the names."""


def _port_matches(proto: str, port: int, direction: str) -> str:
    return f"ipproto {IP_PROTOCOLS[proto]} {direction} {port}"


def ip_rules(policy_: Policy, topology: Topology, node: str) -> list[str]:
    """`ip rule add` arguments (without `ip rule add`) routing the node's protected ports into
    the tunnel, each lookup followed by its prohibit twin."""
    if not policy_.port_scoped or policy_.ports is None:
        return []
    fe, vip = topology.address(FRONT_END), topology.vip
    match role_of(node):
        case "front-end":
            selector, direction = f"to {vip}", "dport"
        case "back-end":
            selector, direction = f"from {vip} to {fe}", "sport"
        case "domain-controller":
            return []
    rules = []
    for index, (proto, port) in enumerate(policy_.ports):
        selected = f"{selector} {_port_matches(proto, port, direction)}"
        priority = RULE_PRIORITY + 2 * index
        rules.append(f"pref {priority} {selected} lookup 220")
        rules.append(f"pref {priority + 1} {selected} prohibit")
    return rules

"""strongSwan per role: strongswan.conf and the connections (as vici messages and as a
swanctl.conf) rendered from a profile and a policy.

Settings every node needs on the userspace datapath (kernel-libipsec, see LAB-FACTS):
``allow_peer_ts`` for host-to-host tunnels and the fwmark split (IKE/ESP-in-UDP marked 0x42
bypass charon's routing table 220, everything else to the peer enters the TUN device).
Settings failover needs on fe: ``mobike = no`` (a node losing the VIP must not drag the IKE SA
to its own address), ``dpd_action`` and ``close_action`` that restart, and ``keyingtries = 0``.
The back-ends are responders that never initiate; both share the VIP's identity and the PSK.

Owns: configuration content. Not: talking to charon (harness.charon), starting it (harness.lab).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from harness.errors import UsageError
from harness.node import VICI_SOCKET, Node
from harness.policy import DC_PEERS, IKE_MARK, IP_PROTOCOLS, Policy
from harness.timers import JITTER_MAX, Profile
from harness.topology import BACKENDS, DOMAIN_CONTROLLER, FRONT_END, VIP_PEER, Topology, role_of

CHARON = "/usr/lib/ipsec/charon"
PLUGIN_DIR = "/usr/lib/ipsec/plugins"
LIBIPSEC_PLUGIN = f"{PLUGIN_DIR}/libstrongswan-kernel-libipsec.so"
PACKAGES = (
    "strongswan-charon strongswan-swanctl libstrongswan-standard-plugins "
    "libstrongswan-extra-plugins libcharon-extra-plugins"
)
"""Debian's packages that bring charon and every plugin in PLUGINS."""
CONNECTION = "vip"
Datapath = Literal["libipsec", "kernel"]
"""Where ESP happens: strongSwan's userspace datapath (kernel-libipsec: a TUN device in charon,
tunnel mode, ESP in UDP; netns and Docker, whose host kernel has no ESP) or the kernel's XFRM
(kernel-netlink: transport mode, raw ESP, trap policies; User-mode Linux and real hosts)."""
MODES = {"libipsec": "tunnel", "kernel": "transport"}
"""Each datapath's IPsec mode unless a profile asks for another (libipsec knows only tunnel)."""
COMMON_PLUGINS = "random nonce openssl aes sha1 sha2 hmac kdf gmp curve25519 pem pkcs1 x509 pubkey"
DATAPATH_PLUGINS = {
    "libipsec": "kernel-libipsec kernel-netlink socket-default vici",
    "kernel": "kernel-netlink socket-default vici",
}
PLUGINS = f"{COMMON_PLUGINS} {DATAPATH_PLUGINS['libipsec']}"
"""Every plugin any datapath loads (what check_installed looks for)."""
ROUTING_TABLE = 220
"""charon's default routing table (and rule priority) for routes into the TUN device."""


def plugin_path(name: str) -> Path:
    return Path(PLUGIN_DIR) / f"libstrongswan-{name}.so"


def check_installed() -> None:
    """Refuse to start without charon and every plugin the lab loads, naming the packages."""
    if not Path(CHARON).exists():
        raise UsageError(f"strongSwan is not installed: apt-get install {PACKAGES}")
    if not Path(LIBIPSEC_PLUGIN).exists():
        raise UsageError(
            "strongSwan's userspace datapath (kernel-libipsec) is missing: "
            "apt-get install libcharon-extra-plugins, or use --backend docker"
        )
    missing = [name for name in PLUGINS.split() if not plugin_path(name).exists()]
    if missing:
        raise UsageError(f"strongSwan plugins {', '.join(missing)} are missing: apt-get install {PACKAGES}")


def strongswan_conf(
    workdir: PurePosixPath,
    profile: Profile,
    policy_: Policy,
    datapath: Datapath = "libipsec",
    vici_socket: str = VICI_SOCKET,
    acquire_expires: int | None = None,
) -> str:
    """A self-contained strongswan.conf for one node (nothing read from /etc). ``acquire_expires``:
    the host's own net.core.xfrm_acq_expires, which charon writes at start (by default a value it
    derives from the retransmission settings; garbage with retransmit_base = 1): on a user's host
    charon then writes back what was there."""
    return f"""\
charon {{
    load_modular = no
    load = {COMMON_PLUGINS} {DATAPATH_PLUGINS[datapath]}
    retransmit_timeout = {profile.retransmit_timeout!r}
    retransmit_base = {profile.retransmit_base!r}
    retransmit_tries = {profile.retransmit_tries:d}
    retransmit_jitter = {profile.retransmit_jitter:d}
    retransmit_limit = {profile.retransmit_limit:d}
    make_before_break = {"yes" if profile.make_before_break else "no"}
    install_virtual_ip = no
    filelog {{
        node {{
            path = {workdir}/charon.log
            time_format = %s
            time_add_ms = yes
            ike_name = yes
            flush_line = yes
            default = 1
            ike = 4
            chd = 4
            mgr = 2
            cfg = 2
            net = 1
        }}
    }}
    syslog {{
        daemon {{
            default = -1
        }}
    }}
    plugins {{
{_datapath_plugins(policy_, datapath, acquire_expires)}        vici {{
            socket = unix://{vici_socket}
        }}
    }}
}}
"""


ACQUIRE_EXPIRES = "net.core.xfrm_acq_expires"


def host_acquire_expires(node: Node) -> int:
    """The host's own acquire lifetime, which charon overwrites at start (strongswan_conf)."""
    return int(node.run(["sysctl", "-n", ACQUIRE_EXPIRES]).stdout)


def _datapath_plugins(policy_: Policy, datapath: Datapath, acquire_expires: int | None) -> str:
    """libipsec needs host-to-host tunnels allowed and the fwmark split (see the module's
    docstring); the kernel datapath needs nothing of the kind. ``acquire_expires``: see
    strongswan_conf."""
    netlink = [] if datapath == "kernel" else [f"fwmark = {policy_.kernel_fwmark()}"]
    if acquire_expires is not None:
        netlink.append(f"xfrm_acq_expires = {acquire_expires:d}")
    blocks = "" if datapath == "kernel" else "        kernel-libipsec {\n            allow_peer_ts = yes\n        }\n"
    if netlink:
        blocks += "        kernel-netlink {\n" + "".join(f"            {line}\n" for line in netlink) + "        }\n"
    if datapath != "kernel":
        blocks += f"        socket-default {{\n            fwmark = {IKE_MARK}\n        }}\n"
    return blocks


RETRANSMISSION = {
    "retransmit_timeout": ("double", 4.0),
    "retransmit_base": ("double", 1.8),
    "retransmit_tries": ("int", 5),
    "retransmit_jitter": ("int", 0),
    "retransmit_limit": ("int", 0),
}
"""charon's retransmission settings: how it reads each (settings.c: get_double is strtod, get_int
is strtoul of the whole value) and its default when the value does not parse."""
DOUBLE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
WHOLE = re.compile(r"^\+?\d+$")
SETTING = re.compile(r"^\s*(retransmit_\w+)\s*=\s*(\S*)\s*$", re.MULTILINE)


MAKE_BEFORE_BREAK = re.compile(r"^\s*make_before_break\s*=\s*(\S*)\s*$", re.MULTILINE)
TRUE_WORDS = ("1", "yes", "true", "enabled")
"""What charon's get_bool takes as true (settings.c: case-insensitive); anything else is false."""


def make_before_break_as_charon_reads(conf: str) -> bool:
    """charon.make_before_break of a strongswan.conf as charon reads it (absent: no, 5.9.8's
    default; the harness always writes it)."""
    written = MAKE_BEFORE_BREAK.findall(conf)
    return bool(written) and written[0].lower() in TRUE_WORDS


def retransmission_as_charon_reads(conf: str) -> dict[str, float | int]:
    """The retransmission settings of a strongswan.conf as charon parses them: a value it cannot
    parse silently becomes the default, and the jitter is capped at 20 (task_manager.c). What the
    harness renders must read back as the profile says: the lab records this, not the profile."""
    written = dict(SETTING.findall(conf))
    read: dict[str, float | int] = {}
    for name, (kind, default) in RETRANSMISSION.items():
        value = written.get(name, "")
        if kind == "double":
            read[name] = float(value) if DOUBLE.match(value) else default
        else:
            read[name] = int(value) if WHOLE.match(value) else default
    read["retransmit_jitter"] = min(int(read["retransmit_jitter"]), JITTER_MAX)
    return read


@dataclass(frozen=True)
class Recovery:
    """How a node's CHILD_SAs start and come back, per datapath, initiator or responder."""

    mode: str
    initiator: dict[str, str]
    responder: dict[str, str]


def recovery(profile: Profile, datapath: Datapath) -> Recovery:
    """libipsec: fe installs a trap (which keeps its route into the TUN: nothing leaks) and
    starts at once, also after a DELETE or DPD (5.9.8's userspace traps never start a
    negotiation); the responders do nothing. kernel: every node installs trap policies at load
    (protected selectors never leave in clear, also while no SA exists or with charon killed),
    the initiators also start at once; after a DELETE or DPD fe re-initiates at once (profile
    recovery ``restart``) or on the next packet, through the trap's acquire (``trap``)."""
    mode = profile.mode or MODES[datapath]
    if datapath == "libipsec":
        initiator = {"start_action": "trap|start", "close_action": "trap|start", "dpd_action": "restart"}
        return Recovery(mode, initiator, {"start_action": "none", "close_action": "none", "dpd_action": "clear"})
    actions = {"restart": ("start", "restart"), "trap": ("trap", "trap")}[profile.recovery]
    initiator = {"start_action": "trap|start", "close_action": actions[0], "dpd_action": actions[1]}
    return Recovery(mode, initiator, {"start_action": "trap", "close_action": "none", "dpd_action": "clear"})


def datapath_refuses(profile: Profile, datapath: Datapath) -> str | None:
    """Why this datapath cannot run the profile as it says (None: it can)."""
    if datapath == "libipsec" and profile.mode == "transport":
        return "mode transport needs the kernel datapath (kernel-libipsec runs tunnel mode only): use --backend uml"
    if datapath == "libipsec" and profile.recovery == "trap":
        return (
            "recovery trap is measured on the kernel datapath only (libipsec's traps start no negotiation "
            "before strongSwan 5.9.11, and the lab keeps libipsec on trap|start): use --backend uml"
        )
    return None


def _child(local_ts: list[str], remote_ts: list[str], initiator: bool, how: Recovery) -> dict[str, Any]:
    return {
        "local_ts": local_ts,
        "remote_ts": remote_ts,
        "mode": how.mode,
        **(how.initiator if initiator else how.responder),
    }


def child_name(proto: str, port: int) -> str:
    return f"{proto}-{port}"


def _conn(
    profile: Profile, local_addr: str, remote_addrs: list[str], ids: tuple[str, str], children: dict[str, Any]
) -> dict[str, Any]:
    ikev1 = {"aggressive": "no", "dpd_timeout": f"{profile.dpd_timeout}s"} if profile.ike_version == 1 else {}
    return {
        "version": str(profile.ike_version),
        "local_addrs": [local_addr],
        "remote_addrs": remote_addrs,
        "mobike": "no",
        "dpd_delay": f"{profile.dpd_delay}s",
        **ikev1,
        "keyingtries": "0",
        "unique": profile.unique,
        **({"encap": "yes"} if profile.encap else {}),
        "local": {"auth": "psk", "id": ids[0]},
        "remote": {"auth": "psk", "id": ids[1]},
        "children": children,
    }


def connections(
    topology: Topology, node: str, profile: Profile, policy_: Policy, datapath: Datapath = "libipsec"
) -> dict[str, Any]:
    """The vici `load-conn` messages for ``node`` under ``policy_``: fe initiates to the VIP (one
    CHILD_SA per protected port, or one for everything), the back-ends answer on the VIP with the
    VIP's shared identity, and under all-traffic fe and both back-ends initiate to dc."""
    how = recovery(profile, datapath)
    conns: dict[str, Any] = {}
    match role_of(node):
        case "front-end" if policy_.ipsec:
            conns[CONNECTION] = _fe_to_vip(topology, profile, policy_, how)
        case "back-end" if policy_.ipsec:
            conns[CONNECTION] = _vip_to_fe(topology, profile, policy_, how)
        case "domain-controller" if policy_.dc:
            conns["peers"] = _dc_from_peers(topology, profile, how)
    if policy_.has_sa_with_dc(node):
        conns[DOMAIN_CONTROLLER] = _to_dc(topology, node, profile, how)
    return conns


def _fe_to_vip(topology: Topology, profile: Profile, policy_: Policy, how: Recovery) -> dict[str, Any]:
    """fe initiates to the VIP, whichever back-end owns it."""
    fe, ids = topology.address(FRONT_END), (topology.identity(FRONT_END), topology.identity(VIP_PEER))
    return _conn(profile, fe, [topology.vip], ids, _vip_children(policy_, topology, how, on_vip=False))


def _vip_to_fe(topology: Topology, profile: Profile, policy_: Policy, how: Recovery) -> dict[str, Any]:
    """A back-end answers fe on the VIP (on any address: the VIP moves) with the VIP's identity."""
    fe, ids = topology.address(FRONT_END), (topology.identity(VIP_PEER), topology.identity(FRONT_END))
    return _conn(profile, "%any", [fe], ids, _vip_children(policy_, topology, how, on_vip=True))


def _to_dc(topology: Topology, node: str, profile: Profile, how: Recovery) -> dict[str, Any]:
    """fe or a back-end initiates its own SA with dc."""
    own, dc = topology.address(node), topology.address(DOMAIN_CONTROLLER)
    children = {"all": _child([f"{own}/32"], [f"{dc}/32"], True, how)}
    return _conn(profile, own, [dc], (topology.identity(node), topology.identity(DOMAIN_CONTROLLER)), children)


def _dc_from_peers(topology: Topology, profile: Profile, how: Recovery) -> dict[str, Any]:
    """dc answers each of its peers, whatever their identity (no trap: its peers are dynamic)."""
    dc = topology.address(DOMAIN_CONTROLLER)
    answering = Recovery(how.mode, how.initiator, {**how.responder, "start_action": "none"})
    children = {"all": _child([f"{dc}/32"], ["dynamic"], False, answering)}
    peers = [topology.address(peer) for peer in DC_PEERS]
    return _conn(profile, dc, peers, (topology.identity(DOMAIN_CONTROLLER), "%any"), children)


def _vip_children(policy_: Policy, topology: Topology, how: Recovery, on_vip: bool) -> dict[str, Any]:
    """The CHILD_SAs between fe and the VIP (one per protected port, or one for everything), as fe
    (initiating) or the VIP's side (``on_vip``: answering) sees them."""
    fe_ts, vip = f"{topology.address(FRONT_END)}/32", topology.vip
    if policy_.ports is None:
        selectors = {"all": [f"{vip}/32"]}
    else:
        selectors = {  # protocols by number: slim images have no /etc/protocols for charon to read names from
            child_name(proto, port): [f"{vip}/32[{IP_PROTOCOLS[proto]}/{port}]"] for proto, port in policy_.ports
        }
    return {
        name: _child(vip_ts, [fe_ts], False, how) if on_vip else _child([fe_ts], vip_ts, True, how)
        for name, vip_ts in selectors.items()
    }


def expected_children(policy_: Policy, node: str) -> int:
    """CHILD_SAs the node has once the lab is up: fe's with the VIP and each node's own with dc.
    Not counted: a back-end's SAs with fe (only the VIP's owner has them) and dc's answering ones."""
    count = int(policy_.has_sa_with_dc(node))
    if policy_.ipsec and role_of(node) == "front-end":
        count += len(policy_.ports) if policy_.ports is not None else 1
    return count


def forget_lab_ipsec(topology: Topology, node: str) -> list[list[str]]:
    """argv lists that delete the XFRM states and policies between the node and its lab peers,
    and nothing else (a real host may carry IPsec state of its own): what a killed charon of the
    lab left in the node's kernel."""
    own = [topology.address(node)]
    match role_of(node):
        case "front-end":
            peers = [topology.vip, topology.address(DOMAIN_CONTROLLER)]
        case "back-end":
            own.append(topology.vip)
            peers = [topology.address(FRONT_END), topology.address(DOMAIN_CONTROLLER)]
        case "domain-controller":
            peers = [topology.address(peer) for peer in DC_PEERS]
    commands = []
    for here in own:
        for there in peers:
            for src, dst in ((here, there), (there, here)):
                commands.append(["ip", "xfrm", "policy", "deleteall", "src", f"{src}/32", "dst", f"{dst}/32"])
    for here in own:  # states after every policy: a packet meeting a policy without its SA meanwhile
        for there in peers:  # would leave an acquire state behind, which no delete reaches
            for src, dst in ((here, there), (there, here)):
                commands.append(["ip", "xfrm", "state", "deleteall", "src", src, "dst", dst])
    return commands


def shared_secret(topology: Topology, psk: str) -> dict[str, Any]:
    """One PSK for every identity of the lab."""
    identities = (FRONT_END, VIP_PEER, *BACKENDS, DOMAIN_CONTROLLER)
    return {"type": "IKE", "data": psk, "owners": [topology.identity(n) for n in identities]}


def swanctl_conf(
    topology: Topology,
    node: str,
    profile: Profile,
    policy_: Policy,
    psk: str,
    datapath: Datapath = "libipsec",
    announced: bool = False,
) -> str:
    """The same PSK and connections as ``configure`` loads over vici, as a swanctl.conf for
    `swanctl --load-all --file` (a compose node configures itself without the harness; a run's
    evidence shows it with the PSK masked); ``announced``: with the announce connection a fault
    loaded later (announce_connection)."""
    secret = shared_secret(topology, psk)
    owners = {f"id-{n}": owner for n, owner in enumerate(secret["owners"])}
    loaded = connections(topology, node, profile, policy_, datapath)
    if announced:
        loaded[ANNOUNCE] = announce_connection(topology, node, profile, policy_, datapath)
    document = {
        "connections": loaded,
        "secrets": {"ike-lab": {"secret": secret["data"], **owners}},
    }
    return "".join(_swanctl_section(name, body, 0) for name, body in document.items())


def _swanctl_section(name: str, body: dict[str, Any], depth: int) -> str:
    indent = "    " * depth
    lines = [f"{indent}{name} {{\n"]
    for key, value in body.items():
        if isinstance(value, dict):
            lines.append(_swanctl_section(key, value, depth + 1))
        else:
            joined = ",".join(value) if isinstance(value, list) else str(value)
            lines.append(f'{indent}    {key} = "{joined}"\n')
    lines.append(f"{indent}}}\n")
    return "".join(lines)


ANNOUNCE = "announce"
"""A rebooted back-end's connection to fe from the VIP (reboot-announce)."""


def announce_connection(
    topology: Topology, node: str, profile: Profile, policy_: Policy, datapath: Datapath = "libipsec"
) -> dict[str, Any]:
    """A back-end's connection to fe from the VIP whose CHILD_SAs start as soon as it is loaded
    (``start_action = start``, as a cluster node configured to bring its tunnel up at boot)."""
    conn = connections(topology, node, profile, policy_, datapath)[CONNECTION]
    children = {name: dict(child, start_action="start") for name, child in conn["children"].items()}
    return dict(conn, local_addrs=[topology.vip], children=children)

"""strongSwan per role: strongswan.conf and connections rendered from a profile, and charon
controlled over vici (credentials, connections, SA listings and up/down events).

Settings every node needs on the userspace datapath (kernel-libipsec, see LAB-FACTS):
``allow_peer_ts`` for host-to-host tunnels and the fwmark split (IKE/ESP-in-UDP marked 0x42
bypass charon's routing table 220, everything else to the peer enters the TUN device).
Settings failover needs on fe: ``mobike = no`` (a node losing the VIP must not drag the IKE SA
to its own address), ``dpd_action`` and ``close_action`` that restart, and ``keyingtries = 0``.
The back-ends are responders that never initiate; both share the VIP's identity and the PSK.

Owns: configuration content and the vici conversation. Not: starting charon (harness.lab).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from harness.errors import LabError, NotRecovered, UsageError
from harness.node import Node
from harness.policy import DC_PEERS, IKE_MARK, IP_PROTOCOLS, Policy
from harness.timers import Profile
from harness.topology import BACKENDS, Topology

CHARON = "/usr/lib/ipsec/charon"
PLUGIN_DIR = "/usr/lib/ipsec/plugins"
LIBIPSEC_PLUGIN = f"{PLUGIN_DIR}/libstrongswan-kernel-libipsec.so"
PACKAGES = (
    "strongswan-charon strongswan-swanctl libstrongswan-standard-plugins "
    "libstrongswan-extra-plugins libcharon-extra-plugins"
)
"""Debian's packages that bring charon and every plugin in PLUGINS."""
CONNECTION = "vip"
PLUGINS = (
    "random nonce openssl aes sha1 sha2 hmac kdf gmp curve25519 pem pkcs1 x509 pubkey "
    "kernel-libipsec kernel-netlink socket-default vici"
)
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


def strongswan_conf(workdir: PurePosixPath, profile: Profile, policy_: Policy) -> str:
    """A self-contained strongswan.conf for one node (nothing read from /etc)."""
    return f"""\
charon {{
    load_modular = no
    load = {PLUGINS}
    retransmit_timeout = {profile.retransmit_timeout}
    retransmit_base = {profile.retransmit_base}
    retransmit_tries = {profile.retransmit_tries}
    retransmit_jitter = {profile.retransmit_jitter:g}
    retransmit_limit = {profile.retransmit_limit}
    install_virtual_ip = no
    filelog {{
        node {{
            path = {workdir}/charon.log
            time_format = %s
            time_add_ms = yes
            flush_line = yes
            default = 1
            ike = 2
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
        kernel-libipsec {{
            allow_peer_ts = yes
        }}
        kernel-netlink {{
            fwmark = {policy_.kernel_fwmark()}
        }}
        socket-default {{
            fwmark = {IKE_MARK}
        }}
        vici {{
            socket = unix:///run/charon.vici
        }}
    }}
}}
"""


def _child(local_ts: list[str], remote_ts: list[str], initiator: bool) -> dict[str, Any]:
    return {
        "local_ts": local_ts,
        "remote_ts": remote_ts,
        "mode": "tunnel",
        "start_action": "trap|start" if initiator else "none",
        "close_action": "trap|start" if initiator else "none",
        "dpd_action": "restart" if initiator else "clear",
    }


def child_name(proto: str, port: int) -> str:
    return f"{proto}-{port}"


def _conn(
    profile: Profile, local_addr: str, remote_addrs: list[str], ids: tuple[str, str], children: dict[str, Any]
) -> dict[str, Any]:
    return {
        "version": "2",
        "local_addrs": [local_addr],
        "remote_addrs": remote_addrs,
        "mobike": "no",
        "dpd_delay": f"{profile.dpd_delay}s",
        "keyingtries": "0",
        "unique": profile.unique,
        "local": {"auth": "psk", "id": ids[0]},
        "remote": {"auth": "psk", "id": ids[1]},
        "children": children,
    }


def connections(topology: Topology, node: str, profile: Profile, policy_: Policy) -> dict[str, Any]:
    """The vici `load-conn` messages for ``node`` under ``policy_``: fe initiates to the VIP (one
    CHILD_SA per protected port, or one for everything), the back-ends answer on the VIP with the
    VIP's shared identity, and under all-traffic fe and both back-ends initiate to dc."""
    fe, vip, dc = topology.address("fe"), topology.vip, topology.address("dc")
    conns: dict[str, Any] = {}
    for peer in policy_.peers(node):
        if node == "fe" and peer == "vip":
            children = _vip_children(policy_, f"{fe}/32", vip, initiator=True, vip_is_local=False)
            conns[CONNECTION] = _conn(profile, fe, [vip], (topology.identity("fe"), topology.identity("vip")), children)
        elif node in BACKENDS and peer == "fe":
            children = _vip_children(policy_, f"{fe}/32", vip, initiator=False, vip_is_local=True)
            ids = (topology.identity("vip"), topology.identity("fe"))
            conns[CONNECTION] = _conn(profile, "%any", [fe], ids, children)
        elif peer == "dc":
            own = topology.address(node)
            children = {"all": _child([f"{own}/32"], [f"{dc}/32"], initiator=True)}
            conns["dc"] = _conn(profile, own, [dc], (topology.identity(node), topology.identity("dc")), children)
    if node == "dc" and policy_.dc:
        children = {"all": _child([f"{dc}/32"], ["dynamic"], initiator=False)}
        peers = [topology.address(peer) for peer in DC_PEERS]
        conns["peers"] = _conn(profile, dc, peers, (topology.identity("dc"), "%any"), children)
    return conns


def _vip_children(policy_: Policy, fe_ts: str, vip: str, initiator: bool, vip_is_local: bool) -> dict[str, Any]:
    if policy_.ports is None:
        selectors = {"all": [f"{vip}/32"]}
    else:
        selectors = {  # protocols by number: slim images have no /etc/protocols for charon to read names from
            child_name(proto, port): [f"{vip}/32[{IP_PROTOCOLS[proto]}/{port}]"] for proto, port in policy_.ports
        }
    return {
        name: _child(vip_ts, [fe_ts], initiator) if vip_is_local else _child([fe_ts], vip_ts, initiator)
        for name, vip_ts in selectors.items()
    }


def expected_children(policy_: Policy, node: str) -> int:
    """CHILD_SAs the node has once the lab is up (the back-ends' SAs with fe: only the owner's)."""
    count = 0
    for peer in policy_.peers(node):
        if peer == "vip":
            count += len(policy_.ports) if policy_.ports is not None else 1
        elif peer == "dc":
            count += 1
    return count


def shared_secret(topology: Topology, psk: str) -> dict[str, Any]:
    """One PSK for every identity of the lab."""
    return {"type": "IKE", "data": psk, "owners": [topology.identity(n) for n in ("fe", "vip", *BACKENDS, "dc")]}


def configure(node: Node, topology: Topology, profile: Profile, policy_: Policy, psk: str) -> None:
    """Load the PSK and the node's connections into its running charon."""
    session = node.vici()
    try:
        session.load_shared(shared_secret(topology, psk))
        for name, conn in connections(topology, node.name, profile, policy_).items():
            session.load_conn({name: conn})
    finally:
        session.transport.close()


def swanctl_conf(topology: Topology, node: str, profile: Profile, policy_: Policy, psk: str) -> str:
    """The same PSK and connections as ``configure`` loads over vici, as a swanctl.conf for
    `swanctl --load-all --file` (a compose node configures itself without the harness)."""
    secret = shared_secret(topology, psk)
    owners = {f"id-{n}": owner for n, owner in enumerate(secret["owners"])}
    document = {
        "connections": connections(topology, node, profile, policy_),
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


def announce(node: Node, topology: Topology, profile: Profile, policy_: Policy) -> None:
    """Give the back-end a connection to fe from the VIP whose CHILD_SAs start as soon as it is
    loaded (``start_action = start``, as a cluster node configured to bring its tunnel up at
    boot): charon initiates on its own. Having no IKE SA with fe, it sends INITIAL_CONTACT, and
    fe deletes the IKE SAs it still holds with the VIP's identity (unless fe's ``unique = never``)."""
    conn = connections(topology, node.name, profile, policy_)[CONNECTION]
    children = {name: dict(child, start_action="start") for name, child in conn["children"].items()}
    session = node.vici()
    try:
        session.load_conn({ANNOUNCE: dict(conn, local_addrs=[topology.vip], children=children)})
    finally:
        session.transport.close()


def installed_children(node: Node) -> list[dict[str, Any]]:
    """The node's CHILD_SAs in state INSTALLED (of established IKE SAs)."""
    return [
        child
        for entry in list_sas(node)
        for sa in entry.values()
        if sa.get("state") == "ESTABLISHED"
        for child in sa.get("child-sas", {}).values()
        if child.get("state") == "INSTALLED"
    ]


def version(node: Node) -> str:
    session = node.vici()
    try:
        answer = session.version()
    finally:
        session.transport.close()
    return str(answer["version"].decode())


def list_sas(node: Node) -> list[dict[str, Any]]:
    """The node's IKE SAs as plain dicts (bytes decoded), one entry per IKE SA."""
    session = node.vici()
    try:
        return [{name: _decode(sa) for name, sa in entry.items()} for entry in session.list_sas()]
    finally:
        session.transport.close()


def ike_spis(node: Node) -> set[tuple[str, str]]:
    """(initiator SPI, responder SPI) of every established IKE SA of the node; none when its
    charon is down (a crashed node)."""
    try:
        sas = list_sas(node)
    except OSError:
        return set()
    return {
        (sa["initiator-spi"], sa["responder-spi"])
        for entry in sas
        for sa in entry.values()
        if sa.get("state") == "ESTABLISHED"
    }


def terminate_all(node: Node, timeout_ms: int = 2000) -> None:
    """Delete every IKE SA of the node, sending DELETE to the peer (force: never wait long)."""
    session = node.vici()
    try:
        for entry in list(session.list_sas()):
            for sa in entry.values():
                for _ in session.terminate({"ike-id": sa["uniqueid"], "timeout": str(timeout_ms), "force": "yes"}):
                    pass
    finally:
        session.transport.close()


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


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


class EventRecorder:
    """Records a node's ike-updown and child-updown events from a background thread."""

    POLL_S = 0.05
    """How often the listener checks whether it should stop (it never delays an event)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.events: list[SaEvent] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._session = node.vici()
        self._thread = threading.Thread(target=self._listen, name=f"vici-{node.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            self.close()
            raise LabError(f"{node.name}: charon did not accept the vici event registration")

    def _listen(self) -> None:
        from vici.exception import SessionException  # not at the top: compose_node runs without vici

        try:
            for label, message in self._session.listen(["ike-updown", "child-updown"], self.POLL_S):
                self._ready.set()
                if self._stop.is_set():
                    break
                if label is not None and message is not None:
                    self._record(label, message)
        except (OSError, SessionException):
            pass
        finally:
            self._ready.set()

    def _record(self, label: bytes, message: dict[str, Any]) -> None:
        now = time.monotonic()
        up = message.get("up") == b"yes"
        kind = "ike" if label == b"ike-updown" else "child"
        events = [
            SaEvent(now, kind, up, sa["uniqueid"].decode(), sa.get("remote-host", b"").decode())
            for sa in message.values()
            if isinstance(sa, dict)
        ]
        with self._changed:
            self.events.extend(events)
            self._changed.notify_all()

    def wait_for(self, kind: str, up: bool, after: float, timeout: float) -> SaEvent:
        """The first event of ``kind``/``up`` stamped at or after ``after``."""
        deadline = time.monotonic() + timeout

        def found() -> SaEvent | None:
            return next((e for e in self.events if e.kind == kind and e.up == up and e.t >= after), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or time.monotonic() >= deadline, timeout)
            event = found()
        if event is None:
            raise NotRecovered(f"{self.node.name}: no {kind} SA went {'up' if up else 'down'} within {timeout:.1f} s")
        return event

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2 * self.POLL_S + 5)
        with contextlib.suppress(OSError):
            self._session.transport.close()

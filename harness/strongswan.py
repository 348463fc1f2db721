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

import vici

from harness.errors import LabError, NotRecovered, UsageError
from harness.node import Node
from harness.timers import Profile
from harness.topology import Topology

CHARON = "/usr/lib/ipsec/charon"
PLUGIN_DIR = "/usr/lib/ipsec/plugins"
LIBIPSEC_PLUGIN = f"{PLUGIN_DIR}/libstrongswan-kernel-libipsec.so"
PACKAGES = (
    "strongswan-charon strongswan-swanctl libstrongswan-standard-plugins "
    "libstrongswan-extra-plugins libcharon-extra-plugins"
)
"""Debian's packages that bring charon and every plugin in PLUGINS."""
CONNECTION = "vip"
CHILD = "svc"
PLUGINS = (
    "random nonce openssl aes sha1 sha2 hmac kdf gmp curve25519 pem pkcs1 x509 pubkey "
    "kernel-libipsec kernel-netlink socket-default vici"
)
IKE_MARK = "0x42"
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


def strongswan_conf(workdir: PurePosixPath, profile: Profile) -> str:
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
            fwmark = !{IKE_MARK}
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


def connection(topology: Topology, node: str, profile: Profile) -> dict[str, Any]:
    """The vici `load-conn` message for ``node``: fe initiates to the VIP, back-ends respond."""
    initiator = node == "fe"
    local, remote = (topology.address("fe"), topology.vip)
    if not initiator:
        local, remote = remote, local
    child = {
        "local_ts": [f"{local}/32"],
        "remote_ts": [f"{remote}/32"],
        "mode": "tunnel",
        "start_action": "trap|start" if initiator else "none",
        "close_action": "trap|start" if initiator else "none",
        "dpd_action": "restart" if initiator else "clear",
    }
    return {
        CONNECTION: {
            "version": "2",
            "local_addrs": [topology.address("fe")] if initiator else ["%any"],
            "remote_addrs": [topology.vip] if initiator else [topology.address("fe")],
            "mobike": "no",
            "dpd_delay": f"{profile.dpd_delay}s",
            "keyingtries": "0",
            "local": {"auth": "psk", "id": topology.identity(node)},
            "remote": {"auth": "psk", "id": topology.identity("fe" if not initiator else "be1")},
            "children": {CHILD: child},
        }
    }


def shared_secret(topology: Topology, psk: str) -> dict[str, Any]:
    return {
        "type": "IKE",
        "data": psk,
        "owners": [topology.identity("fe"), topology.identity("be1")],
    }


def configure(node: Node, topology: Topology, profile: Profile, psk: str) -> None:
    """Load the PSK and the node's connection into its running charon."""
    session = node.vici()
    try:
        session.load_shared(shared_secret(topology, psk))
        session.load_conn(connection(topology, node.name, profile))
    finally:
        session.transport.close()


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
        try:
            for label, message in self._session.listen(["ike-updown", "child-updown"], self.POLL_S):
                self._ready.set()
                if self._stop.is_set():
                    break
                if label is not None and message is not None:
                    self._record(label, message)
        except (OSError, vici.exception.SessionException):
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

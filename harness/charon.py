"""Controlling a node's charon over vici: one session helper that turns every vici and socket
failure into a CharonError, and the conversations the harness has with charon (load credentials
and connections, list SAs as values, terminate them, follow SA events).

Owns: the vici conversation. Not: what the configuration says (harness.strongswan), starting
charon (harness.lab).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vici.exception import CommandException, DeserializationException, SessionException

from harness import strongswan
from harness.errors import CharonError, LabError, NodeLost, NotRecovered
from harness.node import Node
from harness.policy import Policy
from harness.sa import ChildSa, IkeSa, SaEvent
from harness.strongswan import Datapath
from harness.timers import Profile
from harness.topology import Topology

if TYPE_CHECKING:
    import vici

FOREIGN = (SessionException, CommandException, DeserializationException, OSError)
"""What the vici package and its socket raise."""


@contextlib.contextmanager
def session(node: Node, timeout: float = 10) -> Iterator[vici.Session]:
    """A vici session to the node's charon, closed afterwards; anything vici or the socket
    raises inside the block becomes one CharonError naming the node."""
    opened = node.vici(timeout)
    try:
        yield opened
    except FOREIGN as error:
        raise CharonError(node.name, f"vici failed: {error or type(error).__name__}") from None
    finally:
        with contextlib.suppress(*FOREIGN, LabError):
            opened.transport.close()


def running(node: Node) -> bool:
    """Whether the node's charon answers on vici now."""
    try:
        with session(node, timeout=2) as vici_session:
            vici_session.version()
    except CharonError:
        return False
    return True


def version(node: Node) -> str:
    with session(node) as vici_session:
        return str(vici_session.version()["version"].decode())


def configure(
    node: Node, topology: Topology, profile: Profile, policy_: Policy, psk: str, datapath: Datapath = "libipsec"
) -> None:
    """Load the PSK and the node's connections into its running charon."""
    with session(node) as vici_session:
        vici_session.load_shared(strongswan.shared_secret(topology, psk))
        for name, conn in strongswan.connections(topology, node.name, profile, policy_, datapath).items():
            vici_session.load_conn({name: conn})


def loaded_connections(node: Node) -> set[str]:
    """The names of the connections the node's charon has loaded."""
    with session(node) as vici_session:
        return {name for conns in vici_session.list_conns() for name in conns}


def announce(
    node: Node, topology: Topology, profile: Profile, policy_: Policy, datapath: Datapath = "libipsec"
) -> None:
    """Give the back-end a connection to fe from the VIP whose CHILD_SAs start as soon as it is
    loaded (``start_action = start``, as a cluster node configured to bring its tunnel up at
    boot): charon initiates on its own. Having no IKE SA with fe, it sends INITIAL_CONTACT, and
    fe deletes the IKE SAs it still holds with the VIP's identity (unless fe's ``unique = never``)."""
    with session(node) as vici_session:
        conn = strongswan.announce_connection(topology, node.name, profile, policy_, datapath)
        vici_session.load_conn({strongswan.ANNOUNCE: conn})


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _child(child: dict[str, Any]) -> ChildSa:
    return ChildSa(
        name=_text(child.get("name", b"")),
        state=_text(child.get("state", b"")),
        local_ts=tuple(_text(ts) for ts in child.get("local-ts", [])),
        remote_ts=tuple(_text(ts) for ts in child.get("remote-ts", [])),
        packets_in=int(child.get("packets-in", 0)),
        packets_out=int(child.get("packets-out", 0)),
    )


def _ike(connection: str, sa: dict[str, Any]) -> IkeSa:
    return IkeSa(
        connection=connection,
        unique_id=_text(sa.get("uniqueid", b"")),
        state=_text(sa.get("state", b"")),
        remote_host=_text(sa.get("remote-host", b"")),
        initiator_spi=_text(sa.get("initiator-spi", b"")),
        responder_spi=_text(sa.get("responder-spi", b"")),
        children=tuple(_child(child) for child in sa.get("child-sas", {}).values()),
        nat_any=sa.get("nat-any") == b"yes",
    )


def sas(node: Node) -> list[IkeSa]:
    """The node's IKE SAs (and their CHILD_SAs) as values."""
    with session(node) as vici_session:
        return [_ike(name, sa) for entry in vici_session.list_sas() for name, sa in entry.items()]


def connection_settings(node: Node, connection: str) -> dict[str, Any]:
    """What the node's charon runs a loaded connection with, as it reports it (vici list-conns):
    IKE version, uniqueness policy, DPD delay and timeout (0 when charon reports none: off)."""
    with session(node) as vici_session:
        found = [conns[connection] for conns in vici_session.list_conns() if connection in conns]
    if not found:
        raise CharonError(node.name, f"has no connection {connection!r} loaded")
    conn = found[0]
    return {
        "version": _text(conn.get("version", b"")),
        "unique": _text(conn.get("unique", b"")).removeprefix("UNIQUE_").lower(),
        "dpd_delay": int(conn.get("dpd_delay", 0)),
        "dpd_timeout": int(conn.get("dpd_timeout", 0)),
        "rekey_time": int(conn.get("rekey_time", 0)),
    }


def ike_spis(node: Node) -> set[tuple[str, str]]:
    """(initiator SPI, responder SPI) of every established IKE SA of the node; none when its
    charon does not answer (a crashed node) or the node itself is down (a crashed VM)."""
    try:
        return {sa.spis for sa in sas(node) if sa.established}
    except (CharonError, NodeLost):
        return set()


def terminate(node: Node, *connections: str, timeout_ms: int = 2000) -> None:
    """Delete the node's IKE SAs of ``connections``, sending DELETE to the peer (force: never wait
    longer than ``timeout_ms`` for the peer's answer; charon then removes the SA anyway and says
    the termination failed, which is no failure here once the SA is gone)."""
    with session(node) as vici_session:
        listed = [_ike(name, sa) for entry in vici_session.list_sas() for name, sa in entry.items()]
        unanswered = set()
        for sa in listed:
            if sa.connection in connections:
                request = {"ike-id": sa.unique_id, "timeout": str(timeout_ms), "force": "yes"}
                try:
                    for _ in vici_session.terminate(request):
                        pass
                except CommandException:
                    unanswered.add(sa.unique_id)
        if unanswered:
            listed = [_ike(name, sa) for entry in vici_session.list_sas() for name, sa in entry.items()]
            left = sorted(unanswered & {sa.unique_id for sa in listed})
            if left:
                raise CharonError(node.name, f"could not terminate IKE SA(s) {', '.join(left)}")


def reauthenticate(node: Node, connection: str) -> None:
    """Have the node reauthenticate its IKE SAs of ``connection`` now (what ``reauth_time`` would
    do when it runs out): a new IKE SA from scratch, its CHILD_SAs with it. charon only queues the
    job: this returns before anything went out."""
    with session(node) as vici_session:
        vici_session.rekey({"ike": connection, "reauth": "yes"})


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
            raise CharonError(node.name, "charon did not accept the vici event registration")

    def _listen(self) -> None:
        try:
            for label, message in self._session.listen(["ike-updown", "child-updown"], self.POLL_S):
                self._ready.set()
                if self._stop.is_set():
                    break
                if label is not None and message is not None:
                    self._record(label, message)
        except (*FOREIGN, NodeLost):
            pass
        finally:
            self._ready.set()

    def _record(self, label: bytes, message: dict[str, Any]) -> None:
        now = time.monotonic()
        up = message.get("up") == b"yes"
        kind = "ike" if label == b"ike-updown" else "child"
        events = [
            SaEvent(now, kind, up, _text(sa["uniqueid"]), _text(sa.get("remote-host", b"")))
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
        with contextlib.suppress(*FOREIGN, LabError):
            self._session.transport.close()

"""What a run leaves for an engineer to look at: the lab wire as one pcap, each node's charon log
and the configuration each node's charon ran with (the PSK masked), kept in the report folder.

    captures/<run>.pcap                 the lab wire for the whole run (the control channel is
                                        not on it: agents talk over their own channel)
    logs/<run>/<node>-charon.log        what each node's charon logged, from its start
    config/<run>/<node>/strongswan.conf as rendered for that node
    config/<run>/<node>/swanctl.conf    the connections the harness loaded over vici, as a
                                        swanctl.conf (the PSK replaced by MASKED_PSK)
    keys/<run>/                         Wireshark's decryption tables for the run's SAs, from
                                        the keys charon logged (harness.keylog):
                                        WIRESHARK_CONFIG_DIR=keys/<run> tshark -r captures/<run>.pcap

The lab's PSK is fresh per lab and thrown away with it; it is masked all the same. The keys are
the lab's own too: they die with its SAs, and protect nothing but the probes' made-up logins.

Owns: collecting these from a running lab's nodes and writing them next to a run's JSON. Not:
the capture itself (harness.wire), the JSON (harness.result).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness import charon, keylog, strongswan
from harness.errors import CommandError, CommandTimeout, LabError, NodeLost
from harness.lab import Lab
from harness.node import Node
from harness.topology import NODES

MASKED_PSK = "<lab PSK: fresh per lab, thrown away with it>"
PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")
PCAP_MAGIC = 0xA1B2C3D4
"""The classic pcap format tcpdump writes (microsecond stamps, this machine's byte order)."""


@dataclass(frozen=True)
class Evidence:
    """One run's capture, charon logs and rendered configuration, as bytes and text."""

    capture: bytes
    logs: dict[str, str] = field(default_factory=dict)
    """Node name -> its charon log (a node whose log could not be read is missing)."""
    configs: dict[str, dict[str, str]] = field(default_factory=dict)
    """Node name -> file name -> its text."""
    keys: dict[str, str] = field(default_factory=dict)
    """File name -> text of a Wireshark configuration folder that decrypts the run (keylog.tables)."""

    def write(self, directory: Path, run: str) -> list[Path]:
        """Everything under ``directory`` for the run named ``run`` (result.run_name), readable by
        root only; returns the files written."""
        files = {Path("captures") / f"{run}.pcap": self.capture}
        files |= {Path("logs") / run / f"{node}-charon.log": log.encode() for node, log in self.logs.items()}
        files |= {
            Path("config") / run / node / name: text.encode()
            for node, texts in self.configs.items()
            for name, text in texts.items()
        }
        files |= {Path("keys") / run / name: text.encode() for name, text in self.keys.items()}
        written = []
        for relative, data in files.items():
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_bytes(data)
            path.chmod(0o600)
            written.append(path)
        return written


def read_bytes(node: Node, path: PurePosixPath) -> bytes:
    """A file of the node, byte for byte (the command channel carries text: base64 on the way)."""
    return base64.b64decode(node.run(["base64", "-w", "0", str(path)], timeout=60).stdout)


def merge(captures: Sequence[bytes]) -> bytes:
    """Several pcaps of one wire (one per capture point) as one, packets in time order; one
    capture is returned as it is. Refuses anything but the classic pcap tcpdump writes."""
    if len(captures) == 1:
        return captures[0]
    header: bytes | None = None
    records: list[tuple[int, int, int, bytes]] = []
    for number, data in enumerate(captures):
        if len(data) < PCAP_HEADER.size or PCAP_HEADER.unpack_from(data)[0] != PCAP_MAGIC:
            raise LabError(f"capture {number} is not a pcap tcpdump writes (magic {data[:4].hex() or 'none'})")
        header = header or data[: PCAP_HEADER.size]
        offset = PCAP_HEADER.size
        while offset + RECORD_HEADER.size <= len(data):
            seconds, micros, kept, _ = RECORD_HEADER.unpack_from(data, offset)
            end = offset + RECORD_HEADER.size + kept
            records.append((seconds, micros, number, data[offset:end]))
            offset = end
    assert header is not None
    return header + b"".join(record for *_, record in sorted(records, key=lambda r: r[:3]))


def _config(lab: Lab, name: str) -> dict[str, str]:
    node = lab.nodes[name]
    texts = {"strongswan.conf": node.run(["cat", str(node.workdir / "strongswan.conf")]).stdout}
    if lab.policy.ipsec:
        texts["swanctl.conf"] = strongswan.swanctl_conf(
            lab.topology, name, lab.profile, lab.policy, MASKED_PSK, lab.datapath, _announced(node)
        )
    return texts


def _announced(node: Node) -> bool:
    """Whether a fault gave the node's charon the announce connection (a charon that is gone, a
    crashed back-end's, has none to show)."""
    try:
        return strongswan.ANNOUNCE in charon.loaded_connections(node)
    except LabError:
        return False


def collect(lab: Lab, captures: Sequence[tuple[Node, PurePosixPath]]) -> Evidence:
    """The run's evidence from the lab's nodes, once the capture has stopped: the wire from every
    capture point (merged), and each node's charon log and configuration where the node still
    answers (a crashed VM's log went with it)."""
    wire = merge([read_bytes(node, path) for node, path in captures])
    logs, configs = {}, {}
    for name in NODES:
        node = lab.nodes[name]
        try:
            logs[name] = node.run(["cat", str(node.workdir / "charon.log")], timeout=60).stdout
            configs[name] = _config(lab, name)
        except (CommandError, CommandTimeout, NodeLost):
            continue
    return Evidence(wire, logs, configs, keylog.tables(logs.values()) if lab.policy.ipsec else {})

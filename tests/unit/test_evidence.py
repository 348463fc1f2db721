"""A run's evidence: pcaps of several capture points merged in time order, and the files a
report folder gets (root only)."""

import struct
from pathlib import Path

import pytest

from harness import evidence, policy, strongswan, timers
from harness.errors import LabError
from harness.evidence import Evidence
from harness.topology import Topology

from .fakes import FakeNode, fake_lab


def pcap(*packets: tuple[int, int, bytes]) -> bytes:
    """A classic pcap (Ethernet) of (seconds, microseconds, data) records."""
    header = evidence.PCAP_HEADER.pack(evidence.PCAP_MAGIC, 2, 4, 0, 0, 65535, 1)
    body = b"".join(evidence.RECORD_HEADER.pack(s, us, len(d), len(d)) + d for s, us, d in packets)
    return header + body


def records(data: bytes) -> list[tuple[int, int, bytes]]:
    found, offset = [], evidence.PCAP_HEADER.size
    while offset < len(data):
        seconds, micros, kept, _ = struct.unpack_from("<IIII", data, offset)
        start = offset + evidence.RECORD_HEADER.size
        found.append((seconds, micros, data[start : start + kept]))
        offset = start + kept
    return found


def test_captures_of_several_points_merge_in_time_order() -> None:
    be1 = pcap((10, 5, b"be1-a"), (10, 900, b"be1-b"))
    be2 = pcap((10, 6, b"be2-a"), (11, 0, b"be2-b"))
    merged = evidence.merge([be1, be2])
    assert merged[: evidence.PCAP_HEADER.size] == be1[: evidence.PCAP_HEADER.size]
    assert [data for *_, data in records(merged)] == [b"be1-a", b"be2-a", b"be1-b", b"be2-b"]


def test_one_capture_is_kept_as_it_is_and_a_foreign_one_refused() -> None:
    only = pcap((1, 2, b"x"))
    assert evidence.merge([only]) is only
    with pytest.raises(LabError, match="capture 1 is not a pcap tcpdump writes"):
        evidence.merge([only, b"\x0a\x0d\x0d\x0a" + bytes(40)])  # pcapng


def test_a_run_s_evidence_lands_in_the_report_folder_for_root_only(tmp_path: Path) -> None:
    kept = Evidence(
        pcap((1, 2, b"x")),
        {"fe": "fe log\n", "be1": "be1 log\n"},
        {"fe": {"strongswan.conf": "charon {}\n", "swanctl.conf": "connections {}\n"}},
    )
    written = kept.write(tmp_path, "01-fast-crash")
    assert sorted(str(path.relative_to(tmp_path)) for path in written) == [
        "captures/01-fast-crash.pcap",
        "config/01-fast-crash/fe/strongswan.conf",
        "config/01-fast-crash/fe/swanctl.conf",
        "logs/01-fast-crash/be1-charon.log",
        "logs/01-fast-crash/fe-charon.log",
    ]
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in written)
    assert (tmp_path / "logs" / "01-fast-crash" / "fe-charon.log").read_text() == "fe log\n"


def test_the_configuration_kept_masks_the_lab_s_psk() -> None:
    topology = Topology("lab0", 0)
    text = strongswan.swanctl_conf(
        topology, "fe", timers.profile("fast"), policy.policy("all-traffic"), evidence.MASKED_PSK
    )
    assert f'secret = "{evidence.MASKED_PSK}"' in text
    assert "connections {" in text and "dpd_delay" in text


def test_a_back_end_s_configuration_shows_the_announce_connection_a_fault_loaded() -> None:
    lab = fake_lab().lab
    be2 = lab.nodes["be2"]
    assert isinstance(be2, FakeNode)
    be2.conns = [{"vip": {}}, {"announce": {}}]
    shown = evidence._config(lab, "be2")["swanctl.conf"]
    assert "    announce {" in shown and 'start_action = "start"' in shown
    assert f'local_addrs = "{lab.topology.vip}"' in shown
    be2.conns = [{"vip": {}}]
    assert "announce {" not in evidence._config(lab, "be2")["swanctl.conf"]

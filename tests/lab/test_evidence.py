"""A run keeps what an engineer looks at afterwards: the lab wire as one pcap (every capture
point merged), each node's charon log and configuration, the lab's PSK nowhere in them."""

import subprocess
from pathlib import Path

from harness import lab, measure, wire
from harness.topology import NODES


def packets(pcap: Path, bpf: str) -> int:
    listed = subprocess.run(["tcpdump", "-nn", "-r", str(pcap), bpf], capture_output=True, text=True, check=True)
    return len(listed.stdout.splitlines())


def test_a_run_keeps_its_wire_logs_and_configuration(fast_lab: lab.Lab, tmp_path: Path) -> None:
    outcome = measure.run(fast_lab, "graceful", keep_evidence=True)
    kept = outcome.evidence
    assert kept is not None
    written = kept.write(tmp_path, "01-fast-graceful")
    pcap = tmp_path / "captures" / "01-fast-graceful.pcap"
    # the same wire the run counted: every packet, ESP of the old SA and of the new one
    assert packets(pcap, "ip") == outcome.wire_packets
    assert packets(pcap, wire.ESP) == outcome.esp_packets > 0
    assert set(kept.logs) == set(NODES) == set(kept.configs)
    assert "IKE_SA vip[" in kept.logs["fe"] and "deleting IKE_SA" in kept.logs["be1"]  # the graceful move
    assert "dpd_delay" in kept.configs["fe"]["swanctl.conf"]
    assert all(fast_lab.psk.encode() not in path.read_bytes() for path in written)

"""A run keeps what an engineer looks at afterwards: the lab wire as one pcap (every capture
point merged), each node's charon log and configuration, the lab's PSK nowhere in them, and the
keys that let tshark decrypt the ESP of the SA before the failover and of the one after."""

import os
import subprocess
from pathlib import Path

from harness import charon, keylog, lab, measure, wire
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


def decrypted_logins(pcap: Path, keys: Path) -> dict[str, int]:
    """POP3 PASS commands tshark finds in the capture, per ESP SPI, with the run's tables."""
    listed = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", 'esp && pop.request.command == "PASS"', "-T", "fields", "-e", "esp.spi"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "WIRESHARK_CONFIG_DIR": str(keys)},
    )
    found: dict[str, int] = {}
    for spi in listed.stdout.split():
        found[spi.split(",")[0]] = found.get(spi.split(",")[0], 0) + 1
    return found


def test_tshark_decrypts_the_logins_in_the_esp_of_the_old_sa_and_the_new(fast_lab: lab.Lab, tmp_path: Path) -> None:
    old = {sa.spis for sa in charon.sas(fast_lab.fe) if sa.remote_host == fast_lab.topology.vip}
    outcome = measure.run(fast_lab, "graceful", keep_evidence=True)
    assert outcome.evidence is not None
    outcome.evidence.write(tmp_path, "01-fast-graceful")
    pcap, keys = tmp_path / "captures" / "01-fast-graceful.pcap", tmp_path / "keys" / "01-fast-graceful"
    assert decrypted_logins(pcap, tmp_path) == {}  # without the keys: nothing
    logins = decrypted_logins(pcap, keys)
    fe_out = {key.spi for key in keylog.read([outcome.evidence.logs["fe"]])[0] if key.src == fe_address(fast_lab)}
    assert len(logins) == 2 and {spi.removeprefix("0x") for spi in logins} <= fe_out, (logins, fe_out)
    new = {sa.spis for sa in charon.sas(fast_lab.fe) if sa.remote_host == fast_lab.topology.vip}
    assert old and new and not old & new  # two IKE SAs, each with its CHILD_SA: the old one's logins and the new one's
    ike_table = (keys / "ikev2_decryption_table").read_text()
    assert all(f"{spi_i},{spi_r}," in ike_table for spi_i, spi_r in new)


def fe_address(running: lab.Lab) -> str:
    return running.topology.address("fe")

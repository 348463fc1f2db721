"""Real labs: SAs, graceful move and crash measured against the timer model, the wire, teardown."""

import json
import os
import signal
import stat
import subprocess
import sys

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from harness import guard, lab, measure, registry, strongswan, timers, wire
from harness.errors import LabError

from .conftest import remains

CLI = [sys.executable, "-m", "harness.cli"]


def installed_children(sas: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [
        child
        for entry in sas
        for sa in entry.values()
        if sa["state"] == "ESTABLISHED"
        for child in sa.get("child-sas", {}).values()
        if child["state"] == "INSTALLED"
    ]


def test_fe_has_a_child_sa_to_the_vip_owner_only(fast_lab: lab.Lab) -> None:
    vip = fast_lab.topology.vip
    fe_sas = strongswan.list_sas(fast_lab.fe)
    assert [sa["remote-host"] for entry in fe_sas for sa in entry.values()] == [vip]
    assert [c["remote-ts"] for c in installed_children(fe_sas)] == [[f"{vip}/32"]]
    assert len(installed_children(strongswan.list_sas(fast_lab.nodes["be1"]))) == 1
    assert strongswan.list_sas(fast_lab.nodes["be2"]) == []
    assert fast_lab.vip_owner() == "be1"
    assert fast_lab.strongswan_version


def test_secrets_and_sockets_are_root_only_and_the_psk_is_fresh(fast_lab: lab.Lab) -> None:
    assert stat.S_IMODE(os.stat(fast_lab.directory).st_mode) == 0o700
    conf = fast_lab.directory / "fe" / "strongswan.conf"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    assert fast_lab.psk not in conf.read_text()
    with lab.running(timers.profile("fast")) as other:
        assert other.psk != fast_lab.psk
        assert other.topology.subnet != fast_lab.topology.subnet
        assert installed_children(strongswan.list_sas(other.fe))


def test_graceful_move_with_fast_recovers_on_be2_within_the_prediction(fast_lab: lab.Lab) -> None:
    outcome = measure.run(fast_lab, "graceful")
    assert (outcome.old_owner, outcome.new_owner) == ("be1", "be2")
    assert outcome.outage_s is not None and outcome.outage_s < 2.0
    for service, outage in outcome.outages.items():
        bounds = outcome.predicted_for(outage)
        assert outage.seconds in bounds, f"{service}: {outage.seconds:.3f} s outside {bounds}"
    assert outcome.plaintext_packets == 0
    assert outcome.capture_dropped == 0 and outcome.wire_packets > 0
    # fe got the DELETE, re-initiated at once into the blocked old owner and reached the new one
    # with its first retransmission.
    after = [e for e in outcome.events if e.t >= outcome.t_fault_mono]
    down = next(e for e in after if e.kind == "ike" and not e.up)
    up = next(e for e in after if e.kind == "child" and e.up)
    first_retransmit = timers.retransmit_timeouts(fast_lab.profile, jitter=True)[0]
    assert first_retransmit - 0.01 <= up.t - down.t <= first_retransmit + timers.SETUP_ALLOWANCE_S
    assert fast_lab.vip_owner() == "be2"


def test_crash_with_fast_recovers_on_be2_within_the_prediction(fast_lab: lab.Lab) -> None:
    outcome = measure.run(fast_lab, "crash")
    profile = fast_lab.profile
    assert (outcome.old_owner, outcome.new_owner) == ("be1", "be2")
    for service, outage in outcome.outages.items():
        bounds = outcome.predicted_for(outage)
        assert outage.seconds in bounds, f"{service}: {outage.seconds:.3f} s outside {bounds}"
    assert outcome.plaintext_packets == 0
    assert outcome.capture_dropped == 0
    # fe learnt it only through DPD: its IKE SA went down no earlier than DPD + retransmissions.
    down = next(e for e in outcome.events if e.kind == "ike" and not e.up and e.t >= outcome.t_fault_mono)
    assert down.t - outcome.t_fault_mono >= profile.dpd_delay - 1 + timers.give_up_after(profile) - 0.05
    # The undo restarted be1 as a healthy standby.
    assert fast_lab.charons["be1"].alive()
    assert strongswan.version(fast_lab.nodes["be1"])


def test_the_capture_counts_traffic_in_clear(fast_lab: lab.Lab) -> None:
    """The plaintext counter can fail: POP3 to be2's own address is outside the tunnel policy."""
    capture = wire.Capture(fast_lab.nodes["sw"], fast_lab.backend.wire_interface)
    try:
        login = "USER probe\r\nPASS clear-password\r\nQUIT\r\n"
        fast_lab.fe.run(
            [
                sys.executable,
                "-c",
                "import socket,sys; s=socket.create_connection((sys.argv[1],110),2);"
                "s.sendall(sys.argv[2].encode()); s.recv(100)",
                fast_lab.topology.address("be2"),
                login,
            ]
        )
    finally:
        capture.stop()
    assert capture.count(wire.plaintext_filter(fast_lab.topology)) >= 3
    assert capture.count(f"tcp port 110 and host {fast_lab.topology.address('be2')}") >= 3


def test_a_killed_charon_lets_nothing_out_in_clear(fast_lab: lab.Lab) -> None:
    """Fail closed: with fe's charon dead (its TUN device and routes gone), a login to the VIP
    is stopped by the guard before it reaches the wire."""
    capture = wire.Capture(fast_lab.nodes["sw"], fast_lab.backend.wire_interface)
    try:
        fast_lab.charons["fe"].kill()
        fast_lab.charons["fe"].wait(5)
        attempt = fast_lab.fe.run(
            [
                sys.executable,
                "-c",
                "import socket,sys; socket.create_connection((sys.argv[1],110),1)",
                fast_lab.topology.vip,
            ],
            check=False,
        )
    finally:
        capture.stop()
    assert attempt.returncode != 0
    assert guard.dropped(fast_lab.fe) >= 1
    assert capture.count(wire.plaintext_filter(fast_lab.topology)) == 0


def test_teardown_leaves_nothing_also_after_an_exception() -> None:
    with pytest.raises(LabError, match="boom"), lab.running(timers.profile("fast")) as running:
        qualified = running.topology.qualified
        pids = [p.pid for p in [*running.charons.values(), *running.services.values()]]
        assert remains(qualified, pids)  # the check can see a lab
        raise LabError("boom")
    assert remains(qualified, pids) == []


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def lab_name(up: subprocess.CompletedProcess[str]) -> str:
    assert up.returncode == 0, up.stderr
    return up.stdout.split("lab ")[1].split()[0]


def test_cli_up_status_down_and_clean() -> None:
    name = lab_name(run_cli("up", "--profile", "fast"))
    left_behind = ""
    try:
        status = json.loads(run_cli("status", "--json").stdout)
        entry = next(e for e in status if e["name"] == name)
        assert entry["owner"] is None
        assert entry["nodes"]["fe"]["sas"][0]["state"] == "ESTABLISHED"
        assert entry["nodes"]["be1"]["vip"] is True and entry["nodes"]["be2"]["vip"] is False
        assert run_cli("down", name).returncode == 0
        assert remains(f"flab-{name}", []) == []
        left_behind = lab_name(run_cli("up"))  # a lab left behind ...
        with lab.running(timers.profile("fast")) as in_use:
            cleaned = run_cli("clean")  # ... is removed by clean; a lab in use is not
            assert cleaned.returncode == 0
            removed, _, skipped = cleaned.stdout.partition("left ")
            assert f"flab-{left_behind}" in removed and in_use.topology.qualified in skipped
            assert remains(f"flab-{left_behind}", []) == []
            assert installed_children(strongswan.list_sas(in_use.fe))
    finally:
        for leftover in (name, left_behind):
            if leftover:
                registry.remove(lab.backend("netns"), f"flab-{leftover}")


def test_ctrl_c_during_a_run_tears_everything_down() -> None:
    process = subprocess.Popen(
        [*CLI, "run", "--fault", "crash", "--profile", "fast"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "predicted outage" in line, line
    name = line.split("on lab ")[1].split()[0]
    # Interrupt in the middle of the measurement: once the capture shows traffic flowing.
    pcap = registry.directory(f"flab-{name}") / "sw" / "wire.pcap"
    for attempt in Retrying(wait=wait_fixed(0.01), stop=stop_after_delay(20), reraise=True):
        with attempt:
            assert pcap.exists() and pcap.stat().st_size > 10_000
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert remains(f"flab-{name}", []) == []

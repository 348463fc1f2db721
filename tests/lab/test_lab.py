"""Real labs: SAs, secrets, the wire capture, the fail-closed guard, teardown and the CLI."""

import json
import os
import re
import signal
import stat
import subprocess
import sys

import pytest

from harness import charon, guard, lab, policy, registry, sa, timers, wire
from harness.backends import backend
from harness.errors import LabError
from harness.node import Node
from harness.sa import ChildSa

from .conftest import alive, remains

CLI = [sys.executable, "-m", "harness.cli"]


def installed_children(node: Node) -> list[ChildSa]:
    return sa.installed_children(charon.sas(node))


def test_all_traffic_sas_fe_to_the_vip_owner_and_everyone_to_dc(fast_lab: lab.Lab) -> None:
    vip, dc = fast_lab.topology.vip, fast_lab.topology.address("dc")
    assert sorted(ike.remote_host for ike in charon.sas(fast_lab.fe)) == sorted([vip, dc])
    assert sorted(c.remote_ts[0] for c in installed_children(fast_lab.fe)) == sorted([f"{vip}/32", f"{dc}/32"])
    be1 = [c.remote_ts[0] for c in installed_children(fast_lab.nodes["be1"])]
    be2 = [c.remote_ts[0] for c in installed_children(fast_lab.nodes["be2"])]
    assert sorted(be1) == sorted([f"{fast_lab.topology.address('fe')}/32", f"{dc}/32"])
    assert be2 == [f"{dc}/32"]  # the standby has no SA with fe
    assert len(installed_children(fast_lab.nodes["dc"])) == 3
    assert fast_lab.vip_owner() == "be1"
    assert fast_lab.strongswan_version


def test_secrets_and_sockets_are_root_only_and_the_psk_is_fresh(fast_lab: lab.Lab, backend_name: str) -> None:
    assert stat.S_IMODE(os.stat(fast_lab.directory).st_mode) == 0o700
    for node in (fast_lab.nodes[name] for name in ("fe", "be1", "be2")):
        assert node.run(["stat", "-c", "%a", str(node.workdir)]).stdout.strip() == "700"
        assert node.run(["stat", "-c", "%a", str(node.workdir / "strongswan.conf")]).stdout.strip() == "600"
        assert node.run(["grep", "-rlF", fast_lab.psk, str(node.workdir)], check=False).stdout == ""  # never on disk
    with lab.running(timers.profile("fast"), backend_name) as other:
        assert other.psk != fast_lab.psk
        assert other.topology.subnet != fast_lab.topology.subnet
        assert installed_children(other.fe)


def test_the_capture_sees_protected_traffic_when_it_is_in_clear(backend_name: str) -> None:
    """The counters can fail: without IPsec, a POP3 login to the VIP is what all-traffic would
    protect, and its password can be read off the wire."""
    with lab.running(timers.profile("fast"), backend_name, policy_name="none") as clear_lab:
        capture = wire.Capture(clear_lab.nodes["sw"], clear_lab.backend.wire_interface(clear_lab.topology))
        try:
            login = "USER probe\r\nPASS probe-password\r\nQUIT\r\n"
            clear_lab.fe.run(
                [
                    "python3",
                    "-c",
                    "import socket,sys; s=socket.create_connection((sys.argv[1],110),2);"
                    "s.sendall(sys.argv[2].encode()); s.recv(100)",
                    clear_lab.topology.vip,
                    login,
                ]
            )
        finally:
            capture.stop()
        everything = policy.policy("all-traffic")
        assert capture.count(wire.protected_filter(everything, clear_lab.topology)) >= 3
        assert capture.credentials()["pop3 PASS"] >= 1
        assert wire.clear_by_port(capture.packets(), clear_lab.topology)["tcp/110"] >= 3


LOGIN_TO_THE_VIP = "import socket,sys; socket.create_connection((sys.argv[1],110),1)"


def test_a_killed_charon_lets_nothing_out_in_clear(fast_lab: lab.Lab) -> None:
    """Fail closed. libipsec: with fe's charon dead (its TUN device and routes gone), a login to
    the VIP is stopped by the guard before it reaches the wire. Kernel: the kernel keeps the SAs
    charon installed, so the login still goes through them, encrypted; once they are gone too
    (flushed, as when they expire) the kernel's policies hold the login back (an acquire that no
    charon answers). Either way nothing protected crosses the wire in clear."""
    fe = fast_lab.fe
    capture = wire.Capture(fast_lab.nodes["sw"], fast_lab.backend.wire_interface(fast_lab.topology))
    try:
        fast_lab.charons["fe"].kill()
        fast_lab.charons["fe"].wait(5)
        attempt = fe.run(["python3", "-c", LOGIN_TO_THE_VIP, fast_lab.topology.vip], check=False)
        if fast_lab.datapath == "kernel":
            assert attempt.returncode == 0  # on the SAs the dead charon left in the kernel
            fe.run(["ip", "xfrm", "state", "flush"])
            attempt = fe.run(["python3", "-c", LOGIN_TO_THE_VIP, fast_lab.topology.vip], check=False)
    finally:
        capture.stop()
    assert attempt.returncode != 0
    if fast_lab.datapath == "libipsec":
        assert guard.dropped(fe) >= 1
    assert capture.count(wire.protected_filter(fast_lab.policy, fast_lab.topology)) == 0


def test_teardown_leaves_nothing_also_after_an_exception(backend_name: str) -> None:
    with pytest.raises(LabError, match="boom"), lab.running(timers.profile("fast"), backend_name) as running:
        qualified = running.topology.qualified
        pids = [p.pid for p in [*running.charons.values(), *running.services.values()]]
        assert remains(backend_name, qualified)  # the check can see a lab
        raise LabError("boom")
    assert remains(backend_name, qualified) == []
    if backend_name == "netns":  # PIDs of this host
        assert alive(pids) == []


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def lab_name(up: subprocess.CompletedProcess[str]) -> str:
    assert up.returncode == 0, up.stderr
    return up.stdout.split("lab ")[1].split()[0]


def test_cli_up_status_down_and_clean(backend_name: str) -> None:
    name = lab_name(run_cli("up", "--profile", "fast", "--backend", backend_name))
    left_behind = ""
    try:
        status = json.loads(run_cli("status", "--json").stdout)
        entry = next(e for e in status if e["name"] == name)
        assert entry["owner"] is None and entry["backend"] == backend_name
        assert entry["nodes"]["fe"]["sas"][0]["state"] == "ESTABLISHED"
        assert entry["nodes"]["be1"]["vip"] is True and entry["nodes"]["be2"]["vip"] is False
        inside = run_cli("exec", name, "fe", "--", "swanctl", "--list-sas")  # the node's own environment
        assert inside.returncode == 0 and "ESTABLISHED" in inside.stdout, inside.stdout + inside.stderr
        assert run_cli("exec", name, "be2", "--", "sh", "-c", "echo on-be2; exit 3").returncode == 3
        assert run_cli("down", name).returncode == 0
        assert remains(backend_name, f"flab-{name}") == []
        left_behind = lab_name(run_cli("up", "--backend", backend_name))  # a lab left behind ...
        with lab.running(timers.profile("fast"), backend_name) as in_use:
            cleaned = run_cli("clean")  # ... is removed by clean; a lab in use is not
            assert cleaned.returncode == 0
            removed, _, skipped = cleaned.stdout.partition("left ")
            assert f"flab-{left_behind}" in removed and in_use.topology.qualified in skipped
            assert remains(backend_name, f"flab-{left_behind}") == []
            assert installed_children(in_use.fe)
    finally:
        for leftover in (name, left_behind):
            if leftover:
                registry.remove(backend(backend_name), f"flab-{leftover}")


def test_ctrl_c_during_a_run_tears_everything_down(backend_name: str) -> None:
    process = subprocess.Popen(
        [*CLI, "run", "--fault", "crash", "--profile", "fast", "--backend", backend_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"on lab (\w+)", line)
    assert match, line
    # Interrupt in the middle of the measurement: once the fault struck and fe is detecting it.
    progress = process.stdout.readline()
    assert "fault: crash of be1" in progress, progress
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert remains(backend_name, f"flab-{match.group(1)}") == []

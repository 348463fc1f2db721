"""Test hosts (`failover-lab hosts up/down`) and the harness's SSH side (harness.ssh_hosts): four
User-mode Linux VMs reachable only over SSH, driven through the node agent on an SSH channel with
nothing but their inventory. Booted once for the module, removed at its end with nothing left."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest

from harness import disrupt, inventory, lab, preflight, registry, ssh_hosts, testhosts, timers
from harness.agent import AgentNode
from harness.errors import CommandError, CommandTimeout, UsageError
from harness.strongswan import CHARON
from harness.topology import NODES

from . import test_backends
from .conftest import netns_list

LAB_BACKENDS = ("uml",)
"""The test hosts are UML VMs: they run where the uml backend does."""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def hosts(backend_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[inventory.Inventory]:
    try:
        testhosts.check()
    except UsageError as error:
        if os.environ.get("FAILOVER_LAB_REQUIRE_LAB") == "1":
            pytest.fail(f"test hosts are required here but cannot run: {error}")
        pytest.skip(str(error))
    path = tmp_path_factory.mktemp("hosts") / "hosts.yaml"
    started = cli("hosts", "up", "--out", str(path))
    try:
        assert started.returncode == 0, started.stderr
        assert f"inventory written to {path}" in started.stdout
        yield inventory.load(path)
    finally:
        groups = _vm_groups()
        stopped = cli("hosts", "down")
        assert stopped.returncode == 0, stopped.stderr
    assert testhosts.NAMESPACE not in netns_list().split()
    assert testhosts.VETH not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert not testhosts.HOSTS_DIR.exists()
    assert [group for group in groups if _group_alive(group)] == []


def _vm_groups() -> list[int]:
    groups = []
    for pid_file in (testhosts.HOSTS_DIR / "uml").glob("*/pid"):
        groups.append(int(pid_file.read_text().split()[0]))
    return groups


def _group_alive(group: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for init to reap them do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


@pytest.fixture(scope="module")
def connections(hosts: inventory.Inventory) -> Iterator[dict[str, ssh_hosts.Connection]]:
    opened = {role: ssh_hosts.connect(host, hosts) for role, host in hosts.hosts.items()}
    yield opened
    for connection in opened.values():
        connection.close()


@pytest.fixture(scope="module")
def nodes(connections: dict[str, ssh_hosts.Connection]) -> dict[str, AgentNode]:
    found = {}
    for role, connection in connections.items():
        directory = ssh_hosts.REMOTE_ROOT / "test"
        agents = ssh_hosts.install_agents(connection, directory)
        found[role] = ssh_hosts.agent_node(connection, role, directory / role, agents, directory / "charon.vici")
    return found


def test_every_host_is_what_its_inventory_says_and_reachable_over_ssh_only(
    hosts: inventory.Inventory, nodes: dict[str, AgentNode]
) -> None:
    assert list(hosts.hosts) == list(NODES)
    for role, node in nodes.items():
        host = hosts.hosts[role]
        assert node.run(["hostname"]).stdout.strip() == role
        addresses = node.run(["ip", "-o", "-4", "addr", "show", "dev", host.lab_interface]).stdout
        assert str(host.lab_address) in addresses
        assert (str(hosts.vip) in addresses) == (role == "be1")
        assert node.run(["uname", "-r"]).stdout.strip() != os.uname().release  # a kernel of its own
    # this machine reaches the management addresses only: no route of the hosts' lab subnet here
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    assert all(testhosts.VETH not in line for line in routes.splitlines() if line.startswith(str(hosts.subnet)))
    assert str(hosts.subnet.network_address) not in routes


def test_the_agent_over_ssh_keeps_the_node_contract(nodes: dict[str, AgentNode]) -> None:
    fe = nodes["fe"]
    failed = fe.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
    with pytest.raises(CommandError, match="exited 3"):
        fe.run(["sh", "-c", "exit 3"])
    with pytest.raises(CommandTimeout):
        fe.run(["sleep", "5"], timeout=0.5)
    path = fe.workdir / "secret"
    fe.run(["mkdir", "-p", str(fe.workdir)])
    fe.put(PurePosixPath(path), "psk\n")
    assert fe.run(["stat", "-c", "%a %s", str(path)]).stdout.split() == ["600", "4"]
    process = fe.spawn(["sh", "-c", "echo started; exec sleep 60"], capture=True)
    assert next(process.lines()).strip() == "started"
    process.signal(signal.SIGTERM)
    assert process.wait(10) != 0


def test_the_harness_files_on_a_host_are_its_owner_s_alone(
    connections: dict[str, ssh_hosts.Connection], nodes: dict[str, AgentNode]
) -> None:
    be1 = nodes["be1"]
    listing = be1.run(
        ["stat", "-c", "%a %n", str(ssh_hosts.REMOTE_ROOT), str(ssh_hosts.REMOTE_ROOT / "test" / "agents")]
    )
    assert [line.split()[0] for line in listing.stdout.splitlines()] == ["700", "700"]
    modes = be1.run(["sh", "-c", f"stat -c %a {ssh_hosts.REMOTE_ROOT}/test/agents/*.py | sort -u"]).stdout.split()
    assert modes == ["600"]


def test_an_unknown_or_changed_host_key_is_refused_in_one_line(hosts: inventory.Inventory, tmp_path: Path) -> None:
    fe = hosts.hosts["fe"]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(
        UsageError, match=r"^fe \(root@198\.19\.253\.10:22\): the host is not in .*--insecure-host-keys$"
    ):
        ssh_hosts.connect(fe, _with_known_hosts(hosts, empty))
    other = (testhosts.HOSTS_DIR / "be1" / "ssh_host_ed25519_key.pub").read_text().split()
    changed = tmp_path / "changed"
    changed.write_text(f"{fe.host} {other[0]} {other[1]}\n")
    with pytest.raises(UsageError, match=r"its host key \(ssh-ed25519 .*\) is not the one in .*changed"):
        ssh_hosts.connect(fe, _with_known_hosts(hosts, changed))
    accepted = ssh_hosts.connect(fe, _with_known_hosts(hosts, empty), insecure_host_keys=True)
    accepted.close()


def test_hosts_up_twice_is_refused(hosts: inventory.Inventory) -> None:
    again = cli("hosts", "up", "--out", "/dev/null")
    assert again.returncode == 2
    assert again.stderr.strip().startswith("failover-lab: error: test hosts are already up")


def _with_known_hosts(hosts: inventory.Inventory, path: Path) -> inventory.Inventory:
    return dataclasses.replace(hosts, known_hosts=path)


def test_preflight_finds_the_test_hosts_ready_for_the_kernel_datapath(hosts: inventory.Inventory) -> None:
    found = preflight.check(hosts)
    assert found.problems == []
    assert (found.datapath, found.vip_owner) == ("kernel", "be1")
    for verdict in found.verdicts.values():  # UML kernels: no nftables families, iptables-legacy instead
        assert (verdict.firewall, verdict.facts["strongswan"]) == ("iptables-legacy", charon_version())


def charon_version() -> str:
    said = subprocess.run(["swanctl", "-h"], capture_output=True, text=True, check=False)
    return (said.stdout + said.stderr).split()[1]


def test_preflight_says_each_host_s_problem_in_one_line_and_exits_2(
    hosts: inventory.Inventory, nodes: dict[str, AgentNode], tmp_path: Path
) -> None:
    """A wrong interface for be2, an address fe does not have, and the VIP on no back-end."""
    text = hosts.path.read_text()
    be2, fe = hosts.hosts["be2"], hosts.hosts["fe"]
    text = text.replace(
        f"lab_interface: eth0, lab_address: {be2.lab_address}", f"lab_interface: eth9, lab_address: {be2.lab_address}"
    )
    text = text.replace(f"lab_address: {fe.lab_address}", "lab_address: 198.18.253.99/24")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(text)
    vip = str(hosts.vip)
    nodes["be1"].run(["ip", "addr", "del", vip, "dev", "eth0"])
    try:
        checked = cli("preflight", "--inventory", str(wrong))
    finally:
        nodes["be1"].run(["ip", "addr", "add", vip, "dev", "eth0"])
    assert checked.returncode == 2, checked.stderr
    assert checked.stderr.splitlines() == [
        "failover-lab: error: fe (198.19.253.10): 198.18.253.99 is not on eth0: "
        "add it (ip addr add 198.18.253.99/24 dev eth0) or fix lab_address",
        "failover-lab: error: be2 (198.19.253.12): no interface eth9: fix lab_interface in the inventory",
        "failover-lab: error: no back-end holds the VIP (198.18.253.100 on an interface): "
        "ip addr add 198.18.253.100/24 dev <its lab interface> on be1",
    ]
    assert "not reached" not in checked.stdout


def host_state(node: AgentNode) -> dict[str, str]:
    """What a lab may change on a host and must leave as it found it."""
    commands = {
        "xfrm states": "ip xfrm state",
        "xfrm policies": "ip xfrm policy",
        "firewall": "iptables-legacy -S",
        "addresses": "ip -o -4 addr",
        "acquire lifetime": "sysctl -n net.core.xfrm_acq_expires",
        "harness folders": f"ls -A {ssh_hosts.REMOTE_ROOT}",
        "lab processes": f"ps -e -o args= | grep -e {CHARON} -e {ssh_hosts.REMOTE_ROOT}/flab- | grep -v grep",
    }
    return {what: node.run(["sh", "-c", command], check=False).stdout for what, command in commands.items()}


def test_a_lab_comes_up_on_the_hosts_over_ssh_and_goes_leaving_them_as_they_were(
    hosts: inventory.Inventory, nodes: dict[str, AgentNode]
) -> None:
    before = {role: host_state(node) for role, node in nodes.items()}
    up = cli("up", "--backend", "ssh", "--inventory", str(hosts.path), "--profile", "fast")
    assert up.returncode == 0, up.stderr
    name = re.search(r"lab (\w+) is up \(backend ssh, policy all-traffic, profile fast, strongSwan ", up.stdout)
    assert name is not None, up.stdout
    try:
        again = cli("up", "--backend", "ssh", "--inventory", str(hosts.path))
        assert again.returncode == 2
        assert again.stderr.strip() == (
            f"failover-lab: error: lab {name.group(1)} runs on these hosts already (inventory {hosts.path}): "
            f"remove it first (failover-lab down {name.group(1)})"
        )
        [status] = [entry for entry in json.loads(cli("status", "--json").stdout) if entry["name"] == name.group(1)]
        assert status["backend"] == "ssh" and status["vip"] == str(hosts.vip.ip)
        fe = status["nodes"]["fe"]
        assert fe["address"] == str(hosts.hosts["fe"].lab_address.ip) and fe["charon"] == "running"
        assert sorted(sa["remote"] for sa in fe["sas"] if sa["state"] == "ESTABLISHED") == sorted(
            [str(hosts.vip.ip), str(hosts.hosts["dc"].lab_address.ip)]
        )
        assert [role for role in ("be1", "be2") if status["nodes"][role]["vip"]] == ["be1"]
        assert {k["mode"] for k in fe["kernel_sas"]} == {"transport"} and len(fe["kernel_sas"]) == 4
        during = host_state(nodes["fe"])
        assert during["lab processes"].count(CHARON) == 1
        assert "FLAB_GUARD" in during["firewall"]
    finally:
        down = cli("down", name.group(1))
    assert down.returncode == 0, down.stderr
    assert {role: host_state(node) for role, node in nodes.items()} == before


def test_clean_with_the_inventory_removes_a_lab_the_registry_here_forgot(
    hosts: inventory.Inventory, nodes: dict[str, AgentNode]
) -> None:
    """A lab left on the hosts (its registry entry lost, as after running it from another
    machine) is found on them and removed."""
    before = {role: host_state(node) for role, node in nodes.items()}
    up = cli("up", "--backend", "ssh", "--inventory", str(hosts.path))
    assert up.returncode == 0, up.stderr
    name = re.search(r"lab (\w+) is up", up.stdout)
    assert name is not None
    shutil.rmtree(registry.directory(f"flab-{name.group(1)}"))
    cleaned = cli("clean", "--inventory", str(hosts.path))
    assert cleaned.returncode == 0, cleaned.stderr
    assert cleaned.stdout.strip() == f"removed flab-{name.group(1)}"
    assert {role: host_state(node) for role, node in nodes.items()} == before


def test_graceful_and_crash_over_ssh_recover_within_the_prediction_with_nothing_in_clear(
    hosts: inventory.Inventory, nodes: dict[str, AgentNode], tmp_path: Path
) -> None:
    """The same runs as in the harness's own labs, on hosts it reaches only over SSH: the kernel
    datapath in transport mode, raw ESP on every host's wire, the outage inside the band the
    timers predict, nothing protected in clear, and every host left as it was."""
    before = {role: host_state(node) for role, node in nodes.items()}
    out = tmp_path / "runs.json"
    args = ["run", "--backend", "ssh", "--inventory", str(hosts.path), "--fault", "graceful,crash"]
    ran = cli(*args, "--profile", "fast", "--json", str(out))
    assert ran.returncode == 0, ran.stderr
    results = json.loads(out.read_text())
    assert [r["fault"] for r in results] == ["graceful", "crash"]
    for result in results:
        assert (result["backend"], result["datapath"], result["mode"]) == ("ssh", "kernel", "transport")
        assert result["recovered"] and result["within_prediction"], (result["outage_s"], result["predicted"])
        assert (result["old_owner"], result["new_owner"]) == ("be1", "be2")
        assert result["plaintext_packets"] == 0 and result["encapsulation"] == "raw"
        assert result["esp_packets"] > 0 and result["capture_dropped"] == 0
    assert results[0]["phases"]["detected_by"] == "DELETE" and results[1]["phases"]["detected_by"] == "DPD"
    assert {role: host_state(node) for role, node in nodes.items()} == before  # the VIP back on be1 too


DEADMAN_S = 5
"""The dead-man timer of the test's inventory (the inventory's smallest)."""
HEAL_ALLOWANCE_S = 20.0
"""What a host may take, after its dead-man timer ran out, to run its heal file (some thirty
commands, each a process start in a VM) and to be seen healed by the test's own connection."""


def test_a_harness_killed_mid_fault_leaves_every_host_healed_within_its_dead_man_timer(
    hosts: inventory.Inventory, nodes: dict[str, AgentNode], tmp_path: Path
) -> None:
    """SIGKILL of the harness while be1 is cut off (a crash with Windows 2003's two-minute
    recovery): within the dead-man timer every host removes the fault table, the VIP is back on
    be1 alone, and nothing of the lab is left; `clean` then forgets the lab here."""
    before = {role: host_state(node) for role, node in nodes.items()}
    short = tmp_path / "hosts.yaml"
    short.write_text(hosts.path.read_text() + f"deadman_s: {DEADMAN_S}\n")
    args = ["run", "--backend", "ssh", "--inventory", str(short), "--fault", "crash", "--profile", "win2003-nlbsflags"]
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        cut = _until(lambda: disrupt.CHAIN_IN in host_state(nodes["be1"])["firewall"], 120, harness)
        assert cut, "be1 was never cut off"
        harness.kill()
        killed_at = time.monotonic()
        harness.wait(10)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(10)
    healed = _until(lambda: {role: host_state(node) for role, node in nodes.items()} == before,
                    DEADMAN_S + HEAL_ALLOWANCE_S)  # fmt: skip
    assert healed, {role: host_state(node) for role, node in nodes.items()}
    assert time.monotonic() - killed_at >= DEADMAN_S - 1  # healed by the timer, not by anything else
    cleaned = cli("clean", "--inventory", str(short))
    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed flab-" in cleaned.stdout


def _until(condition: Callable[[], bool], deadline_s: float, alive: subprocess.Popen[str] | None = None) -> bool:
    """Poll ``condition`` until it holds (False after ``deadline_s``, or once ``alive`` exited)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return True
        if alive is not None and alive.poll() is not None:
            return False
        time.sleep(0.2)
    return condition()


KEEPALIVED = {
    "conf": "/run/flabtest-keepalived.conf",
    "pid": "/run/flabtest-keepalived.pid",
    "vrrp": "/run/flabtest-vrrp.pid",
}
"""A user's cluster as the test builds it on the back-ends: keepalived (VRRP on the lab wire,
nopreempt; be1 at the higher priority, so that after a crash of be2 and its return be1 keeps the
VIP it took), outside anything of the harness's."""


def _keepalived_conf(hosts: inventory.Inventory, role: str) -> str:
    interface = hosts.hosts[role].lab_interface
    return (
        f"global_defs {{\n  router_id flabtest_{role}\n}}\n"
        "vrrp_instance flabtest {\n  state BACKUP\n  nopreempt\n"
        f"  interface {interface}\n  virtual_router_id 77\n  priority {150 if role == 'be1' else 100}\n"
        "  advert_int 1\n"
        f"  virtual_ipaddress {{\n    {hosts.vip} dev {interface}\n  }}\n}}\n"
    )


def _start_keepalived(node: AgentNode) -> None:
    node.run(["keepalived", "-f", KEEPALIVED["conf"], "-p", KEEPALIVED["pid"], "-r", KEEPALIVED["vrrp"]])


def _stop_keepalived(node: AgentNode) -> None:
    pid = f"{KEEPALIVED['pid']}"
    node.run(["sh", "-c", f"[ -e {pid} ] && kill -TERM $(cat {pid}); while [ -e {pid} ]; do sleep 0.05; done; true"])


def test_the_user_s_cluster_manager_moves_the_vip_in_graceful_and_crash(
    hosts: inventory.Inventory, nodes: dict[str, AgentNode], tmp_path: Path
) -> None:
    """With `cluster:` in the inventory the harness leaves the VIP to the user's cluster (here
    keepalived): graceful runs the cluster's move command on the owner, a crash waits for the
    cluster to fail over by its own timers, and the VIP move is what the cluster measured."""
    before = {role: host_state(node) for role, node in nodes.items()}
    vip = hosts.vip.ip
    owner = f"ip -o -4 addr show dev {hosts.hosts['be1'].lab_interface} to {vip}/32 | grep -q ."
    pid = KEEPALIVED["pid"]
    restart = f"keepalived -f {KEEPALIVED['conf']} -p {pid} -r {KEEPALIVED['vrrp']}"
    move = f"kill -TERM $(cat {pid}); while [ -e {pid} ]; do sleep 0.05; done; {restart}"
    clustered = tmp_path / "hosts.yaml"
    clustered.write_text(
        hosts.path.read_text() + f"cluster:\n  owner: {json.dumps(owner)}\n  move: {json.dumps(move)}\n"
    )
    for role in ("be1", "be2"):
        nodes[role].put(PurePosixPath(KEEPALIVED["conf"]), _keepalived_conf(hosts, role))
    try:
        _start_keepalived(nodes["be1"])  # be1 becomes master alone, then be2 joins as backup
        assert _until(lambda: nodes["be1"].run(["sh", "-c", owner], check=False).returncode == 0, 15)
        _start_keepalived(nodes["be2"])
        out = tmp_path / "runs.json"
        args = ["run", "--backend", "ssh", "--inventory", str(clustered), "--fault", "graceful,crash"]
        ran = cli(*args, "--profile", "fast", "--json", str(out))
        assert ran.returncode == 0, ran.stderr
        graceful, crash = json.loads(out.read_text())
        for result in (graceful, crash):
            assert result["recovered"] and result["within_prediction"], (result["outage_s"], result["predicted"])
            assert result["plaintext_packets"] == 0
        assert (graceful["old_owner"], graceful["new_owner"]) == ("be1", "be2")
        assert (crash["old_owner"], crash["new_owner"]) == ("be2", "be1")
        assert crash["vip_moved_s"] > 1.0  # keepalived's master-down interval, not the harness's cluster delay
    finally:
        for role in ("be1", "be2"):
            _stop_keepalived(nodes[role])
            nodes[role].run(["rm", "-f", KEEPALIVED["conf"]])
        nodes["be1"].run(["ip", "addr", "replace", str(hosts.vip), "dev", hosts.hosts["be1"].lab_interface])
    assert {role: host_state(node) for role, node in nodes.items()} == before


def test_a_scenario_file_and_the_plugin_run_on_the_hosts(
    hosts: inventory.Inventory, nodes: dict[str, AgentNode], pytester: pytest.Pytester
) -> None:
    """A scenario file naming `backend: ssh` and its inventory, run by the pytest plugin with
    --lab-backend ssh --lab-inventory: one item, its lab on the test hosts, its expectations met."""
    before = {role: host_state(node) for role, node in nodes.items()}
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "on-my-hosts.yaml").write_text(
        f"backend: ssh\ninventory: {hosts.path}\nprofiles: [fast]\nfault: {{kind: graceful}}\n"
        "expect: {within_prediction: true, recovered_on: be2, plaintext_packets: 0}\n"
    )
    args = ["--lab-backend", "ssh", "--lab-inventory", str(hosts.path), "scenarios"]
    run = pytester.runpytest_subprocess("-p", "harness.pytest_plugin", *args)
    run.assert_outcomes(passed=1)
    assert {role: host_state(node) for role, node in nodes.items()} == before


@pytest.fixture(scope="module")
def shared_lab(hosts: inventory.Inventory) -> Iterator[lab.Lab]:
    """A lab on the test hosts for the backend contract below (the module's last tests: the
    hosts carry one lab at a time)."""
    with lab.running(timers.profile("fast"), "ssh", inventory=hosts.path) as running:
        yield running


# The backend contract (tests/lab/test_backends.py), the same assertions through ssh.
test_contract_run = test_backends.test_run_reports_exit_code_and_separate_streams
test_contract_failed_command = test_backends.test_a_failed_command_raises_with_node_argv_code_and_stderr
test_contract_put = test_backends.test_put_writes_a_private_file
test_contract_spawn = test_backends.test_spawn_captures_lines_and_signals_the_process_it_started
test_contract_spawn_and_stop = test_backends.test_spawn_without_capture_and_stop
test_contract_vici = test_backends.test_vici_reaches_each_node_s_own_charon
test_contract_agents = test_backends.test_agents_run_on_the_nodes
test_contract_timeout = test_backends.test_a_command_that_overruns_is_killed_and_raises_command_timeout
test_contract_missing_command = test_backends.test_a_missing_command_is_a_command_error
test_contract_vici_failures = test_backends.test_vici_failures_are_charon_errors
test_contract_one_connection = test_backends.test_a_node_runs_many_commands_over_one_connection

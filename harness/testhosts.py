"""Test hosts for the ssh backend: four User-mode Linux VMs on this machine that behave as real
machines reachable only over SSH (`failover-lab hosts up`, `failover-lab hosts down`).

Each VM (fe, be1, be2, dc) has a kernel of its own with ESP (so the ssh backend finds the kernel
datapath), its lab address on eth0 (a bridge in the namespace ``flabhosts``, without any address
of this machine on it) and a management interface on a second bridge in that namespace, which a
veth joins to this machine (198.19.253.254/24, the only way in: sshd on port 22, nothing else).
The VIP starts on be1. `hosts up` writes an inventory (harness.inventory) with the SSH addresses,
a client key made for these hosts and a known_hosts file holding their host keys (generated
here before they boot, so no key is ever accepted blindly). The ssh backend gets nothing else:
it reaches the hosts through the inventory as it would the user's own.

Owns: the namespace, the veth, the VMs, the keys and the inventory file. Not: anything the ssh
backend does on the hosts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from harness.backends import netns, uml
from harness.errors import LabError, UsageError
from harness.topology import FIRST_OWNER, HOST_NUMBERS, NODES

HOSTS_DIR = Path("/var/lib/failover-lab-hosts")
"""Keys, known_hosts, the inventory and each VM's directory (0700)."""
NAMESPACE = "flabhosts"
"""Not ``flab-...``: `failover-lab clean` removes labs, never the hosts a user brought up."""
VETH = "flabhosts0"
"""This machine's end of the management network."""
MGMT = ipaddress.IPv4Network("198.19.253.0/24")
LAB = ipaddress.IPv4Network("198.18.253.0/24")
"""The hosts' lab subnet (private to the namespace's bridge, like every lab's)."""
VIP_NUMBER = 100
INIT = uml.REPO / "lab" / "uml" / "host-init.sh"
SSHD_CONFIG = """\
ListenAddress {address}
HostKey {directory}/ssh_host_ed25519_key
PidFile /run/sshd-flab.pid
AuthorizedKeysFile {directory}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
AllowTcpForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
MaxStartups 64:30:128
MaxSessions 64
Subsystem sftp internal-sftp
"""
BOOT_TIMEOUT_S = uml.BOOT_TIMEOUT_S
SSH_PORT = 22
MEMORY = "192M"
"""Twice a lab node's: a host also runs sshd, an SSH session and an agent relay per link, the
dead-man switch and its own capture; with 96M a run left it 1 MB free and every Python start
read its files from hostfs again (seconds per command, traffic stalled)."""


def management_address(node: str) -> str:
    return str(MGMT[HOST_NUMBERS[node]])


def lab_address(node: str) -> str:
    return f"{LAB[HOST_NUMBERS[node]]}/{LAB.prefixlen}"


def vip() -> str:
    return f"{LAB[VIP_NUMBER]}/{LAB.prefixlen}"


def check() -> None:
    """UsageError naming what to install when test hosts cannot run here."""
    uml.UmlBackend().check()
    if not Path("/usr/sbin/sshd").exists() or shutil.which("ssh-keygen") is None:
        raise UsageError("the test hosts need OpenSSH's sshd and ssh-keygen: apt-get install openssh-server")


def running() -> bool:
    return NAMESPACE in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


def up(inventory: Path) -> Path:
    """Boot the four hosts and write their inventory to ``inventory``; everything is removed
    again if any step fails."""
    check()
    if running():
        raise UsageError(
            f"test hosts are already up (inventory: {HOSTS_DIR / 'hosts.yaml'}): `failover-lab hosts down`"
        )
    _refuse_taken_subnet()
    try:
        HOSTS_DIR.mkdir(mode=0o700)
    except FileExistsError:
        shutil.rmtree(HOSTS_DIR)  # a previous `hosts up` killed half-way: nothing runs (checked above)
        HOSTS_DIR.mkdir(mode=0o700)
    try:
        _keys()
        _network()
        for node in NODES:
            _boot(node)
        for node in NODES:
            _wait(node)
        text = _inventory_text()
        (HOSTS_DIR / "hosts.yaml").write_text(text)
        inventory.write_text(text)
    except BaseException:
        down()
        raise
    return inventory


def down() -> None:
    """Kill the VMs (each its own process group), delete the namespace (taps, bridges and the
    veth go with it) and the hosts' directory. Harmless when nothing is up."""
    for node in NODES:
        pid_file = HOSTS_DIR / "uml" / _umid(node) / "pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            group = int(pid_file.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
    if running():
        netns.destroy_namespaces_named((NAMESPACE,))
    subprocess.run(["ip", "link", "del", VETH], capture_output=True)
    shutil.rmtree(HOSTS_DIR, ignore_errors=True)


def _refuse_taken_subnet() -> None:
    routes = subprocess.run(["ip", "-4", "route", "show", "to", "match", str(MGMT[1])], capture_output=True, text=True)
    for line in routes.stdout.splitlines():
        network = line.split()[0]
        if network != "default" and ipaddress.IPv4Network(network).overlaps(MGMT):
            raise UsageError(
                f"the test hosts' management network {MGMT} is in use here ({line.strip()}): free it first"
            )


def _keys() -> None:
    """A client key for these hosts only, and each host's key made before it boots (known_hosts
    is complete before the first connection)."""
    _keygen(HOSTS_DIR / "id_ed25519", "failover-lab test hosts client")
    known = []
    for node in NODES:
        directory = HOSTS_DIR / node
        directory.mkdir(mode=0o700)
        _keygen(directory / "ssh_host_ed25519_key", f"{node} test host")
        shutil.copyfile(HOSTS_DIR / "id_ed25519.pub", directory / "authorized_keys")
        (directory / "authorized_keys").chmod(0o600)
        public = (directory / "ssh_host_ed25519_key.pub").read_text().split()
        known.append(f"{management_address(node)} {public[0]} {public[1]}\n")
        (directory / "sshd_config").write_text(
            SSHD_CONFIG.format(address=management_address(node), directory=directory)
        )
    (HOSTS_DIR / "known_hosts").write_text("".join(known))


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True, capture_output=True
    )


def _network() -> None:
    netns.ip_batch([f"netns add {NAMESPACE}"])
    lines = [
        "link set lo up",
        "link add br0 type bridge",
        "link set br0 addrgenmode none",
        "link set br0 up",
        "link add mgmt0 type bridge",
        "link set mgmt0 addrgenmode none",
        "link set mgmt0 up",
    ]
    for node in NODES:
        for kind, bridge in (("l", "br0"), ("m", "mgmt0")):
            lines += [f"tuntap add dev {kind}-{node} mode tap", f"link set {kind}-{node} master {bridge} up"]
    netns.ip_batch(lines, NAMESPACE)
    netns.ip_batch([f"link add {VETH} type veth peer name up0 netns {NAMESPACE}"])
    netns.ip_batch(["link set up0 master mgmt0 up"], NAMESPACE)
    netns.ip_batch([f"addr add {MGMT[254]}/{MGMT.prefixlen} dev {VETH}", f"link set {VETH} up"])
    helpers = HOSTS_DIR / "uml"
    uml.install_modprobe(helpers)


def _umid(node: str) -> str:
    return f"{NAMESPACE}-{node}"


def _boot(node: str) -> None:
    uml.boot(
        NAMESPACE,
        _umid(node),
        HOSTS_DIR / "uml",
        INIT,
        HOSTS_DIR / node,
        taps=[
            (f"{kind}-{node}", f"02:00:00:fd:{index:02x}:{HOST_NUMBERS[node]:02x}") for index, kind in enumerate("lm")
        ],
        settings={
            "flab_node": node,
            "flab_dir": str(HOSTS_DIR / node),
            "flab_mgmt": management_address(node),
            "flab_lab": lab_address(node),
            "flab_vip": vip() if node == FIRST_OWNER else "",
        },
        memory=MEMORY,
    )


def _wait(node: str) -> None:
    """Until the host has loaded its IPsec modules and sshd greets on its management address."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    directory = HOSTS_DIR / node
    while time.monotonic() < deadline:
        if (directory / "booted").exists() and _greets(management_address(node)):
            return
        time.sleep(0.05)
    console = directory / "console.log"
    last = console.read_text(errors="replace").strip().splitlines()[-1:] if console.exists() else []
    raise LabError(f"test host {node} did not boot within {BOOT_TIMEOUT_S:g} s: {last[0] if last else 'no output'}")


def _greets(address: str) -> bool:
    try:
        with socket.create_connection((address, SSH_PORT), timeout=1) as connection:
            connection.settimeout(2)
            return connection.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _inventory_text() -> str:
    lines = [
        "# Written by `failover-lab hosts up`: four User-mode Linux VMs on this machine, reachable only",
        "# over SSH on their management addresses (`failover-lab hosts down` removes them).",
        f"vip: {vip()}",
        "ssh:",
        "  user: root",
        f"  key: {HOSTS_DIR / 'id_ed25519'}",
        f"  known_hosts: {HOSTS_DIR / 'known_hosts'}",
        "hosts:",
    ]
    for node in NODES:
        lines.append(
            f"  {node}: {{host: {management_address(node)}, lab_interface: eth0, lab_address: {lab_address(node)}}}"
        )
    return "\n".join(lines) + "\n"

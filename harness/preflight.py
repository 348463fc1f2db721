"""Preflight of an SSH inventory: what every host offers, checked before the harness changes anything.

For each host, over its own SSH connection (harness.ssh_hosts) and with read-only commands: it
answers, the user authenticates, ``sudo -n`` works where the inventory asks for sudo (else the
user is root), strongSwan's charon and the plugins the harness runs are installed (and which
version), UDP 500 and 4500 are free (the harness runs a charon of its own on each host, see
README), which datapath the kernel offers (kernel ESP through XFRM, else strongSwan's libipsec
with a TUN device), tcpdump for the captures, a firewall for the fault table (nftables with the
inet family, else iptables-legacy), python3 for the node agent, the lab interface with the lab
address on it, and that the SSH connection does not run over the lab interface (faults would cut
it). Across hosts: one datapath they all offer, and the VIP held by exactly one back-end (as the
cluster's owner command says, when the inventory names one).

The result is a table of what each host has, and one line per problem naming the host and the fix.

Owns: the probe run on each host and the verdicts. Not: connecting (harness.ssh_hosts), the
inventory's own checks (harness.inventory), printing (harness.cli).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from harness import strongswan
from harness.errors import NodeLost, UsageError
from harness.inventory import Host, Inventory
from harness.ssh_hosts import Connection, connect
from harness.topology import BACKENDS

PYTHON_MIN = (3, 9)
"""The oldest python3 the node agent runs on."""
PROBE = r"""
iface=$1 address=$2 vip=$3 server=$4 client=$5 owner=$6
say() { echo "$1=$2"; }
has() { if eval "$2" >/dev/null 2>&1; then say "$1" yes; else say "$1" no; fi; }
say uid "$(id -u)"
say python "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
has charon "test -x @CHARON@"
say strongswan "$(swanctl -h 2>&1 | sed -n '1s/^strongSwan \([^ ]*\) swanctl.*/\1/p')"
has kernel_netlink "test -e @PLUGINS@/libstrongswan-kernel-netlink.so"
has kernel_libipsec "test -e @PLUGINS@/libstrongswan-kernel-libipsec.so"
has xfrm "ip xfrm state count"
has esp "grep -qw esp4 /proc/modules || test -d /sys/module/esp4 || modprobe -n -q esp4"
has tun "test -c /dev/net/tun"
has ike_port_free "test -z \"$(ss -Hlun '( sport = :500 or sport = :4500 )')\""
has tcpdump "command -v tcpdump"
has nft "echo 'table inet failover_lab { chain c { type filter hook input priority 0; }; }' | nft -c -f -"
has iptables_legacy "iptables-legacy -S OUTPUT"
has interface "ip link show dev \"$iface\""
has address "ip -o -4 addr show dev \"$iface\" | grep -qF \"inet $address/\""
has vip "ip -o -4 addr show | grep -qF \"inet $vip/\""
on_lab="ip -o -4 addr show dev \"$iface\" | grep -qF \"inet $server/\""
has ssh_on_lab "$on_lab || ip -o route get \"$client\" | grep -q \" dev $iface \""
if [ -n "$owner" ]; then has owner "$owner"; fi
""".replace("@CHARON@", strongswan.CHARON).replace("@PLUGINS@", strongswan.PLUGIN_DIR)
"""A POSIX shell script printing ``key=value`` lines; nothing in it changes the host."""


@dataclass
class Verdict:
    """What one host offers and what is wrong with it."""

    host: Host
    facts: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def datapaths(self) -> list[str]:
        """The datapaths this host can run, the kernel's first."""
        found = []
        if self.has("xfrm") and self.has("esp") and self.has("kernel_netlink"):
            found.append("kernel")
        if self.has("kernel_libipsec") and self.has("tun"):
            found.append("libipsec")
        return found

    @property
    def firewall(self) -> str | None:
        return "nft" if self.has("nft") else "iptables-legacy" if self.has("iptables_legacy") else None

    def has(self, key: str) -> bool:
        return self.facts.get(key) == "yes"


@dataclass
class Report:
    """Every host's verdict, the datapath the lab would run and the problems across hosts."""

    inventory: Inventory
    verdicts: dict[str, Verdict]
    datapath: str | None
    vip_owner: str | None
    problems: list[str]
    """Every problem, each one line naming its host (or the inventory) and the fix."""


def parse(output: str) -> dict[str, str]:
    """The probe's ``key=value`` lines."""
    facts = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            facts[key] = value.strip()
    return facts


def judge(verdict: Verdict) -> None:
    """The problems of one host whose probe ran (its facts are in), each with its fix."""
    host, where = verdict.host, f"{verdict.host.role} ({verdict.host.host})"
    say = verdict.problems.append
    if verdict.facts.get("uid") != "0":
        say(
            f"{where}: commands run as uid {verdict.facts.get('uid') or '?'}, not root: "
            "connect as root or set sudo: true"
        )
    version = tuple(int(part) for part in verdict.facts.get("python", "").split(".") if part.isdigit())
    if version < PYTHON_MIN:
        minimum = ".".join(map(str, PYTHON_MIN))
        found = verdict.facts.get("python") or "none"
        say(f"{where}: python3 {minimum} or newer is needed for the node agent (found {found}): install python3")
    if not verdict.has("charon") or not verdict.facts.get("strongswan"):
        say(f"{where}: strongSwan's charon and swanctl are missing: apt-get install {strongswan.PACKAGES}")
    elif not verdict.datapaths:
        say(
            f"{where}: no IPsec datapath: the kernel has no XFRM/ESP (modprobe esp4 xfrm_user) and strongSwan's "
            "kernel-libipsec plugin with /dev/net/tun is not there either (apt-get install libstrongswan-extra-plugins)"
        )
    if verdict.facts.get("ike_port_free") == "no":
        say(
            f"{where}: something already listens on UDP 500/4500 (the host's own IKE daemon?): the harness runs "
            "its own charon there; stop the other for the run (e.g. systemctl stop strongswan)"
        )
    if not verdict.has("tcpdump"):
        say(f"{where}: tcpdump is missing (the plaintext check captures on every host): apt-get install tcpdump")
    if verdict.firewall is None:
        say(f"{where}: neither nft nor iptables-legacy works (the fault table needs one): apt-get install nftables")
    if not verdict.has("interface"):
        say(f"{where}: no interface {host.lab_interface}: fix lab_interface in the inventory")
    elif not verdict.has("address"):
        say(
            f"{where}: {host.lab_address.ip} is not on {host.lab_interface}: "
            f"add it (ip addr add {host.lab_address} dev {host.lab_interface}) or fix lab_address"
        )
    if verdict.has("ssh_on_lab"):
        say(
            f"{where}: the SSH connection runs over the lab interface {host.lab_interface} (faults would cut it): "
            "connect through a management address"
        )


def judge_lab(inventory: Inventory, verdicts: Mapping[str, Verdict]) -> tuple[str | None, str | None, list[str]]:
    """Across hosts: the datapath every host offers (kernel first) and the VIP's one owner."""
    problems = []
    probed = [verdict for verdict in verdicts.values() if verdict.facts]
    common = [path for path in ("kernel", "libipsec") if all(path in verdict.datapaths for verdict in probed)]
    datapath = common[0] if common and probed else None
    if probed and not common and all(verdict.datapaths for verdict in probed):
        offered = ", ".join(f"{verdict.host.role} {'/'.join(verdict.datapaths)}" for verdict in probed)
        problems.append(f"the hosts share no IPsec datapath ({offered}): a lab runs one on every host")
    holders = [role for role in BACKENDS if role in verdicts and _holds_vip(inventory, verdicts[role])]
    owner = holders[0] if len(holders) == 1 else None
    probed_backends = all(verdicts[role].facts for role in BACKENDS if role in verdicts)
    how = "its owner command" if inventory.cluster else f"{inventory.vip.ip} on an interface"
    if probed_backends and not holders:
        fix = (
            "start the cluster" if inventory.cluster else f"ip addr add {inventory.vip} dev <its lab interface> on be1"
        )
        problems.append(f"no back-end holds the VIP ({how}): {fix}")
    elif len(holders) > 1:
        problems.append(f"both back-ends hold the VIP ({how}): remove it from one")
    return datapath, owner, problems


def _holds_vip(inventory: Inventory, verdict: Verdict) -> bool:
    return verdict.has("owner") if inventory.cluster else verdict.has("vip")


def check(inventory: Inventory, insecure_host_keys: bool = False) -> Report:
    """Probe every host of the inventory, all at once (each over its own connection, closed again)."""
    verdicts = {role: Verdict(host) for role, host in inventory.hosts.items()}
    with ThreadPoolExecutor(len(verdicts)) as pool:
        list(pool.map(lambda verdict: _check_host(inventory, verdict, insecure_host_keys), verdicts.values()))
    datapath, owner, problems = judge_lab(inventory, verdicts)
    every = [problem for verdict in verdicts.values() for problem in verdict.problems] + problems
    return Report(inventory, verdicts, datapath, owner, every)


def _check_host(inventory: Inventory, verdict: Verdict, insecure_host_keys: bool) -> None:
    try:
        connection = connect(verdict.host, inventory, insecure_host_keys)
    except UsageError as error:
        verdict.problems.append(str(error))
        return
    try:
        probe(connection, inventory, verdict)
    finally:
        connection.close()


def probe(connection: Connection, inventory: Inventory, verdict: Verdict) -> None:
    """Run the probe on the host and judge what it says."""
    host = connection.host
    server, client = _ends(connection)
    owner = inventory.cluster.owner if inventory.cluster and host.role in BACKENDS else ""
    argv = ["sh", "-c", PROBE, "preflight", host.lab_interface, str(host.lab_address.ip)]
    argv += [str(inventory.vip.ip), server, client, owner]
    try:
        code, stdout, stderr = connection.exec(argv)
    except (NodeLost, OSError, EOFError) as error:
        verdict.problems.append(f"{host.role} ({host.host}): the probe did not run: {error}")
        return
    verdict.facts = parse(stdout)
    if code != 0 or "uid" not in verdict.facts:
        said = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {code}"
        fix = "allow the user passwordless sudo (sudo -n)" if host.sudo else "check the user's shell"
        verdict.problems.append(f"{host.role} ({host.host}): the probe did not run ({said}): {fix}")
        verdict.facts = {}
        return
    judge(verdict)


def _ends(connection: Connection) -> tuple[str, str]:
    """The host's and this machine's addresses of the SSH connection (as IPv4 text, else empty)."""
    sock = connection.transport.sock
    ends = []
    for getter in ("getpeername", "getsockname"):
        try:
            address = getattr(sock, getter)()[0]
            ends.append(str(ipaddress.ip_address(address)))
        except (OSError, ValueError, AttributeError, IndexError):
            ends.append("")
    return ends[0], ends[1]

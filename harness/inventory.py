"""SSH inventories: the real hosts a lab runs on with ``--backend ssh``, written by the user in YAML.

    # my-lab.yaml
    vip: 198.18.7.100/24          # the cluster's virtual IP with its prefix: it gives the lab subnet
    ssh: {user: root, port: 22, key: keys/id_ed25519, known_hosts: known_hosts, sudo: false}
    management_over_lab: false    # refuse an SSH address on the lab subnet (faults would cut it)
    deadman_s: 30                 # seconds without the harness until each host heals itself (5-600)
    cluster:                      # optional: the user's cluster manager moves the VIP, not the harness
      owner: "ip -o addr show to 198.18.7.100 | grep -q ."   # exit 0 on the back-end holding the VIP
      move: "pcs resource move vip {to}"                     # run on the owner; {to}: the target's cluster_node
    hosts:                        # fe, be1 and be2 required, dc optional
      fe:  {host: 198.18.201.1, lab_interface: eth1, lab_address: 198.18.7.10/24}
      be1: {host: 198.18.201.2, sudo: true, lab_interface: eth1, lab_address: 198.18.7.11/24, cluster_node: node1}
      be2: {host: gw2.example.net, lab_interface: eth1, lab_address: 198.18.7.12/24}

A host's port, user, key and sudo fall back to ``ssh:``, then to the defaults (port 22, root, the
SSH agent, no sudo); key and known_hosts paths are relative to the inventory's folder
(``inventories/example.yaml`` shows every key). Loading is strict and in two rounds, each listing
every problem it finds, one line per problem naming the file and the field
(harness.userfiles): first the form of every value (unknown keys, types, ranges, addresses,
names, placeholders), then, once those are all right, how the values fit together and with the
files they name (one subnet, distinct addresses, SSH off the lab wire, key files present and
private, ``cluster.move`` only with ``cluster.owner``, one machine per node).

Owns: the inventory file's model, loading and checking it, and the resolved Inventory the ssh
backend will drive. Not: SSH itself, name resolution, or what runs on the hosts (the ssh backend).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    model_validator,
)

from harness.errors import UsageError
from harness.topology import BACKENDS, DOMAIN_CONTROLLER, FRONT_END, NODES, Placement
from harness.userfiles import parse

DEFAULT_USER = "root"
DEFAULT_PORT = 22
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
"""What ``Inventory.known_hosts`` None stands for: the user's own known hosts."""
DEADMAN_MIN_S = 5
DEADMAN_MAX_S = 600
DEFAULT_DEADMAN_S = 30
REQUIRED_NODES = (FRONT_END, *BACKENDS)
"""The nodes every inventory names; the domain controller is optional."""
PLACEHOLDER = "to"
"""The one placeholder of ``cluster.move``: the target back-end's cluster_node."""
PRIVATE_MODE_BITS = stat.S_IRWXG | stat.S_IRWXO
"""The mode bits a private key file must not have (OpenSSH refuses such a key too)."""


# Values, each checked for its form alone.


def _with_prefix(example: str) -> Callable[[object], ipaddress.IPv4Interface]:
    """A validator of an IPv4 address written with its prefix length (``example`` shows one)."""

    def validate(value: object) -> ipaddress.IPv4Interface:
        if not isinstance(value, str):
            raise ValueError(f"must be an IPv4 address with its prefix length, like {example}, got {value!r}")
        if "/" not in value:
            raise ValueError(f"{value!r} has no prefix length; write it like {example}")
        try:
            return ipaddress.IPv4Interface(value)
        except ValueError:
            if _is_ipv6(value):
                raise ValueError(f"{value!r} is IPv6; the lab runs on IPv4: write it like {example}") from None
            raise ValueError(f"{value!r} is not an IPv4 address with a prefix length, like {example}") from None

    return validate


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Interface(value)
    except ValueError:
        return False
    return True


Vip = Annotated[ipaddress.IPv4Interface, PlainValidator(_with_prefix("198.18.7.100/24"), json_schema_input_type=str)]
LabAddress = Annotated[
    ipaddress.IPv4Interface, PlainValidator(_with_prefix("198.18.7.11/24"), json_schema_input_type=str)
]

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _host(value: str) -> str:
    """An IP address (written back in its normal form) or a DNS hostname (RFC 1123, a top label
    that is not all digits), as written."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    labels = value.removesuffix(".").split(".")
    if len(value) <= 253 and all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit():
        return value
    hint = ""
    if "@" in value:
        hint = "; put the user name in 'user'"
    elif re.fullmatch(r"[^:]+:[0-9]+", value):
        hint = "; put the port number in 'port'"
    raise ValueError(f"{value!r} is neither an IP address nor a DNS hostname{hint}")


HostName = Annotated[str, AfterValidator(_host)]


def _user(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}", value):
        raise ValueError(f"must be a user name of up to 32 letters, digits, '_', '.' and '-', got {value!r}")
    return value


UserName = Annotated[str, AfterValidator(_user)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _file_name(value: str) -> str:
    if not value or any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise ValueError(f"must be a file path without control characters, got {value!r}")
    return value


FileName = Annotated[str, AfterValidator(_file_name)]


def _interface(value: str) -> str:
    """A name the Linux kernel takes for a network interface (dev_valid_name)."""
    if not 1 <= len(value) <= 15 or value in (".", "..") or re.search(r"[/:\s]", value):
        raise ValueError(
            f"must be a Linux interface name: 1-15 characters, none of them '/', ':' or whitespace, got {value!r}"
        )
    return value


InterfaceName = Annotated[str, AfterValidator(_interface)]


def _cluster_node(value: str) -> str:
    """A name safe to put into ``cluster.move`` for {to} as it is."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}", value):
        raise ValueError(f"must be a cluster node name of letters, digits, '_', '.', ':' and '-', got {value!r}")
    return value


ClusterNode = Annotated[str, AfterValidator(_cluster_node)]


def _command(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a shell command, got an empty one")
    return value


def _owner(value: str) -> str:
    if "{" + PLACEHOLDER + "}" in value:
        raise ValueError(f"{{{PLACEHOLDER}}} is for move only: owner runs as written on each back-end")
    return value


def _move(value: str) -> str:
    """A command with {to} as its only placeholder (braces doubled for literal ones, as in
    str.format, which is how Cluster.move_command fills it in)."""
    allowed = (
        f"{{{PLACEHOLDER}}} (the target's cluster_node) is the only placeholder; write {{{{ and }}}} for literal braces"
    )
    try:
        fields = [
            (name, spec, conversion) for _, name, spec, conversion in Formatter().parse(value) if name is not None
        ]
    except ValueError:
        raise ValueError(f"has an unmatched brace: {allowed}") from None
    for name, spec, conversion in fields:
        if (name, spec, conversion) != (PLACEHOLDER, "", None):
            written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{written} is not allowed: {allowed}")
    return value


Command = Annotated[str, AfterValidator(_command)]
OwnerCommand = Annotated[Command, AfterValidator(_owner)]
MoveCommand = Annotated[Command, AfterValidator(_move)]


def _node(name: str) -> str:
    if name not in NODES:
        raise ValueError(f"{name!r} is not one of {', '.join(NODES)}")
    return name


NodeName = Annotated[str, AfterValidator(_node)]


class _Absent:
    """Stands in for a required node the file leaves out, so that pydantic lists it with the file's
    other problems (a check after validation would only run once everything else is right)."""


_ABSENT = _Absent()


def _mark_absent(hosts: object) -> object:
    if isinstance(hosts, dict):
        return {**hosts, **{node: _ABSENT for node in REQUIRED_NODES if node not in hosts}}
    return hosts


# The file's models.


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SshModel(_Strict):
    """Defaults for every host; a host's own key overrides them (known_hosts is lab-wide only)."""

    user: UserName = DEFAULT_USER
    port: Port = DEFAULT_PORT
    key: FileName | None = None
    known_hosts: FileName | None = None
    sudo: bool = False


class HostModel(_Strict):
    """One node's machine; port, user, key and sudo left out fall back to ``ssh:``."""

    host: HostName
    port: Port | None = None
    user: UserName | None = None
    key: FileName | None = None
    sudo: bool | None = None
    lab_interface: InterfaceName
    lab_address: LabAddress
    cluster_node: ClusterNode | None = None

    @model_validator(mode="before")
    @classmethod
    def _present(cls, data: object) -> object:
        if data is _ABSENT:
            required = f"{', '.join(REQUIRED_NODES[:-1])} and {REQUIRED_NODES[-1]}"
            raise ValueError(f"is required (every inventory names {required}; {DOMAIN_CONTROLLER} is optional)")
        return data


class ClusterModel(_Strict):
    owner: OwnerCommand | None = None
    move: MoveCommand | None = None


class InventoryFile(_Strict):
    vip: Vip
    ssh: SshModel = Field(default_factory=SshModel)
    management_over_lab: bool = False
    deadman_s: int = Field(DEFAULT_DEADMAN_S, ge=DEADMAN_MIN_S, le=DEADMAN_MAX_S)
    cluster: ClusterModel | None = None
    hosts: Annotated[dict[NodeName, HostModel], BeforeValidator(_mark_absent)]


# What the ssh backend drives.


@dataclass(frozen=True)
class Host:
    """One node's machine, every setting resolved (the host's own, else ``ssh:``'s, else the default)."""

    role: str
    """The node this machine is: one of topology.NODES."""
    host: str
    """An IP address or a DNS hostname, reached over SSH (never resolved here)."""
    port: int
    user: str
    key: Path | None
    """The private key file, absolute; None: the SSH agent's keys."""
    sudo: bool
    """Run privileged commands through ``sudo -n``."""
    lab_interface: str
    lab_address: ipaddress.IPv4Interface
    cluster_node: str
    """The name ``cluster.move`` gets for {to} (back-ends only); default the host."""


@dataclass(frozen=True)
class Cluster:
    """The user's own cluster manager, which moves the VIP instead of the harness."""

    owner: str
    """Run as written on each back-end: exit 0 where it holds the VIP."""
    move: str | None
    """Run on the VIP's owner to move it, {to} filled in (move_command); None: the cluster moves it
    by itself (on a failure), the harness only watches owner."""

    def move_command(self, to: Host) -> str:
        """``move`` for moving the VIP to ``to``: {to} its cluster_node, doubled braces single."""
        assert self.move is not None, "the cluster has no move command"
        return self.move.format(**{PLACEHOLDER: shlex.quote(to.cluster_node)})


@dataclass(frozen=True)
class ClusterManager:
    """The user's cluster manager as the lab drives it: shell command lines run on the back-ends."""

    owner: str
    """Exit 0 on the back-end that holds the VIP."""
    moves: dict[str, str] | None
    """By target back-end, the command that moves the VIP there (run on its owner); None: the
    cluster moves it only by itself (on a failure)."""


@dataclass(frozen=True)
class Inventory:
    """A checked inventory: the VIP, its lab subnet, how to reach each node's machine."""

    path: Path
    vip: ipaddress.IPv4Interface
    management_over_lab: bool
    deadman_s: int
    known_hosts: Path | None
    """Absolute; None: DEFAULT_KNOWN_HOSTS."""
    cluster: Cluster | None
    hosts: dict[str, Host]
    """By node, in topology.NODES's order (fe, be1, be2, dc)."""

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        """The lab subnet: the VIP's."""
        return self.vip.network

    def manager(self) -> ClusterManager | None:
        """The cluster manager that holds and moves the VIP (None: the harness moves it itself)."""
        if self.cluster is None:
            return None
        moves = None
        if self.cluster.move is not None:
            moves = {name: self.cluster.move_command(self.hosts[name]) for name in BACKENDS if name in self.hosts}
        return ClusterManager(self.cluster.owner, moves)

    def placement(self) -> Placement:
        """The hosts' lab addresses as a lab topology takes them; a UsageError if a node the lab
        needs has no host (dc: the lab's domain controller is not optional yet)."""
        missing = [node for node in NODES if node not in self.hosts]
        if missing:
            raise UsageError(
                f"{self.path}: hosts: {', '.join(missing)} missing: a lab needs a host for every node "
                f"({', '.join(NODES)}) so far"
            )
        addresses = tuple((node, str(self.hosts[node].lab_address.ip)) for node in NODES)
        return Placement(self.subnet, str(self.vip.ip), addresses)


def load(path: Path) -> Inventory:
    """An inventory file parsed strictly, then checked for how its values fit together; a
    UsageError lists every problem, one line each naming the file and the field."""
    model = parse(path, InventoryFile, f"an inventory needs 'vip' and 'hosts' ({', '.join(REQUIRED_NODES)})")
    problems = [f"{path}: {problem}" for problem in _problems(path, model)]
    if problems:
        raise UsageError("\n".join(problems))
    return _inventory(path, model)


def _problems(path: Path, model: InventoryFile) -> list[str]:
    """Every way the values do not fit together, each as ``field: message``, in the file's order."""
    problems = _vip_problems(model)
    problems += _file_problems(path, "ssh.key", model.ssh.key, private=True)
    problems += _file_problems(path, "ssh.known_hosts", model.ssh.known_hosts, private=False)
    problems += _cluster_problems(model)
    addresses: dict[ipaddress.IPv4Address, str] = {}
    endpoints: dict[tuple[str, int], str] = {}
    for node, host in model.hosts.items():
        problems += _machine_problems(model, node, host, endpoints)
        problems += _file_problems(path, f"hosts.{node}.key", host.key, private=True)
        problems += _lab_address_problems(model, node, host.lab_address, addresses)
        problems += _cluster_node_problems(model, node, host)
    return problems


def _room(model: InventoryFile) -> bool:
    """Whether the VIP's subnet has host addresses enough for the VIP and every lab address."""
    subnet = model.vip.network
    return subnet.prefixlen <= 30 and subnet.num_addresses - 2 >= 1 + len(model.hosts)


def _vip_problems(model: InventoryFile) -> list[str]:
    vip, subnet = model.vip.ip, model.vip.network
    if not _room(model):
        room = subnet.num_addresses - 2 if subnet.prefixlen <= 30 else 0
        return [
            f"vip: the lab subnet {subnet} holds {room} host addresses; the VIP and the {len(model.hosts)} "
            f"hosts' lab addresses need {1 + len(model.hosts)}: use a shorter prefix, like /24"
        ]
    if vip in (subnet.network_address, subnet.broadcast_address):
        which = "network" if vip == subnet.network_address else "broadcast"
        return [f"vip: {vip} is the {which} address of its subnet {subnet}; choose a host address"]
    return []


def _machine_problems(
    model: InventoryFile, node: str, host: HostModel, endpoints: dict[tuple[str, int], str]
) -> list[str]:
    """A host on the lab wire (faults would cut its SSH) or the same SSH endpoint as an earlier
    node (one machine: a fault on one would hit the other)."""
    subnet = model.vip.network
    problems = []
    machine = _ip(host.host)
    if not model.management_over_lab and machine is not None and machine in subnet:
        problems.append(
            f"hosts.{node}.host: {machine} is on the lab subnet {subnet}: the SSH connection would run over "
            "the lab wire, where faults cut it; use a management address or set management_over_lab: true"
        )
    port = host.port if host.port is not None else model.ssh.port
    endpoint = (host.host.lower().removesuffix("."), port)
    if endpoint in endpoints:
        problems.append(
            f"hosts.{node}.host: {host.host} port {port} is {endpoints[endpoint]}'s too; each node needs a machine "
            "of its own (a fault on one would hit both)"
        )
    endpoints.setdefault(endpoint, node)
    return problems


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _lab_address_problems(
    model: InventoryFile, node: str, address: ipaddress.IPv4Interface, owners: dict[ipaddress.IPv4Address, str]
) -> list[str]:
    """A lab address off the VIP's subnet (unless the subnet is too small for any: the vip's line
    says so), on its edges, the VIP's, or an earlier node's."""
    problem = _placement_problem(model.vip.network, address) if _room(model) else None
    if problem is None and address.ip == model.vip.ip:
        problem = (
            f"{address.ip} is the VIP, which moves between the back-ends on top of their own addresses; "
            f"give {node} an address of its own"
        )
    elif problem is None and address.ip in owners:
        problem = f"{address.ip} is {owners[address.ip]}'s lab address too; each node needs its own"
    owners.setdefault(address.ip, node)
    return [f"hosts.{node}.lab_address: {problem}"] if problem else []


def _placement_problem(subnet: ipaddress.IPv4Network, address: ipaddress.IPv4Interface) -> str | None:
    """A lab address off the lab subnet, with another prefix, or on the subnet's edges."""
    if address.ip not in subnet:
        return f"{address.ip} is not on the lab subnet {subnet} (the VIP's)"
    if address.network != subnet:
        return (
            f"{address} has prefix /{address.network.prefixlen}, the lab subnet (the VIP's) is {subnet}; "
            f"write {address.ip}/{subnet.prefixlen}"
        )
    if address.ip in (subnet.network_address, subnet.broadcast_address):
        which = "network" if address.ip == subnet.network_address else "broadcast"
        return f"{address.ip} is the {which} address of the lab subnet {subnet}"
    return None


def _file_problems(path: Path, field: str, written: str | None, private: bool) -> list[str]:
    """A file the inventory names (``written``, None: none) that is missing, unreadable, or (a
    ``private`` key) open to others."""
    if written is None:
        return []
    file = _resolved(path, written)
    try:
        status = file.stat()
    except FileNotFoundError:
        return [f"{field}: {file}: no such file (a relative path starts at the inventory's folder)"]
    except OSError as error:
        return [f"{field}: {file} cannot be checked: {error.strerror}"]
    if not stat.S_ISREG(status.st_mode):
        return [f"{field}: {file} is not a file"]
    if not os.access(file, os.R_OK):
        return [f"{field}: {file} cannot be read: permission denied"]
    if private and status.st_mode & PRIVATE_MODE_BITS:
        mode = stat.S_IMODE(status.st_mode)
        return [
            f"{field}: {file} is open to group or others (mode {mode:04o}), which ssh refuses for a private key: "
            f"chmod 600 {shlex.quote(str(file))}"
        ]
    return []


def _resolved(path: Path, written: str) -> Path:
    """A path from the file: ``~`` expanded, relative to the inventory's folder, made absolute."""
    return Path(os.path.normpath((path.parent / Path(written).expanduser()).absolute()))


def _cluster_problems(model: InventoryFile) -> list[str]:
    cluster = model.cluster
    if cluster is None or cluster.owner is not None:
        return []
    if cluster.move is not None:
        return [
            "cluster.owner: is required with cluster.move: the harness must see the move finish (which "
            "back-end holds the VIP)"
        ]
    return ["cluster: is empty; give owner (and move, to have your cluster manager move the VIP), or leave it out"]


def _cluster_node_problems(model: InventoryFile, node: str, host: HostModel) -> list[str]:
    field = f"hosts.{node}.cluster_node"
    if host.cluster_node is None:
        return []
    if node not in BACKENDS:
        return [f"{field}: only the back-ends ({', '.join(BACKENDS)}) are cluster nodes"]
    if model.cluster is None or model.cluster.move is None:
        return [f"{field}: only cluster.move uses it (as {{{PLACEHOLDER}}}), and there is no cluster.move"]
    return []


def _inventory(path: Path, model: InventoryFile) -> Inventory:
    ssh = model.ssh
    cluster = model.cluster
    hosts = {}
    for node in NODES:
        if node not in model.hosts:
            continue
        given = model.hosts[node]
        key = given.key if given.key is not None else ssh.key
        hosts[node] = Host(
            role=node,
            host=given.host,
            port=given.port if given.port is not None else ssh.port,
            user=given.user if given.user is not None else ssh.user,
            key=_resolved(path, key) if key is not None else None,
            sudo=given.sudo if given.sudo is not None else ssh.sudo,
            lab_interface=given.lab_interface,
            lab_address=given.lab_address,
            cluster_node=given.cluster_node if given.cluster_node is not None else given.host,
        )
    return Inventory(
        path=path,
        vip=model.vip,
        management_over_lab=model.management_over_lab,
        deadman_s=model.deadman_s,
        known_hosts=_resolved(path, ssh.known_hosts) if ssh.known_hosts is not None else None,
        cluster=Cluster(cluster.owner, cluster.move) if cluster is not None and cluster.owner is not None else None,
        hosts=hosts,
    )

"""SSH inventories: the example loads, settings cascade (host, then ``ssh:``, then the default),
every broken file gives its golden error (every problem, one line each) and no document crashes
the loader with anything but those lines.

Golden files: tests/unit/errors/inventories/<case>.yaml and <case>.txt (the expected message, with
the file shown as FILE and its folder as DIR). Regenerate after an intended change with
UPDATE_GOLDEN=1. The key file keys/open-key gets mode 644 from the test (git keeps no modes but
the executable bit).
"""

import ipaddress
import os
import stat
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from harness import inventory, policy, strongswan, timers
from harness.errors import UsageError
from harness.topology import BACKENDS, DOMAIN_CONTROLLER, FRONT_END, NODES, Topology

from .golden import assert_golden_error
from .hosts import write_inventory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example.yaml"
GOLDEN = Path(__file__).parent / "errors" / "inventories"
CASES = sorted(GOLDEN.glob("*.yaml"))
OPEN_KEY = GOLDEN / "keys" / "open-key"


def test_the_example_loads() -> None:
    loaded = inventory.load(EXAMPLE)
    assert loaded.vip == ipaddress.IPv4Interface("198.18.7.100/24")
    assert loaded.subnet == ipaddress.IPv4Network("198.18.7.0/24")
    assert (loaded.management_over_lab, loaded.deadman_s, loaded.known_hosts) == (False, 30, None)
    assert list(loaded.hosts) == [FRONT_END, *BACKENDS]
    assert all(name == host.role for name, host in loaded.hosts.items())
    be2 = loaded.hosts[BACKENDS[1]]
    assert (be2.host, be2.port, be2.user, be2.key, be2.sudo) == ("be2.example.net", 22, "root", None, False)
    assert (be2.lab_interface, be2.lab_address) == ("eth1", ipaddress.IPv4Interface("198.18.7.12/24"))
    assert loaded.cluster is not None
    assert loaded.cluster.owner == "ip -o addr show to 198.18.7.100 | grep -q ."
    assert loaded.cluster.move_command(be2) == "pcs resource move vip node2"
    assert loaded.hosts[FRONT_END].cluster_node == "192.0.2.1"  # default: the host


def test_the_example_shows_every_key() -> None:
    text = EXAMPLE.read_text()
    models: list[type[BaseModel]] = [
        inventory.InventoryFile,
        inventory.SshModel,
        inventory.HostModel,
        inventory.ClusterModel,
    ]
    for model in models:
        for key in model.model_fields:
            assert f"{key}:" in text, key
    assert f"{DOMAIN_CONTROLLER}:" in text


def write(tmp_path: Path, text: str, name: str = "lab.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def private_key(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a key\n")
    path.chmod(0o600)
    return path


def test_each_setting_comes_from_the_host_else_ssh_else_the_default(tmp_path: Path) -> None:
    private_key(tmp_path / "keys" / "shared")
    private_key(tmp_path / "keys" / "own")
    path = write(
        tmp_path,
        """
vip: 10.1.0.100/24
ssh: {user: admin, key: keys/shared, sudo: true}
hosts:
  fe: {host: 192.0.2.1, lab_interface: eth1, lab_address: 10.1.0.10/24}
  be1: {host: 192.0.2.2, port: 2222, user: ops, key: keys/own, sudo: false,
        lab_interface: ens4, lab_address: 10.1.0.11/24}
  be2: {host: 192.0.2.3, port: 2200, lab_interface: eth1, lab_address: 10.1.0.12/24}
""",
    )
    hosts = inventory.load(path).hosts
    shared, own = (tmp_path / "keys" / "shared").absolute(), (tmp_path / "keys" / "own").absolute()
    settings = {name: (h.port, h.user, h.key, h.sudo) for name, h in hosts.items()}
    assert settings == {
        FRONT_END: (22, "admin", shared, True),  # ssh:, port the default
        BACKENDS[0]: (2222, "ops", own, False),  # its own
        BACKENDS[1]: (2200, "admin", shared, True),  # its own port, the rest ssh:'s
    }


def test_without_ssh_every_host_takes_the_defaults(tmp_path: Path) -> None:
    loaded = inventory.load(write_inventory(tmp_path / "lab.yaml"))
    assert list(loaded.hosts) == list(NODES)
    for host in loaded.hosts.values():
        assert (host.port, host.user, host.key, host.sudo) == (22, "root", None, False)
    assert (loaded.deadman_s, loaded.management_over_lab, loaded.known_hosts, loaded.cluster) == (30, False, None, None)


def test_hosts_come_out_in_the_order_of_the_nodes_whatever_the_files(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
vip: 10.1.0.100/24
hosts:
  dc: {host: 192.0.2.4, lab_interface: eth1, lab_address: 10.1.0.20/24}
  be2: {host: 192.0.2.3, lab_interface: eth1, lab_address: 10.1.0.12/24}
  fe: {host: 192.0.2.1, lab_interface: eth1, lab_address: 10.1.0.10/24}
  be1: {host: 192.0.2.2, lab_interface: eth1, lab_address: 10.1.0.11/24}
""",
    )
    assert list(inventory.load(path).hosts) == list(NODES)


def test_paths_are_taken_from_the_inventorys_folder_and_absolute_ones_kept(tmp_path: Path) -> None:
    elsewhere = private_key(tmp_path / "elsewhere" / "key")
    (tmp_path / "lab" / "known_hosts").parent.mkdir()
    (tmp_path / "lab" / "known_hosts").write_text("")
    path = write(
        tmp_path / "lab",
        f"""
vip: 10.1.0.100/24
ssh: {{key: {elsewhere}, known_hosts: known_hosts}}
hosts:
  fe: {{host: 192.0.2.1, lab_interface: eth1, lab_address: 10.1.0.10/24}}
  be1: {{host: 192.0.2.2, key: ../elsewhere/key, lab_interface: eth1, lab_address: 10.1.0.11/24}}
  be2: {{host: 192.0.2.3, lab_interface: eth1, lab_address: 10.1.0.12/24}}
""",
    )
    loaded = inventory.load(path)
    assert loaded.known_hosts == (tmp_path / "lab" / "known_hosts").absolute()
    assert loaded.hosts[FRONT_END].key == elsewhere
    assert loaded.hosts[BACKENDS[0]].key == elsewhere.absolute()  # .. resolved


def test_management_over_lab_allows_ssh_on_the_lab_subnet(tmp_path: Path) -> None:
    text = (
        "vip: 10.1.0.100/24\nmanagement_over_lab: true\nhosts:\n"
        "  fe: {host: 10.1.0.10, lab_interface: eth1, lab_address: 10.1.0.10/24}\n"
        "  be1: {host: 10.1.0.11, lab_interface: eth1, lab_address: 10.1.0.11/24}\n"
        "  be2: {host: '2001:db8::3', lab_interface: eth1, lab_address: 10.1.0.12/24}\n"
    )
    loaded = inventory.load(write(tmp_path, text))
    assert loaded.management_over_lab
    assert [host.host for host in loaded.hosts.values()] == ["10.1.0.10", "10.1.0.11", "2001:db8::3"]


def test_the_same_machine_on_another_port_is_another_node(tmp_path: Path) -> None:
    text = (
        "vip: 10.1.0.100/24\nhosts:\n"
        "  fe: {host: lab.example.net, port: 2201, lab_interface: eth1, lab_address: 10.1.0.10/24}\n"
        "  be1: {host: lab.example.net, port: 2202, lab_interface: eth1, lab_address: 10.1.0.11/24}\n"
        "  be2: {host: lab.example.net, port: 2203, lab_interface: eth1, lab_address: 10.1.0.12/24}\n"
    )
    assert [host.port for host in inventory.load(write(tmp_path, text)).hosts.values()] == [2201, 2202, 2203]


def test_move_fills_in_to_and_keeps_literal_braces(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace(
        'move: "pcs resource move vip {to}"', "move: \"crm resource move vip {to} && awk '{{print}}' /dev/null\""
    )
    loaded = inventory.load(write(tmp_path, text))
    assert loaded.cluster is not None
    command = loaded.cluster.move_command(loaded.hosts[BACKENDS[0]])
    assert command == "crm resource move vip node1 && awk '{print}' /dev/null"
    manager = loaded.manager()
    assert manager is not None and manager.moves is not None
    assert manager.moves[BACKENDS[0]] == command  # what the lab runs on the owner to move the VIP to be1


def test_a_cluster_without_move_leaves_the_move_to_the_cluster(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace('  move: "pcs resource move vip {to}"\n', "")
    text = text.replace("    cluster_node: node1 ", "    # cluster_node: node1 ").replace("    cluster_node: node2", "")
    loaded = inventory.load(write(tmp_path, text))
    assert loaded.cluster == inventory.Cluster(owner="ip -o addr show to 198.18.7.100 | grep -q .", move=None)
    assert loaded.manager() == inventory.ClusterManager(loaded.cluster.owner, None)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read it"):
        inventory.load(tmp_path / "nope.yaml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_key(tmp_path: Path) -> None:
    key = private_key(tmp_path / "key")
    key.chmod(0)
    text = EXAMPLE.read_text().replace("  # key: keys/id_ed25519 ", "  key: key ")
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as error:
        inventory.load(path)
    assert str(error.value) == f"{path}: ssh.key: {key} cannot be read: permission denied"


def load_showing_the_folder_as_dir(case: Path) -> inventory.Inventory:
    """inventory.load, with the case's folder in any message shown as DIR (golden files are
    compared wherever the checkout lies)."""
    os.chmod(OPEN_KEY, 0o644)
    try:
        return inventory.load(case)
    except UsageError as error:
        prefix = f"{case}: "
        lines = [
            prefix + line.removeprefix(prefix).replace(str(case.parent), "DIR") for line in str(error).splitlines()
        ]
        raise UsageError("\n".join(lines)) from None


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_broken_inventories_give_one_golden_line_per_problem(case: Path) -> None:
    assert_golden_error(case, load_showing_the_folder_as_dir)


def test_the_open_key_is_refused_for_its_mode_alone(tmp_path: Path) -> None:
    """The open-key case fails for the mode only: the same file made private loads."""
    key = private_key(tmp_path / "keys" / "open-key")
    path = write(tmp_path, (GOLDEN / "key-open-to-others.yaml").read_text())
    assert inventory.load(path).hosts[BACKENDS[0]].key == key.absolute()
    key.chmod(0o640)
    with pytest.raises(UsageError, match=r"mode 0640.*chmod 600 "):
        inventory.load(path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o640  # the loader only reports


VALID = yaml.safe_load(EXAMPLE.read_text())
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False), st.text(max_size=12))
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
TOP_KEYS = st.sampled_from([*VALID, "x"])
HOST_KEYS = st.sampled_from([*inventory.HostModel.model_fields, "known_hosts", "x"])


def loads_or_says_why(tmp_path: Path, document: object) -> inventory.Inventory | list[str]:
    """The loaded inventory, or the error's lines, each checked to name the file, none twice."""
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        return inventory.load(path)
    except UsageError as error:
        lines = str(error).split("\n")
        assert all(line.startswith(f"{path}: ") for line in lines), lines
        assert len(lines) == len(set(lines)), lines
        return lines


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=DOCUMENTS)
def test_random_documents_never_crash_the_loader(tmp_path: Path, document: object) -> None:
    loads_or_says_why(tmp_path, document)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=TOP_KEYS, value=DOCUMENTS, drop=st.booleans())
def test_mutated_inventories_never_crash_the_loader(tmp_path: Path, key: str, value: object, drop: bool) -> None:
    document = {k: v for k, v in VALID.items() if not (drop and k == key)}
    if not drop:
        document[key] = value
    loads_or_says_why(tmp_path, document)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(node=st.sampled_from([*NODES, "x"]), key=HOST_KEYS, value=SCALARS, drop=st.booleans())
def test_mutated_hosts_never_crash_the_loader(tmp_path: Path, node: str, key: str, value: object, drop: bool) -> None:
    hosts = {name: dict(host) for name, host in VALID["hosts"].items()}
    host = hosts.setdefault(node, {})
    if drop:
        host.pop(key, None)
    else:
        host[key] = value
    loads_or_says_why(tmp_path, {**VALID, "hosts": hosts})


def test_a_lab_on_the_hosts_takes_their_addresses_and_names_the_missing_dc(tmp_path: Path) -> None:
    text = """
vip: 10.1.0.100/24
hosts:
  fe: {host: 192.0.2.1, lab_interface: eth1, lab_address: 10.1.0.10/24}
  be1: {host: 192.0.2.2, lab_interface: eth1, lab_address: 10.1.0.21/24}
  be2: {host: 192.0.2.3, lab_interface: eth1, lab_address: 10.1.0.22/24}
"""
    without = write(tmp_path, text, "three.yaml")
    with pytest.raises(UsageError, match=r"three\.yaml: hosts: dc missing: a lab needs a host for every node"):
        inventory.load(without).placement()
    path = write(tmp_path, text + "  dc: {host: 192.0.2.4, lab_interface: eth2, lab_address: 10.1.0.5/24}\n")
    topology = Topology("lab3", 3, inventory.load(path).placement())
    topology.check()
    assert [topology.address(node) for node in NODES] == ["10.1.0.10", "10.1.0.21", "10.1.0.22", "10.1.0.5"]
    assert (topology.vip, topology.subnet, topology.prefixlen) == (
        "10.1.0.100",
        ipaddress.IPv4Network("10.1.0.0/24"),
        24,
    )
    assert topology.identity(FRONT_END) == "fe.lab3.failover-lab.test"
    conns = strongswan.connections(topology, FRONT_END, timers.profile("fast"), policy.policy("all-traffic"), "kernel")
    assert conns["vip"]["remote_addrs"] == ["10.1.0.100"] and conns["dc"]["remote_addrs"] == ["10.1.0.5"]

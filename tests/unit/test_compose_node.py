"""The pure parts of a compose node's own bring-up: which lab, the shared PSK, the load order,
and the swanctl.conf that carries the same connections the harness loads over vici."""

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from harness import cli, compose_node, policy, strongswan, timers
from harness.errors import UsageError
from harness.topology import NODES, Topology


def test_the_compose_subnet_picks_the_lab() -> None:
    assert compose_node.topology_for("198.18.254.0/24") == Topology.for_index(254)
    for bad in ("10.0.0.0/24", "198.18.3.0/23", "nonsense", ""):
        with pytest.raises(UsageError, match="FLAB_SUBNET"):
            compose_node.topology_for(bad)


def test_every_node_gets_the_psk_the_first_one_made(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    seen: list[str] = []
    threads = [
        threading.Thread(target=lambda n=n: seen.append(compose_node.shared_psk(n, directory)))
        for n in ("fe", "be1", "be2", "dc")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1 and len(seen[0]) >= 43
    assert sorted(p.name for p in directory.iterdir()) == ["psk"]
    assert (directory / "psk").stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700
    other = compose_node.shared_psk("fe", tmp_path / "another-lab")
    assert other != seen[0]


def test_initiators_load_after_their_responders() -> None:
    everything = policy.policy("all-traffic")
    assert compose_node.responders("fe", everything) == ["be1", "dc"]
    assert compose_node.responders("be2", everything) == ["dc"]
    assert compose_node.responders("dc", everything) == []
    assert compose_node.responders("fe", policy.policy("mail-passwords")) == ["be1"]
    assert compose_node.responders("be1", policy.policy("mail-passwords")) == []
    assert compose_node.responders("fe", policy.policy("none")) == []


def test_a_back_end_says_whether_it_owns_the_vip() -> None:
    assert [compose_node.describe(n) for n in NODES] == ["fe", "VIP owner", "standby", "dc"]


def test_swanctl_conf_carries_the_vici_connections() -> None:
    topology, profile, chosen = Topology.for_index(7), timers.profile("fast"), policy.policy("mail-passwords")
    text = strongswan.swanctl_conf(topology, "fe", profile, chosen, "s3cret")
    assert text.count("{") == text.count("}")
    assert 'remote_ts = "198.18.7.100/32[6/110]"' in text and 'remote_ts = "198.18.7.100/32[6/143]"' in text
    assert 'start_action = "trap|start"' in text and 'dpd_delay = "2s"' in text
    assert re.search(r'secrets \{\n    ike-lab \{\n        secret = "s3cret"\n', text)
    owners = strongswan.shared_secret(topology, "s3cret")["owners"]
    assert all(f'= "{owner}"' in text for owner in owners)
    conns = strongswan.connections(topology, "fe", profile, chosen)
    assert all(f"    {name} {{\n" in text for name in conns["vip"]["children"])


def test_it_runs_on_the_standard_library_alone() -> None:
    """The node image has Python but none of the harness's dependencies."""
    check = (
        "import sys; import harness.compose_node; "
        "print(sorted({'vici', 'tenacity', 'pydantic', 'yaml', 'docker', 'rich'} & set(sys.modules)))"
    )
    root = Path(__file__).resolve().parents[2]
    loaded = subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_the_compose_harness_demo_writes_apart_from_the_netns_demo() -> None:
    """`docker compose run --rm harness` runs the service's command: the demo on Docker, into
    results/demo-docker (the netns demo, quickstart's, writes results/demo)."""
    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    arguments = cli.parser().parse_args(compose["services"]["harness"]["command"])
    assert (arguments.command, arguments.backend, arguments.out) == ("demo", "docker", Path("results/demo-docker"))

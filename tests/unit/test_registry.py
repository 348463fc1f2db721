"""Lab registry: index allocation, ownership and what clean may remove (no root needed)."""

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import registry
from harness.errors import UsageError
from harness.registry import Owner, State
from harness.topology import HOST_NUMBERS, Placement, Topology


@pytest.fixture(autouse=True)
def lab_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(registry, "LAB_ROOT", tmp_path / "labs")
    monkeypatch.setattr(registry, "BACKENDS", {})
    return tmp_path / "labs"


def test_labs_get_distinct_indexes_and_private_directories(lab_root: Path) -> None:
    first, second = registry.allocate("netns", "fast", "all-traffic"), registry.allocate("netns", "fast", "all-traffic")
    assert (first.index, second.index) == (0, 1)
    assert oct(registry.directory(first.topology.qualified).stat().st_mode & 0o777) == "0o700"
    assert registry.registered() == [first, second]
    assert first.owner == Owner.of(os.getpid())


def test_owner_identity_survives_pid_reuse() -> None:
    me = Owner.of(os.getpid())
    assert me is not None and me.alive()
    assert not Owner(me.pid, "0").alive()
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert Owner.of(int(child.stdout)) is None


def test_clean_keeps_labs_of_live_processes_unless_forced(lab_root: Path) -> None:
    mine = registry.allocate("netns", "fast", "all-traffic")
    detached = State("lab1", 1, "netns", "fast", "all-traffic", owner=None)
    registry.directory(detached.topology.qualified).mkdir()
    detached.save()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = State("lab2", 2, "netns", "fast", "all-traffic", Owner.of(sleeper.pid))
        registry.directory(other.topology.qualified).mkdir()
        other.save()
        assert other.in_use() and not mine.in_use() and not detached.in_use()
        removed, skipped = registry.clean()
        assert removed == ["flab-lab0", "flab-lab1"] and skipped == ["flab-lab2"]
        assert registry.clean(force=True) == (["flab-lab2"], [])
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not list(lab_root.glob("flab-*"))


class FakeBackend:
    """Only what clean asks of a backend: its name, its leftovers, destroy."""

    def __init__(self, name: str, leftovers: set[str]) -> None:
        self.name = name
        self._leftovers = leftovers
        self.destroyed: list[str] = []

    def leftovers(self) -> set[str]:
        return self._leftovers

    def destroy(self, qualified: str) -> None:
        self.destroyed.append(qualified)


def test_clean_can_keep_to_one_backend(lab_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docker = FakeBackend("docker", {"flab-lab5"})  # a leftover without a record
    monkeypatch.setattr(registry, "BACKENDS", {"docker": docker})
    for index, backend in ((0, "netns"), (1, "docker")):
        state = State(f"lab{index}", index, backend, "fast", "all-traffic", owner=None)
        registry.directory(state.topology.qualified).mkdir(parents=True)
        state.save()
    removed, skipped = registry.clean(only=docker)  # type: ignore[arg-type]
    assert (removed, skipped) == (["flab-lab1", "flab-lab5"], [])
    assert [s.name for s in registry.registered()] == ["lab0"]


def test_a_lab_on_ssh_hosts_keeps_their_addresses_and_refuses_a_second_lab_on_them(tmp_path: Path) -> None:
    addresses = tuple((node, f"10.9.0.{number}") for node, number in HOST_NUMBERS.items())
    placement = Placement(ipaddress.IPv4Network("10.9.0.0/24"), "10.9.0.100", addresses)
    inventory = tmp_path / "hosts.yaml"
    state = registry.allocate("ssh", "fast", "all-traffic", inventory, placement)
    [loaded] = registry.registered()
    assert loaded == state and loaded.inventory == str(inventory)
    assert loaded.topology == Topology(state.name, state.index, placement)
    assert loaded.topology.address("dc") == "10.9.0.20" and loaded.topology.vip == "10.9.0.100"
    with pytest.raises(UsageError, match=rf"^lab {state.name} runs on these hosts already \(inventory {inventory}\)"):
        registry.allocate("ssh", "fast", "all-traffic", tmp_path / "other.yaml", placement)
    elsewhere = Placement(
        ipaddress.IPv4Network("10.8.0.0/24"), "10.8.0.100", tuple((n, f"10.8.0.{i}") for n, i in HOST_NUMBERS.items())
    )
    assert registry.allocate("ssh", "fast", "all-traffic", tmp_path / "other.yaml", elsewhere).index == state.index + 1

"""What a user sees when a lab breaks under a run: a charon killed by hand, a node removed by
hand, the run's own process killed. The harness says so in one line, tears down what it started,
and `clean` finds nothing left."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from harness import registry
from harness.backends import backend, uml
from harness.backends.docker import DockerBackend
from harness.backends.netns import namespace
from harness.node import Node

from .conftest import remains

CLI = [sys.executable, "-m", "harness.cli"]
SLOW_CRASH = ["run", "--fault", "crash", "--profile", "strongswan-default"]
"""A crash that takes minutes to recover from: the lab is mid-run for as long as a test needs."""


def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *arguments], capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def mid_run(backend_name: str) -> Iterator[tuple[subprocess.Popen[str], registry.State]]:
    """A `failover-lab run` of a slow crash, once the fault has struck; killed if the test leaves
    it running."""
    process = subprocess.Popen([*CLI, *SLOW_CRASH, "--backend", backend_name], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        announced = process.stdout.readline()
        found = re.search(r"on lab (\w+)", announced)
        assert found, announced + (process.stderr.read() if process.stderr else "")
        progress = process.stdout.readline()  # the first live line says the fault struck
        assert "fault: crash of be1" in progress, progress
        [state] = [s for s in registry.registered() if s.name == found.group(1)]
        yield process, state
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)


def node_of(state: registry.State, name: str) -> Node:
    topology = state.topology
    return backend(state.backend).nodes(topology, registry.directory(topology.qualified))[name]


def remove_by_hand(state: registry.State, name: str) -> None:
    """What a user would do: `docker rm -f` the container, kill everything in the namespace and
    delete it, or kill the VM."""
    qualified = state.topology.qualified
    if state.backend == "netns":
        netns = namespace(state.topology, name)
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
        subprocess.run(["kill", "-9", *pids], check=True)
        subprocess.run(["ip", "netns", "del", netns], check=True)
    elif state.backend == "uml":  # kill -9 the VM's process group (UML's pid file names its leader)
        pid_file = registry.directory(qualified) / uml.HELPERS / f"{qualified}-{name}" / "pid"
        os.killpg(int(pid_file.read_text().split()[0]), signal.SIGKILL)
    else:
        engine = backend(state.backend)
        assert isinstance(engine, DockerBackend)
        [container] = [c for c in engine.api.containers(filters={"label": f"com.docker.compose.project={qualified}"})
                       if c["Labels"]["com.docker.compose.service"] == name]  # fmt: skip
        engine.api.remove_container(container["Id"], force=True)


def errors_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_a_charon_killed_by_hand_ends_the_run_in_one_line(backend_name: str) -> None:
    with mid_run(backend_name) as (process, state):
        node_of(state, "fe").run(["sh", "-c", "kill -9 $(cat /run/charon.pid)"])
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert errors_of(err) == [
        "failover-lab: error: fe: charon exited during the run (exit code -9); was it killed by hand? "
        "The run is abandoned and its lab torn down"
    ]
    assert remains(backend_name, state.topology.qualified) == []


def test_a_node_removed_by_hand_ends_the_run_in_one_line(backend_name: str) -> None:
    with mid_run(backend_name) as (process, state):
        remove_by_hand(state, "be2")
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    [line] = errors_of(err)
    assert line.startswith("failover-lab: error: be2: the node is gone ("), line
    assert "Traceback" not in err
    assert remains(backend_name, state.topology.qualified) == []


def test_status_names_a_lab_whose_run_was_killed_and_clean_removes_it(backend_name: str) -> None:
    with mid_run(backend_name) as (process, state):
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    status = cli("status")
    assert status.returncode == 0, status.stderr
    assert f"{state.name} " in status.stdout and f"its process {process.pid} is gone" in status.stdout
    assert "remove it: failover-lab clean" in status.stdout
    [entry] = [e for e in json.loads(cli("status", "--json").stdout) if e["name"] == state.name]
    assert entry["owner"] == process.pid and entry["owner_alive"] is False
    cleaned = cli("clean", "--backend", backend_name)
    assert state.topology.qualified in cleaned.stdout
    assert remains(backend_name, state.topology.qualified) == []
    assert state.name not in cli("status").stdout


@pytest.fixture(autouse=True)
def _nothing_left_behind(backend_name: str) -> Iterator[None]:
    """A failing test must not leave its lab for the next one."""
    before = {s.name for s in registry.registered()}
    yield
    for state in registry.registered():
        if state.name not in before and not state.in_use():
            registry.remove(backend(state.backend), state.topology.qualified)

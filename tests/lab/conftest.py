"""Lab tests run real labs on every backend that can run here (or the ones named with
--lab-backend). A backend that cannot run is skipped, unless FAILOVER_LAB_REQUIRE_LAB=1 (set by
CI) turns that into a failure. Tests that take ``backend_name`` run once per backend (or per
backend listed in their module's LAB_BACKENDS)."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import lab, registry, timers
from harness.backends import AUTO, BACKENDS, backend
from harness.errors import UsageError


def _unfit(name: str) -> str | None:
    try:
        backend(name).check()
    except UsageError as error:
        return str(error)
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        chosen = [b for b in metafunc.config.getoption("--lab-backend") or list(BACKENDS) if b != AUTO]
        only = getattr(metafunc.module, "LAB_BACKENDS", None)  # a module that concerns some backends only
        metafunc.parametrize("backend_name", [b for b in chosen if only is None or b in only], scope="module")


@pytest.fixture(scope="module")
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    reason = _unfit(name)
    if reason is not None:
        explicit = request.config.getoption("--lab-backend")
        if os.environ.get("FAILOVER_LAB_REQUIRE_LAB") == "1" and (explicit or name == "netns"):
            pytest.fail(f"lab tests on {name} are required here but cannot run: {reason}")
        pytest.skip(f"{name}: {reason}")
    return name


@pytest.fixture
def fast_lab(backend_name: str) -> Iterator[lab.Lab]:
    with lab.running(timers.profile("fast"), backend_name) as running:
        yield running


def remains(backend_name: str, qualified: str) -> list[str]:
    """Everything of a lab still on this host: backend objects (namespaces, containers,
    networks), its directory, mounts."""
    found = [f"{backend_name} objects" for name in [qualified] if name in backend(backend_name).leftovers()]
    if registry.directory(qualified).exists():
        found.append(f"directory {registry.directory(qualified)}")
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line}" for line in mounts.splitlines() if f"{qualified}-" in line or f"/{qualified}/" in line]
    return found


def alive(pids: list[int]) -> list[int]:
    """The processes among ``pids`` that still run (a zombie waiting for init to reap it does not)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
    return running


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout

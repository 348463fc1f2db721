"""Lab tests run real labs: root, strongSwan and namespaces. Where they cannot run they are
skipped, unless FAILOVER_LAB_REQUIRE_LAB=1 (set by CI) turns the skip into a failure."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import lab, registry, timers
from harness.errors import UsageError


def _unfit() -> str | None:
    try:
        lab.backend("netns").check()
        lab.check_strongswan()
    except UsageError as error:
        return str(error)
    return None


@pytest.fixture(autouse=True)
def _require_lab() -> None:
    reason = _unfit()
    if reason is None:
        return
    if os.environ.get("FAILOVER_LAB_REQUIRE_LAB") == "1":
        pytest.fail(f"lab tests are required here but cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture
def fast_lab() -> Iterator[lab.Lab]:
    with lab.running(timers.profile("fast")) as running:
        yield running


def remains(qualified: str, pids: list[int]) -> list[str]:
    """Everything of a lab still on this host: namespaces, processes, files, mounts."""
    found = []
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"namespace {line.split()[0]}" for line in namespaces.splitlines() if line.startswith(f"{qualified}-")]
    found += [f"process {pid}" for pid in pids if Path(f"/proc/{pid}").exists()]
    if registry.directory(qualified).exists():
        found.append(f"directory {registry.directory(qualified)}")
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line}" for line in mounts.splitlines() if qualified in line]
    return found

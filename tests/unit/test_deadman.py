"""The dead-man switch (harness/agents/deadman.py) as it runs on a host: the real script in a
temporary folder, healing with commands that leave marks. Deadlines come from its timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "harness" / "agents" / "deadman.py"
TIMEOUT_S = 0.5
MARGIN_S = 5.0
"""How long past its timeout the switch may take to act (its poll, a loaded machine)."""


def until(condition: Callable[[], bool], deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for whoever adopted it is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def arm(tmp_path: Path) -> tuple[int, Path, Path, Path]:
    heartbeat, heal, log, mark = (tmp_path / n for n in ("heartbeat", "heal.json", "deadman.log", "healed"))
    heartbeat.touch()
    heal.write_text(json.dumps([["touch", str(mark)], ["false"]]))
    started = subprocess.run(
        [sys.executable, str(SCRIPT), "--heartbeat", str(heartbeat), "--timeout", str(TIMEOUT_S),
         "--heal", str(heal), "--log", str(log)],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    return int(started.stdout), heartbeat, mark, log


@pytest.fixture
def reap() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_without_heartbeats_it_heals_and_exits(tmp_path: Path, reap: list[int]) -> None:
    pid, _, mark, log = arm(tmp_path)
    reap.append(pid)
    assert until(mark.exists, TIMEOUT_S + MARGIN_S)
    assert until(lambda: not alive(pid), MARGIN_S)
    text = log.read_text()
    assert "healing" in text and "false -> exit 1" in text


def test_heartbeats_keep_it_armed_until_they_stop(tmp_path: Path, reap: list[int]) -> None:
    pid, heartbeat, mark, _ = arm(tmp_path)
    reap.append(pid)
    end = time.monotonic() + 4 * TIMEOUT_S
    while time.monotonic() < end:
        heartbeat.touch()
        assert not mark.exists()
        time.sleep(TIMEOUT_S / 5)
    assert alive(pid)
    assert until(mark.exists, TIMEOUT_S + MARGIN_S)


def test_removing_the_heartbeat_disarms_it_until_it_is_back(tmp_path: Path, reap: list[int]) -> None:
    pid, heartbeat, mark, log = arm(tmp_path)
    reap.append(pid)
    heartbeat.unlink()
    assert until(lambda: "disarmed" in log.read_text(), MARGIN_S)
    time.sleep(2 * TIMEOUT_S)  # longer than its timeout: a disarmed switch does not heal
    assert alive(pid) and not mark.exists()
    heartbeat.touch()  # armed again: the next disruption
    assert until(mark.exists, TIMEOUT_S + MARGIN_S)


def test_without_a_heartbeat_file_it_sleeps_until_the_lab_is_gone(tmp_path: Path, reap: list[int]) -> None:
    pid, heartbeat, mark, log = arm(tmp_path)
    reap.append(pid)
    heartbeat.unlink()
    (tmp_path / "heal.json").unlink()
    assert until(lambda: not alive(pid), MARGIN_S)
    assert not mark.exists() and "the heal file is gone" in log.read_text()


def test_sigterm_disarms_it(tmp_path: Path, reap: list[int]) -> None:
    pid, _, mark, log = arm(tmp_path)
    reap.append(pid)
    os.kill(pid, signal.SIGTERM)
    assert until(lambda: not alive(pid), MARGIN_S)
    assert not mark.exists()
    assert "stopped: SIGTERM" in log.read_text()


def test_it_outlives_the_session_that_started_it(tmp_path: Path, reap: list[int]) -> None:
    """Started from a process group that then gets SIGHUP (an SSH session ending), it keeps watching."""
    pid, _, mark, _ = arm(tmp_path)
    reap.append(pid)
    assert os.getsid(pid) == pid
    os.kill(pid, signal.SIGHUP)
    assert alive(pid)
    assert until(mark.exists, TIMEOUT_S + MARGIN_S)


def test_now_heals_at_once_in_the_foreground(tmp_path: Path) -> None:
    heal, log, mark = tmp_path / "heal.json", tmp_path / "deadman.log", tmp_path / "healed"
    heal.write_text(json.dumps([["false"], ["touch", str(mark)]]))
    subprocess.run(
        [sys.executable, str(SCRIPT), "--heal", str(heal), "--now", "--log", str(log)],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    assert mark.exists()  # a command that fails does not stop the rest
    assert "false -> exit 1" in log.read_text()


def test_without_now_it_needs_a_heartbeat(tmp_path: Path) -> None:
    heal = tmp_path / "heal.json"
    heal.write_text("[]")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--heal", str(heal)], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 2 and "--heartbeat and --timeout are needed" in done.stderr


def test_now_stops_the_switch_watching_the_same_heal_file_first(tmp_path: Path, reap: list[int]) -> None:
    pid, heartbeat, mark, log = arm(tmp_path)
    reap.append(pid)
    heartbeat.unlink()  # disarmed, watching
    argv = [sys.executable, str(SCRIPT), "--heal", str(tmp_path / "heal.json"), "--now", "--log", str(log)]
    subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
    assert not alive(pid)
    assert mark.exists() and "stopped: SIGTERM" in log.read_text()

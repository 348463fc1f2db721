"""The lab commands as a person sees them: `up` and `status` lines (whole commands, the backend
and the policy), when `status` warns about the VIP, `exec` in a pipe and with a missing
command, repeated --profile, and report folders that cannot be written."""

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness import cli, lab, lab_commands, registry, report, result, runs
from harness.registry import State

from .fakes import FakeProcess, fake_lab
from .outcomes import synthetic_outcome

ROOT = Path(__file__).resolve().parents[2]
NARROW = 50
"""A terminal narrower than any command line printed: rich must not break them."""


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(runs, "console", Console(file=buffer, width=NARROW))
    return buffer


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_up_prints_whole_commands_the_backend_and_the_policy(
    shown: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_lab(policy_name="mail-passwords")

    @contextlib.contextmanager
    def running(*args: object, **kwargs: object) -> Iterator[lab.Lab]:
        yield fake.lab

    monkeypatch.setattr(lab, "running", running)
    assert cli.main(["up", "--policy", "mail-passwords"]) == 0
    lines = shown.getvalue().splitlines()
    assert lines[0].startswith("lab lab0 is up (backend fake, policy mail-passwords, profile fast, strongSwan 5.9.8)")
    assert "  failover-lab exec lab0 fe -- swanctl --list-sas" in lines
    assert "show it: failover-lab status" in lines and "remove it: failover-lab down lab0" in lines


def test_up_takes_one_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["up", "--profile", "fast", "--profile", "win2000"]) == 2
    assert one_error_line(capsys) == (
        "failover-lab: error: up brings up one lab with one profile, not fast, win2000: give --profile once"
    )


def entry(owner: int | None, alive: bool, *holders: str) -> dict[str, Any]:
    nodes = {
        name: {"address": f"198.18.0.{i}", "charon": "running", "sas": [], "vip": name in holders}
        for i, name in enumerate(("fe", "be1", "be2", "dc"), 10)
    }
    nodes["fe"]["vip"] = None
    return {
        "name": "lab0",
        "profile": "fast",
        "policy": "mail-all",
        "backend": "netns",
        "owner": owner,
        "owner_alive": alive,
        "vip": "198.18.0.100",
        "nodes": nodes,
    }


def status_of(reported: dict[str, Any], monkeypatch: pytest.MonkeyPatch, shown: io.StringIO) -> list[str]:
    state = State("lab0", 0, reported["backend"], "fast", reported["policy"], None)
    monkeypatch.setattr(registry, "registered", lambda: [state])
    monkeypatch.setattr(lab, "status", lambda state: reported)
    shown.truncate(0)
    assert cli.main(["status"]) == 0
    return shown.getvalue().splitlines()


def test_status_names_backend_and_policy_and_keeps_commands_whole(
    monkeypatch: pytest.MonkeyPatch, shown: io.StringIO
) -> None:
    lines = status_of(entry(None, False, "be1", "be2"), monkeypatch, shown)
    assert lines[0] == "lab lab0 (backend netns, policy mail-all, profile fast, VIP 198.18.0.100): left running by `up`"
    assert lines[1] == "  remove it: failover-lab down lab0"
    assert lines[-1].startswith("warning: both be1 and be2 hold the VIP 198.18.0.100")
    assert lines[-1].endswith("`failover-lab down lab0` removes it")


def test_status_leaves_the_vip_of_a_live_run_alone(monkeypatch: pytest.MonkeyPatch, shown: io.StringIO) -> None:
    """A run may be in the middle of a failover: both back-ends or none hold the VIP for a moment."""
    for holders in (("be1", "be2"), ()):
        assert lab_commands.vip_warning(entry(4242, True, *holders)) is None
        assert lab_commands.vip_warning(entry(4242, False, *holders)) is not None  # its process is gone
        assert lab_commands.vip_warning(entry(None, False, *holders)) is not None  # left by `up`
    lines = status_of(entry(4242, True, "be1", "be2"), monkeypatch, shown)
    assert lines[0].endswith("used by process 4242, which removes it when done")
    assert not any("warning" in line for line in lines)
    gone = status_of(entry(4242, False), monkeypatch, shown)
    assert gone[1] == "  remove it: failover-lab clean"
    assert gone[-1].startswith("warning: no back-end holds the VIP")


def test_every_profile_named_runs_with_every_fault(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    planned: list[tuple[str, str]] = []

    def measure_runs(plan: runs.Plan, *args: object) -> list[result.Result]:
        planned.extend((profile.name, fault) for profile, fault, _ in plan)
        return [result.to_json(synthetic_outcome(4.8))]

    monkeypatch.setattr(runs, "measure_runs", measure_runs)
    monkeypatch.setattr(cli, "backend", lambda *args: None)
    monkeypatch.setattr(runs, "console", Console(file=io.StringIO(), width=200))
    argv = ["run", "--fault", "graceful,crash", "--profile", "fast", "--profile", "win2000,win2003-nlbsflags"]
    assert cli.main([*argv, "--time-scale", "1/30"]) == 0
    assert planned == [
        (name, fault) for name in ("fast", "win2000", "win2003-nlbsflags") for fault in ("graceful", "crash")
    ]


def test_a_profile_named_twice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--fault", "crash", "--profile", "fast", "--profile", "win2000,fast"]) == 2
    assert one_error_line(capsys) == "failover-lab: error: --profile fast is named twice: name each profile once"


def test_a_command_the_node_lacks_exits_127_with_the_shells_line() -> None:
    """What `exec` has the node run, run here: the node images' /bin/sh is the same dash."""
    missing = subprocess.run(lab_commands.exec_argv("fe", ["no-such-command-here"]), capture_output=True, text=True)
    assert missing.returncode == 127
    assert missing.stderr.count("\n") == 1 and "no-such-command-here: not found" in missing.stderr
    found = subprocess.run(
        lab_commands.exec_argv("fe", ["sh", "-c", 'echo "$0" "$1"; exit 3', "a b", "c"]), capture_output=True
    )
    assert (found.returncode, found.stdout) == (3, b"a b c\n")  # arguments as given, the command's exit code


class ExecNode:
    """A node whose one process prints ``lines`` and exits ``code``."""

    def __init__(self, lines: Iterator[str], code: int = 0) -> None:
        self.process = FakeProcess("fe", [], fake_lab().journal, lines, code)
        self.spawned: list[list[str]] = []

    def spawn(self, argv: list[str], capture: bool = False) -> FakeProcess:
        self.spawned.append(list(argv))
        return self.process

    def close(self) -> None:
        pass


def exec_on(node: ExecNode, monkeypatch: pytest.MonkeyPatch) -> None:
    class Backend:
        def nodes(self, *args: object) -> dict[str, ExecNode]:
            return {"fe": node}

    monkeypatch.setattr(lab_commands, "pick_lab", lambda name: State("lab0", 0, "netns", "fast", "all-traffic", None))
    monkeypatch.setattr(State, "lab_backend", lambda self: Backend())


def test_exec_runs_the_command_through_the_shell_and_returns_its_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    node = ExecNode(iter(["sh: 1: exec: nope: not found\n"]), 127)
    exec_on(node, monkeypatch)
    assert cli.main(["exec", "fe", "--", "nope", "-x"]) == 127
    assert node.spawned == [lab_commands.exec_argv("fe", ["nope", "-x"])]
    assert capsys.readouterr().out == "sh: 1: exec: nope: not found\n"


def test_exec_whose_reader_goes_away_stops_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class GoneReader(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    node = ExecNode(iter(["one\n", "two\n"]))
    exec_on(node, monkeypatch)
    monkeypatch.setattr(sys, "stdout", GoneReader())
    assert cli.main(["exec", "fe", "--", "swanctl", "--log"]) == 141
    assert [entry.op for entry in node.process.journal.entries][-2:] == ["stop", "close"]
    assert capsys.readouterr().err == ""


def test_exec_into_head_exits_quietly(tmp_path: Path) -> None:
    """The whole interpreter, as `failover-lab exec ... | head -1` runs it: no traceback, no
    "Exception ignored" at exit, the exit code of a command a pipe closed (128 + SIGPIPE)."""
    script = (
        "import itertools, sys\n"
        "from harness import cli\n"
        "from tests.unit.test_cli_commands import ExecNode, exec_on\n"
        "class Patch:\n"
        "    def setattr(self, target, name, value): setattr(target, name, value)\n"
        "exec_on(ExecNode(f'line {i}\\n' for i in itertools.count()), Patch())\n"
        "sys.exit(cli.main(['exec', 'fe', '--', 'yes']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == b"line 0\n"
    process.stdout.close()
    assert process.wait(30) == 141
    assert process.stderr.read() == b""


def test_a_report_folder_that_cannot_be_written_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(runs, "console", Console(file=io.StringIO(), width=200))
    folder = tmp_path / "results"
    result.save([result.to_json(synthetic_outcome(4.8))], folder)
    (folder / "plots").write_text("a file where the plots folder goes")
    assert cli.main(["report", str(folder)]) == 2
    assert one_error_line(capsys) == (
        f"failover-lab: error: cannot write {folder / 'plots'}: File exists; fix its permissions or use a folder "
        "you can write to"
    )
    (folder / "plots").unlink()

    def refused(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", refused)
    assert cli.main(["report", str(folder)]) == 2
    assert one_error_line(capsys) == (
        f"failover-lab: error: cannot write {folder / 'report.md'}: Permission denied; fix its permissions or use a "
        "folder you can write to"
    )


def test_an_out_folder_that_cannot_be_written_is_refused_before_any_lab(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(runs, "measure_runs", lambda *args: pytest.fail("a lab was built"))
    monkeypatch.setattr(cli, "backend", lambda *args: None)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["run", "--fault", "crash", "--out", str(blocker / "out")]) == 2
    assert one_error_line(capsys) == (
        f"failover-lab: error: --out {blocker / 'out'}: {blocker} is a file, not a folder; choose another path"
    )
    assert cli.main(["demo", "--out", str(blocker)]) == 2
    assert "is a file, not a folder" in one_error_line(capsys)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a read-only file system answers
    assert cli.main(["run", "--fault", "crash", "--json", str(tmp_path / "r.json")]) == 2
    assert one_error_line(capsys) == (
        f"failover-lab: error: --json {tmp_path / 'r.json'}: cannot write in {tmp_path}; fix its permissions or "
        "choose another path"
    )
    monkeypatch.undo()
    report.require_writable(tmp_path / "new" / "deeper", "--out x")  # created later, under a folder we can write
    assert not (tmp_path / "new").exists()

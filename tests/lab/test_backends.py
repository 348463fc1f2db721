"""The one backend contract, with identical assertions against every backend that can run here
(after pytest-testinfra's test_backends.py): run, spawn, put, vici and agents on real nodes."""

import signal
from collections.abc import Iterator

import pytest

from harness import lab, strongswan, timers
from harness.errors import CommandError


@pytest.fixture(scope="module")
def shared_lab(backend_name: str) -> Iterator[lab.Lab]:
    with lab.running(timers.profile("fast"), backend_name) as running:
        yield running


def test_run_reports_exit_code_and_separate_streams(shared_lab: lab.Lab) -> None:
    result = shared_lab.fe.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert shared_lab.fe.run(["cat"], input="to stdin\n").stdout == "to stdin\n"


def test_a_failed_command_raises_with_node_argv_code_and_stderr(shared_lab: lab.Lab) -> None:
    with pytest.raises(CommandError) as error:
        shared_lab.nodes["be2"].run(["sh", "-c", "echo broken >&2; exit 4"])
    assert (error.value.node, error.value.returncode) == ("be2", 4)
    assert error.value.argv == ["sh", "-c", "echo broken >&2; exit 4"]
    assert "broken" in str(error.value)


def test_put_writes_a_private_file(shared_lab: lab.Lab) -> None:
    node = shared_lab.nodes["be1"]
    path = node.workdir / "contract.txt"
    node.put(path, "hello\n")
    assert node.run(["cat", str(path)]).stdout == "hello\n"
    assert node.run(["stat", "-c", "%a %u", str(path)]).stdout.split() == ["600", "0"]


def test_spawn_captures_lines_and_signals_the_process_it_started(shared_lab: lab.Lab) -> None:
    node = shared_lab.nodes["be2"]
    process = node.spawn(
        ["sh", "-c", 'echo "$GREETING"; echo oops >&2; exec sleep 60'], env={"GREETING": "hi"}, capture=True
    )
    lines = process.lines()
    assert next(lines).strip() == "hi"
    assert next(lines).strip() == "oops"  # stderr merged into the captured output
    assert process.pid > 0 and process.alive()
    process.signal(signal.SIGTERM)
    assert process.wait(5) != 0
    assert not process.alive()
    process.close()


def test_spawn_without_capture_and_stop(shared_lab: lab.Lab) -> None:
    process = shared_lab.nodes["be2"].spawn(["sleep", "60"])
    assert process.alive()
    process.stop(timeout=2)
    assert not process.alive()


def test_vici_reaches_each_node_s_own_charon(shared_lab: lab.Lab) -> None:
    for name in ("fe", "be1", "be2"):
        assert strongswan.version(shared_lab.nodes[name]) == shared_lab.strongswan_version
    with pytest.raises(OSError):
        shared_lab.nodes["sw"].vici(timeout=2)  # no charon on the switch


def test_agents_run_on_the_nodes(shared_lab: lab.Lab) -> None:
    result = shared_lab.fe.run([*shared_lab.fe.agent("probe"), "--help"])
    assert "--target" in result.stdout

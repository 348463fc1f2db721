"""The one backend contract, with identical assertions against every backend that can run here
(after pytest-testinfra's test_backends.py): run, spawn, put, vici and agents on real nodes, and
the same error types for the same failures everywhere."""

import signal
import time
from collections.abc import Iterator

import pytest

from harness import charon, lab, timers
from harness.errors import CharonError, CommandError, CommandTimeout


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
        assert charon.version(shared_lab.nodes[name]) == shared_lab.strongswan_version
    if "sw" in shared_lab.nodes:  # a lab of the harness's own has a switch, the user's hosts none
        with pytest.raises(CharonError, match="sw: charon: vici does not answer"):
            shared_lab.nodes["sw"].vici(timeout=2)  # no charon on the switch


def test_agents_run_on_the_nodes(shared_lab: lab.Lab) -> None:
    result = shared_lab.fe.run([*shared_lab.fe.agent("probe"), "--help"])
    assert "--target" in result.stdout


def test_a_command_that_overruns_is_killed_and_raises_command_timeout(shared_lab: lab.Lab) -> None:
    node = shared_lab.nodes["be2"]
    pid_file = node.workdir / "overrun.pid"
    script = f"echo $$ > {pid_file}; exec sleep 30"
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as error:
        node.run(["sh", "-c", script], timeout=0.5)
    assert time.monotonic() - started < 5
    assert (error.value.node, error.value.timeout) == ("be2", 0.5)
    assert str(error.value) == f"be2: `sh -c {script}` did not finish within 0.5 s and was killed"
    still = node.run(["sh", "-c", f"kill -0 $(cat {pid_file})"], check=False)
    assert still.returncode != 0  # killed, not left running


def test_a_missing_command_is_a_command_error(shared_lab: lab.Lab) -> None:
    with pytest.raises(CommandError) as error:
        shared_lab.fe.run(["no-such-command-here"])
    assert error.value.returncode == 127


def test_vici_failures_are_charon_errors(shared_lab: lab.Lab) -> None:
    with pytest.raises(CharonError, match="fe: charon: vici failed"), charon.session(shared_lab.fe) as session:
        list(session.initiate({"child": "no-such-child", "timeout": "1000"}))  # streamed: runs when read


def test_a_node_runs_many_commands_over_one_connection(shared_lab: lab.Lab) -> None:
    """Commands, processes and vici sessions side by side on one node's agent."""
    node = shared_lab.nodes["be1"]
    process = node.spawn(["sh", "-c", "while true; do echo tick; sleep 0.01; done"], capture=True)
    with charon.session(node) as session:
        results = [node.run(["echo", str(n)]).stdout for n in range(20)]
        assert session.version()
    assert results == [f"{n}\n" for n in range(20)]
    assert next(process.lines()) == "tick\n"
    process.stop()
    assert not process.alive()

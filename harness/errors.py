"""The exceptions users can see, each rendering as one line that names the problem and the fix.

Foreign exceptions (vici's, the Docker SDK's, socket errors, timeouts) are translated into these
at the one place that talks to the foreign code: the node agent's link (harness.agent), charon's
vici session (harness.charon) and the Docker engine (harness.backends.docker). Nothing above
them catches or sees anything else.

Owns: the exception hierarchy. The CLI prints ``str(error)`` and exits with ``exit_code``.
"""

from __future__ import annotations

from collections.abc import Sequence


class LabError(Exception):
    """Base of every error the harness reports to a user; exit code 1 unless said otherwise."""

    exit_code = 1


class UsageError(LabError):
    """Bad input or an unfit environment: nothing was built; exit code 2."""

    exit_code = 2


def _command(argv: Sequence[str]) -> str:
    return " ".join(argv)


class CommandError(LabError):
    """A command on a node failed; carries everything needed to understand why."""

    def __init__(self, node: str, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.node = node
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(f"{node}: `{_command(self.argv)}` exited {returncode}: {last}")


class CommandTimeout(LabError):
    """A command on a node did not finish in time; it was killed (every backend raises this)."""

    def __init__(self, node: str, argv: Sequence[str], timeout: float) -> None:
        self.node = node
        self.argv = list(argv)
        self.timeout = timeout
        super().__init__(f"{node}: `{_command(self.argv)}` did not finish within {timeout:g} s and was killed")


class NodeLost(LabError):
    """The harness lost its connection to a node: the node was removed, stopped or its engine
    went away while the harness still needed it."""

    def __init__(self, node: str, detail: str) -> None:
        self.node = node
        super().__init__(
            f"{node}: the node is gone ({detail}); was it removed by hand, or did its engine stop? "
            "The harness tears its lab down; `failover-lab clean` removes anything left"
        )


class CharonError(LabError):
    """A node's charon cannot be reached over vici, or refused a vici command."""

    def __init__(self, node: str, detail: str) -> None:
        self.node = node
        super().__init__(f"{node}: charon: {detail}")


class NotRecovered(LabError):
    """The lab did not reach the awaited state before the deadline the timer model allows."""

"""The exceptions users can see, each rendering as one line that names the problem and the fix.

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


class CommandError(LabError):
    """A command on a node failed; carries everything needed to understand why."""

    def __init__(self, node: str, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.node = node
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(f"{node}: `{' '.join(self.argv)}` exited {returncode}: {last}")


class NotRecovered(LabError):
    """The lab did not reach the awaited state before the deadline the timer model allows."""

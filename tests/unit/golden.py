"""Golden files for error messages: <case>.yaml gives the error in <case>.txt (with the file shown
as FILE), one line per problem. Regenerate after an intended change with UPDATE_GOLDEN=1."""

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import UsageError


def assert_golden_error(case: Path, load: Callable[[Path], object]) -> None:
    with pytest.raises(UsageError) as error:
        load(case)
    message = str(error.value).replace(str(case), "FILE")
    assert all(line.startswith("FILE: ") for line in message.splitlines()), message
    golden = case.with_suffix(".txt")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(message + "\n")
    assert message == golden.read_text().rstrip("\n")

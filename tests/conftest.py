"""Options for the whole test tree (pytest registers options only from top-level conftests)."""

import pytest

from harness.backends import BACKENDS


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lab-backend",
        action="append",
        choices=list(BACKENDS),
        help="run the lab tests on this backend (repeatable; default: every backend that can run here)",
    )

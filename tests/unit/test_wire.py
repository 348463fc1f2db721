"""What the capture's counts say about how ESP crossed the wire."""

import pytest

from harness import wire


@pytest.mark.parametrize(
    ("raw", "in_udp", "said"),
    [(120, 0, "raw"), (0, 120, "udp"), (3, 120, "raw+udp"), (0, 0, "none")],
)
def test_encapsulation_names_what_was_seen(raw: int, in_udp: int, said: str) -> None:
    assert wire.encapsulation(raw, in_udp) == said

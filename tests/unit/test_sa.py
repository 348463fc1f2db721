"""Kernel SAs read from ``ip xfrm state``."""

from harness import sa

XFRM_STATE = """\
src 198.18.0.100 dst 198.18.0.10
\tproto esp spi 0xc8a1b2c3 reqid 1 mode transport
\treplay-window 0 flag af-unspec
\taead rfc4106(gcm(aes)) 0x0102 128
\tanti-replay context: seq 0x0, oseq 0x12, bitmap 0x00000000
\tsel src 198.18.0.100/32 dst 198.18.0.10/32 proto tcp sport 110
src 198.18.0.10 dst 198.18.0.100
\tproto esp spi 0xc1d2e3f4 reqid 1 mode transport
\treplay-window 32 flag af-unspec
\tsel src 198.18.0.10/32 dst 198.18.0.100/32 proto tcp dport 110
"""


def test_every_sa_of_ip_xfrm_state_with_its_selector() -> None:
    assert sa.parse_xfrm_state(XFRM_STATE) == [
        sa.KernelSa("198.18.0.100", "198.18.0.10", "esp", "0xc8a1b2c3", "transport",
                    "src 198.18.0.100/32 dst 198.18.0.10/32 proto tcp sport 110"),
        sa.KernelSa("198.18.0.10", "198.18.0.100", "esp", "0xc1d2e3f4", "transport",
                    "src 198.18.0.10/32 dst 198.18.0.100/32 proto tcp dport 110"),
    ]  # fmt: skip


def test_no_sa_reads_as_none() -> None:
    assert sa.parse_xfrm_state("") == []

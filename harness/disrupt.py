"""The harness's own firewall table that cuts a real host off its lab interface (the ssh backend's
`crash` and `link-cut`), and the commands that remove it again (teardown, the dead-man switch).

A real host's link is not the harness's to take down: the table drops every packet in and out of
the lab interface only, in a table or chains of the harness's own (``failover_lab`` /
``FAILOVER-LAB-*``), so the host's own rules and its management interface (the SSH connection)
are never touched, and healing is deleting what the harness added. nftables where the kernel has
its families; iptables-legacy where it does not (User-mode Linux test hosts).

Owns: the rules' text and the heal commands. Not: running them (the ssh backend, the dead-man
switch), nor the lab's fail-closed guard (harness.guard).
"""

from __future__ import annotations

import re

from harness.node import Firewall

TABLE = "failover_lab"
CHAIN_IN, CHAIN_OUT = "FAILOVER-LAB-IN", "FAILOVER-LAB-OUT"
INTERFACE = re.compile(r"^[^/:\s]{1,15}$")


def isolate(interface: str, firewall: Firewall) -> str:
    """A shell script (run as root on the host) that drops everything in and out of ``interface``
    and nothing else; running it twice leaves one table."""
    _check(interface)
    if firewall == "nft":
        return (
            f"nft -f - <<'EOF'\n"
            f"table inet {TABLE}\n"
            f"delete table inet {TABLE}\n"
            f"table inet {TABLE} {{\n"
            f"    chain in {{ type filter hook input priority -300; policy accept; "
            f'iifname "{interface}" counter drop; }}\n'
            f"    chain out {{ type filter hook output priority -300; policy accept; "
            f'oifname "{interface}" counter drop; }}\n'
            f"    chain through {{ type filter hook forward priority -300; policy accept; "
            f'iifname "{interface}" counter drop; oifname "{interface}" counter drop; }}\n'
            f"}}\n"
            f"EOF\n"
        )
    lines = []
    for chain, hook, side in ((CHAIN_IN, "INPUT", "-i"), (CHAIN_OUT, "OUTPUT", "-o")):
        lines += [
            f"iptables-legacy -N {chain} 2>/dev/null || iptables-legacy -F {chain}",
            f"iptables-legacy -A {chain} {side} {interface} -j DROP",
            f"iptables-legacy -C {hook} -j {chain} 2>/dev/null || iptables-legacy -I {hook} 1 -j {chain}",
        ]
    return "\n".join(lines) + "\n"


def heal(firewall: Firewall) -> list[list[str]]:
    """argv lists that remove the table (each harmless when it is already gone: the dead-man
    switch runs them all whatever each returns)."""
    if firewall == "nft":
        return [["nft", "delete", "table", "inet", TABLE]]
    commands = []
    for chain, hook in ((CHAIN_IN, "INPUT"), (CHAIN_OUT, "OUTPUT")):
        commands += [
            ["iptables-legacy", "-D", hook, "-j", chain],
            ["iptables-legacy", "-F", chain],
            ["iptables-legacy", "-X", chain],
        ]
    return commands


def _check(interface: str) -> None:
    if not INTERFACE.match(interface):
        raise ValueError(f"not an interface name: {interface!r}")

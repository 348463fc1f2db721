"""An SSH inventory a lab could run on (every node has a host), for the tests of the ssh
backend's options: nothing connects to its hosts."""

from pathlib import Path

HOSTS = """\
vip: 10.1.0.100/24
hosts:
  fe: {host: 192.0.2.1, lab_interface: eth1, lab_address: 10.1.0.10/24}
  be1: {host: 192.0.2.2, lab_interface: eth1, lab_address: 10.1.0.11/24}
  be2: {host: 192.0.2.3, lab_interface: eth1, lab_address: 10.1.0.12/24}
  dc: {host: 192.0.2.4, lab_interface: eth1, lab_address: 10.1.0.20/24}
"""


def write_inventory(path: Path) -> Path:
    """``path``, written as an inventory of four hosts (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HOSTS)
    return path

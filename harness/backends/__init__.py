"""The backends that can run a lab, picked by name from one dict.

Owns: the Backend protocol and the name -> backend table. Not: any backend's mechanics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from harness.backends.netns import NetnsBackend
from harness.errors import UsageError
from harness.node import Node
from harness.topology import Topology


class Backend(Protocol):
    """Creates and destroys the nodes of a lab; everything else goes through Node."""

    name: str
    wire_interface: str
    """Interface of the switch node on which every frame of the lab can be captured."""

    def check(self) -> None:
        """Raise UsageError naming what to install when this backend cannot run here."""
        ...

    def create(self, topology: Topology, labdir: Path) -> Mapping[str, Node]:
        """Build the lab's nodes and switch; the VIP starts on be1."""
        ...

    def nodes(self, topology: Topology, labdir: Path) -> Mapping[str, Node]:
        """Node objects for a lab that already exists."""
        ...

    def destroy(self, qualified: str) -> None:
        """Remove everything of the lab with this qualified name; harmless if nothing is left."""
        ...

    def leftovers(self) -> set[str]:
        """Qualified names of every lab of ours this backend finds on the host."""
        ...


BACKENDS: dict[str, Backend] = {"netns": NetnsBackend()}


def backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}") from None

"""The lab's containers as docker-compose.yml describes them, for the Docker SDK.

The harness creates each lab's project itself through the SDK (network, volumes, containers
started side by side) instead of running `docker compose up`: Debian's compose (1.29, Python)
costs about 0.4 s more per lab. docker-compose.yml stays the one description of a node
container (what a plain `docker compose up` starts too); this module reads the few keys the
file uses, with compose's ``${VAR:-default}`` interpolation, and refuses any other key, so the
file and the harness's labs cannot drift apart. Objects carry compose's project and service
labels, so the backend finds them as it finds compose's own.

Owns: reading docker-compose.yml into container, network and volume specs. Not: the Docker
engine (harness.backends.docker).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UsageError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
VOLUME_LABEL = "com.docker.compose.volume"
NETWORK_LABEL = "com.docker.compose.network"
SERVICE_KEYS = {
    "image",
    "build",
    "pull_policy",
    "init",
    "cap_add",
    "devices",
    "volumes",
    "environment",
    "hostname",
    "networks",
    "network_mode",
    "profiles",
    "command",
}
"""What the harness understands of a service ("build", "pull_policy", "profiles" and "command"
are compose's business: the harness builds the image itself and never starts the harness)."""
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Service:
    """One container of a lab."""

    name: str
    image: str
    init: bool = False
    cap_add: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    """``<volume>:<path>`` with the project's volume name."""
    environment: Mapping[str, str] = field(default_factory=dict)
    hostname: str | None = None
    network_mode: str | None = None
    """``host``, or None for the project's network."""
    address: str | None = None
    """The service's IPv4 address on the project's network."""


@dataclass(frozen=True)
class Network:
    name: str
    bridge: str
    subnet: str


@dataclass(frozen=True)
class Volume:
    name: str
    driver_opts: Mapping[str, str]


@dataclass(frozen=True)
class Project:
    name: str
    network: Network
    volumes: tuple[Volume, ...]
    services: dict[str, Service]

    def labels(self, service: str | None = None) -> dict[str, str]:
        found = {PROJECT_LABEL: self.name}
        return found if service is None else {**found, SERVICE_LABEL: service, ONEOFF_LABEL: "False"}


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """compose's ``${VAR}`` and ``${VAR:-default}`` in every string of ``value``."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return value


def _service(name: str, spec: dict[str, Any], project: str) -> Service:
    unknown = sorted(set(spec) - SERVICE_KEYS)
    if unknown:
        raise UsageError(f"docker-compose.yml: services.{name}: the harness does not understand {', '.join(unknown)}")
    networks = spec.get("networks") or {}
    address = next((settings or {}).get("ipv4_address") for settings in networks.values()) if networks else None
    volumes = tuple(f"{project}_{volume}" for volume in spec.get("volumes", []))
    return Service(
        name=name,
        image=spec["image"],
        init=bool(spec.get("init", False)),
        cap_add=tuple(spec.get("cap_add", ())),
        devices=tuple(spec.get("devices", ())),
        volumes=volumes,
        environment={key: str(value) for key, value in (spec.get("environment") or {}).items()},
        hostname=spec.get("hostname"),
        network_mode=spec.get("network_mode"),
        address=address,
    )


def load(path: Path, project: str, env: Mapping[str, str], services: tuple[str, ...]) -> Project:
    """The named services of the compose file at ``path`` for ``project`` (``env`` fills its
    variables), with its one network and its volumes."""
    document = interpolate(yaml.safe_load(path.read_text()), env)
    [(network_key, network)] = document["networks"].items()
    [pool] = network["ipam"]["config"]
    bridge = network.get("driver_opts", {}).get("com.docker.network.bridge.name", f"{project}_{network_key}")
    volumes = tuple(
        Volume(f"{project}_{name}", dict((settings or {}).get("driver_opts", {})))
        for name, settings in (document.get("volumes") or {}).items()
    )
    return Project(
        name=project,
        network=Network(f"{project}_{network_key}", bridge, pool["subnet"]),
        volumes=volumes,
        services={name: _service(name, document["services"][name], project) for name in services},
    )

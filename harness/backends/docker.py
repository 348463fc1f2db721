"""Docker backend: every node is a container of a compose project (one project per lab, from the
top-level docker-compose.yml), driven through the Docker SDK.

Each node container runs the node agent (harness/agents/node_agent.py) as its main process,
listening on a unix socket inside the container. The harness reaches it over one persistent
`docker exec -i` stream per node that runs the agent's relay mode: every command, process, file
and vici session of the node goes through that one stream (no `docker exec` per command, no
socket outside the container, nothing on the lab wire). The agent dies with its container. The
switch is a container in the host's network namespace that captures on the lab's bridge (named
after the lab). Nodes are found by compose labels; several labs share one engine.

Every call into the Docker SDK or the compose CLI goes through ``engine_errors``, which turns
what they raise into the harness's own errors: nothing from docker or requests leaks upward.

The node image failover-lab-node:<release> is built from lab/Dockerfile when missing or when its
sources changed; its base debian:<release>-slim comes from a registry or lab/base-image.sh.

Owns: the compose project, the containers and the streams to their agents. Not: what runs there.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from harness import timers
from harness.agent import AGENT_SCRIPT, AgentNode
from harness.backends import compose_file
from harness.backends.compose_file import ONEOFF_LABEL, PROJECT_LABEL, SERVICE_LABEL
from harness.errors import LabError, UsageError
from harness.inventory import ClusterManager
from harness.node import Node
from harness.strongswan import Datapath
from harness.topology import FIRST_OWNER, NODES, PREFIX, Placement, Topology
from harness.wire import CapturePoint

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
IMAGE = "failover-lab-node"
RELEASES = ("trixie", "bookworm")
DEFAULT_RELEASE = "trixie"
IMAGE_SOURCES = (
    "lab/Dockerfile",
    "lab/entrypoint.sh",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "harness").rglob("*.py")),
)
SOURCE_LABEL = "failover-lab.sources"
AGENTS = PurePosixPath("/opt/failover-lab/harness/agents")
WORKDIR = PurePosixPath("/lab")
AGENT_SOCKET = WORKDIR / "agent.sock"
"""Where the node's agent listens inside the container (lab/entrypoint.sh starts it)."""
AGENT_START_S = 10.0
PYTHON = ("python3", "-I")
SWITCH = "sw"
STDOUT = 1


def _client() -> Any:
    import docker

    return docker.from_env(timeout=120)


@contextlib.contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Turn what the Docker SDK raises (its own errors, requests' and socket errors, all OSError
    or DockerException) into one LabError line: the engine stopped, or refused."""
    import docker

    try:
        yield
    except docker.errors.APIError as error:
        raise LabError(f"Docker engine refused {doing}: {error.explanation or error}") from None
    except (docker.errors.DockerException, OSError) as error:
        raise LabError(f"Docker engine unreachable while {doing} ({error}): is it still running?") from None


class ExecStream:
    """A running exec's stdin and stdout as a stream socket: stdout frames are demultiplexed
    (stderr frames dropped) and timeouts never lose a partly read frame."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw  # the SDK's socket wrapper (it holds the HTTP response as _response)
        self._socket: socket.socket = getattr(raw, "_sock", raw)
        self._pending = b""
        self._payload = b""
        self._left = 0
        self._stream = STDOUT

    def _take(self, n: int) -> bytes:
        while len(self._pending) < n:
            try:
                chunk = self._socket.recv(65536)
            except TimeoutError:
                raise
            except OSError:  # closed under us (the process was stopped): the end of the stream
                raise EOFError from None
            if not chunk:
                raise EOFError
            self._pending += chunk
        data, self._pending = self._pending[:n], self._pending[n:]
        return data

    def recv(self, n: int) -> bytes:
        try:
            while not self._payload:
                if self._left == 0:
                    self._stream, _, _, _, self._left = struct.unpack(">BBBBI", self._take(8))
                    continue
                data = self._take(min(self._left, len(self._pending)) or 1)
                self._left -= len(data)
                if self._stream == STDOUT:
                    self._payload = data
        except EOFError:
            return b""
        chunk, self._payload = self._payload[:n], self._payload[n:]
        return chunk

    def sendall(self, data: bytes) -> None:
        self._socket.sendall(data)

    def settimeout(self, timeout: float | None) -> None:
        self._socket.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._socket.gettimeout()

    def shutdown(self, how: int) -> None:
        self._socket.shutdown(how)

    def close(self) -> None:
        """End the exec's streams and close the SDK's HTTP response that owns the socket (left
        to the garbage collector, it fails noisily at exit)."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        response = getattr(self._raw, "_response", None)
        if response is not None:
            response.close()
        with contextlib.suppress(OSError):
            self._raw.close()


def relay_stream(api: Any, container_id: str, name: str) -> ExecStream:
    """One `docker exec -i` of the agent's relay mode in the container: the node's persistent
    connection to its agent (the socket never leaves the container)."""
    relay = [*PYTHON, str(AGENTS / AGENT_SCRIPT), "--relay", str(AGENT_SOCKET), "--wait", str(AGENT_START_S)]
    created = api.exec_create(container_id, relay, stdin=True)
    stream = ExecStream(api.exec_start(created["Id"], socket=True))
    stream.settimeout(AGENT_START_S + 5)
    status = stream.recv(1)
    stream.settimeout(None)
    if status != b"+":
        stream.close()
        raise ConnectionRefusedError(f"{name}: the node's agent does not answer")
    return stream


def docker_node(name: str, container_id: str, api: Any) -> AgentNode:
    """The node whose agent runs as the main process of the container."""

    def connect() -> ExecStream:
        import docker

        try:
            return relay_stream(api, container_id, name)
        except docker.errors.APIError as error:  # the container is gone or stopped
            raise ConnectionError(str(error.explanation or error)) from None
        except docker.errors.DockerException as error:  # the engine is gone
            raise ConnectionError(str(error)) from None

    return AgentNode(name, WORKDIR, connect, PYTHON, AGENTS)


def sources_digest() -> str:
    """Hash of everything the node image is built from: a changed source means a rebuild."""
    digest = hashlib.sha256()
    for name in IMAGE_SOURCES:
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    return digest.hexdigest()[:16]


def _ipam(subnet: str) -> Any:
    import docker

    return docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) when the docker CLI has it, else docker-compose (v1 or v2)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise UsageError("docker compose is missing: apt-get install docker-compose, or use --backend netns")


class DockerBackend:
    """Labs as compose projects on a Docker engine."""

    datapath: Datapath = "libipsec"
    setup_allowance_s = timers.SETUP_ALLOWANCE_S
    catch_up_s = 0.0
    owns_nodes = True
    cluster: ClusterManager | None = None
    placement: Placement | None = None

    def __init__(self, release: str = DEFAULT_RELEASE) -> None:
        self.release = release
        self.name = "docker" if release == DEFAULT_RELEASE else f"docker:{release}"
        self._api: Any = None

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = _client().api
        return self._api

    def wire_interface(self, topology: Topology) -> str:
        return topology.qualified

    def capture_points(self, topology: Topology) -> list[CapturePoint]:
        return [CapturePoint(SWITCH, self.wire_interface(topology))]

    def unattended(self, topology: Topology, nodes: Mapping[str, Node]) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def check(self) -> None:
        try:
            import docker
        except ImportError:
            raise UsageError("the Docker SDK is missing: pip install docker (see README)") from None
        try:
            docker.from_env(timeout=5).ping()
        except Exception:
            raise UsageError(
                "no Docker engine answers (DOCKER_HOST or /var/run/docker.sock): start Docker, or use --backend netns"
            ) from None
        if not COMPOSE_FILE.exists():
            raise UsageError(f"{COMPOSE_FILE} is missing: run from a checkout of failover-lab")

    @property
    def image(self) -> str:
        return f"{IMAGE}:{self.release}"

    def ensure_image(self) -> None:
        """Build the node image unless an image built from the current sources is there."""
        with engine_errors(f"preparing the image {self.image}"):
            self._ensure_image()

    def _ensure_image(self) -> None:
        import docker

        wanted = sources_digest()
        client = _client()
        try:
            if client.images.get(self.image).labels.get(SOURCE_LABEL) == wanted:
                return
        except docker.errors.ImageNotFound:
            pass
        base = f"debian:{self.release}-slim"
        try:
            client.images.get(base)
        except docker.errors.ImageNotFound:
            try:
                client.images.pull(base)
            except docker.errors.APIError:
                raise UsageError(
                    f"the base image {base} is not available and cannot be pulled: run lab/base-image.sh {self.release}"
                ) from None
        try:
            client.images.build(
                path=str(REPO),
                dockerfile="lab/Dockerfile",
                tag=self.image,
                buildargs={"DEBIAN_RELEASE": self.release},
                labels={SOURCE_LABEL: wanted},
                network_mode="host",
                rm=True,
            )
        except docker.errors.BuildError as error:
            raise LabError(f"building {self.image} failed: {error}") from None

    def _project(self, topology: Topology) -> compose_file.Project:
        """The lab's project as docker-compose.yml describes it, for this lab's addresses."""
        env = {
            "FLAB_RELEASE": self.release,
            "FLAB_MODE": "harness",
            "FLAB_SUBNET": str(topology.subnet),
            "FLAB_BRIDGE": topology.qualified,
            **{f"FLAB_{node.upper()}": topology.address(node) for node in NODES},
        }
        return compose_file.load(COMPOSE_FILE, topology.qualified, env, (SWITCH, *NODES))

    def create(self, topology: Topology, labdir: Path) -> dict[str, AgentNode]:
        """The lab's volume, network and containers (created and started side by side), then one
        stream to every node's agent; the VIP starts on be1."""
        self.ensure_image()
        project = self._project(topology)
        with engine_errors(f"creating lab {topology.name}"):
            for volume in project.volumes:
                self.api.create_volume(volume.name, driver_opts=dict(volume.driver_opts), labels=project.labels())
            self.api.create_network(
                project.network.name,
                driver="bridge",
                options={"com.docker.network.bridge.name": project.network.bridge},
                ipam=_ipam(project.network.subnet),
                labels=project.labels(),
            )
            with ThreadPoolExecutor(len(project.services)) as pool:
                list(pool.map(lambda service: self._start(project, service), project.services.values()))
        nodes = self.nodes(topology, labdir)
        with ThreadPoolExecutor(len(nodes)) as pool:  # one exec each: side by side
            list(pool.map(lambda node: node.link, nodes.values()))
        nodes[FIRST_OWNER].run(["ip", "addr", "add", f"{topology.vip}/32", "dev", "eth0"])
        return nodes

    def _start(self, project: compose_file.Project, service: compose_file.Service) -> None:
        network = service.network_mode or project.network.name
        host_config = self.api.create_host_config(
            init=service.init,
            cap_add=list(service.cap_add),
            devices=list(service.devices),
            binds=list(service.volumes),
            network_mode=network,
        )
        endpoints = None
        if service.network_mode is None:
            endpoint = self.api.create_endpoint_config(ipv4_address=service.address)
            endpoints = self.api.create_networking_config({network: endpoint})
        created = self.api.create_container(
            service.image,
            name=f"{project.name}_{service.name}_1",
            hostname=service.hostname,
            environment=dict(service.environment),
            labels=project.labels(service.name),
            host_config=host_config,
            networking_config=endpoints,
        )
        self.api.start(created["Id"])

    def _containers(self, qualified: str) -> list[dict[str, Any]]:
        with engine_errors(f"listing the containers of {qualified}"):
            listed: list[dict[str, Any]] = self.api.containers(
                all=True, filters={"label": f"{PROJECT_LABEL}={qualified}"}
            )
        return [c for c in listed if c["Labels"].get(ONEOFF_LABEL, "False") != "True"]

    def nodes(self, topology: Topology, labdir: Path) -> dict[str, AgentNode]:
        found = {c["Labels"][SERVICE_LABEL]: c["Id"] for c in self._containers(topology.qualified)}
        missing = [name for name in (SWITCH, *NODES) if name not in found]
        if missing:
            raise LabError(f"lab {topology.name}: containers {', '.join(missing)} are missing")
        return {name: docker_node(name, found[name], self.api) for name in (SWITCH, *NODES)}

    def _engine_answers(self) -> bool:
        try:
            self.api.ping()
        except Exception:  # the SDK raises several kinds when no engine listens
            return False
        return True

    def wait_datapath(self, nodes: Mapping[str, Node]) -> list[str]:
        """libipsec installs SAs as soon as charon runs."""
        return []

    def destroy(self, qualified: str) -> None:
        """Remove the lab's containers (killed, not stopped; side by side), its network and its
        volume (the compose lab's PSK); without an engine there is nothing of it to remove."""
        if not self._engine_answers():
            return
        with engine_errors(f"removing lab {qualified}"):
            containers = self._containers(qualified)
            if containers:
                with ThreadPoolExecutor(len(containers)) as pool:
                    list(pool.map(self._remove_container, containers))
            for network in self.api.networks(filters={"label": f"{PROJECT_LABEL}={qualified}"}):
                self.api.remove_network(network["Id"])
            for volume in self._volumes(f"{PROJECT_LABEL}={qualified}"):
                self.api.remove_volume(volume["Name"], force=True)

    def _remove_container(self, container: dict[str, Any]) -> None:
        import docker

        with contextlib.suppress(docker.errors.NotFound):  # removed by hand meanwhile
            self.api.remove_container(container["Id"], force=True, v=True)

    def _volumes(self, label: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.api.volumes(filters={"label": label}).get("Volumes") or []
        return listed

    def leftovers(self) -> set[str]:
        if not self._engine_answers():
            return set()
        with engine_errors("listing the labs"):
            containers = self.api.containers(all=True, filters={"label": PROJECT_LABEL})
            networks = self.api.networks(filters={"label": PROJECT_LABEL})
            volumes = self._volumes(PROJECT_LABEL)
        projects = {item["Labels"][PROJECT_LABEL] for item in (*containers, *networks, *volumes)}
        return {p for p in projects if p.startswith(f"{PREFIX}-")}

"""Docker backend: every node is a container of a compose project (one project per lab, from the
top-level docker-compose.yml), driven through the Docker SDK.

Commands and processes run with `docker exec`; a spawned process reports its PID inside the
container first, so the harness signals exactly the process it started. Files go in with
`put_archive`. vici goes through a relay process in the node (harness/agents/vici_relay.py) that
joins the exec's stdin/stdout to /run/charon.vici: the socket never leaves the container. The
switch is a container in the host's network namespace that captures on the lab's bridge
(named after the lab). Nodes are found by compose labels; several labs share one engine.

The node image failover-lab-node:<release> is built from lab/Dockerfile when missing or when its
sources changed; its base debian:<release>-slim comes from a registry or lab/base-image.sh.

Owns: the compose project, the containers and the Node contract on them. Not: what runs there.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import socket
import struct
import subprocess
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import vici
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.errors import CommandError, LabError, UsageError
from harness.node import Result, checked
from harness.topology import BACKENDS, NODES, PREFIX, Topology

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
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
AGENTS = PurePosixPath("/opt/failover-lab/harness/agents")
WORKDIR = PurePosixPath("/lab")
SWITCH = "sw"
STDOUT = 1


def _client() -> Any:
    import docker

    return docker.from_env(timeout=120)


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

    def lines(self) -> Iterator[str]:
        buffered = b""
        while chunk := self.recv(65536):
            buffered += chunk
            *complete, buffered = buffered.split(b"\n")
            for line in complete:
                yield line.decode(errors="replace") + "\n"
        if buffered:
            yield buffered.decode(errors="replace")

    def readline(self) -> str:
        line = b""
        while not line.endswith(b"\n"):
            chunk = self.recv(1)
            if not chunk:
                break
            line += chunk
        return line.decode(errors="replace")

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


class DockerProcess:
    """A process started with `docker exec` on a node; signalled by its PID in the container."""

    def __init__(
        self, node: DockerNode, argv: Sequence[str], exec_id: str, pid: int, stream: ExecStream | None
    ) -> None:
        self.node = node.name
        self.argv = tuple(argv)
        self._owner = node
        self._exec_id = exec_id
        self._pid = pid
        self._stream = stream

    @property
    def pid(self) -> int:
        return self._pid

    def signal(self, signum: int) -> None:
        if self.alive():
            self._owner.run(["sh", "-c", f"kill -{int(signum)} {self._pid}"], check=False)  # no procps: builtin

    def kill(self) -> None:
        self.signal(9)

    def alive(self) -> bool:
        return bool(self._owner.finished(self._exec_id, 0)["Running"])

    def wait(self, timeout: float) -> int:
        state = self._owner.finished(self._exec_id, timeout)
        if state["Running"]:
            raise subprocess.TimeoutExpired(self.argv, timeout)
        return int(state["ExitCode"])

    def stop(self, timeout: float = 2.0) -> None:
        self.signal(15)
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait(5)
        self.close()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def lines(self) -> Iterator[str]:
        return iter(()) if self._stream is None else self._stream.lines()


class DockerNode:
    """A lab node that is a container."""

    def __init__(self, name: str, container_id: str, api: Any) -> None:
        self.name = name
        self.container_id = container_id
        self.api = api
        self.workdir = WORKDIR

    def _exec(self, argv: Sequence[str], stdin: bool, env: Mapping[str, str] | None = None) -> str:
        created = self.api.exec_create(
            self.container_id, list(argv), stdin=stdin, stdout=True, stderr=True, environment=dict(env or {})
        )
        return str(created["Id"])

    def run(self, argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30) -> Result:
        exec_id = self._exec(argv, stdin=input is not None)
        raw = self.api.exec_start(exec_id, socket=True)
        stream = ExecStream(raw)
        stream.settimeout(timeout)
        if input is not None:
            stream.sendall(input.encode())
            stream.shutdown(socket.SHUT_WR)
        out, err = b"", b""
        try:
            while True:
                header = stream._take(8)
                kind, _, _, _, size = struct.unpack(">BBBBI", header)
                data = stream._take(size) if size else b""
                if kind == STDOUT:
                    out += data
                else:
                    err += data
        except EOFError:
            pass
        finally:
            stream.close()
        code = int(self.finished(exec_id, 5)["ExitCode"] or 0)
        return checked(
            self.name, Result(tuple(argv), code, out.decode(errors="replace"), err.decode(errors="replace")), check
        )

    def finished(self, exec_id: str, timeout: float) -> dict[str, Any]:
        """The exec's state once it has ended, or its last state after ``timeout``; an exec whose
        container is gone counts as killed."""

        def inspect() -> dict[str, Any]:
            try:
                state: dict[str, Any] = self.api.exec_inspect(exec_id)
                return state
            except Exception:
                return {"Running": False, "ExitCode": -9}

        poll = Retrying(
            retry=retry_if_result(lambda state: bool(state["Running"])),
            wait=wait_fixed(0.01),
            stop=stop_after_delay(timeout),
            retry_error_callback=lambda retry_state: retry_state.outcome.result() if retry_state.outcome else {},
        )
        return dict(poll(inspect))

    def spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, capture: bool = False
    ) -> DockerProcess:
        quiet = " 2>&1" if capture else " >/dev/null 2>&1"  # captured: stderr merged, as on netns
        script = f'echo $$; exec "$@"{quiet}'
        exec_id = self._exec(["sh", "-c", script, "sh", *argv], stdin=False, env=env)
        stream = ExecStream(self.api.exec_start(exec_id, socket=True))
        first = stream.readline()
        try:
            pid = int(first)
        except ValueError:
            stream.close()
            raise CommandError(self.name, argv, -1, f"could not start: {first.strip() or 'no output'}") from None
        if not capture:
            stream.close()
        return DockerProcess(self, argv, exec_id, pid, stream if capture else None)

    def put(self, path: PurePosixPath, data: str, mode: int = 0o600) -> None:
        payload = data.encode()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = len(payload), mode, int(time.time())
            tar.addfile(info, io.BytesIO(payload))
        if not self.api.put_archive(self.container_id, str(path.parent), archive.getvalue()):
            raise LabError(f"{self.name}: could not write {path}")

    def vici(self, timeout: float = 10) -> vici.Session:
        exec_id = self._exec(["python3", str(AGENTS / "vici_relay.py")], stdin=True)
        stream = ExecStream(self.api.exec_start(exec_id, socket=True))
        stream.settimeout(timeout)
        if stream.recv(1) != b"+":
            stream.close()
            raise ConnectionRefusedError(f"{self.name}: charon's vici socket does not answer")
        return vici.Session(stream)

    def agent(self, name: str) -> list[str]:
        return ["python3", str(AGENTS / f"{name}.py")]


def sources_digest() -> str:
    """Hash of everything the node image is built from: a changed source means a rebuild."""
    digest = hashlib.sha256()
    for name in IMAGE_SOURCES:
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    return digest.hexdigest()[:16]


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) when the docker CLI has it, else docker-compose (v1 or v2)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise UsageError("docker compose is missing: apt-get install docker-compose, or use --backend netns")


class DockerBackend:
    """Labs as compose projects on a Docker engine."""

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
        compose_command()
        if not COMPOSE_FILE.exists():
            raise UsageError(f"{COMPOSE_FILE} is missing: run from a checkout of failover-lab")

    @property
    def image(self) -> str:
        return f"{IMAGE}:{self.release}"

    def ensure_image(self) -> None:
        """Build the node image unless an image built from the current sources is there."""
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

    def _compose(self, topology: Topology, *arguments: str) -> None:
        env = {
            **os.environ,
            "FLAB_RELEASE": self.release,
            "FLAB_MODE": "harness",
            "FLAB_SUBNET": str(topology.subnet),
            "FLAB_BRIDGE": topology.qualified,
            **{f"FLAB_{node.upper()}": topology.address(node) for node in NODES},
        }
        argv = [*compose_command(), "-p", topology.qualified, "-f", str(COMPOSE_FILE), *arguments]
        completed = subprocess.run(argv, env=env, capture_output=True, text=True)
        if completed.returncode != 0:
            raise CommandError("compose", argv, completed.returncode, completed.stderr)

    def create(self, topology: Topology, labdir: Path) -> dict[str, DockerNode]:
        self.ensure_image()
        self._compose(topology, "up", "-d", "--no-build", *(SWITCH, *NODES))
        nodes = self.nodes(topology, labdir)
        nodes[BACKENDS[0]].run(["ip", "addr", "add", f"{topology.vip}/32", "dev", "eth0"])
        return nodes

    def _containers(self, qualified: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.api.containers(all=True, filters={"label": f"{PROJECT_LABEL}={qualified}"})
        return [c for c in listed if c["Labels"].get(ONEOFF_LABEL, "False") != "True"]

    def nodes(self, topology: Topology, labdir: Path) -> dict[str, DockerNode]:
        found = {c["Labels"][SERVICE_LABEL]: c["Id"] for c in self._containers(topology.qualified)}
        missing = [name for name in (SWITCH, *NODES) if name not in found]
        if missing:
            raise LabError(f"lab {topology.name}: containers {', '.join(missing)} are missing")
        return {name: DockerNode(name, found[name], self.api) for name in (SWITCH, *NODES)}

    def _engine_answers(self) -> bool:
        try:
            self.api.ping()
        except Exception:  # the SDK raises several kinds when no engine listens
            return False
        return True

    def destroy(self, qualified: str) -> None:
        """Remove the lab's containers (killed, not stopped), its network and its volume (the
        compose lab's PSK); without an engine there is nothing of it to remove."""
        if not self._engine_answers():
            return
        for container in self._containers(qualified):
            self.api.remove_container(container["Id"], force=True, v=True)
        for network in self.api.networks(filters={"label": f"{PROJECT_LABEL}={qualified}"}):
            self.api.remove_network(network["Id"])
        for volume in self._volumes(f"{PROJECT_LABEL}={qualified}"):
            self.api.remove_volume(volume["Name"], force=True)

    def _volumes(self, label: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.api.volumes(filters={"label": label}).get("Volumes") or []
        return listed

    def leftovers(self) -> set[str]:
        if not self._engine_answers():
            return set()
        containers = self.api.containers(all=True, filters={"label": PROJECT_LABEL})
        networks = self.api.networks(filters={"label": PROJECT_LABEL})
        volumes = self._volumes(PROJECT_LABEL)
        projects = {item["Labels"][PROJECT_LABEL] for item in (*containers, *networks, *volumes)}
        return {p for p in projects if p.startswith(f"{PREFIX}-")}

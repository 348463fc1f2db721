"""SSH connections to the hosts of an inventory (paramiko), and a node agent on each over one
channel of that connection.

One transport per host, kept alive. Host keys come from the inventory's known_hosts (default
~/.ssh/known_hosts); an unknown host is refused unless the user said ``--insecure-host-keys``,
and then its key is printed, never accepted silently. The node agent (harness/agents) is copied
over SFTP into a private directory on the host and runs with ``--stdio`` on an exec channel: that
channel is the agent's connection (harness.agent.Link), so commands, processes, files and vici
all travel inside the one SSH connection. Every paramiko or socket error becomes one line naming
the host and the fix (UsageError before anything ran, NodeLost after).

Owns: connecting, host keys, copying the agents, the agent's channel. Not: what runs on the hosts.
"""

from __future__ import annotations

import io
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import paramiko

from harness.agent import AGENT_SCRIPT, LAB_INTERFACE, AgentNode, ByteStream
from harness.errors import LabError, NodeLost, UsageError
from harness.inventory import DEFAULT_KNOWN_HOSTS, Host, Inventory
from harness.node import Firewall

AGENTS = Path(__file__).resolve().parent / "agents"
CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 5
REMOTE_ROOT = PurePosixPath("/run/failover-lab")
"""Where the harness keeps its files on a host: a tmpfs, gone at the host's next boot; 0700."""
PYTHON = "python3"
RELAY_WAIT_S = 10.0
"""How long a relay waits for the host's agent daemon to listen."""


@dataclass
class Connection:
    """One host's SSH connection."""

    host: Host
    client: paramiko.SSHClient

    @property
    def transport(self) -> paramiko.Transport:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise NodeLost(self.host.role, f"the SSH connection to {self.host.host} is gone")
        return transport

    def privileged(self, argv: list[str]) -> str:
        """A shell command line running ``argv`` as root on the host (through `sudo -n` if asked)."""
        return shlex.join(["sudo", "-n", *argv] if self.host.sudo else argv)

    def exec(self, argv: list[str], timeout: float = 30.0, data: bytes = b"") -> tuple[int, str, str]:
        """Run a command on a new exec channel with ``data`` on its stdin (only for setting up:
        everything else goes through the agent): exit code, stdout, stderr."""
        channel = self.transport.open_session(timeout=timeout)
        channel.settimeout(timeout)
        channel.exec_command(self.privileged(argv))
        with channel:
            channel.sendall(data)
            channel.shutdown_write()
            stdout = channel.makefile("rb").read().decode(errors="replace")
            stderr = channel.makefile_stderr("rb").read().decode(errors="replace")
            return channel.recv_exit_status(), stdout, stderr

    def close(self) -> None:
        self.client.close()


def connect(host: Host, inventory: Inventory, insecure_host_keys: bool = False) -> Connection:
    """An authenticated connection to ``host``, its key checked against known_hosts."""
    client = paramiko.SSHClient()
    known_hosts = inventory.known_hosts or Path(DEFAULT_KNOWN_HOSTS).expanduser()
    if known_hosts.exists():
        client.load_system_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(_Accept() if insecure_host_keys else paramiko.RejectPolicy())
    where = f"{host.role} ({host.user}@{host.host}:{host.port})"
    try:
        client.connect(
            host.host,
            port=host.port,
            username=host.user,
            key_filename=str(host.key) if host.key else None,
            allow_agent=host.key is None,
            look_for_keys=False,
            timeout=CONNECT_TIMEOUT_S,
            banner_timeout=CONNECT_TIMEOUT_S,
            auth_timeout=CONNECT_TIMEOUT_S,
        )
    except paramiko.BadHostKeyException as error:
        client.close()
        raise UsageError(
            f"{where}: its host key ({error.key.get_name()} {error.key.fingerprint}) is not the one in {known_hosts}: "
            "if the host was reinstalled, replace its line there"
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        how = f"the key {host.key}" if host.key else "the SSH agent's keys"
        raise UsageError(f"{where}: authentication with {how} failed: check the user and the key") from None
    except paramiko.SSHException as error:
        client.close()
        if "not found in known_hosts" in str(error):
            raise UsageError(
                f"{where}: the host is not in {known_hosts}: add its key (ssh-keyscan -p {host.port} {host.host}, "
                "checked against the host) or accept unknown keys with --insecure-host-keys"
            ) from None
        raise UsageError(f"{where}: SSH failed: {error}") from None
    except OSError as error:
        client.close()
        raise UsageError(f"{where}: cannot connect: {error.strerror or error}") from None
    transport = client.get_transport()
    assert transport is not None
    transport.set_keepalive(KEEPALIVE_S)
    return Connection(host, client)


class _Accept(paramiko.MissingHostKeyPolicy):
    """--insecure-host-keys: accept an unknown host's key for this run, and say so."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        print(f"warning: accepting the unknown host key of {hostname}: {key.get_name()} {key.fingerprint}")
        client.get_host_keys().add(hostname, key.get_name(), key)


def install_agents(connection: Connection, directory: PurePosixPath) -> PurePosixPath:
    """Copy harness/agents/*.py into ``directory``/agents on the host, readable by its owner only
    (one tar stream on one exec channel: SFTP costs a round trip per file); returns that folder."""
    target = directory / "agents"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for script in sorted(AGENTS.glob("*.py")):
            info = tar.gettarinfo(str(script), arcname=script.name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o600
            tar.addfile(info, script.open("rb"))
    unpack = f"umask 077 && mkdir -p {shlex.quote(str(target))} && tar -x --no-same-owner -C {shlex.quote(str(target))}"
    code, _, stderr = connection.exec(["sh", "-c", unpack], data=archive.getvalue())
    if code != 0:
        raise UsageError(f"{connection.host.role}: cannot copy the agents to {target}: {stderr.strip()}")
    return target


def start_agent(connection: Connection, agents: PurePosixPath, socket: PurePosixPath) -> None:
    """Start the node agent on the host as a daemon serving ``socket`` (0600, in a 0700 folder),
    detached from the SSH session: it outlives the harness (a lab left running by `up`) and
    owns every process of the lab on the host until asked to shut down."""
    log = socket.parent / "agent.log"
    argv = [PYTHON, "-I", "-S", str(agents / AGENT_SCRIPT), "--listen", f"unix:{socket}"]
    script = (
        f"umask 077 && mkdir -p {shlex.quote(str(socket.parent))} && "
        f"setsid {shlex.join(argv)} </dev/null >>{shlex.quote(str(log))} 2>&1 &"
    )
    code, _, stderr = connection.exec(["sh", "-c", script])
    if code != 0:
        raise LabError(f"{connection.host.role}: the node agent did not start: {stderr.strip()}")


def agent_node(
    connection: Connection,
    name: str,
    workdir: PurePosixPath,
    agents: PurePosixPath,
    vici_socket: PurePosixPath,
    agent_socket: PurePosixPath | None = None,
    lab_interface: str = LAB_INTERFACE,
    firewall: Firewall = "nft",
) -> AgentNode:
    """The host as a Node. Every new link is an SSH exec channel running the agent: with
    ``agent_socket``, its relay to the daemon there (start_agent); else an agent of the
    channel's own (``--stdio``: it lives as long as the channel)."""
    script = str(agents / AGENT_SCRIPT)
    if agent_socket is None:
        argv = [PYTHON, "-I", "-S", script, "--stdio"]
    else:
        argv = [PYTHON, "-I", "-S", script, "--relay", str(agent_socket), "--wait", str(RELAY_WAIT_S)]

    def open_agent() -> ByteStream:
        try:
            channel = connection.transport.open_session(timeout=CONNECT_TIMEOUT_S)
            channel.exec_command(connection.privileged(argv))
        except (paramiko.SSHException, OSError, EOFError, NodeLost) as error:
            raise ConnectionError(f"cannot start the agent over SSH: {error}") from None
        stream = _ChannelStream(channel)
        if agent_socket is not None and stream.recv(1) != b"+":
            stream.close()
            raise ConnectionRefusedError(f"no agent answers on {agent_socket}")
        return stream

    return AgentNode(
        name,
        workdir,
        open_agent,
        [PYTHON, "-I"],
        agents,
        own_clock=True,
        firewall=firewall,
        vici_socket=str(vici_socket),
        lab_interface=lab_interface,
    )


class _ChannelStream:
    """A paramiko channel as the agent link's byte stream (a closed channel reads as the end)."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    def sendall(self, data: bytes) -> None:
        try:
            self.channel.sendall(data)
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise ConnectionError(str(error)) from None

    def recv(self, size: int) -> bytes:
        try:
            return self.channel.recv(size)
        except (OSError, EOFError, paramiko.SSHException):
            return b""

    def close(self) -> None:
        self.channel.close()

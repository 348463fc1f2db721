"""Benchmark: one command over the ssh backend's channel on a local link, where a process start
costs what it costs on a real Linux host (the test hosts are UML guests: 15-20 ms per fork and
exec under ptrace, whatever the channel).

Builds a throwaway host: a network namespace on a veth pair (198.19.252.0/30, this machine's end
.1, the host .2) running this machine's sshd with a key made for the run, then reaches it the way
the ssh backend reaches a user's host (harness.ssh_hosts: paramiko, the node agent copied over
and started as a daemon, a relay on an SSH exec channel) and times, over ``--runs`` requests:
the agent's own round trip, one `Node.run(["true"])`, and for reference one SSH exec channel per
command. Everything it started (sshd, the agent, the namespace, the veth, the key folder) is
gone afterwards (the host's folder is in the key folder, on this machine's disk).

A benchmark, not a test: it prints numbers for BENCHMARKS.md and asserts nothing.

    .venv/bin/python bench/bench_ssh_command.py [--runs 200]
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed
from timing import median_ms, show

from harness import ssh_hosts, testhosts
from harness.inventory import Host, Inventory

NAMESPACE = "flab-bench-ssh"
VETH = "flabbenchssh0"
HOST_SIDE, NODE_SIDE = "198.19.252.1/30", "198.19.252.2/30"


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


@contextlib.contextmanager
def throwaway_host() -> Iterator[tuple[Host, Inventory, PurePosixPath]]:
    """sshd in a namespace of its own on a veth pair, a key pair and known_hosts for it."""
    node_address = ipaddress.IPv4Interface(NODE_SIDE).ip
    with contextlib.ExitStack() as undo, tempfile.TemporaryDirectory(prefix="flab-bench-ssh-") as folder:
        directory = Path(folder)
        for name, comment in (("id_ed25519", "bench client"), ("ssh_host_ed25519_key", "bench host")):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(directory / name)],
                check=True,
                capture_output=True,
            )
        (directory / "authorized_keys").write_text((directory / "id_ed25519.pub").read_text())
        (directory / "authorized_keys").chmod(0o600)
        host_key = (directory / "ssh_host_ed25519_key.pub").read_text().split()
        (directory / "known_hosts").write_text(f"{node_address} {host_key[0]} {host_key[1]}\n")
        (directory / "sshd_config").write_text(testhosts.SSHD_CONFIG.format(address=node_address, directory=directory))
        ip("netns", "add", NAMESPACE)
        undo.callback(ip, "netns", "delete", NAMESPACE)
        ip("link", "add", VETH, "type", "veth", "peer", "name", "eth0", "netns", NAMESPACE)
        undo.callback(ip, "link", "delete", VETH)
        ip("address", "add", HOST_SIDE, "dev", VETH)
        ip("link", "set", VETH, "up")
        ip("-n", NAMESPACE, "address", "add", NODE_SIDE, "dev", "eth0")
        ip("-n", NAMESPACE, "link", "set", "eth0", "up")
        ip("-n", NAMESPACE, "link", "set", "lo", "up")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        sshd = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                NAMESPACE,
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
                str(directory / "sshd_config"),
                "-o",
                f"PidFile={directory / 'sshd.pid'}",
                "-o",
                "StrictModes=no",  # its folder is under /tmp, which anyone may write to
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        undo.callback(_kill_namespace_processes)
        undo.callback(_stop, sshd)
        host = Host(
            "fe",
            str(node_address),
            22,
            "root",
            directory / "id_ed25519",
            False,
            "eth0",
            ipaddress.IPv4Interface(NODE_SIDE),
            "",
        )
        inventory = Inventory(
            directory / "hosts.yaml",
            ipaddress.IPv4Interface("198.19.252.2/30"),
            False,
            60,
            directory / "known_hosts",
            None,
            {"fe": host},
        )
        yield host, inventory, PurePosixPath(directory / "node")  # the host's folder: this machine's disk


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _kill_namespace_processes() -> None:
    """What is left in the bench's own namespace: the agent it started (and its children)."""
    listed = subprocess.run(["ip", "netns", "pids", NAMESPACE], capture_output=True, text=True).stdout.split()
    for pid in listed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    runs = parser.parse_args().runs
    with throwaway_host() as (host, inventory, workdir):
        for attempt in Retrying(
            retry=retry_if_exception_type(Exception), wait=wait_fixed(0.05), stop=stop_after_delay(10), reraise=True
        ):
            with attempt:
                connection = ssh_hosts.connect(host, inventory)
        try:
            agents = ssh_hosts.install_agents(connection, workdir)
            socket = workdir / "agent.sock"
            ssh_hosts.start_agent(connection, agents, socket)
            node = ssh_hosts.agent_node(connection, "fe", workdir, agents, workdir / "charon.vici", socket)
            print(f"ssh to a namespace on this machine ({host.host}), {runs} requests each:")
            show("the agent's round trip (ping)", median_ms(lambda: node.link.request({"op": "ping"}), runs))
            show('Node.run(["true"]) through the agent', median_ms(lambda: node.run(["true"]), runs))
            show('one SSH exec channel per command ("true")', median_ms(lambda: connection.exec(["true"]), runs // 4))
            node.close()
        finally:
            connection.close()


if __name__ == "__main__":
    main()

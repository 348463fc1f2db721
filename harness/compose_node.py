"""One node of a lab started by a plain `docker compose up`, without the harness.

The compose file starts every node container with ``FLAB_MODE=standalone`` (the harness sets
``harness`` and drives the nodes itself). Then the entrypoint runs this module, which sets up the
container's part of the lab from the environment: ``FLAB_NODE`` (fe, be1, be2 or dc),
``FLAB_SUBNET``, ``FLAB_PROFILE`` (default fast) and ``FLAB_POLICY`` (default all-traffic). It
renders the same configuration the harness loads (strongswan.conf, the connections, the policy's
routing rules and fail-closed guard), starts charon and loads it with swanctl, starts the service
stand-ins on be1, be2 and dc, gives be1 the VIP, and stays in the foreground until the container
stops. fe initiates as soon as it is loaded and prints one line once every CHILD_SA is installed.

The nodes share a fresh random PSK through a tmpfs volume that exists only while the lab's
containers run: the first node to start creates it (mode 0600, directory 0700). Each node also
marks there that its connections are loaded; an initiator loads its own only after its
responders have (fe after be1 and dc, the back-ends after dc).

Runs inside the node image on the standard library and the harness's pure modules (no vici
package, no tenacity). Owns: the standalone bring-up of one compose node. Not: faults,
probes or measurement (the harness does those on the labs it creates).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from types import FrameType

from harness import guard, policy, strongswan, timers
from harness.errors import CommandError, LabError, UsageError
from harness.node import VICI_SOCKET
from harness.topology import DOMAIN_CONTROLLER, FIRST_OWNER, LAB_SUBNETS, NODES, STAND_INS, Topology, role_of

WORKDIR = Path("/lab")
SECRETS = Path("/run/flab-secrets")
AGENTS = Path(__file__).resolve().parent / "agents"
START_TIMEOUT_S = 10.0
"""How long charon may take to open its vici socket."""
READY_TIMEOUT_S = 60.0
"""How long fe waits for its CHILD_SAs before saying so (it keeps trying: keyingtries = 0)."""
POLL_S = 0.1


def say(node: str, message: str) -> None:
    print(f"failover-lab {node}: {message}", flush=True)


def topology_for(subnet: str) -> Topology:
    """The lab whose /24 the compose network uses."""
    try:
        network = ipaddress.IPv4Network(subnet)
    except ValueError:
        raise UsageError(f"FLAB_SUBNET {subnet!r} is not a network: use a /24 inside {LAB_SUBNETS}") from None
    if network.prefixlen != 24 or not network.subnet_of(LAB_SUBNETS):
        raise UsageError(f"FLAB_SUBNET {subnet} is unusable: use a /24 inside {LAB_SUBNETS}")
    return Topology.for_index((int(network.network_address) - int(LAB_SUBNETS.network_address)) // 256)


def shared_psk(node: str, directory: Path = SECRETS) -> str:
    """The lab's PSK: created by the first node that gets here, read by the others. The
    candidate is complete before it is linked into place, so nobody reads half of it."""
    directory.mkdir(mode=0o700, exist_ok=True)
    path, candidate = directory / "psk", directory / f"psk.{node}"
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32))
    try:
        os.link(candidate, path)
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return path.read_text()


def run(argv: list[str], stdin: str | None = None) -> str:
    completed = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if completed.returncode != 0:
        raise CommandError(socket.gethostname(), argv, completed.returncode, completed.stderr)
    return completed.stdout


def wait_for_vici(charon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if charon.poll() is not None:
            raise LabError(f"charon exited at start-up (code {charon.returncode}): see {WORKDIR}/charon.stderr")
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(VICI_SOCKET)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise LabError(f"charon did not open {VICI_SOCKET} within {START_TIMEOUT_S:g} s") from None
        time.sleep(POLL_S)


def installed_children() -> int:
    listed = subprocess.run(["swanctl", "--list-sas"], capture_output=True, text=True).stdout
    return listed.count(", INSTALLED,")


def bring_up(
    node: str, topology: Topology, profile: timers.Profile, chosen: policy.Policy
) -> list[subprocess.Popen[bytes]]:
    """Configure and start this node's part of the lab; returns the processes started (charon first)."""
    shown = run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
    if f" {topology.address(node)}/" not in shown:
        raise UsageError(f"eth0 lacks {topology.address(node)}: set FLAB_{node.upper()} and FLAB_SUBNET together")
    psk = shared_psk(node)
    workdir = PurePosixPath(WORKDIR)
    (WORKDIR / "strongswan.conf").write_text(strongswan.strongswan_conf(workdir, profile, chosen))
    config = WORKDIR / "swanctl.conf"
    config.touch(mode=0o600)
    config.write_text(strongswan.swanctl_conf(topology, node, profile, chosen, psk))
    run(["nft", "-f", "-"], stdin=guard.rules(chosen, topology, node))
    rules = policy.ip_rules(chosen, topology, node)
    if rules:
        run(["ip", "-batch", "-"], stdin="".join(f"rule add {rule}\n" for rule in rules))
    started: list[subprocess.Popen[bytes]] = []
    with open(WORKDIR / "charon.stderr", "ab") as log:
        env = {**os.environ, "STRONGSWAN_CONF": str(WORKDIR / "strongswan.conf")}
        started.append(subprocess.Popen([strongswan.CHARON], env=env, stdout=log, stderr=log))
    wait_for_vici(started[0])
    stand_ins = STAND_INS.get(role_of(node))
    if stand_ins is not None:
        agent = [str(AGENTS / "services.py"), "--node", node, "--vip", topology.vip, "--role", stand_ins]
        agent += ["--address", topology.address(node)]
        started.append(subprocess.Popen([sys.executable, *agent]))
    if node == FIRST_OWNER:
        run(["ip", "addr", "add", f"{topology.vip}/32", "dev", "eth0"])
        run(["arping", "-q", "-U", "-c", "1", "-I", "eth0", "-s", topology.vip, topology.vip])
    wait_for_loaded(responders(node, chosen))
    run(["swanctl", "--load-all", "--file", str(config)])
    (SECRETS / f"loaded.{node}").touch(mode=0o600)
    return started


def responders(node: str, chosen: policy.Policy) -> list[str]:
    """The nodes this node initiates to. They must have their connections loaded first: a
    charon without them answers NO_PROPOSAL_CHOSEN, which ends the initiator's attempt. fe's
    responder on the VIP is the back-end that owns it at start."""
    initiates_to = []
    if chosen.ipsec and role_of(node) == "front-end":
        initiates_to.append(FIRST_OWNER)
    if chosen.has_sa_with_dc(node):
        initiates_to.append(DOMAIN_CONTROLLER)
    return initiates_to


def wait_for_loaded(nodes: list[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while missing := [name for name in nodes if not (SECRETS / f"loaded.{name}").exists()]:
        if time.monotonic() > deadline:
            raise LabError(f"{', '.join(missing)} did not load their connections within {READY_TIMEOUT_S:g} s")
        time.sleep(POLL_S)


def report_ready(node: str, chosen: policy.Policy, profile: timers.Profile, topology: Topology) -> None:
    """fe: say when every CHILD_SA of the policy is installed (or that it is still trying)."""
    expected = strongswan.expected_children(chosen, node)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while installed_children() < expected:
        if time.monotonic() > deadline:
            say(node, f"only {installed_children()}/{expected} CHILD_SAs after {READY_TIMEOUT_S:g} s; still trying")
            return
        time.sleep(POLL_S)
    say(node, f"lab ready: {expected} CHILD_SAs installed, VIP {topology.vip} ({profile.name}, {chosen.name})")


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def describe(node: str) -> str:
    """How the node introduces itself: a back-end as the VIP's owner or its standby."""
    if role_of(node) != "back-end":
        return node
    return "VIP owner" if node == FIRST_OWNER else "standby"


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> int:
    node = os.environ.get("FLAB_NODE", "")
    processes: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _exit)
    try:
        if node not in NODES:
            raise UsageError(f"FLAB_NODE {node!r} is not one of {', '.join(NODES)}")
        topology = topology_for(os.environ.get("FLAB_SUBNET", ""))
        profile = timers.profile(os.environ.get("FLAB_PROFILE", "fast"))
        chosen = policy.policy(os.environ.get("FLAB_POLICY", policy.DEFAULT))
        processes = bring_up(node, topology, profile, chosen)
        say(node, f"charon and services up ({describe(node)}); swanctl --list-sas shows the SAs")
        if role_of(node) == "front-end":
            report_ready(node, chosen, profile, topology)
        processes[0].wait()
        say(node, f"charon exited (code {processes[0].returncode})")
        return 1
    except LabError as error:
        say(node, str(error))
        return error.exit_code
    except KeyboardInterrupt:
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())

"""The compose file on its own, and the one-command laptop demo (harness in a container)."""

import json
import os
import subprocess
from pathlib import Path

from harness.backends import backend
from harness.backends.docker import COMPOSE_FILE, REPO, compose_command

LAB_BACKENDS = ("docker",)
PROJECT = "flab-compose"
"""From .env: what a plain `docker compose up` in the checkout uses."""


def compose(*arguments: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLAB_")}
    return subprocess.run(
        [*compose_command(), "-f", str(COMPOSE_FILE), *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_docker_compose_up_starts_the_lab_on_its_own(backend_name: str) -> None:
    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stderr
        listed = compose("ps", "-q")
        assert len(listed.stdout.split()) == 5  # fe, be1, be2, dc and the switch
        fe = compose("exec", "-T", "fe", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
        assert "198.18.254.10/24" in fe.stdout
        tun = compose("exec", "-T", "be1", "ls", "/dev/net/tun")
        assert tun.returncode == 0
        inspect = subprocess.run(
            ["docker", "inspect", "-f", "{{.HostConfig.Privileged}} {{.HostConfig.CapAdd}}", f"{PROJECT}_fe_1"],
            capture_output=True,
            text=True,
        )
        if inspect.returncode == 0:  # compose v1 names containers <project>_<service>_1
            assert inspect.stdout.split()[0] == "false" and "NET_ADMIN" in inspect.stdout
    finally:
        compose("down", "-v", "-t", "0")
    assert PROJECT not in backend("docker").leftovers()


def test_the_harness_container_runs_a_lab_and_propagates_exit_codes(backend_name: str) -> None:
    results = REPO / "results"
    results.mkdir(exist_ok=True)  # created by us, not root-owned by dockerd
    output = Path("results") / "compose-harness.json"
    (REPO / output).unlink(missing_ok=True)
    ran = compose(
        "run",
        "--rm",
        "harness",
        "run",
        "--fault",
        "graceful",
        "--profile",
        "fast",
        "--backend",
        "docker",
        "--json",
        str(output),
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    [result] = json.loads((REPO / output).read_text())
    assert result["backend"] == "docker" and result["within_prediction"] and result["plaintext_packets"] == 0
    refused = compose("run", "--rm", "harness", "run", "--fault", "nope")
    assert refused.returncode == 2
    assert "unknown fault 'nope'" in refused.stderr

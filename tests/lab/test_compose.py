"""The compose file on its own, and the one-command laptop demo (harness in a container)."""

import json
import os
import subprocess
from pathlib import Path

from tenacity import Retrying, stop_after_delay, wait_fixed

from harness import compose_node
from harness.backends import backend
from harness.backends.docker import COMPOSE_FILE, REPO, DockerBackend, compose_command

LAB_BACKENDS = ("docker",)
PROJECT = "flab-compose"
"""From .env: what a plain `docker compose up` in the checkout uses."""
VIP, DC = "198.18.254.100", "198.18.254.20"
"""The compose file's default addresses."""


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


def logs_say(service: str, text: str) -> bool:
    return text in compose("logs", "--no-color", service).stdout


def test_docker_compose_up_starts_the_lab_on_its_own(backend_name: str, tmp_path: Path) -> None:
    """A plain `docker compose up`: every node configures itself, fe's SAs come up with be1 on
    the VIP, the services answer through the tunnel and the wire shows ESP, never the ports."""
    DockerBackend().ensure_image()  # what `up --build` would do, with the harness's cache label
    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stderr
        listed = compose("ps", "-q")
        assert len(listed.stdout.split()) == 5  # fe, be1, be2, dc and the switch
        inspect = subprocess.run(
            ["docker", "inspect", "-f", "{{.HostConfig.Privileged}} {{.HostConfig.CapAdd}}", f"{PROJECT}_fe_1"],
            capture_output=True,
            text=True,
        )
        if inspect.returncode == 0:  # compose v1 names containers <project>_<service>_1
            assert inspect.stdout.split()[0] == "false" and "NET_ADMIN" in inspect.stdout
        deadline = compose_node.READY_TIMEOUT_S + compose_node.START_TIMEOUT_S
        for attempt in Retrying(stop=stop_after_delay(deadline), wait=wait_fixed(0.2), reraise=True):
            with attempt:
                assert logs_say("fe", "lab ready"), compose("logs", "--no-color").stdout[-3000:]
        assert not logs_say("fe", "still trying")
        secrets = compose("exec", "-T", "fe", "stat", "-c", "%a %U", "/run/flab-secrets", "/run/flab-secrets/psk")
        assert secrets.stdout.split() == ["700", "root", "600", "root"]
        for node, peers in {"fe": [VIP, DC], "be2": [DC]}.items():
            sas = compose("exec", "-T", node, "swanctl", "--list-sas").stdout
            assert all(f"@ {peer}[" in sas for peer in peers) and sas.count(", INSTALLED,") == len(peers), sas
        with subprocess.Popen(
            [
                "tcpdump",
                "-i",
                "flab-compose",
                "-Z",
                "root",
                "-nn",
                "--immediate-mode",
                "-U",
                "-w",
                str(tmp_path / "wire.pcap"),
            ],
            stderr=subprocess.PIPE,
            text=True,
        ) as capture:
            assert capture.stderr is not None and "listening on" in capture.stderr.readline()
            touched = compose(
                "exec",
                "-T",
                "fe",
                "python3",
                "/opt/failover-lab/harness/agents/touch.py",
                "--target",
                VIP,
                "--ports",
                "udp:7,tcp:110",
            )
            capture.terminate()
        answers = [json.loads(line) for line in touched.stdout.splitlines()]
        assert [a["ok"] for a in answers] == [True, True], answers
        assert all("be1" in a["answer"] for a in answers), answers

        def seen(expression: str) -> int:
            read = ["tcpdump", "-nn", "-r", str(tmp_path / "wire.pcap"), expression]
            return len(subprocess.run(read, capture_output=True, text=True).stdout.splitlines())

        assert seen("udp port 7 or tcp port 110") == 0
        esp_with_vip = f"host {VIP} and udp port 4500 and udp[8:4] != 0"  # ESP-in-UDP, not IKE
        assert seen(esp_with_vip) >= 4  # the two requests and their answers, encrypted
    finally:
        compose("down", "-v", "-t", "0")
    assert PROJECT not in backend("docker").leftovers()


def test_the_harness_container_runs_a_lab_and_propagates_exit_codes(backend_name: str) -> None:
    results = REPO / "results"
    results.mkdir(exist_ok=True)  # created by us, not root-owned by dockerd
    output = Path("results") / "compose-harness.json"
    (REPO / output).unlink(missing_ok=True)
    built = compose("build", "harness")  # from the current sources, as after updating a checkout
    assert built.returncode == 0, built.stderr[-2000:]
    try:
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
        assert "argument --fault: 'nope' is not one of" in refused.stderr
    finally:
        compose("down", "-v", "-t", "0")
    assert PROJECT not in backend("docker").leftovers()

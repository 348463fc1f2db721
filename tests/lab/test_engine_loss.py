"""A Docker engine that stops in the middle of a run. The test starts an engine of its own (its
own data, exec root and socket, the host's firewall and sysctls left alone, the node image
copied in), never the one the other tests or the user use: the harness says so in one line,
tears down what it can, and once the engine is back `clean` removes the rest."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from harness.backends.docker import DockerBackend

LAB_BACKENDS = ("docker",)
CLI = [sys.executable, "-m", "harness.cli"]
ENGINE_START_S = 30.0
ENGINE_STOP_S = 60.0


@dataclass
class Engine:
    """A dockerd of the test's own."""

    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.root / 'docker.sock'}"}

    def docker(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *arguments], env=self.env, capture_output=True, text=True, timeout=300)

    def start(self) -> None:
        argv = [
            "dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"), "-H", f"unix://{self.root / 'docker.sock'}",
            "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
            "--default-address-pool", "base=198.19.0.0/16,size=24",
        ]  # fmt: skip
        with open(self.root / "dockerd.log", "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        for attempt in Retrying(stop=stop_after_delay(ENGINE_START_S), wait=wait_fixed(0.2), reraise=True):
            with attempt:
                assert self.docker("version").returncode == 0, (self.root / "dockerd.log").read_text()[-2000:]

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: the engine stops its containers and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(ENGINE_STOP_S)
        self.process = None


@pytest.fixture
def engine(backend_name: str) -> Iterator[Engine]:
    DockerBackend().ensure_image()  # built on the shared engine, then copied in
    own = Engine(Path(tempfile.mkdtemp(prefix="flab-engine-", dir="/var/lib")))
    try:
        own.start()
        copied = subprocess.run(
            f"docker save failover-lab-node:trixie | DOCKER_HOST={own.env['DOCKER_HOST']} docker load",
            shell=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert copied.returncode == 0, copied.stderr
        yield own
    finally:
        with contextlib.suppress(Exception):
            if own.process is None:
                own.start()
            subprocess.run([*CLI, "clean", "--force", "--backend", "docker"], env=own.env, capture_output=True)
        own.stop()
        for mount in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            point = mount.split()[4]
            if point.startswith(str(own.root)):
                subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(own.root, ignore_errors=True)


def test_an_engine_that_stops_mid_run(engine: Engine) -> None:
    run = subprocess.Popen(
        [*CLI, "run", "--fault", "crash", "--profile", "strongswan-default", "--backend", "docker"],
        env=engine.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        announced = run.stdout.readline()
        found = re.search(r"on lab (\w+)", announced)
        assert found, announced
        qualified = f"flab-{found.group(1)}"
        assert "fault: crash of be1" in run.stdout.readline()  # mid-run: the fault struck
        stopped = time.monotonic()
        engine.stop()
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, err
    [line] = [line for line in err.splitlines() if line.strip()]
    assert re.match(r"failover-lab: error: \w+: the node is gone \(.*\); .*did its engine stop\?", line), line
    assert time.monotonic() - stopped < ENGINE_STOP_S + 30
    engine.start()  # the engine is back with the lab's stopped containers, network and volume
    assert qualified in engine.docker("ps", "-a", "--format", "{{.Labels}}").stdout
    cleaned = subprocess.run([*CLI, "clean", "--backend", "docker"], env=engine.env, capture_output=True, text=True)
    assert cleaned.returncode == 0 and qualified in cleaned.stdout, cleaned.stdout + cleaned.stderr
    assert engine.docker("ps", "-aq").stdout.strip() == ""
    assert qualified not in engine.docker("network", "ls").stdout
    assert engine.docker("volume", "ls", "-q").stdout.strip() == ""

#!/usr/bin/env bash
# Install what failover-lab needs on a Debian machine (as root) and run it.
#   ./quickstart.sh demo   reproduce KB 821839: graceful move and crash per timer profile, report folder
#   ./quickstart.sh test   lint, type checks, unit tests and the real lab tests, on network
#                          namespaces, on Docker (FAILOVER_LAB_DOCKER=0: not) and on User-mode
#                          Linux VMs (FAILOVER_LAB_UML=0: not), then the shipped scenarios
#                          (netns, one lab per core; on the VMs those that need a link delay)
# Idempotent: apt packages are installed only when missing, the venv (.venv) is reused.
# Without a running Docker engine, `test` starts one by hand (leaving the host's firewall and
# sysctls alone), builds the Debian base images from the apt mirror (no registry needed) and
# stops the engine by its PID when it ends, also on failure.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(strongswan-charon strongswan-swanctl libstrongswan-standard-plugins
  libstrongswan-extra-plugins libcharon-extra-plugins iproute2 iputils-arping nftables tcpdump)
DOCKER_PACKAGES=(docker.io docker-compose debootstrap)
UML_PACKAGES=(user-mode-linux uml-utilities kmod python3 iptables openssh-server keepalived)
TEST_PACKAGES=(tshark)  # the evidence test decrypts a run's capture with the keys charon logged
DOCKER_STATE=/var/lib/failover-lab-docker

die() { echo "quickstart: $*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "run as root (the lab uses network namespaces), e.g. sudo ./quickstart.sh ${1:-demo}"
command -v apt-get >/dev/null || die "this script needs Debian's apt-get; install the packages by hand: ${APT_PACKAGES[*]}"

install_system() {
  local missing=()
  for package in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return
  echo "quickstart: installing ${missing[*]}"
  # Keep apt from starting a host-wide charon or sshd: the lab runs its own charon per node, and
  # sshd runs only inside the test hosts' VMs (`failover-lab hosts up`).
  local created_policy=no
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    created_policy=yes
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" = yes ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

install_python() {
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is needed"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  local stamp=.venv/.installed-from
  if [ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum pyproject.toml)" ]; then
    .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
    sha256sum pyproject.toml > "$stamp"
  fi
  .venv/bin/python -c 'import harness.cli' || die "the Python environment in .venv is broken: remove .venv and retry"
}

engine_answers() { timeout 5 docker version >/dev/null 2>&1; }

stop_docker() {
  kill "$DOCKERD_PID" 2>/dev/null || true
  wait "$DOCKERD_PID" 2>/dev/null || true
  umount "$DOCKER_STATE/exec/netns/default" 2>/dev/null || true  # dockerd leaves this mount behind
}

start_docker() {
  # Use the engine that runs; else start dockerd by hand and stop it (by PID) when we exit.
  engine_answers && return 0
  mkdir -p "$DOCKER_STATE"
  echo "quickstart: starting dockerd (data in $DOCKER_STATE)"
  dockerd --data-root "$DOCKER_STATE/data" --exec-root "$DOCKER_STATE/exec" --pidfile "$DOCKER_STATE/dockerd.pid" \
    --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
    --default-address-pool base=198.19.0.0/16,size=24 >"$DOCKER_STATE/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  trap stop_docker EXIT
  for _ in $(seq 60); do engine_answers && return 0; sleep 0.5; done
  tail -n 5 "$DOCKER_STATE/dockerd.log" >&2
  die "dockerd did not answer within 30 s (log: $DOCKER_STATE/dockerd.log)"
}

docker_tests=${FAILOVER_LAB_DOCKER:-1}
uml_tests=${FAILOVER_LAB_UML:-1}
command=${1:-demo}
extra=()
if [ "$command" = test ]; then
  extra+=("${TEST_PACKAGES[@]}")
  [ "$docker_tests" = 1 ] && extra+=("${DOCKER_PACKAGES[@]}")
  [ "$uml_tests" = 1 ] && extra+=("${UML_PACKAGES[@]}")
fi
install_system "${extra[@]}"
install_python

case "$command" in
  demo)
    exec .venv/bin/failover-lab demo --backend netns --out results/demo
    ;;
  test)
    .venv/bin/ruff check harness tests bench
    .venv/bin/ruff format --check harness tests bench
    .venv/bin/mypy
    backends=(--lab-backend netns)
    if [ "$docker_tests" = 1 ]; then
      start_docker
      lab/base-image.sh trixie
      lab/base-image.sh bookworm
      # A TLS-inspecting proxy's CAs, for pip inside the harness image build.
      cp /usr/local/share/ca-certificates/*.crt lab/ca-certificates/ 2>/dev/null || true
      backends+=(--lab-backend docker --lab-backend docker:bookworm)
    fi
    [ "$uml_tests" = 1 ] && backends+=(--lab-backend uml)
    FAILOVER_LAB_REQUIRE_LAB=1 .venv/bin/pytest tests "${backends[@]}"
    .venv/bin/pytest scenarios --lab-backend netns -n auto  # one lab per core: more load charon's timers
    if [ "$uml_tests" = 1 ]; then  # what needs netem (which this host's kernel lacks) or raw ESP: on the VMs
      .venv/bin/pytest scenarios/field/reauth-break-before-make.yaml scenarios/field/reauth-break-before-make-fixed.yaml \
        scenarios/field/ike-cut-esp-passes.yaml scenarios/field/ike-cut-esp-passes-fixed.yaml --lab-backend uml
    fi
    ;;
  *)
    die "unknown command '$1': use demo or test"
    ;;
esac

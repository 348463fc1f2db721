#!/usr/bin/env bash
# Install what failover-lab needs on a Debian machine (as root) and run it.
#   ./quickstart.sh demo   reproduce KB 821839: graceful move and crash per timer profile, report folder
#   ./quickstart.sh test   lint, type checks, unit tests and the real lab tests
# Idempotent: apt packages are installed only when missing, the venv (.venv) is reused.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(strongswan-charon strongswan-swanctl libstrongswan-standard-plugins
  libstrongswan-extra-plugins libcharon-extra-plugins iproute2 iputils-arping nftables tcpdump)

die() { echo "quickstart: $*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "run as root (the lab uses network namespaces), e.g. sudo ./quickstart.sh ${1:-demo}"
command -v apt-get >/dev/null || die "this script needs Debian's apt-get; install the packages by hand: ${APT_PACKAGES[*]}"

install_system() {
  local missing=()
  for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return
  echo "quickstart: installing ${missing[*]}"
  # Keep apt from starting a host-wide charon: the lab runs its own, one per node.
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

install_system
install_python

case "${1:-demo}" in
  demo)
    exec .venv/bin/failover-lab demo --out results/demo
    ;;
  test)
    .venv/bin/ruff check harness tests bench
    .venv/bin/ruff format --check harness tests bench
    .venv/bin/mypy
    FAILOVER_LAB_REQUIRE_LAB=1 exec .venv/bin/pytest tests
    ;;
  *)
    die "unknown command '$1': use demo or test"
    ;;
esac

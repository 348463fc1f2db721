#!/usr/bin/env bash
# Build the image `debian:<release>-slim` locally from Debian's packages (debootstrap + docker
# import), for machines that reach Debian's mirror but no container registry. The node
# Dockerfile then builds unchanged (FROM debian:<release>-slim) and nothing is pulled.
# Reuses the image when it is already there. The mirror is the one this host's apt uses.
#   lab/base-image.sh trixie|bookworm
set -euo pipefail
release=${1:?usage: lab/base-image.sh <debian release, e.g. trixie>}
image="debian:${release}-slim"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base-image: $image is there"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "base-image: debootstrap is missing: apt-get install debootstrap" >&2; exit 2; }

mirror=$(
  { grep -h -A4 '^Types:.*deb' /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *//p'
    grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'
  } | grep -v -e security -e '^$' | grep '/debian/\?$' | head -n 1
) || true
[ -n "$mirror" ] || { echo "base-image: no Debian mirror found in this host's apt sources" >&2; exit 2; }

root=$(mktemp -d /var/tmp/flab-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "base-image: debootstrap $release from $mirror"
debootstrap --variant=minbase "$release" "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*
tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - "$image" >/dev/null
echo "base-image: $image imported"

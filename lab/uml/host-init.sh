#!/bin/sh
# PID 1 of a test host (harness/testhosts.py, `failover-lab hosts up`): a User-mode Linux VM that
# stands in for a real machine reachable only over SSH. The root is the host's / through hostfs,
# read-only; the host's directory for this VM is mounted read-write at the same path (sshd's
# config, host key and log). Kernel parameters arrive as environment variables:
#   flab_node      fe, be1, be2 or dc (its hostname)
#   flab_dir       its directory on the host
#   flab_mgmt      its management address (vec1 -> mgmt0: where sshd listens, nothing else)
#   flab_lab       its lab address with prefix (vec0 -> eth0)
#   flab_vip       the VIP with prefix, on the back-end that holds it at boot (else empty)
#   flab_modprobe  the modprobe wrapper for the UML kernel's modules
# Nothing of the harness runs here: the ssh backend brings its agent, charon and probes over SSH.
. "$(dirname "$0")/common.sh"
vm_setup
mkdir -p /run/sshd
mount -t tmpfs -o mode=1777 tmpfs /tmp
ip addr add "$flab_lab" dev eth0
[ -n "$flab_vip" ] && ip addr add "$flab_vip" dev eth0
ip link set eth0 up
echo "init: $(cut -d' ' -f1 /proc/uptime) network up"
/usr/sbin/sshd -f "$flab_dir/sshd_config" -E "$flab_dir/sshd.log" || echo "init: sshd failed"
ipsec_ready
while :; do sleep 10; done

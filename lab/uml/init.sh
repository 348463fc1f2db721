#!/bin/sh
# PID 1 of a User-mode Linux lab node (harness/backends/uml.py starts the VM with this as init).
# The root is the host's / through hostfs, read-only; the node's own directory on the host is
# mounted read-write at the same path (config, logs, charon's output). Kernel parameters arrive
# as environment variables:
#   flab_node     fe, be1, be2 or dc
#   flab_dir      the node's directory on the host
#   flab_mgmt     the node's management address (on vec1: the agent's network, never the lab wire)
#   flab_port     the agent's TCP port on it
#   flab_python   the host's Python, flab_agent the node agent, flab_modprobe the modprobe wrapper
# The lab interface (vec0) becomes eth0, as on every backend (a node booted again first loads its
# guard). Then the kernel's IPsec modules are loaded and the crypto of the ESP proposal warmed up
# (its first use costs ~1.5 s under UML), and the node agent listens on the management address. PID 1 stays a shell that reaps orphans.
. "$(dirname "$0")/common.sh"
vm_setup
# A node booted again (the reboot fault) loads the fail-closed guard the lab wrote at bring-up
# before its lab interface comes up, as a host loads its firewall before its network: otherwise
# it answers its peers' IKE in clear (ICMP port unreachable) until the harness reloads the guard.
if [ -f "$flab_dir/guard.sh" ]; then sh "$flab_dir/guard.sh" || echo "init: the guard did not load"; fi
ip link set eth0 up
echo "init: $(cut -d' ' -f1 /proc/uptime) network up"
"$flab_python" -I -S "$flab_agent" --listen "tcp:$flab_mgmt:$flab_port" >>"$flab_dir/agent.log" 2>&1 &
ipsec_ready
while :; do sleep 10; done

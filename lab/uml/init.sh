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
# The lab interface (vec0) becomes eth0, as on every backend. Then the kernel's IPsec modules are
# loaded and the crypto of the ESP proposal warmed up (its first use costs ~1.5 s under UML), and
# the node agent listens on the management address. PID 1 stays a shell that reaps orphans.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=700 tmpfs /root
mount -t hostfs none "$flab_dir" -o "$flab_dir"
exec >>"$flab_dir/console.log" 2>&1
echo "$flab_modprobe" > /proc/sys/kernel/modprobe
hostname "$flab_node"
ip link set lo up
ip link set vec0 name eth0
ip link set eth0 up
ip link set vec1 name mgmt0
ip addr add "$flab_mgmt/24" dev mgmt0
ip link set mgmt0 up
echo "init: $(cut -d' ' -f1 /proc/uptime) network up"
"$flab_python" -I -S "$flab_agent" --listen "tcp:$flab_mgmt:$flab_port" >>"$flab_dir/agent.log" 2>&1 &
"$flab_modprobe" -a xfrm_user esp4 xfrm4_tunnel authenc echainiv seqiv gcm ghash-generic cbc ctr hmac af_packet ||
    echo "init: modprobe failed"
echo "init: $(cut -d' ' -f1 /proc/uptime) modules loaded"
key=0x0102030405060708090a0b0c0d0e0f1011121314
ip xfrm state add src 127.0.0.1 dst 127.0.0.2 proto esp spi 0xfff0 mode transport aead 'rfc4106(gcm(aes))' $key 128 &&
    ip xfrm state delete src 127.0.0.1 dst 127.0.0.2 proto esp spi 0xfff0
echo "init: $(cut -d' ' -f1 /proc/uptime) crypto warm"
touch "$flab_dir/booted"
while :; do sleep 10; done

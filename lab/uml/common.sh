# Shared by the PID 1 scripts of User-mode Linux VMs (init.sh: lab nodes; host-init.sh: test
# hosts), sourced with flab_node, flab_dir, flab_mgmt and flab_modprobe set (see each script).

# Mounts (the root is the host's /, read-only; tmpfs over /root hides the host's home), the
# console log in the VM's directory, the hostname, lo, eth0 (vec0: the lab wire, not yet up) and
# mgmt0 (vec1: the management network, up with its address).
vm_setup() {
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
    ip link set vec1 name mgmt0
    ip addr add "$flab_mgmt/24" dev mgmt0
    ip link set mgmt0 up
}

# The kernel's IPsec modules and everything else the node loads on demand otherwise while its SAs
# are installed (IPv6 for charon's sockets, the guard's iptables matches, the random generator of
# ESP's IV generator), and the ESP proposal's crypto used once (its first use costs ~1.5 s under
# UML): an SA added until the kernel takes it, each refusal logged. Then the marker the harness
# waits for; without it the harness reports the last line here.
ipsec_ready() {
    "$flab_modprobe" -a xfrm_user esp4 xfrm4_tunnel authenc echainiv seqiv gcm ghash-generic cbc ctr hmac af_packet \
        ipv6 iptable_filter xt_policy xt_tcpudp sha512_generic drbg ||
        echo "init: modprobe failed"
    echo "init: $(cut -d' ' -f1 /proc/uptime) modules loaded"
    key=0x0102030405060708090a0b0c0d0e0f1011121314
    refused=0
    until ip xfrm state add src 127.0.0.1 dst 127.0.0.2 proto esp spi 0xfff0 mode transport \
        aead 'rfc4106(gcm(aes))' $key 128; do
        refused=$((refused + 1))
        echo "init: $(cut -d' ' -f1 /proc/uptime) the kernel refused the ESP crypto ($refused)"
        if [ "$refused" -ge 15 ]; then
            dmesg | grep -i -E 'alg:|crypto|testmgr|page allocation|warning|drbg|jitter' | tail -n 20
            echo "init: the kernel does not take rfc4106(gcm(aes)) SAs: ESP cannot work on this node"
            return
        fi
        sleep 0.2
    done
    ip xfrm state delete src 127.0.0.1 dst 127.0.0.2 proto esp spi 0xfff0
    echo "init: $(cut -d' ' -f1 /proc/uptime) crypto warm"
    touch "$flab_dir/booted"
}

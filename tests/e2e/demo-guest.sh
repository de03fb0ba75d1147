#!/bin/sh
# The demo guest's init: shows what the VM looks like from inside, then either
# gives a shell (atoll.interactive on the command line) or powers off.
echo
echo "=== An Atoll guest is up ==="
echo "kernel:  $(uname -sr)"
echo "vCPUs:   $(grep -c ^processor /proc/cpuinfo) online ($(cat /sys/devices/system/cpu/online))"
echo "memory:  $(awk '/MemTotal/ {print int($2/1024) " MiB"}' /proc/meminfo)"
for disk in /sys/block/vd*; do
    [ -e "$disk" ] || continue
    echo "disk:    /dev/${disk##*/} $(( $(cat "$disk/size") / 2048 )) MiB$( [ "$(cat "$disk/ro")" = 1 ] && echo ' (read-only)')"
done
if ip link set eth0 up 2>/dev/null; then
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
    echo "network: eth0 10.0.2.15/24 via 10.0.2.2 ($(ping -c 1 -W 5 10.0.2.2 >/dev/null 2>&1 && echo reachable || echo no answer))"
fi
echo "devices: $(ls /sys/bus/virtio/devices | wc -l) virtio devices"
if grep -q atoll.interactive /proc/cmdline; then
    echo "Type 'poweroff -f' to power the guest off."
    setsid cttyhack sh
fi
echo "=== powering off ==="
poweroff -f

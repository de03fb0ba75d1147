#!/bin/sh
# Runs inside the guest (Debian 13 kernel, busybox initramfs). The scenario
# comes from the kernel command line (atoll.test=NAME); results are lines on
# the serial console starting with ATOLL- that the host-side scenario checks.
scenario=$(sed -n 's/.*atoll\.test=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "ATOLL-GUEST-UP scenario=$scenario"

case $scenario in
smp)
    # Secondary CPUs come up asynchronously only in theory; by init they are online.
    echo "ATOLL-CPUS online=$(cat /sys/devices/system/cpu/online) count=$(grep -c ^processor /proc/cpuinfo)"
    ;;
disk)
    echo "ATOLL-DISK-SHA $(sha256sum /dev/vda | cut -d' ' -f1)"
    echo "ATOLL-DISK-RO vda=$(cat /sys/block/vda/ro) vdb=$(cat /sys/block/vdb/ro)"
    echo "ATOLL-DISK-SERIAL $(cat /sys/block/vda/serial 2>/dev/null)"
    if printf 'x' | dd of=/dev/vdb bs=1 count=1 conv=notrunc 2>/dev/null && sync; then
        echo "ATOLL-READONLY-WRITE accepted"
    else
        echo "ATOLL-READONLY-WRITE refused"
    fi
    ;;
reboot)
    marker=$(dd if=/dev/vda bs=16 count=1 2>/dev/null)
    if [ "$marker" = "ATOLL-WRITTEN-OK" ]; then
        echo "ATOLL-PERSISTED"
    else
        printf 'ATOLL-WRITTEN-OK' | dd of=/dev/vda bs=16 count=1 conv=notrunc,fsync 2>/dev/null
        sync
        echo "ATOLL-REBOOTING"
        reboot -f
        sleep 30
    fi
    ;;
net)
    ip link set lo up
    ip link set eth0 up
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
    # (busybox 1.35's wget crashes with -T, so no timeout option here.)
    echo "ATOLL-HTTP $(wget -q -O - http://10.0.2.2:8080/hello.txt 2>&1)"
    ;;
rng)
    echo "ATOLL-RNG current=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
    echo "ATOLL-RNG bytes=$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | wc -c)"
    ;;
poweroff)
    ;;
esac
echo "ATOLL-GUEST-DONE"
poweroff -f

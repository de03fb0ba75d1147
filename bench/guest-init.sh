#!/bin/sh
# The benchmark guest's init (rdinit=/bench/init on the kernel command line),
# run by the kernel straight from the initramfs with the console on fds 0-2.
# Printing the marker is its very first action: boot_to_init_ms ends there.
echo ATOLL-INIT
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mode=$(sed -n 's/.*bench\.mode=\([^ ]*\).*/\1/p' /proc/cmdline)

case $mode in
boot)
    # Power off at once: the host measures the time to the marker only.
    ;;
idle)
    # Stay up, doing nothing, while the host samples the VMM's memory use.
    sleep "$(sed -n 's/.*bench\.idle=\([0-9]*\).*/\1/p' /proc/cmdline)"
    ;;
blk)
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev
    while read -r m; do
        insmod "/lib/modules/$m" || echo "BENCH-ERROR insmod $m failed"
    done </lib/modules/load-order
    passes=$(sed -n 's/.*bench\.seq=\([0-9]*\).*/\1/p' /proc/cmdline)
    runs=$(sed -n 's/.*bench\.rand=\([0-9]*\).*/\1/p' /proc/cmdline)
    secs=$(sed -n 's/.*bench\.secs=\([0-9]*\).*/\1/p' /proc/cmdline)
    dev=/dev/vda
    # The driver probes asynchronously only in theory; allow a moment anyway.
    i=0
    while [ ! -b $dev ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    if [ -b $dev ]; then
        echo "BENCH-DISK size=$(cat /sys/block/vda/size) ro=$(cat /sys/block/vda/ro)"
        # Warm-up, not reported: the first pass over fresh guest and host
        # mappings is slower than the ones after it.
        /bench/blkbench seq $dev >/dev/null || echo "BENCH-ERROR warm-up failed"
        i=0
        while [ $i -lt "${passes:-1}" ]; do
            /bench/blkbench seq $dev || echo "BENCH-ERROR seq failed"
            i=$((i + 1))
        done
        i=0
        while [ $i -lt "${runs:-1}" ]; do
            /bench/blkbench rand $dev "${secs:-3}" || echo "BENCH-ERROR rand failed"
            i=$((i + 1))
        done
    else
        echo "BENCH-ERROR no $dev"
    fi
    ;;
dmesg)
    # Diagnostics (not used by bench/run): where did the boot's time go?
    echo "BENCH-UPTIME $(cat /proc/uptime)"
    dmesg | sed 's/^/BENCH-DMESG /'
    ;;
*)
    echo "BENCH-ERROR unknown bench.mode '$mode'"
    ;;
esac
echo "BENCH-GUEST-DONE"
# Let the UART drain before the power goes (TCSADRAIN).
stty -F /dev/console -echo 2>/dev/null
poweroff -f

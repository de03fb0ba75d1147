# Runs inside the virtual test host (busybox sh, cwd /payload), started by
# bench/display/run through tests/testhost/run. The same guest (fbbench.c)
# under atoll-vmm (virtio-gpu, atoll-display's VNC server) and under QEMU
# (virtio-gpu-pci, QEMU's own VNC server), each watched by the same VNC client
# (vncbench.cpp), taking turns. Prints one line per sample:
#     BENCH-SAMPLE METRIC VMM VALUE
# bench/display/run turns the samples into medians and JSON. Problems are
# "BENCH-PROBLEM ..." lines with the logs' tails; the script goes on and
# exits 1 at the end. Settings come from bench.conf (written by the runner).
# shellcheck disable=SC1091 # written by bench/display/run
. ./bench.conf
# shellcheck source=bench/host-lib.sh
. ./host-lib.sh

CMDLINE="console=ttyS0 quiet panic=-1 bench.seconds=$GUEST_SECONDS"
CLIENT="./vncbench --size ${WIDTH}x$HEIGHT --warmup $WARMUP_SECS --seconds $MEASURE_SECS --latency $LATENCY_SAMPLES --timeout 400"

# wait_exit PID SECONDS: waits for the VMM to end by itself, kills it after SECONDS.
wait_exit() {
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$1" 2>/dev/null; then
        kill -9 "$1" 2>/dev/null
        wait "$1" 2>/dev/null
        return 1
    fi
    wait "$1" 2>/dev/null
    return 0
}

# samples VMM CLIENT_OUTPUT: BENCH-SAMPLE lines from vncbench's report.
samples() {
    t=$(grep '^VNCBENCH-THROUGHPUT' "$2")
    for field in fps wire_bytes_per_s bytes_per_frame; do
        v=$(echo "$t" | sed -n "s/.* $field=\([0-9.]*\).*/\1/p")
        [ -n "$v" ] && echo "BENCH-SAMPLE display_$field $1 $v"
    done
    sed -n 's/^VNCBENCH-LATENCY-SAMPLE ms=\([0-9.]*\).*/\1/p' "$2" |
        while read -r v; do echo "BENCH-SAMPLE display_latency_ms $1 $v"; done
    grep -h '^VNCBENCH' "$2" | grep -v SAMPLE | sed "s/^/bench: $1: /"
}

run_atoll() { # NAME
    log=/tmp/logs/$1.log out=/tmp/logs/$1.client
    rm -f /tmp/display.sock
    ./atoll-display --listen /tmp/display.sock --dbus none --state-dir "" --vnc-port bench=5910 \
        >"/tmp/logs/$1.display.log" 2>&1 &
    server=$!
    i=0
    while [ ! -S /tmp/display.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    ./atoll-vmm --name bench --kernel $K --initrd $I --cmdline "$CMDLINE" --memory "$MEM" --cpus 1 --no-net \
        --serial stdio --display /tmp/display.sock --display-size "${WIDTH}x$HEIGHT" >"$log" 2>&1 </dev/null &
    vmm=$!
    # shellcheck disable=SC2086
    $CLIENT --port 5910 >"$out" 2>&1
    rc=$?
    wait_exit $vmm 120 || problem "$log" "$1: atoll-vmm did not exit after the guest's run"
    kill $server 2>/dev/null
    wait $server 2>/dev/null
    [ $rc -eq 0 ] || problem "$out" "$1: vncbench exit $rc"
    grep -h 'BENCH-\|FBBENCH' "$log" | sed "s/^/bench: $1: guest: /"
    samples atoll "$out"
}

run_qemu() { # NAME
    log=/tmp/logs/$1.log out=/tmp/logs/$1.client
    # The same devices the guest sees under atoll-vmm: a virtio GPU (its
    # preferred mode WIDTHxHEIGHT) and a virtio keyboard; display 11 is port 5911.
    $Q -enable-kvm -cpu host -m "$MEM" -smp 1 -nodefaults -no-user-config -display none -vnc 127.0.0.1:11 \
        -serial stdio -no-reboot -device "virtio-gpu-pci,xres=$WIDTH,yres=$HEIGHT" -device virtio-keyboard-pci \
        -kernel $K -initrd $I -append "$CMDLINE" >"$log" 2>&1 </dev/null &
    vmm=$!
    # shellcheck disable=SC2086
    $CLIENT --port 5911 >"$out" 2>&1
    rc=$?
    wait_exit $vmm 120 || problem "$log" "$1: QEMU did not exit after the guest's run"
    [ $rc -eq 0 ] || problem "$out" "$1: vncbench exit $rc"
    grep -h 'BENCH-\|FBBENCH' "$log" | sed "s/^/bench: $1: guest: /"
    samples qemu "$out"
}

echo "bench: host $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
echo "bench: $($Q --version | head -n 1)"
round=1
while [ $round -le "$ROUNDS" ]; do
    run_atoll "display-atoll-$round"
    run_qemu "display-qemu-$round"
    round=$((round + 1))
done
bench_finish

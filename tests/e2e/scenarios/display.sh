# A person at a VNC viewer: the guest's virtio-gpu framebuffer shows in a real
# VNC client through atoll-display, keys typed there reach the guest's
# virtio-input keyboard, and a desktop-size request changes the guest's mode.
set -e
. ./common.sh
mkdir -p /tmp/display-state
./atoll-display --verbose --listen /tmp/display.sock --dbus none --state-dir /tmp/display-state --vnc-port e2e=5910 \
    > display-server.log 2>&1 &
server=$!
i=0
while [ ! -S /tmp/display.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# The viewer: waits for the VM's VNC port, the pattern, then types and resizes.
./atoll-vnc-probe check --port 5910 --size 800x600 --keys atoll --resize 640x480 --timeout 500 > probe.log 2>&1 &
probe=$!
export ATOLL_GPU_TRACE=1
(
    sleep 90
    for pid in $(pidof atoll-display) $(pidof atoll-vmm); do
        for fd in /proc/$pid/fd/*; do
            case $(readlink $fd) in *memfd:atoll-gpu*)
                echo "DEBUG-MEMFD pid=$pid $(readlink $fd) $(cat /proc/$pid/cmdline | tr '\0' ' ' | cut -c1-20) px=$(dd if=$fd bs=4 skip=40100 count=1 2>/dev/null | od -An -tx1)"
                ;;
            esac
        done
        grep -i memfd /proc/$pid/maps | head -3 | sed "s/^/DEBUG-MAPS $pid /"
    done
) > memfd-debug.log 2>&1 &
boot display.log --no-net --name e2e --display /tmp/display.sock --display-size 800x600 \
    --cmdline "console=ttyS0 quiet atoll.test=display"
set +e
wait $probe
probe_status=$?
kill $server 2>/dev/null
wait $server
set -e
grep -E "gpu-trace|DEBUG-MARK|ATOLL-FB" display.log | grep -v notify | tail -12
cat memfd-debug.log
grep -E "ATOLL-" display.log
sed 's/^/    probe | /' probe.log
sed 's/^/    atoll-display | /' display-server.log | head -30
sed 's/^/    atoll-display | /' display-server.log | tail -30
check "atoll-vmm exits 0" [ "$status" -eq 0 ]
check "the guest has a virtio keyboard" has_line display.log "ATOLL-INPUT keyboard=/dev/input/event"
check "the guest's framebuffer is 800x600" has_line display.log "ATOLL-FB 800,600 stride=3200"
check "the VNC client sees the guest's pattern" has_line probe.log "PROBE-PATTERN-OK 800x600"
check "keys typed in the VNC client reach the guest" has_line display.log "ATOLL-KEYS 30 20 24 38 38"
check "the guest's preferred mode follows the resize" has_line display.log "ATOLL-MODE 640x480"
check "the VNC client sees the resized screen" has_line probe.log "PROBE-RESIZE-OK 640x480"
check "the VNC client passed every step" [ "$probe_status" -eq 0 ]
finish

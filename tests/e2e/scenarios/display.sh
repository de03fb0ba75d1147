# A person at a VNC viewer: the guest's virtio-gpu framebuffer shows in a real
# VNC client through atoll-display, keys typed there reach the guest's
# virtio-input keyboard, and a desktop-size request changes the guest's mode.
set -e
. ./common.sh
mkdir -p /tmp/display-state
./atoll-display --listen /tmp/display.sock --dbus none --state-dir /tmp/display-state --vnc-port e2e=5910 \
    > display-server.log 2>&1 &
server=$!
i=0
while [ ! -S /tmp/display.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# The viewer: waits for the VM's VNC port, the pattern, then types and resizes.
./atoll-vnc-probe check --port 5910 --size 800x600 --keys atoll --resize 640x480 --timeout 500 > probe.log 2>&1 &
probe=$!
boot display.log --no-net --name e2e --display /tmp/display.sock --display-size 800x600 \
    --cmdline "console=ttyS0 quiet atoll.test=display"
set +e
wait $probe
probe_status=$?
kill $server 2>/dev/null
wait $server
set -e
sed 's/^/    probe | /' probe.log
sed 's/^/    atoll-display | /' display-server.log
check "atoll-vmm exits 0" [ "$status" -eq 0 ]
check "the guest has a virtio keyboard" has_line display.log "ATOLL-INPUT keyboard=/dev/input/event"
check "the guest's framebuffer is 800x600" has_line display.log "ATOLL-FB 800,600 stride=3200"
check "the VNC client sees the guest's pattern" has_line probe.log "PROBE-PATTERN-OK 800x600"
check "keys typed in the VNC client reach the guest" has_line display.log "ATOLL-KEYS 30 20 24 38 38"
check "the guest's preferred mode follows the resize" has_line display.log "ATOLL-MODE 640x480"
check "the VNC client sees the resized screen" has_line probe.log "PROBE-RESIZE-OK 640x480"
check "the VNC client passed every step" [ "$probe_status" -eq 0 ]
finish

# A person at a VNC viewer: the guest's virtio-gpu framebuffer shows in a real
# VNC client through atoll-display, keys typed there reach the guest's
# virtio-input keyboard, and a desktop-size request changes the guest's mode.
# Then the guest reboots: the viewer stays connected, sees the screen go
# black and the new boot's picture at the size it asked for, and its keys
# reach the new boot's keyboard.
set -e
. ./common.sh
mkdir -p /tmp/display-state
./atoll-display --listen /tmp/display.sock --dbus none --state-dir /tmp/display-state --vnc-port e2e=5910 \
    > display-server.log 2>&1 &
server=$!
i=0
while [ ! -S /tmp/display.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# The viewer: waits for the VM's VNC port, the pattern, then types and resizes.
./atoll-vnc-probe check --port 5910 --size 800x600 --keys atoll --resize 640x480 --reboot 640x480 --timeout 500 \
    > probe.log 2>&1 &
probe=$!
cp scratch.img display-disk.img
boot display.log --no-net --name e2e --display /tmp/display.sock --display-size 800x600 --disk display-disk.img \
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
check "the guest rebooted" has_line display.log "ATOLL-REBOOTING"
check "the VNC client saw the old boot's screen go black" has_line probe.log "PROBE-BLANK"
check "the new boot starts at the viewer's size" has_line display.log "ATOLL-FB2 640,480"
check "the same VNC connection shows the new boot's screen" has_line probe.log "PROBE-REBOOT-OK 640x480"
check "keys typed after the reboot reach the new boot" has_line display.log "ATOLL-KEYS2 30 20 24 38 38"
# (The link drops once, when atoll-vmm exits at the end.)
check "atoll-display kept the VM's link across the reboot" [ "$(grep -c "display link up" display-server.log)" -eq 1 ]
check "atoll-vmm connected to atoll-display once" [ "$(grep -c ": connected" display.log)" -eq 1 ]
check "the VNC client passed every step" [ "$probe_status" -eq 0 ]
finish

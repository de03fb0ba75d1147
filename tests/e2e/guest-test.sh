#!/bin/sh
# Runs inside the guest (Debian 13 kernel, busybox initramfs). The scenario
# comes from the kernel command line (atoll.test=NAME); results are lines on
# the serial console starting with ATOLL- that the host-side scenario checks.
scenario=$(sed -n 's/.*atoll\.test=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "ATOLL-GUEST-UP scenario=$scenario"

# Waits for virtio-gpu's fbdev, finds virtio-input's keyboard ($keyboard) and
# keeps the framebuffer console from drawing over what will be shown.
prepare_screen() {
    i=0
    while [ ! -e /dev/fb0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    keyboard=""
    for device in /sys/class/input/event*; do
        [ "$(cat "$device/device/name" 2>/dev/null)" = "Atoll Virtual Keyboard" ] && keyboard=/dev/input/${device##*/}
    done
    # Only the pattern on the screen: the framebuffer console draws nothing
    # over it (no cursor, no blinking; the kernel logs to ttyS0 only).
    echo 0 > /sys/class/graphics/fbcon/cursor_blink
    printf '\033[?25l' > /dev/tty1
}

# draw_and_read_keys PATTERN [SUFFIX]: draws PATTERN and prints the first 10
# key events typed (ATOLL-FB-DRAWN$SUFFIX, then ATOLL-KEYS$SUFFIX with the codes pressed).
draw_and_read_keys() {
    # The reader has the keyboard open before the pattern shows (the viewer types once it sees it).
    /bin/evread "$keyboard" 10 200 > /tmp/keys.log &
    reader=$!
    sleep 1
    echo "ATOLL-FB-DRAWN${2:-} $(/bin/fbdraw "$1")"
    wait $reader
    sed 's/^/  /' /tmp/keys.log
    echo "ATOLL-KEYS${2:-} $(grep 'value=1' /tmp/keys.log | sed 's/.*code=\([0-9]*\).*/\1/' | tr '\n' ' ')"
}

# The devices found and the framebuffer's mode, then the known 800x600
# pattern (/pattern.raw) and the keys typed.
show_pattern_and_read_keys() {
    prepare_screen
    echo "ATOLL-INPUT keyboard=$keyboard devices=$(cat /sys/class/input/event*/device/name 2>/dev/null | tr '\n' ',')"
    echo "ATOLL-FB $(cat /sys/class/graphics/fb0/virtual_size) stride=$(cat /sys/class/graphics/fb0/stride)"
    draw_and_read_keys /pattern.raw
}

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
display)
    # virtio-gpu's fbdev and virtio-input's devices; a viewer checks the pattern,
    # types "atoll" and asks for 640x480; then the guest reboots and the same
    # viewer, still connected, sees the new boot's picture and types again
    # (scenarios/display.sh). /dev/vda (scratch.img) tells the boots apart.
    marker=$(dd if=/dev/vda bs=16 count=1 2>/dev/null)
    if [ "$marker" = "ATOLL-DISPLAY-RB" ]; then
        # The second boot: the viewer's 640x480 is the preferred mode from the start.
        prepare_screen
        echo "ATOLL-FB2 $(cat /sys/class/graphics/fb0/virtual_size) stride=$(cat /sys/class/graphics/fb0/stride)"
        draw_and_read_keys /pattern-small.raw 2
        sleep 3
    else
        show_pattern_and_read_keys
        # Then the viewer asks for 640x480: the connector's preferred mode follows,
        # fbdev switches to it (showing the top-left of its buffer).
        mode=""
        for i in $(seq 1 600); do
            mode=$(head -n 1 /sys/class/drm/card*-Virtual-1/modes 2>/dev/null)
            [ "$mode" = 640x480 ] && break
            sleep 0.1
        done
        echo "ATOLL-MODE $mode"
        sleep 2
        /bin/fbdraw /pattern.raw > /dev/null  # in case the console repainted at the new mode
        sleep 8  # the viewer checks the resized screen
        printf 'ATOLL-DISPLAY-RB' | dd of=/dev/vda bs=16 count=1 conv=notrunc,fsync 2>/dev/null
        sync
        echo "ATOLL-REBOOTING"
        reboot -f
        sleep 30
    fi
    ;;
sound)
    # snd_virtio's card: its PCM devices, then 2 s of 1 kHz on the playback
    # one (scenarios/sound.sh records it from PulseAudio in the test host).
    i=0
    while [ ! -e /dev/snd/pcmC0D0p ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    echo "ATOLL-SND card=$(cat /proc/asound/card0/id 2>/dev/null) pcms=$(ls /dev/snd | grep pcm | tr '\n' ',')"
    /bin/tone play /dev/snd/pcmC0D0p 1000 2
    # Then a microphone: the test host plays 660 Hz into PulseAudio's default
    # source once it sees TONE-RECORDING; what the guest heard is measured here.
    /bin/tone record /dev/snd/pcmC0D0c 4 /tmp/recorded.raw && /bin/tone check /tmp/recorded.raw
    ;;
console)
    # The console's viewer (tests/e2e/console): the pattern until the VM is
    # forced off, and the keys typed in the viewer.
    show_pattern_and_read_keys
    sleep 3600
    ;;
poweroff)
    ;;
esac
echo "ATOLL-GUEST-DONE"
poweroff -f

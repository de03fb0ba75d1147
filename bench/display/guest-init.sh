#!/bin/sh
# The display benchmark guest's /test-init (run by make-guest-initramfs's
# /init once virtio_gpu, virtio_input and evdev are loaded): waits for the
# framebuffer and the virtual keyboard, then runs fbbench (fbbench.c). The
# same guest runs under atoll-vmm and under QEMU.
echo "BENCH-GUEST-UP"
i=0
while [ ! -e /dev/fb0 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
keyboard=""
i=0
while [ -z "$keyboard" ] && [ $i -lt 100 ]; do
    for device in /sys/class/input/event*; do
        # "Atoll Virtual Keyboard" or "QEMU Virtio Keyboard"
        case "$(cat "$device/device/name" 2>/dev/null)" in
        *Keyboard*) keyboard=/dev/input/${device##*/} ;;
        esac
    done
    [ -n "$keyboard" ] || sleep 0.1
    i=$((i + 1))
done
echo "BENCH-DISPLAY fb=$(cat /sys/class/graphics/fb0/virtual_size 2>/dev/null) keyboard=$keyboard"
if [ ! -e /dev/fb0 ] || [ -z "$keyboard" ]; then
    echo "BENCH-ERROR no framebuffer or no keyboard"
    exit 1
fi
# Nothing but fbbench draws: no blinking console cursor over its frames.
echo 0 > /sys/class/graphics/fbcon/cursor_blink
printf '\033[?25l' > /dev/tty1
seconds=$(sed -n 's/.*bench\.seconds=\([0-9]*\).*/\1/p' /proc/cmdline)
/bench/fbbench "$keyboard" "${seconds:-120}" || echo "BENCH-ERROR fbbench failed"
echo "BENCH-GUEST-DONE"

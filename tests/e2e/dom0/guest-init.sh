#!/bin/sh
# Runs in the nested guest (Debian 13 kernel, busybox initramfs): says it is
# up on the serial console, then waits for the ACPI power button and powers
# off, as a desktop guest would when atolld asks it to shut down.
echo "ATOLL-GUEST-UP"
insmod /button.ko 2>/dev/null
button=""
for device in /sys/class/input/event*; do
    if grep -q "Power Button" "$device/device/name" 2>/dev/null; then button=${device##*/}; fi
done
if [ -z "$button" ]; then
    echo "ATOLL-NO-POWER-BUTTON"
    sleep 3600
fi
echo "ATOLL-WAITING-FOR-BUTTON $button"
# One input event (24 bytes on x86-64) is the button going down.
dd if=/dev/input/$button bs=24 count=1 >/dev/null 2>&1
echo "ATOLL-POWER-BUTTON"
poweroff -f

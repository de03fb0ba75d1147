#!/bin/sh
# The audio benchmark guest's init (rdinit=/bench/init), the same initramfs
# under atoll-vmm (virtio-snd) and QEMU (intel-hda + hda-duplex): it loads
# both sound drivers, finds the one playback PCM device there is, then
#   idles ab.idle seconds between two AB-MARK lines (the CPU baseline),
#   plays ab.bursts bursts of 100 ms of 1 kHz from a stopped stream
#   (tone bursts: "TONE-BURST N" right before each write: the latency;
#   the host records between the two AB-MARK record-* lines),
#   plays ab.play seconds of 1 kHz (TONE-PLAYING ... TONE-PLAYED: the CPU
#   time per stream),
#   listens to the capture PCM device of the same card until it has heard
#   ab.listen bursts from the host's microphone (tone listen:
#   "TONE-HEARD-ONSET N" as soon as a read holds one; the host plays them
#   between TONE-LISTENING and TONE-LISTENED).
echo ATOLL-INIT
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
arg() { sed -n "s/.*ab\.$1=\([0-9]*\).*/\1/p" /proc/cmdline; }
while read -r m; do
    insmod "/lib/modules/$m" || echo "AB-ERROR insmod $m failed"
done </lib/modules/load-order
# Debian's default lets the HDA codec power down after 1 s idle; powering it
# up again at each burst is a guest policy, not the VMM's latency.
[ -w /sys/module/snd_hda_intel/parameters/power_save ] &&
    echo 0 >/sys/module/snd_hda_intel/parameters/power_save
dev="" cap=""
i=0
while [ $i -lt 150 ]; do
    for d in /dev/snd/pcmC*D*p; do [ -e "$d" ] && { dev=$d; break; }; done
    for d in /dev/snd/pcmC*D*c; do [ -e "$d" ] && { cap=$d; break; }; done
    [ -n "$dev" ] && [ -n "$cap" ] && break
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$dev" ]; then
    echo "AB-ERROR no playback PCM device: $(echo /dev/snd/*)"
else
    echo "AB-INFO card=$(cat /proc/asound/card0/id 2>/dev/null) pcm=$dev capture=${cap:-none} $(head -n 1 /proc/asound/pcm 2>/dev/null)"
    sleep 1
    echo "AB-MARK idle-begin"
    sleep "$(arg idle)"
    echo "AB-MARK idle-end"
    # The host records the sink's monitor only meanwhile; its first
    # fragments come late.
    echo "AB-MARK record-begin"
    sleep 2
    /bench/tone bursts "$dev" 1000 "$(arg bursts)" 100 400 || echo "AB-ERROR bursts failed"
    echo "AB-MARK record-end"
    /bench/tone play "$dev" 1000 "$(arg play)" || echo "AB-ERROR play failed"
    if [ -z "$cap" ]; then
        echo "AB-ERROR no capture PCM device: $(echo /dev/snd/*)"
    else
        /bench/tone listen "$cap" "$(arg listen)" 30 || echo "AB-ERROR listen failed"
    fi
fi
echo "BENCH-GUEST-DONE"
# Let the UART drain before the power goes (TCSADRAIN).
stty -F /dev/console -echo 2>/dev/null
poweroff -f

# A write survives a guest reboot: the guest writes a marker, reboots, and finds it.
set -e
. ./common.sh
boot reboot.log --no-net --cpus 2 --disk scratch.img --cmdline "console=ttyS0 quiet atoll.test=reboot"
check "atoll-vmm exits 0 after the second boot powers off" [ "$status" -eq 0 ]
check "first boot wrote and rebooted" has_line reboot.log "ATOLL-REBOOTING"
check "second boot found the write" has_line reboot.log "ATOLL-PERSISTED"
check "marker in the image file" [ "$(head -c 16 scratch.img)" = "ATOLL-WRITTEN-OK" ]
finish

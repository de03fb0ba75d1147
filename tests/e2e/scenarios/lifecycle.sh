# Power-off gives exit 0; the entropy device feeds the guest's hwrng; virtio-console
# carries a console; bad input
# gives a one-line error and exit 1 with a real /dev/kvm present.
set -e
. ./common.sh
boot rng.log --no-net --cmdline "console=ttyS0 quiet atoll.test=rng"
check "power-off: exit code 0" [ "$status" -eq 0 ]
check "virtio-rng is the guest's hwrng" has_line rng.log "ATOLL-RNG current=virtio_rng.0"
check "hwrng gives bytes" has_line rng.log "ATOLL-RNG bytes=64"
boot console.log --no-net --serial none --console stdio --cmdline "console=hvc0 quiet atoll.test=poweroff"
check "virtio-console carries the guest's console (hvc0)" has_line console.log "ATOLL-GUEST-DONE"
check "virtio-console: exit code 0" [ "$status" -eq 0 ]
boot huge.log --no-net --memory 999999
check "too much memory: exit 1" [ "$status" -eq 1 ]
check "too much memory: clear error" has_line huge.log "more than the host can give"
boot cpus.log --no-net --cpus 100000
check "too many vCPUs: exit 1" [ "$status" -eq 1 ]
boot notkernel.log --no-net --kernel guest.cpio.gz
check "not a bzImage: exit 1" [ "$status" -eq 1 ]
check "not a bzImage: clear error" has_line notkernel.log "not a bzImage"
finish

# A disk's known content reads back with the right checksum; a read-only disk refuses writes.
set -e
. ./common.sh
boot disk.log --no-net --disk known.img,serial=known-disk --disk scratch.img,ro --cmdline "console=ttyS0 quiet atoll.test=disk"
check "atoll-vmm exits 0" [ "$status" -eq 0 ]
check "known content checksum" has_line disk.log "ATOLL-DISK-SHA $(cat known.sha256)"
check "read-only flag seen by the guest" has_line disk.log "ATOLL-DISK-RO vda=0 vdb=1"
check "disk serial from GET_ID" has_line disk.log "ATOLL-DISK-SERIAL known-disk"
check "write to read-only disk refused" has_line disk.log "ATOLL-READONLY-WRITE refused"
check "read-only image unchanged" [ "$(head -c 1 scratch.img | od -An -tx1 | tr -d ' ')" = "00" ]
finish

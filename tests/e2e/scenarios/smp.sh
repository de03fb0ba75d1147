# Every vCPU comes online in the guest, with 1, 2 and 4 vCPUs.
set -e
. ./common.sh
for cpus in 1 2 4; do
    boot smp$cpus.log --cpus $cpus --no-net --cmdline "console=ttyS0 quiet atoll.test=smp"
    check "$cpus vCPU(s): atoll-vmm exits 0 on guest power-off" [ "$status" -eq 0 ]
    last=$((cpus - 1))
    if [ $cpus -eq 1 ]; then online=0; else online=0-$last; fi
    check "$cpus vCPU(s): all online" has_line smp$cpus.log "ATOLL-CPUS online=$online count=$cpus"
done
finish

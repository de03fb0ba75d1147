# Runs inside the virtual test host (busybox sh, cwd /payload), started by
# bench/run through tests/testhost/run. Boots the benchmark guest under
# atoll-vmm and QEMU (microvm and q35) on the nested /dev/kvm and prints one
# line per measured sample:
#     BENCH-SAMPLE METRIC VMM VALUE
# bench/run turns the samples into medians and JSON. Anything odd is reported
# as "BENCH-PROBLEM ..." with the tail of the VMM's output; the script then
# goes on with the other measurements and exits 1 at the end.
# Settings come from bench.conf (written by bench/run).
# shellcheck disable=SC1091 # written by bench/run
. ./bench.conf
# shellcheck source=bench/host-lib.sh
. ./host-lib.sh

T=/payload/vmmtime
DISK=/tmp/bench-disk.img
MEM=256
BASE_CMDLINE="console=ttyS0 quiet panic=-1 rdinit=/bench/init"
# Common to every QEMU run; the machine type is added per run.
QEMU_COMMON="-enable-kvm -cpu host -m $MEM -smp 1 -nodefaults -no-user-config -nographic -serial stdio -no-reboot"

# launch VMM MODE NAME CMDLINE_EXTRA VMMTIME_OPTS...: runs one guest under
# vmmtime; its key=value report lands in /tmp/logs/NAME.out, the VMM's
# timestamped console output in /tmp/logs/NAME.log.
launch() {
    vmm=$1 mode=$2 name=$3 extra=$4
    shift 4
    cmdline="$BASE_CMDLINE bench.mode=$mode $extra"
    out=/tmp/logs/$name.out log=/tmp/logs/$name.log
    case $vmm in
    atoll)
        disk=""
        [ "$mode" = blk ] && disk="--disk $DISK,ro"
        # shellcheck disable=SC2086
        $T "$@" -o "$log" -- /payload/atoll-vmm --kernel $K --initrd $I --cmdline "$cmdline" \
            --memory $MEM --cpus 1 --no-net --serial stdio $disk >"$out" 2>&1
        ;;
    microvm)
        # shellcheck disable=SC2086
        $T "$@" -o "$log" -- $Q -M "$MICROVM_MACHINE" $QEMU_COMMON \
            -kernel $K -initrd $I -append "$cmdline" >"$out" 2>&1
        ;;
    q35)
        qextra=""
        [ "$mode" = blk ] && qextra="-drive file=$DISK,if=none,id=d0,format=raw,readonly=on -device virtio-blk-pci,drive=d0"
        # Guest RAM in a memfd, as atoll-vmm has it, so it shows up as RssShmem.
        [ "$mode" = idle ] && qextra="-object memory-backend-memfd,id=mem,size=${MEM}M"
        machine=q35
        [ "$mode" = idle ] && machine=q35,memory-backend=mem
        # shellcheck disable=SC2086
        $T "$@" -o "$log" -- $Q -M $machine $QEMU_COMMON \
            -kernel $K -initrd $I -append "$cmdline" $qextra >"$out" 2>&1
        ;;
    esac
    rc=$?
    [ $rc -eq 0 ] || problem "$log" "$name: vmmtime exit $rc: $(tr '\n' ' ' <"$out")"
    return $rc
}

value() { sed -n "s/^$1=//p" "/tmp/logs/$2.out" | head -n 1; }

echo "bench: host $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, $(sed -n 's/MemTotal: *//p' /proc/meminfo)"
echo "bench: $($Q --version | head -n 1)"
echo "bench: microvm machine: $MICROVM_MACHINE"

# --- 1. boot to init -------------------------------------------------------
# The three VMMs take turns, so a slow spell on the machine hits them alike.
rep=1
while [ $rep -le "$BOOT_REPS" ]; do
    for vmm in atoll microvm q35; do
        name=boot-$vmm-$rep
        if launch $vmm boot $name "" -m ATOLL-INIT -t 120; then
            echo "BENCH-SAMPLE boot_ms $vmm $(value boot_ms "$name")"
            ex=$(value exit "$name")
            [ "$ex" = 0 ] || problem "/tmp/logs/$name.log" "$name: the VMM exited with '$ex' after the guest powered off (expected 0)"
        fi
        echo "bench: $name: $(tr '\n' ' ' <"/tmp/logs/$name.out")"
    done
    rep=$((rep + 1))
done

# --- 2. resident memory beyond guest RAM ------------------------------------
# The guest idles after its marker; RSS_DELAY_MS later vmmtime reads VmRSS and
# the Rss of the guest-RAM memfd mappings (by name, in /proc/PID/smaps) and
# kills the VMM. Not RssShmem: this host's root file system is tmpfs, so the
# pages of the VMM's binary and libraries count as shmem too.
rep=1
while [ $rep -le "$RSS_REPS" ]; do
    for vmm in atoll q35; do
        name=rss-$vmm-$rep
        ram=/memfd:atoll-guest-ram
        [ $vmm = q35 ] && ram=/memfd:memory-backend-memfd
        if launch $vmm idle $name "bench.idle=60" -m ATOLL-INIT -r "$RSS_DELAY_MS" -g $ram -k -t 120; then
            kb=$(value overhead_kb "$name")
            if [ -n "$kb" ]; then
                echo "BENCH-SAMPLE rss_overhead_kb $vmm $kb"
            else
                problem "/tmp/logs/$name.log" "$name: no memory sample or no guest RAM mapping named $ram"
            fi
        fi
        echo "bench: $name: $(tr '\n' ' ' <"/tmp/logs/$name.out")"
    done
    rep=$((rep + 1))
done

# --- 3. virtio-blk reads -------------------------------------------------------
# A raw image in the host's tmpfs, read-only to both VMMs; the guest reads it
# with O_DIRECT (bench/blkbench.c).
dd if=/dev/zero of=$DISK bs=1M count="$DISK_MIB" 2>/dev/null || problem "" "cannot create $DISK"
rep=1
while [ $rep -le "$BLK_BOOTS" ]; do
    for vmm in atoll q35; do
        name=blk-$vmm-$rep
        launch $vmm blk $name "bench.seq=$SEQ_PASSES bench.rand=$RAND_RUNS bench.secs=$RAND_SECS" \
            -m BENCH-GUEST-DONE -t 300
        grep -h 'BENCH-' "/tmp/logs/$name.log" | sed "s/^/bench: $name: /"
        sed -n 's/.*BENCH-SEQ mib_s=\([0-9.]*\).*/\1/p' "/tmp/logs/$name.log" |
            while read -r v; do echo "BENCH-SAMPLE blk_seq_mib_s $vmm $v"; done
        sed -n 's/.*BENCH-RAND iops=\([0-9.]*\).*/\1/p' "/tmp/logs/$name.log" |
            while read -r v; do echo "BENCH-SAMPLE blk_rand_iops $vmm $v"; done
        if grep -q 'BENCH-ERROR' "/tmp/logs/$name.log"; then
            problem "/tmp/logs/$name.log" "$name: the guest reported an error"
        fi
    done
    rep=$((rep + 1))
done

bench_finish

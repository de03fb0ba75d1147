# Sourced by the benchmarks' host scripts (host-script.sh, display/host-script.sh)
# inside the virtual test host (busybox sh, cwd /payload); their runners put it
# in the payload. What every benchmark run there shares: where the guest is,
# which QEMU is the baseline, and how problems are reported and counted.
# shellcheck disable=SC2034 # used by the scripts that source this file
K=/guest/vmlinuz
I=/payload/guest.cpio.gz
Q=qemu-system-x86_64
problems=0
mkdir -p /tmp/logs

# problem LOG TEXT...: a "BENCH-PROBLEM TEXT" line with the tail of LOG; the
# script goes on with the other measurements and bench_finish fails at the end.
problem() {
    log=$1
    shift
    echo "BENCH-PROBLEM $*"
    [ -f "$log" ] && tail -n 30 "$log" | sed 's/^/    | /'
    problems=$((problems + 1))
}

# bench_finish: the script's last command; exits 1 when anything went wrong.
bench_finish() {
    echo "bench: done, $problems problem(s)"
    [ $problems -eq 0 ]
}

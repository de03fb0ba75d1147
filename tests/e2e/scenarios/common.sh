# Helpers for scenarios, sourced inside the virtual test host (busybox sh).
failures=0

# boot NAME ARGS...: runs atoll-vmm with the demo guest; output in NAME.log, status in $status.
boot() {
    log=$1
    shift
    echo "--- atoll-vmm $*"
    set +e
    ./atoll-vmm --kernel /guest/vmlinuz --initrd guest.cpio.gz --memory 256 --serial stdio "$@" > "$log" 2>&1 < /dev/null
    status=$?
    set -e
    sed 's/^/    | /' "$log" | tail -n 40
}

check() {
    description=$1
    shift
    if "$@"; then
        echo "PASS: $description"
    else
        echo "FAIL: $description"
        failures=$((failures + 1))
    fi
}

has_line() { grep -q -- "$2" "$1"; }

finish() {
    echo "scenario finished with $failures failure(s)"
    [ "$failures" -eq 0 ]
}

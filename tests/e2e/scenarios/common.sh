# Helpers for scenarios, sourced inside the virtual test host (busybox sh): by
# scenarios/*.sh and by the console and dom0 scenarios, whose run-* scripts put
# this file in the payload too.
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

# wait_for FILE TEXT [SECONDS]: until FILE has TEXT.
wait_for() {
    i=0
    while [ $i -lt $((${3:-60} * 10)) ]; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# start_watchdog SECONDS: a step that hangs fails the scenario with the logs
# (the caller's dump_logs), well before the test host's own timeout would kill
# everything silently. Stop it with: kill $watchdog
start_watchdog() {
    scenario=$$
    ( sleep "$1"; echo "FAIL: the scenario did not finish within $1 s"; dump_logs; report_nested_faults; kill -9 $scenario ) &
    watchdog=$!
}

# start_private_bus: a dbus-daemon of the scenario's own (./dbus-daemon from the
# payload) on which anyone may own and call anything; its address in $ADDR.
start_private_bus() {
    # dbus-daemon looks the connecting user up; the test host has no user database.
    [ -f /etc/passwd ] || echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd
    [ -f /etc/group ] || echo 'root:x:0:' >/etc/group
    cat >/tmp/bus.conf <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=/tmp/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow send_destination="*"/><allow receive_sender="*"/><allow own="*"/></policy>
</busconfig>
CONF
    ./dbus-daemon --config-file=/tmp/bus.conf --nofork --print-address=3 3>/tmp/bus-address 2>/tmp/dbus.log &
    wait_for /tmp/bus-address unix 10
    ADDR=$(head -n1 /tmp/bus-address)
    check "dbus-daemon is up" [ -n "$ADDR" ]
}

# report_nested_faults: says so when a nested guest triple-faulted (atoll-vmm's
# "vCPU N triple-faulted", in the scenario's logs or atolld's). Under TCG,
# testhost/run takes such a failed run for the emulator's fault and tries it
# once more (see the comment above nested_fault there); the failure itself is
# still reported as it is.
report_nested_faults() {
    line=$(grep -h 'triple-faulted' ./*.log /tmp/atolld.log /run/atoll/vms/*.log 2>/dev/null | head -n 1)
    [ -n "$line" ] && echo "ATOLL-TESTHOST-NESTED-FAULT: $line"
    return 0
}

finish() {
    echo "scenario finished with $failures failure(s)"
    [ "$failures" -eq 0 ] || report_nested_faults
    [ "$failures" -eq 0 ]
}

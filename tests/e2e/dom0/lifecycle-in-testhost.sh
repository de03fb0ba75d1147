# Runs inside the virtual test host (busybox sh, in /payload): atolld on a
# private dbus-daemon, and a real Linux guest driven through its whole life,
# first by atollctl, then by busctl.
set -u
. ./common.sh
export SYSTEMD_PAGER=cat PAGER=cat SYSTEMD_COLORS=0
dump_logs() {
    echo "---- atolld's log"; cat /tmp/atolld.log
    echo "---- console"; cat /tmp/console.log
    [ -f /tmp/console2.log ] && { echo "---- console (busctl's boot)"; cat /tmp/console2.log; }
    echo "---- atoll-vmm's log"; cat /run/atoll/vms/*.log 2>/dev/null | tail -n 40
    # A guest that stops mid-line: are its vCPU threads in KVM_RUN (ioctl,
    # syscall 16) or blocked in atoll-vmm (futex, 202)?
    for pid in $(pidof atoll-vmm); do
        echo "---- atoll-vmm $pid threads: state, user and system ticks, syscall"
        for t in /proc/$pid/task/*; do
            echo "${t##*/}: $(cut -d' ' -f3,14,15 "$t/stat") syscall $(cut -d' ' -f1-3 "$t/syscall" 2>/dev/null)"
        done
    done
    echo "---- the test host's kernel"; dmesg | tail -n 15
    echo "---- dbus-daemon's log"; tail -n 20 /tmp/dbus.log
    echo "---- processes"; ps
}
start_watchdog 540

mkdir -p /tmp/atoll /run/atoll
start_private_bus
./atolld --bus-address "$ADDR" --database /tmp/atoll/atoll.db --runtime-dir /run/atoll \
    --storage-dir /payload/images --storage-dir /guest --vmm /payload/atoll-vmm >/tmp/atolld.log 2>&1 &
i=0
has_owner() { ./busctl --address="$ADDR" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.atoll.Atoll1 2>/dev/null | grep -q true; }
until has_owner || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done
ctl() { ./atollctl --bus-address "$ADDR" "$@"; }
check "atolld serves org.atoll.Atoll1" has_owner
if [ $failures -ne 0 ]; then
    cat /tmp/atolld.log /tmp/dbus.log
    exit 1
fi

# ---- atollctl ------------------------------------------------------------------
check "define" ctl define vm.json
check "start" ctl start web
ctl console web </dev/null >/tmp/console.log 2>&1 &
console=$!
check "the guest boots (serial console through atollctl console)" wait_for /tmp/console.log ATOLL-WAITING-FOR-BUTTON 240
check "state: running" sh -c "./atollctl --bus-address '$ADDR' state web | grep -q '^running'"
check "pause" ctl pause web
check "state: paused" sh -c "./atollctl --bus-address '$ADDR' state web | grep -q '^paused'"
check "resume" ctl resume web
check "reboot" ctl reboot web
check "the guest boots again" sh -c "i=0; while [ \$i -lt 2400 ]; do [ \$(grep -c ATOLL-WAITING-FOR-BUTTON /tmp/console.log) -ge 2 ] && exit 0; sleep 0.1; i=\$((i+1)); done; exit 1"
check "boot count 2" sh -c "./atollctl --bus-address '$ADDR' info web | grep -q '^Boots: *2'"
check "shutdown (ACPI power button)" ctl shutdown web --timeout 60
check "the guest saw the button" grep -q ATOLL-POWER-BUTTON /tmp/console.log
check "state: powered off" sh -c "./atollctl --bus-address '$ADDR' state web | grep -q '^shut-off (the guest powered off)'"
i=0; while kill -0 $console 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check "the console ended with the VM" sh -c "! kill -0 $console 2>/dev/null"

# ---- busctl --------------------------------------------------------------------
B="./busctl --no-pager --address=$ADDR"
P=$($B call org.atoll.Atoll1 /org/atoll/Atoll1 org.atoll.Atoll1.Manager LookupByName s web | cut -d'"' -f2)
check "busctl: LookupByName" [ -n "$P" ]
check "busctl: Start" $B call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Start
ctl console web </dev/null >/tmp/console2.log 2>&1 &
check "busctl: the guest boots" wait_for /tmp/console2.log ATOLL-WAITING-FOR-BUTTON 240
check "busctl: State is running" sh -c "$B get-property org.atoll.Atoll1 '$P' org.atoll.Atoll1.VM State | grep -q running"
check "busctl: Pause" $B call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Pause
check "busctl: Resume" $B call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Resume
check "busctl: Shutdown(60, false)" $B --timeout=120 call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Shutdown ub 60 false
check "busctl: StateReason says powered off" sh -c "$B get-property org.atoll.Atoll1 '$P' org.atoll.Atoll1.VM StateReason | grep -q 'the guest powered off'"
check "busctl: Undefine" $B call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Undefine
check "busctl: no VM left" sh -c "$B get-property org.atoll.Atoll1 /org/atoll/Atoll1 org.atoll.Atoll1.Manager VMCount | grep -q 'u 0'"

kill $watchdog 2>/dev/null
[ $failures -eq 0 ] || { dump_logs; report_nested_faults; }
echo "dom0 lifecycle finished with $failures failure(s)"
[ $failures -eq 0 ]

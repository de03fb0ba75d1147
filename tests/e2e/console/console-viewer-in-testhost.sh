# Runs inside the virtual test host (busybox sh, in /payload): a private
# dbus-daemon with atoll-display and atolld on it, a Debian guest with a screen
# drawing the known pattern, and the console (atoll-console-e2e, offscreen)
# showing it. Screenshots go to $ATOLL_ARTIFACTS (run --artifacts).
set -u
. ./common.sh
dump_logs() {
    echo "---- atolld's log"; tail -n 40 /tmp/atolld.log
    echo "---- atoll-display's log"; tail -n 40 /tmp/display.log
    echo "---- the guest's console"; tail -n 40 /tmp/console.log
    echo "---- atoll-vmm's log"; cat /run/atoll/vms/*.log 2>/dev/null | tail -n 40
    echo "---- dbus-daemon's log"; tail -n 20 /tmp/dbus.log
    echo "---- processes"; ps
}
start_watchdog 300

mkdir -p /tmp/atoll /run/atoll/display /tmp/xdg-runtime
chmod 700 /tmp/xdg-runtime
start_private_bus

# Where atolld looks by default (--runtime-dir R: R/display.sock, R/display); the
# local-viewer API on the same private bus, as the session bus of atoll-display.
DBUS_SESSION_BUS_ADDRESS=$ADDR ./atoll-display --listen /run/atoll/display.sock --state-dir /run/atoll/display \
    --dbus session >/tmp/display.log 2>&1 &
i=0; while [ ! -S /run/atoll/display.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "atoll-display listens" [ -S /run/atoll/display.sock ]
./atolld --bus-address "$ADDR" --database /tmp/atoll/atoll.db --runtime-dir /run/atoll \
    --storage-dir /payload/images --storage-dir /guest --vmm /payload/atoll-vmm >/tmp/atolld.log 2>&1 &
ctl() { ./atollctl --bus-address "$ADDR" "$@"; }
i=0; until ctl list >/dev/null 2>&1 || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "atolld answers" ctl list
if [ $failures -ne 0 ]; then
    dump_logs
    exit 1
fi

check "define the VM with an 800x600 screen" ctl define vm.json
check "start it" ctl start web
ctl console web </dev/null >/tmp/console.log 2>&1 &

echo "--- atoll-console-e2e"
started=$(date +%s)
bridge=""
[ -x ./systemd-stdio-bridge ] && bridge=/payload/systemd-stdio-bridge
QT_QPA_PLATFORM=offscreen QT_QPA_PLATFORMTHEME='' QT_PLUGIN_PATH=/payload/qt-plugins \
FONTCONFIG_FILE=/payload/fonts/fonts.conf XDG_RUNTIME_DIR=/tmp/xdg-runtime \
ATOLL_E2E_BUS=$ADDR ATOLL_E2E_VM=web ATOLL_E2E_ARTIFACTS=/tmp/artifacts ATOLL_E2E_GUEST_LOG=/tmp/console.log \
ATOLL_E2E_STDIO_BRIDGE=$bridge \
    ./atoll-console-e2e -maxwarnings 50 >/tmp/console-e2e.log 2>&1
status=$?
sed 's/^/    console | /' /tmp/console-e2e.log
echo "atoll-console-e2e took $(($(date +%s) - started)) s"
check "the console showed the guest's screen and passed every step" [ $status -eq 0 ]
check "the guest drew its pattern" grep -q "ATOLL-FB-DRAWN" /tmp/console.log
check "keys typed in the viewer reached the guest" grep -q "ATOLL-KEYS 30 20 24 38 38" /tmp/console.log
check "atollctl: the VM is shut off (forced off from the console)" \
    sh -c "./atollctl --bus-address '$ADDR' state web | grep -q '^shut-off'"
if [ -n "${ATOLL_ARTIFACTS:-}" ]; then
    cp /tmp/artifacts/*.png "$ATOLL_ARTIFACTS/" 2>/dev/null
    sync
    check "the screenshots are saved as artifacts" \
        sh -c "[ -s '$ATOLL_ARTIFACTS/console-main-window.png' ] && [ -s '$ATOLL_ARTIFACTS/console-viewer.png' ]"
else
    echo "FAIL: no artifacts directory (run --artifacts)"
    failures=$((failures + 1))
fi

kill $watchdog 2>/dev/null
[ $failures -eq 0 ] || { dump_logs; report_nested_faults; }
echo "console viewer scenario finished with $failures failure(s)"
[ $failures -eq 0 ]

#!/usr/bin/env bash
# dom0/dbus/org.atoll.Atoll1.conf on a system-type bus of our own: root (and
# the group atoll) may change VMs, anyone else may only read.
# Usage: bus_policy_test.sh ATOLLD ATOLLCTL ATOLL_VMM TINY_GUEST_DIR POLICY_FILE
# Exit: 0 pass, 1 failure, 77 skip (not root, no setpriv, or the binaries are
# not reachable for the user nobody).
set -uo pipefail
ATOLLD=$1 ATOLLCTL=$2 VMM=$3 GUESTS=$4 POLICY=$5
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (to run clients as another user)"; exit 77; }
command -v setpriv >/dev/null || { echo "skip: setpriv missing"; exit 77; }
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
as_nobody test -x "$ATOLLCTL" || { echo "skip: nobody cannot run $ATOLLCTL"; exit 77; }

work=$(mktemp -d /tmp/atoll-policy-test.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  pkill -9 -f -- "--control-socket $work/" 2>/dev/null
  [ "${failures:-0}" -eq 0 ] || { echo "---- atolld's log"; cat "$work/atolld.log"; echo "---- dbus-daemon's log"; cat "$work/dbus.log"; }
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
check() {
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}
expect_exit() {
  local code=$1 what=$2; shift 2
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" -eq "$code" ]; then echo "ok   $what (exit $got)"
  else echo "FAIL $what: exit $got, wanted $code"; sed 's/^/     /' "$work/out" "$work/err"; failures=$((failures + 1)); fi
}

mkdir -p "$work/images"
cp "$GUESTS/tiny-poweroff-on-button.bzImage" "$work/images/"
# The default policy of Debian's system bus, shortened: nothing may be called
# unless a policy allows it. Then the file under test.
cat >"$work/system.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$work/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include ignore_missing="no">$POLICY</include>
</busconfig>
EOF
dbus-daemon --config-file="$work/system.conf" --nofork --print-address=3 3>"$work/address" 2>"$work/dbus.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/address" ] && break; sleep 0.05; done
ADDR=$(head -n1 "$work/address")
[ -n "$ADDR" ] || { echo "FAIL dbus-daemon did not start with the policy"; cat "$work/dbus.log"; exit 1; }

"$ATOLLD" --bus-address "$ADDR" --database "$work/state/atoll.db" --runtime-dir "$work/run" \
  --storage-dir "$work/images" --vmm "$VMM" >"$work/atolld.log" 2>&1 &
pids+=($!)
up=1
for _ in $(seq 200); do busctl --address="$ADDR" status org.atoll.Atoll1 >/dev/null 2>&1 && { up=0; break; }; sleep 0.05; done
check "root may own org.atoll.Atoll1" [ $up -eq 0 ]

ctl() { "$ATOLLCTL" --bus-address "$ADDR" "$@"; }
cat >"$work/web.json" <<EOF
{"name": "web", "memory_mib": 32, "nets": [], "boot": {"kernel": "$work/images/tiny-poweroff-on-button.bzImage"}}
EOF
chmod 644 "$work/web.json"
expect_exit 0 "root may define" ctl define "$work/web.json"

# Anyone may read.
expect_exit 0 "nobody may list" as_nobody "$ATOLLCTL" --bus-address "$ADDR" list
check "nobody sees the VM" grep -q "^web" "$work/out"
expect_exit 0 "nobody may read properties (GetAll)" as_nobody "$ATOLLCTL" --bus-address "$ADDR" info web
expect_exit 0 "nobody may read host facts (Get)" as_nobody "$ATOLLCTL" --bus-address "$ADDR" host
expect_exit 0 "nobody may introspect" as_nobody busctl --address="$ADDR" introspect org.atoll.Atoll1 /org/atoll/Atoll1
expect_exit 0 "nobody may GetManagedObjects" as_nobody busctl --address="$ADDR" call org.atoll.Atoll1 /org/atoll/Atoll1 org.freedesktop.DBus.ObjectManager GetManagedObjects

# Nobody may change anything.
expect_exit 7 "nobody may not start: exit 7" as_nobody "$ATOLLCTL" --bus-address "$ADDR" start web
check "says permission denied" grep -q "permission denied" "$work/err"
expect_exit 7 "nobody may not define" as_nobody "$ATOLLCTL" --bus-address "$ADDR" define "$work/web.json"
expect_exit 7 "nobody may not undefine" as_nobody "$ATOLLCTL" --bus-address "$ADDR" undefine web
expect_exit 7 "nobody may not set Autostart" as_nobody "$ATOLLCTL" --bus-address "$ADDR" autostart web on
P=$(ctl --json info web | python3 -c "import json,sys; print(json.load(sys.stdin)['ObjectPath'])")
expect_exit 1 "nobody may not open the console" as_nobody busctl --address="$ADDR" call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM OpenConsole
check "the bus refused it" grep -q "Access denied\|AccessDenied" "$work/err"
expect_exit 1 "nobody may not own the name" as_nobody busctl --address="$ADDR" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus RequestName su org.atoll.Atoll1 0
expect_exit 0 "state unchanged" ctl state web
check "still shut off" grep -q "^shut-off" "$work/out"

# Root may.
expect_exit 0 "root may start" ctl start web
expect_exit 0 "root may force-stop" ctl force-stop web

# The group atoll may, when this host has one with a member to test with.
member=$(getent group atoll | cut -d: -f4 | cut -d, -f1)
if [ -n "$member" ] && [ "$member" != root ]; then
  expect_exit 0 "group atoll ($member) may start" setpriv --reuid="$member" --regid=atoll --init-groups -- "$ATOLLCTL" --bus-address "$ADDR" start web
  ctl force-stop web >/dev/null
else
  echo "skip group atoll: no such group with a member on this host"
fi

echo "$failures failure(s)"
[ "$failures" -eq 0 ]

#!/usr/bin/env bash
# atollctl, busctl and gdbus each drive a VM (a tiny guest this host's KVM can
# run) through its whole life against atolld on a private bus; atollctl's exit
# codes and messages are what dom0/README.md promises.
# Usage: atollctl_test.sh ATOLLD ATOLLCTL ATOLL_VMM TINY_GUEST_DIR ATOLL_DISPLAY
# Exit: 0 pass, 1 failure, 77 skip (no usable /dev/kvm or tools).
set -uo pipefail
ATOLLD=$1 ATOLLCTL=$2 VMM=$3 GUESTS=$4 DISPLAY_SERVER=$5
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "skip: /dev/kvm not usable"; exit 77; }
for tool in dbus-daemon busctl gdbus python3; do
  command -v $tool >/dev/null || { echo "skip: $tool missing"; exit 77; }
done

work=$(mktemp -d /tmp/atollctl-test.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  pkill -9 -f -- "--control-socket $work/" 2>/dev/null
  [ "${failures:-0}" -eq 0 ] || { echo "---- atolld's log"; cat "$work/atolld.log"; }
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}
# expect_exit CODE DESCRIPTION COMMAND...: the command exits with CODE.
expect_exit() {
  local code=$1 what=$2; shift 2
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" -eq "$code" ]; then echo "ok   $what (exit $got)"
  else echo "FAIL $what: exit $got, wanted $code"; sed 's/^/     /' "$work/out" "$work/err"; failures=$((failures + 1)); fi
}
has() { grep -q -- "$1" "$work/${2:-out}"; }

mkdir -p "$work/images"
cp "$GUESTS"/tiny-poweroff-on-button.bzImage "$GUESTS"/tiny-halt.bzImage "$work/images/"
cat >"$work/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$work/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow send_destination="*"/><allow receive_sender="*"/><allow own="*"/></policy>
</busconfig>
EOF
dbus-daemon --config-file="$work/bus.conf" --nofork --print-address=3 3>"$work/address" 2>"$work/dbus.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/address" ] && break; sleep 0.05; done
ADDR=$(head -n1 "$work/address")
[ -n "$ADDR" ] || { echo "FAIL dbus-daemon did not start"; exit 1; }

start_atolld() {
  "$ATOLLD" --bus-address "$ADDR" --database "$work/state/atoll.db" --runtime-dir "$work/run" \
    --storage-dir "$work/images" --vmm "$VMM" >>"$work/atolld.log" 2>&1 &
  atolld_pid=$!
  pids+=($atolld_pid)
  for _ in $(seq 200); do
    busctl --address="$ADDR" status org.atoll.Atoll1 >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}
check "atolld starts" start_atolld

ctl() { "$ATOLLCTL" --bus-address "$ADDR" "$@"; }
BUSCTL=(busctl --address="$ADDR")

# ---- atollctl ------------------------------------------------------------------
cat >"$work/web.json" <<EOF
{"name": "web", "vcpus": 1, "memory_mib": 32, "nets": [],
 "boot": {"kernel": "$work/images/tiny-poweroff-on-button.bzImage", "cmdline": "console=ttyS0"}}
EOF
expect_exit 0 "define from a file" ctl define "$work/web.json"
check "define names the VM" has "Defined VM 'web'"
expect_exit 0 "define from standard input, --json" ctl --json define - < <(sed 's/"web"/"db"/; s/poweroff-on-button/halt/' "$work/web.json")
check "define --json gives the object path" python3 -c "import json,sys; d=json.load(open('$work/out')); sys.exit(d['name']!='db' or not d['path'].startswith('/org/atoll/Atoll1/vm/'))"
expect_exit 0 "list" ctl list
check "list shows both, shut off" bash -c "grep -q '^db  *shut-off' '$work/out' && grep -q '^web  *shut-off' '$work/out'"
expect_exit 0 "list --json" ctl list --json
check "list --json parses" python3 -c "import json,sys; d=json.load(open('$work/out')); sys.exit([v['name'] for v in d]!=['db','web'])"
expect_exit 0 "start" ctl start web
expect_exit 0 "state" ctl state web
check "state says running" has "^running (started)"
expect_exit 0 "info" ctl info web
check "info shows the VMM and console" bash -c "grep -q '^VMM pid: *[0-9]' '$work/out' && grep -q '^Console: */' '$work/out'"
expect_exit 0 "info --json" ctl info web --json
check "info --json has the config" python3 -c "import json,sys; d=json.load(open('$work/out')); sys.exit(d['State']!='running' or d['Config']['memory_mib']!=32)"
expect_exit 0 "pause" ctl pause web
expect_exit 4 "pause again: invalid state" ctl pause web
check "says why" has "already paused\|only a running VM" err
expect_exit 4 "shutdown while paused: invalid state" ctl shutdown web
check "says to resume" has "resume it" err
expect_exit 0 "resume" ctl resume web
expect_exit 0 "reboot" ctl reboot web
expect_exit 4 "start while running: invalid state" ctl start web
expect_exit 4 "undefine while running: invalid state" ctl undefine web
expect_exit 4 "redefine while running: invalid state" ctl redefine web "$work/web.json"
expect_exit 0 "autostart on" ctl autostart web on
check "autostart shows in info" bash -c "'$ATOLLCTL' --bus-address '$ADDR' info web | grep -q '^Autostart: *yes'"

# The serial console: attached until the VM goes away.
ctl console web </dev/null >"$work/console.out" 2>&1 &
console_pid=$!
sleep 0.3
check "console stays attached" kill -0 $console_pid
expect_exit 0 "shutdown" ctl shutdown web --timeout 20
check "console ends with the VM" bash -c "for i in \$(seq 100); do kill -0 $console_pid 2>/dev/null || exit 0; sleep 0.05; done; exit 1"
wait $console_pid; check "console exit code 0" [ $? -eq 0 ]
expect_exit 0 "state after shutdown" ctl state web
check "powered off" has "^shut-off (the guest powered off)"

# A shut-off VM's definition can be replaced; a running one's cannot.
sed 's/"memory_mib": 32/"memory_mib": 48/' "$work/web.json" >"$work/web-48.json"
expect_exit 0 "redefine" ctl redefine web "$work/web-48.json"
check "redefine says so" has "Redefined VM 'web'"
check "the new memory size shows" bash -c "'$ATOLLCTL' --bus-address '$ADDR' info web | grep -q '^Memory: *48 MiB'"
expect_exit 5 "redefine to a taken name: exit 5" ctl redefine web - < <(sed 's/"web"/"db"/' "$work/web.json")
expect_exit 5 "redefine with another UUID: exit 5" ctl redefine web - < <(sed 's/{"name"/{"uuid": "0f8fad5b-d9cb-469f-a165-70867728950e", "name"/' "$work/web.json")
check "says a VM keeps its UUID" has "keeps its UUID" err
expect_exit 5 "redefine with a bad setting: exit 5" ctl redefine web - < <(sed 's/"memory_mib": 32/"memory_mib": 1/' "$work/web.json")
check "the definition is unchanged after refusals" bash -c "'$ATOLLCTL' --bus-address '$ADDR' info web | grep -q '^Memory: *48 MiB'"
expect_exit 0 "redefine back" ctl redefine web "$work/web.json"

expect_exit 0 "start the halting guest" ctl start db
expect_exit 8 "shutdown times out: exit 8" ctl shutdown db --timeout 1
check "says it did not power off" has "did not power off" err
expect_exit 0 "shutdown --force" ctl shutdown db --timeout 1 --force
expect_exit 0 "start again" ctl start db
expect_exit 0 "force-stop" ctl force-stop db
expect_exit 0 "state: force-stopped" ctl state db
check "reason force-stopped" has "force-stopped"

expect_exit 3 "unknown VM: exit 3" ctl start nosuch
check "says no such VM" has "no VM named 'nosuch'" err
expect_exit 3 "unknown UUID: exit 3" ctl info 0f8fad5b-d9cb-469f-a165-70867728950e
echo '{"name": "bad", "boot": {"kernel": "/etc/passwd"}}' >"$work/bad.json"
expect_exit 5 "path outside storage: exit 5" ctl define "$work/bad.json"
check "says outside" has "outside the permitted storage directories" err
expect_exit 5 "name taken: exit 5" ctl define "$work/web.json"
expect_exit 5 "not JSON: exit 5" ctl define - < <(echo "vm: web")
expect_exit 5 "missing file: exit 5" ctl define "$work/nothing.json"
expect_exit 2 "no command: exit 2" ctl
expect_exit 2 "unknown command: exit 2" ctl frobnicate web
expect_exit 2 "missing argument: exit 2" ctl start
expect_exit 2 "bad autostart value: exit 2" ctl autostart web maybe
expect_exit 6 "no bus there: exit 6" "$ATOLLCTL" --bus-address "unix:path=$work/nobus" list
expect_exit 0 "host facts" ctl host --json
check "host facts parse" python3 -c "import json,sys; d=json.load(open('$work/out')); sys.exit(d['vm_count']!=2 or d['cpu_count']<1)"
expect_exit 0 "undefine" ctl undefine db
expect_exit 3 "undefined is gone" ctl state db

# ---- a VM with a screen: atoll-display serves it, atolld reports where ----------
sed 's/"web"/"screen"/; s/poweroff-on-button/halt/; s/"nets": \[\]/"nets": [], "display": {"width": 800, "height": 600}/' \
  "$work/web.json" >"$work/screen.json"
expect_exit 5 "display too small: exit 5" ctl define - < <(sed 's/"width": 800/"width": 8/' "$work/screen.json")
check "says which setting" has "display.width: 8 is not 64 to 8192" err
expect_exit 5 "display setting unknown: exit 5" ctl define - < <(sed 's/"width": 800/"depth": 32/' "$work/screen.json")
expect_exit 0 "define a VM with a display" ctl define "$work/screen.json"
vnc_port=$((20000 + $$ % 20000))
"$DISPLAY_SERVER" --listen "$work/run/display.sock" --state-dir "$work/run/display" --dbus none \
  --vnc-port "screen=$vnc_port" >"$work/display.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/run/display.sock" ] && break; sleep 0.05; done
expect_exit 0 "start it" ctl start screen
wait_for_vnc() { for _ in $(seq 100); do ctl vnc screen >"$work/out" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
check "atollctl vnc gives the address" wait_for_vnc
check "the address is atoll-display's" has "^127.0.0.1:$vnc_port\$"
check "a VNC server answers there" python3 -c "
import socket; s = socket.create_connection(('127.0.0.1', $vnc_port), timeout=5)
assert s.recv(12) == b'RFB 003.008\n'"
expect_exit 0 "info with a display" ctl info screen
check "info shows the VNC address" has "^VNC: *127.0.0.1:$vnc_port\$"
check "busctl: VncAddress" bash -c "busctl --address='$ADDR' get-property org.atoll.Atoll1 \
  \$(busctl --address='$ADDR' call org.atoll.Atoll1 /org/atoll/Atoll1 org.atoll.Atoll1.Manager LookupByName s screen | cut -d'\"' -f2) \
  org.atoll.Atoll1.VM VncAddress | grep -q '\"127.0.0.1:$vnc_port\"'"
expect_exit 0 "force-stop the VM with a display" ctl force-stop screen
expect_exit 4 "no VNC once it is off: exit 4" ctl vnc screen
check "says it is off" has "shut-off" err
expect_exit 4 "no VNC for a VM without a display" ctl vnc web
expect_exit 0 "undefine the VM with a display" ctl undefine screen

# ---- a VM with sound: volume and mute through atolld (no PulseAudio needed) ----
sed 's/"web"/"sound"/; s/poweroff-on-button/halt/; s|"nets": \[\]|"nets": [], "audio": {"server": "unix:/nonexistent/atoll/pulse"}|' \
  "$work/web.json" >"$work/sound.json"
expect_exit 5 "audio setting of the wrong type: exit 5" ctl define - < <(sed 's|"server": "unix:/nonexistent/atoll/pulse"|"server": 5|' "$work/sound.json")
check "says which setting" has "audio.server" err
expect_exit 0 "define a VM with sound" ctl define "$work/sound.json"
expect_exit 4 "no sound while it is off: exit 4" ctl audio sound
expect_exit 0 "start it" ctl start sound
expect_exit 0 "audio shows the sound" ctl audio sound
check "full volume, server not reachable" bash -c "grep -q '^Volume: *100%\$' '$work/out' && grep -q 'not reachable' '$work/out'"
check "every trouble counter, none yet" bash -c "for c in Underruns Overruns 'Dropped frames' 'Capture gaps'; do grep -q \"^\$c: *0\\\$\" '$work/out' || exit 1; done"
expect_exit 0 "set volume and mute" ctl audio sound --volume 40 --mute
check "the change shows" has "^Volume: *40% (muted)"
check "busctl: AudioVolume" bash -c "busctl --address='$ADDR' get-property org.atoll.Atoll1 \
  \$(busctl --address='$ADDR' call org.atoll.Atoll1 /org/atoll/Atoll1 org.atoll.Atoll1.Manager LookupByName s sound | cut -d'\"' -f2) \
  org.atoll.Atoll1.VM AudioVolume | grep -q '^u 40\$'"
check "busctl: the counters atoll-vmm reports" bash -c "busctl --address='$ADDR' get-property org.atoll.Atoll1 \
  \$(busctl --address='$ADDR' call org.atoll.Atoll1 /org/atoll/Atoll1 org.atoll.Atoll1.Manager LookupByName s sound | cut -d'\"' -f2) \
  org.atoll.Atoll1.VM AudioUnderruns AudioOverruns AudioDroppedFrames AudioCaptureGaps | tr '\n' ' ' | grep -q '^t 0 t 0 t 0 t 0 \$'"
expect_exit 2 "volume out of range: exit 2" ctl audio sound --volume 151
expect_exit 0 "unmute" ctl audio sound --unmute --json
check "--json says unmuted at 40" python3 -c "import json,sys; d=json.load(open('$work/out')); sys.exit(d['muted'] or d['volume_percent']!=40)"
check "--json has every counter" python3 -c "import json,sys; d=json.load(open('$work/out')); sys.exit([d[k] for k in ('underruns','overruns','dropped_frames','capture_gaps')] != [0]*4)"
expect_exit 4 "a VM without sound: exit 4" ctl audio web
check "says it has none" has "no \"audio\"" err
expect_exit 0 "force-stop the VM with sound" ctl force-stop sound
expect_exit 0 "undefine the VM with sound" ctl undefine sound

# ---- busctl: the same life, as a script would write it ------------------------
P=$("${BUSCTL[@]}" call org.atoll.Atoll1 /org/atoll/Atoll1 org.atoll.Atoll1.Manager LookupByName s web | cut -d'"' -f2)
check "busctl: LookupByName" [ -n "$P" ]
expect_exit 0 "busctl: Start" "${BUSCTL[@]}" call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Start
expect_exit 0 "busctl: get-property State" "${BUSCTL[@]}" get-property org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM State
check "busctl: running" has '^s "running"'
expect_exit 0 "busctl: Pause" "${BUSCTL[@]}" call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Pause
expect_exit 0 "busctl: Resume" "${BUSCTL[@]}" call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Resume
expect_exit 0 "busctl: Reboot" "${BUSCTL[@]}" call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Reboot
expect_exit 0 "busctl: set-property Autostart" "${BUSCTL[@]}" set-property org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Autostart b false
expect_exit 1 "busctl: a named error" "${BUSCTL[@]}" call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Undefine
expect_exit 0 "busctl: Shutdown(10, false)" "${BUSCTL[@]}" --timeout=60 call org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM Shutdown ub 10 false
expect_exit 0 "busctl: get-property State, StateReason" "${BUSCTL[@]}" get-property org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM State StateReason
check "busctl: shut-off, powered off" bash -c "grep -q '\"shut-off\"' '$work/out' && grep -q 'the guest powered off' '$work/out'"
expect_exit 0 "busctl: introspect" "${BUSCTL[@]}" introspect org.atoll.Atoll1 "$P" org.atoll.Atoll1.VM
check "busctl: introspection lists Shutdown(ub)" has "^\.Shutdown *method *ub"

# ---- gdbus -------------------------------------------------------------------
G=(gdbus call --address "$ADDR" --dest org.atoll.Atoll1 --object-path "$P")
expect_exit 0 "gdbus: Start" "${G[@]}" --method org.atoll.Atoll1.VM.Start
expect_exit 0 "gdbus: Get State" "${G[@]}" --method org.freedesktop.DBus.Properties.Get org.atoll.Atoll1.VM State
check "gdbus: running" has "'running'"
expect_exit 0 "gdbus: ForceStop" "${G[@]}" --method org.atoll.Atoll1.VM.ForceStop
expect_exit 0 "gdbus: Undefine" "${G[@]}" --method org.atoll.Atoll1.VM.Undefine
expect_exit 0 "gdbus: ListVMs" gdbus call --address "$ADDR" --dest org.atoll.Atoll1 --object-path /org/atoll/Atoll1 --method org.atoll.Atoll1.Manager.ListVMs
check "gdbus: no VMs left" has "^(@a(ssso) \[\],)"

# ---- atolld gone ---------------------------------------------------------------
kill -TERM "$atolld_pid"; wait "$atolld_pid" 2>/dev/null
expect_exit 6 "atolld not running: exit 6" ctl list
check "says atolld is not running" has "atolld is not running" err

echo "$failures failure(s)"
[ "$failures" -eq 0 ]

#!/usr/bin/env bash
# `cmake --install` lays out a dom0: the daemons and the VMM together in
# lib/atoll (atolld finds atoll-vmm there without being told), atollctl on
# PATH, the bus policies, activation file, units and tmpfiles rule.
# Usage: install_test.sh BUILD_DIR
set -uo pipefail
build=$1
root=$(mktemp -d /tmp/atoll-install-test.XXXXXX)
trap 'rm -rf "$root"' EXIT
if ! DESTDIR="$root" cmake --install "$build" --prefix /usr >"$root.log" 2>&1; then
  cat "$root.log"; rm -f "$root.log"; echo "FAIL cmake --install"; exit 1
fi
rm -f "$root.log"
failures=0
for file in usr/lib/atoll/atolld usr/lib/atoll/atoll-vmm usr/lib/atoll/atoll-audio-pulse.so \
            usr/lib/atoll/atoll-display usr/bin/atollctl \
            usr/share/dbus-1/system.d/org.atoll.Atoll1.conf usr/share/dbus-1/system.d/org.atoll.Display1.conf \
            usr/share/dbus-1/system-services/org.atoll.Atoll1.service \
            usr/share/dbus-1/interfaces/org.atoll.Atoll1.VM.xml \
            usr/lib/systemd/system/atolld.service usr/lib/systemd/system/atoll-display.service \
            usr/lib/tmpfiles.d/atoll.conf usr/share/doc/atoll/README.md; do
  [ -e "$root/$file" ] || { echo "FAIL missing $file"; failures=$((failures + 1)); }
done
for binary in usr/lib/atoll/atolld usr/lib/atoll/atoll-vmm usr/lib/atoll/atoll-display usr/bin/atollctl; do
  [ -x "$root/$binary" ] || { echo "FAIL not executable: $binary"; failures=$((failures + 1)); }
done
# A VM without sound does not load libpulse: it is in the module beside atoll-vmm.
if ldd "$root/usr/lib/atoll/atoll-vmm" | grep -q libpulse; then
  echo "FAIL atoll-vmm links libpulse itself"; failures=$((failures + 1))
elif ! nm -D --defined-only "$root/usr/lib/atoll/atoll-audio-pulse.so" | grep -q ' atoll_audio_pulse_make_v3$'; then
  echo "FAIL atoll-audio-pulse.so does not export its entry point"; failures=$((failures + 1))
else echo "ok   libpulse only in the sound module"; fi
# The installed atolld picks the installed atoll-vmm (its log line names it).
runtime=$(mktemp -d /tmp/atoll-install-run.XXXXXX)
command -v dbus-run-session >/dev/null || { echo "skip: dbus-run-session missing (package dbus)"; exit 77; }
HOME=$runtime XDG_RUNTIME_DIR=$runtime dbus-run-session -- timeout -s INT 3 "$root/usr/lib/atoll/atolld" --session \
  --database "$runtime/db" --runtime-dir "$runtime/run" --storage-dir "$runtime" >"$runtime/log" 2>&1
if grep -q "$root/usr/lib/atoll/atoll-vmm" "$runtime/log"; then echo "ok   atolld finds atoll-vmm beside itself"
else echo "FAIL atolld did not find atoll-vmm beside itself:"; cat "$runtime/log"; failures=$((failures + 1)); fi
rm -rf "$runtime"
[ $failures -eq 0 ] && echo "ok   installed layout"
exit $((failures > 0))

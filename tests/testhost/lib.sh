# Shared helpers for the virtual test host scripts. Sourced, not executed.
# shellcheck shell=bash

# Without this, a failure inside $(...) would not stop the scripts.
shopt -s inherit_errexit

# shellcheck disable=SC2034 # used by the scripts that source this file
TESTHOST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=${PROG:-$(basename "$0")}

die()  { echo "$PROG: error: $*" >&2; exit 1; }
# A skip must be a single line starting with "SKIP:" so test runners and
# humans can tell "could not run here" from "ran and failed".
skip() { echo "SKIP: $PROG: $*"; exit 77; }
note() { echo "$PROG: $*" >&2; }

testhost_cache() { echo "${ATOLL_CACHE:-${HOME:-/tmp}/.cache/atoll}/testhost"; }

# --- ELF / shared library handling --------------------------------------

is_elf() { [ -f "$1" ] && [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# Print the absolute paths of the shared libraries (and the dynamic loader)
# an ELF file needs, as ldd resolves them on this machine. Static binaries
# and foreign-architecture files print nothing.
elf_libs() {
  local out
  out=$(ldd "$1" 2>/dev/null) || return 0
  if grep -q 'not found' <<<"$out"; then
    note "warning: $1: $(grep 'not found' <<<"$out" | awk '{print $1}' | tr '\n' ' ')not found by ldd"
  fi
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out"
}

# Copy files into a staging root at the same absolute path, following
# symlinks (the staging root has its own merged-/usr links, so a library
# reached as /lib/... or /usr/lib/... lands in one place).
stage_abs() {
  local root=$1 f; shift
  for f in "$@"; do
    [ -e "$f" ] || continue
    mkdir -p "$root$(dirname "$f")"
    cp -L --remove-destination "$f" "$root$f"
  done
}

# Add the libraries of every ELF file given (recursively via ldd, which
# already reports the full closure) to the staging root.
stage_libs_of() {
  local root=$1; shift
  local f libs=()
  for f in "$@"; do
    is_elf "$f" || continue
    mapfile -t -O "${#libs[@]}" libs < <(elf_libs "$f")
  done
  [ "${#libs[@]}" -eq 0 ] && return 0
  mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)
  stage_abs "$root" "${libs[@]}"
}

# --- initramfs pieces -----------------------------------------------------

# Every archive part gets the same merged-/usr links. The kernel replaces an
# existing path whose type differs when it unpacks a later part, so a part
# with a real /lib directory would clobber the /lib -> usr/lib link.
stage_merged_usr() {
  local root=$1 d
  mkdir -p "$root"/usr/bin "$root"/usr/sbin "$root"/usr/lib "$root"/usr/lib64
  for d in bin sbin lib lib64; do ln -sfn "usr/$d" "$root/$d"; done
}

# Merged-/usr skeleton plus busybox with every applet linked at build time:
# `busybox --install` at boot would cost time under TCG on every run.
stage_busybox_root() {
  local root=$1 bb
  bb=$(command -v busybox) || skip "busybox not found (install busybox-static)"
  is_elf "$bb" && ldd "$bb" >/dev/null 2>&1 && die "$bb is dynamically linked; install busybox-static"
  stage_merged_usr "$root"
  mkdir -p "$root"/proc "$root"/sys "$root"/dev "$root"/tmp "$root"/run "$root"/etc "$root"/root
  cp "$bb" "$root/usr/bin/busybox"
  # Relative links (usr/bin/ls -> busybox, usr/sbin/ip -> ../bin/busybox):
  # an absolute /usr/bin/busybox link would let a later copy onto an applet
  # path write through it into the build machine's own busybox.
  local a d
  while read -r a; do
    case $a in bin/*) a=usr/$a ;; sbin/*) a=usr/$a ;; esac
    [ "$a" = usr/bin/busybox ] && continue
    d=$(dirname "$a")
    mkdir -p "$root/$d"
    case $d in
      usr/bin) ln -sfn busybox "$root/$a" ;;
      usr/sbin) ln -sfn ../bin/busybox "$root/$a" ;;
      *) ln -sfnr "$root/usr/bin/busybox" "$root/$a" ;;
    esac
  done < <("$root/usr/bin/busybox" --list-full)
}

# Write a newc archive of a staging directory to stdout. Owners are forced
# to root so the result does not depend on who built it.
cpio_of_dir() {
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
}

# A tiny newc archive holding /dev/console. The kernel opens it for init's
# stdin/stdout before /init can mount devtmpfs; without it the first lines
# of /init go nowhere. Written by hand so building needs no root (mknod).
_newc_entry() { # name mode rdevmajor rdevminor ino
  local name=$1 mode=$2 rmaj=$3 rmin=$4 ino=$5
  local nsz=$(( ${#name} + 1 ))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    "$ino" "$mode" 0 0 1 0 0 0 0 "$rmaj" "$rmin" "$nsz" 0
  printf '%s\0' "$name"
  local pad=$(( (4 - (110 + nsz) % 4) % 4 ))
  [ "$pad" -gt 0 ] && head -c "$pad" /dev/zero
  return 0
}
cpio_console() {
  _newc_entry dev        $((8#040755)) 0 0 1
  _newc_entry dev/console $((8#020600)) 5 1 2
  _newc_entry 'TRAILER!!!' 0 0 0 0
}

# --- kernel module sets (produced by fetch-assets) -----------------------

# Print the module files (relative to DIR) needed for the given module
# names, dependencies first, using DIR/deps ("mod.ko: dep.ko ..." with the
# full dependency closure in load order) and DIR/load-order for ordering.
modules_closure() {
  local dir=$1; shift
  local want=() m
  for m in "$@"; do
    m=${m%.ko}; m=${m//-/_}
    [ "$m" = snd_virtio ] && m=virtio_snd # the config symbol's name, not the module's
    if ! grep -q "^$m\.ko:" "$dir/deps"; then
      if grep -qx "$m" "$dir/builtin" 2>/dev/null; then
        note "$m is built into the kernel; nothing to load"; continue
      fi
      die "module $m is not in $dir (add it to fetch-assets' module list)"
    fi
    want+=("$m.ko")
    # shellcheck disable=SC2207
    want+=($(sed -n "s/^$m\.ko://p" "$dir/deps"))
  done
  [ "${#want[@]}" -eq 0 ] && return 0
  # Keep load-order's order, restricted to the wanted set.
  grep -Fx -f <(printf '%s\n' "${want[@]}") "$dir/load-order" || true
}

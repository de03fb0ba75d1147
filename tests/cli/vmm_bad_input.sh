#!/usr/bin/env bash
# atoll-vmm refuses bad input with one line on stderr and a non-zero exit,
# before any guest runs (so this needs no virtual test host).
set -uo pipefail
vmm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# expect CODE "WORDS" ARGS...: atoll-vmm exits CODE and says WORDS in one line.
expect() {
    local code=$1 words=$2
    shift 2
    local output status
    output=$("$vmm" "$@" 2>&1 </dev/null)
    status=$?
    if [ "$status" -ne "$code" ] || ! grep -qF -- "$words" <<<"$output" || [ "$(wc -l <<<"$output")" -ne 1 ]; then
        echo "FAIL: atoll-vmm $* -> exit $status, said: $output (wanted exit $code and \"$words\")"
        failures=$((failures + 1))
    else
        echo "PASS: $words"
    fi
}

printf 'this is not a kernel' > "$work/not-a-kernel"
head -c 4096 /dev/zero > "$work/disk.img"
chmod 0444 "$work/disk.img"
python3 - "$work/fake-bzimage" <<'PY'
import struct, sys
image = bytearray(64 * 1024)
image[0x1f1] = 4                                  # setup_sects
image[0x1fe:0x200] = b"\x55\xaa"                  # boot_flag
image[0x200:0x202] = b"\xeb\x66"                  # jump over the header to 0x268
image[0x202:0x206] = b"HdrS"
struct.pack_into("<H", image, 0x206, 0x020f)      # protocol 2.15
image[0x211] = 1                                  # loadflags: LOADED_HIGH
struct.pack_into("<H", image, 0x236, 0x3)         # xloadflags: 64-bit entry
struct.pack_into("<I", image, 0x238, 2048)        # cmdline_size
open(sys.argv[1], "wb").write(image)
PY

expect 1 "kernel: no kernel given" --cpus 1
expect 1 "not found" --kernel "$work/missing-kernel"
expect 1 "not a bzImage" --kernel "$work/not-a-kernel"
expect 1 "at least one vCPU" --kernel "$work/fake-bzimage" --cpus 0
expect 1 "more than" --kernel "$work/fake-bzimage" --cpus 4096
expect 1 "at least 16 MiB" --kernel "$work/fake-bzimage" --memory 1
expect 1 "more than the host can give" --kernel "$work/fake-bzimage" --memory 1000000 --no-net
expect 1 "not found" --kernel "$work/fake-bzimage" --no-net --disk "$work/missing.img"
if [ "$(id -u)" -ne 0 ]; then
    expect 1 "permission denied" --kernel "$work/fake-bzimage" --no-net --disk "$work/disk.img"
else
    echo "SKIP: unwritable disk (root can write any file; covered by block_test)"
fi
expect 1 "unknown option" --kernel "$work/fake-bzimage" --disk "$work/disk.img,fast"
expect 1 "use stdio, none or socket:PATH" --kernel "$work/fake-bzimage" --serial tcp:1234
expect 1 "configuration $work/nope.json: cannot be read" --config "$work/nope.json"
echo '{"kernel": 5}' > "$work/bad.json"
expect 1 "kernel: wrong type" --config "$work/bad.json"
expect 1 "--display-size needs --display" --kernel "$work/fake-bzimage" --display-size 800x600
expect 1 "use WIDTHxHEIGHT" --kernel "$work/fake-bzimage" --display "$work/display.sock" --display-size 800
expect 1 "must be 64 to 8192" --kernel "$work/fake-bzimage" --display "$work/display.sock" --display-size 10000x600
expect 2 "/nonexistent/kvm: not found" --kernel "$work/fake-bzimage" --no-net --kvm-device /nonexistent/kvm
expect 2 "unusable" --kernel "$work/fake-bzimage" --no-net --kvm-device /dev/null

expect 1 "--audio \"alsa\": use none or pulse" --kernel "$work/fake-bzimage" --audio alsa
expect 1 "unknown option \"latency=5\"" --kernel "$work/fake-bzimage" --audio pulse,latency=5
expect 1 "--audio \"none,server=x\"" --kernel "$work/fake-bzimage" --audio none,server=x
echo "$failures failure(s)"
[ "$failures" -eq 0 ]

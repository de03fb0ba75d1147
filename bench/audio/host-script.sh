# Runs inside the virtual test host (busybox sh, cwd /payload), started by
# bench/audio/run through tests/testhost/run --with-qemu. Starts PulseAudio
# with a null sink for the speakers and one for the microphone, then boots
# the audio benchmark guest under atoll-vmm (--audio pulse: virtio-snd) and
# QEMU (intel-hda + hda-duplex, -audiodev pa), taking turns, each under
# audiobench, and prints one line per sample:
#     BENCH-SAMPLE METRIC VMM VALUE
# Problems are reported as "BENCH-PROBLEM ..." with the tail of the VMM's
# output; the script goes on and exits 1 at the end.
# Settings come from audio.conf (written by bench/audio/run).
# shellcheck disable=SC1091 # written by bench/audio/run
. ./audio.conf

K=/guest/vmlinuz
I=/payload/guest.cpio.gz
Q=qemu-system-x86_64
MEM=256
CMDLINE="console=ttyS0 quiet panic=-1 rdinit=/bench/init ab.idle=$IDLE_SECS ab.bursts=$BURSTS ab.play=$PLAY_SECS ab.listen=$LISTEN"
problems=0
mkdir -p /tmp/logs /tmp/pulse/run /tmp/pulse/home
chmod 700 /tmp/pulse/run
export XDG_RUNTIME_DIR=/tmp/pulse/run HOME=/tmp/pulse/home PULSE_SERVER=unix:/tmp/pulse/run/pulse/native

problem() { # LOG TEXT...
    log=$1
    shift
    echo "BENCH-PROBLEM $*"
    [ -f "$log" ] && tail -n 30 "$log" | sed 's/^/    | /'
    problems=$((problems + 1))
}

# The host's sound server: a null sink at 48 kHz stereo, the format both
# guests play, so that neither stream is resampled; the microphone is a
# second one, whose monitor is the default source both VMMs record from
# (audiobench plays into it while the guest listens), in the format both
# guests record.
cat >/tmp/pulse/bench.pa <<'PA'
load-module module-native-protocol-unix
load-module module-null-sink sink_name=atoll_bench rate=48000 channels=2
load-module module-null-sink sink_name=mic rate=48000 channels=2
set-default-sink atoll_bench
set-default-source mic.monitor
PA
./pulseaudio -n --daemonize=no --exit-idle-time=-1 --use-pid-file=no --disallow-exit=no \
    --dl-search-path=/payload/pulse-modules -F /tmp/pulse/bench.pa >/tmp/logs/pulseaudio.log 2>&1 &
pulse=$!
i=0
while [ ! -S /tmp/pulse/run/pulse/native ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -S /tmp/pulse/run/pulse/native ] || { problem /tmp/logs/pulseaudio.log "PulseAudio did not start"; exit 1; }

echo "bench: host $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, $(sed -n 's/MemTotal: *//p' /proc/meminfo)"
echo "bench: $($Q --version | head -n 1); $(./pulseaudio --version)"

# What the mixer shows for the VM's stream (buffer and sink latency) once it
# plays: asked once, a second into the long tone.
list_streams() { # LOG OUT
    (i=0
     while ! grep -q TONE-PLAYING "$1" 2>/dev/null && [ $i -lt 900 ]; do sleep 0.2; i=$((i + 1)); done
     sleep 1
     ./pactl list sink-inputs >"$2" 2>&1) &
    lister=$!
}

# The VMM's capture stream as the mixer shows it (buffer and source
# latency): asked once the guest listens, before the first burst (audiobench
# waits for its own recorder of the microphone, then half a second), or at
# the end of a guest that never listened.
list_sources() { # LOG OUT
    (i=0
     while ! grep -q 'TONE-LISTENING\|BENCH-GUEST-DONE' "$1" 2>/dev/null && [ $i -lt 900 ]; do
         sleep 0.2
         i=$((i + 1))
     done
     ./pactl list source-outputs >"$2" 2>&1) &
    sources=$!
}

# Which streams the VMM keeps open in PulseAudio while its guest idles:
# asked once, when the guest has found its sound device (before the idle
# window, so the client's own cost stays out of it).
list_clients() { # LOG OUT
    (i=0
     while ! grep -q AB-INFO "$1" 2>/dev/null && [ $i -lt 900 ]; do sleep 0.2; i=$((i + 1)); done
     { ./pactl list short sink-inputs; ./pactl list short source-outputs; } >"$2" 2>&1) &
    clients=$!
}

# run VMM NAME: one guest boot under audiobench; its report in NAME.out.
run() {
    vmm=$1 name=$2
    out=/tmp/logs/$name.out log=/tmp/logs/$name.log
    : >"$log"
    list_streams "$log" "/tmp/logs/$name.streams"
    list_clients "$log" "/tmp/logs/$name.clients"
    list_sources "$log" "/tmp/logs/$name.sources"
    case $vmm in
    atoll)
        ./audiobench -d atoll_bench.monitor -m mic -p $pulse -c /tmp/bench-audio.ctl -t 240 -o "$log" -- \
            ./atoll-vmm --kernel $K --initrd $I --cmdline "$CMDLINE" --name bench-audio \
            --control-socket /tmp/bench-audio.ctl \
            --memory $MEM --cpus 1 --no-net --serial stdio --audio "pulse,server=$PULSE_SERVER" >"$out" 2>&1
        ;;
    qemu)
        # QEMU's defaults for its PulseAudio back-end (buffer, latency, timer
        # period), but the stream at 48 kHz as the guest plays: its default,
        # fixed 44.1 kHz, would add two resamplings. mixer=off: no amplifier
        # in the codec, so the guest plays at full scale as through
        # virtio-snd (the generic codec driver leaves the amplifiers muted,
        # and the busybox guest has no mixer tool).
        ./audiobench -d atoll_bench.monitor -m mic -p $pulse -t 240 -o "$log" -- \
            $Q -M q35 -enable-kvm -cpu host -m $MEM -smp 1 -nodefaults -no-user-config -nographic \
            -serial stdio -no-reboot -kernel $K -initrd $I -append "$CMDLINE" \
            -audiodev "pa,id=snd0,server=$PULSE_SERVER,out.frequency=48000,in.frequency=48000" \
            -device intel-hda -device hda-duplex,audiodev=snd0,mixer=off >"$out" 2>&1
        ;;
    esac
    rc=$?
    wait $lister $clients $sources 2>/dev/null
    sed "s/^/bench: $name: idle streams: /" "/tmp/logs/$name.clients" 2>/dev/null
    [ $rc -eq 0 ] || problem "$log" "$name: audiobench exit $rc: $(grep -v '^event\|^onset\|^mic_onset\|^capture' "$out" | tr '\n' ' ')"
    grep -h 'AB-\|TONE-\|atoll-vmm:\|qemu-system' "$log" | sed "s/^/bench: $name: /"
    sed 's/^/bench: '"$name"': /' "$out"
    grep -h 'Buffer Latency\|Sink Latency\|media.name\|Sample Specification' "/tmp/logs/$name.streams" 2>/dev/null |
        sed "s/^/bench: $name: pactl: /"
    grep -h 'Buffer Latency\|Source Latency\|media.name\|Sample Specification' "/tmp/logs/$name.sources" 2>/dev/null |
        sed "s/^/bench: $name: pactl capture: /"
    grep -q 'AB-ERROR\|TONE-ERROR' "$log" && problem "$log" "$name: the guest reported an error"
    ex=$(sed -n 's/^exit=//p' "$out")
    [ "$ex" = 0 ] || problem "$log" "$name: the VMM exited with '$ex' after the guest powered off (expected 0)"

    # Latency: every burst but the first (the first stream of a boot also
    # pays for setting the stream up; logged above, not counted).
    sed -n 's/^latency burst=\([0-9]*\) ms=\([-0-9.]*\)$/\1 \2/p' "$out" | while read -r n ms; do
        [ "$n" -gt 1 ] && echo "BENCH-SAMPLE audio_latency_ms $vmm $ms"
        [ "$n" -eq 1 ] && echo "BENCH-SAMPLE audio_first_latency_ms $vmm $ms"
    done
    missed=$(grep -c '^latency .*ms=none' "$out")
    [ "$missed" -eq 0 ] || problem "$log" "$name: $missed burst(s) never heard"

    # Capture latency: every burst the guest heard, from its entering the
    # default source to the guest's read (the line's first byte).
    sed -n 's/^capture heard=\([0-9]*\) burst=\([0-9]*\) ms=\([-0-9.]*\) .*/\1 \2 \3/p' "$out" |
        while read -r n k ms; do
            echo "BENCH-SAMPLE audio_capture_latency_ms $vmm $ms"
            [ "$n" = "$k" ] || echo "bench: $name: the guest's onset $n follows the microphone's burst $k (one missed or heard twice)"
        done
    heard=$(grep -c '^capture heard=.* ms=[-0-9]' "$out")
    [ "$heard" -eq "$LISTEN" ] || problem "$log" "$name: the guest heard $heard of $LISTEN bursts from the microphone"

    # CPU time per second, from the samples at the markers: while the guest
    # idles (its sound device open to nobody) and while it plays one stream.
    # dom0's share = the VMM's own time (not the guest's) plus PulseAudio's.
    awk -v vmm="$vmm" '
        function at(key) {
            t[key] = $2; c[key] = $3; g[key] = $4; p[key] = $5 }
        $1 == "event" {
            for (i = 2; i <= 5; ++i) sub(/^[a-z_]*=/, "", $i)
            if ($6 == "text=AB-MARK" && $7 == "idle-begin") at("ib")
            if ($6 == "text=AB-MARK" && $7 == "idle-end") at("ie")
            if ($6 == "text=TONE-PLAYING") at("pb")
            if ($6 == "text=TONE-PLAYED") at("pe") }
        function rate(cpu, b, e) { return (cpu[e] - cpu[b]) * 1000 / (t[e] - t[b]) }
        END {
            if (!("ib" in t) || !("ie" in t) || !("pb" in t) || !("pe" in t)) exit 1
            if (c["ib"] < 0 || p["ib"] < 0) exit 1
            idle_vmm = rate(c, "ib", "ie") - rate(g, "ib", "ie")
            play_vmm = rate(c, "pb", "pe") - rate(g, "pb", "pe")
            idle_pa = rate(p, "ib", "ie"); play_pa = rate(p, "pb", "pe")
            printf "bench: %s cpu ms/s: idle vmm %.1f (guest %.1f) pulse %.1f; playing vmm %.1f (guest %.1f) pulse %.1f over %.1f s\n",
                vmm, idle_vmm, rate(g, "ib", "ie"), idle_pa, play_vmm, rate(g, "pb", "pe"), play_pa, (t["pe"] - t["pb"]) / 1000
            printf "BENCH-SAMPLE audio_dom0_cpu_ms_per_s %s %.2f\n", vmm, play_vmm + play_pa
            printf "BENCH-SAMPLE audio_idle_dom0_cpu_ms_per_s %s %.2f\n", vmm, idle_vmm + idle_pa
            printf "BENCH-SAMPLE audio_stream_dom0_cpu_ms_per_s %s %.2f\n", vmm, play_vmm + play_pa - idle_vmm - idle_pa
            printf "BENCH-SAMPLE audio_pulse_cpu_ms_per_s %s %.2f\n", vmm, play_pa
            printf "BENCH-SAMPLE audio_idle_pulse_cpu_ms_per_s %s %.2f\n", vmm, idle_pa
        }' "$out" || problem "$log" "$name: no CPU samples (markers missing)"
}

rep=1
while [ $rep -le "$REPS" ]; do
    for vmm in atoll qemu; do
        run $vmm audio-$vmm-$rep
    done
    rep=$((rep + 1))
done

kill $pulse 2>/dev/null
wait $pulse 2>/dev/null
grep -v 'W: ' /tmp/logs/pulseaudio.log | tail -n 10 | sed 's/^/bench: pulseaudio: /'
echo "bench: done, $problems problem(s)"
[ $problems -eq 0 ]

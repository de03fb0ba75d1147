# A person listening: the stock guest's snd_virtio plays 2 s of 1 kHz through
# atoll-vmm's virtio-snd into PulseAudio (a null sink in the test host), and
# what PulseAudio's monitor records is that tone, for that long.
set -e
. ./common.sh
mkdir -p /tmp/pulse/run /tmp/pulse/home
chmod 700 /tmp/pulse/run
export XDG_RUNTIME_DIR=/tmp/pulse/run HOME=/tmp/pulse/home PULSE_SERVER=unix:/tmp/pulse/run/pulse/native
cat > /tmp/pulse/test.pa <<'PA'
load-module module-native-protocol-unix
load-module module-null-sink sink_name=atoll_test rate=48000 channels=2
set-default-sink atoll_test
set-default-source atoll_test.monitor
PA
# root in the test host: PulseAudio warns and runs (a per-user server, no --system).
./pulseaudio -n --daemonize=no --exit-idle-time=-1 --use-pid-file=no --disallow-exit=no \
    --dl-search-path=/payload/pulse-modules -F /tmp/pulse/test.pa > pulseaudio.log 2>&1 &
server=$!
i=0
while [ ! -S /tmp/pulse/run/pulse/native ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
./pacat --record --device=atoll_test.monitor --raw --format=s16le --rate=48000 --channels=1 \
    --latency-msec=20 > recorded.raw 2> pacat.log &
recorder=$!
# A fresh null sink's monitor delivers its first block late: wait for it.
i=0
while [ ! -s recorded.raw ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# What pavucontrol would list while the guest plays: asked once, half a
# second into the tone (a client every few hundred ms would starve the slow
# test host's CPU and so the sound itself).
(i=0
 while ! grep -q ATOLL-SND sound.log 2>/dev/null && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
 sleep 0.5
 ./pactl list sink-inputs > sink-inputs.log 2>&1) &
lister=$!
boot sound.log --no-net --name e2e-sound --audio pulse --cmdline "console=ttyS0 quiet atoll.test=sound"
wait $lister 2>/dev/null || true
sleep 1
kill $recorder 2>/dev/null || true
wait $recorder 2>/dev/null || true
kill $server 2>/dev/null || true
wait $server 2>/dev/null || true
./atoll-tone check recorded.raw > heard.log
sed 's/^/    pulseaudio | /' pulseaudio.log | grep -v 'W: ' | tail -n 20
sed 's/^/    pacat | /' pacat.log | tail -n 5
cat heard.log
heard_seconds=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' heard.log)
heard_hz=$(sed -n 's/.* hz=\([0-9.]*\).*/\1/p' heard.log)
# busybox sh has no floating point: compare in milliseconds and tenths of Hz.
ms=$(echo "$heard_seconds" | awk '{printf "%d", $1 * 1000}')
decihz=$(echo "$heard_hz" | awk '{printf "%d", $1 * 10}')
check "atoll-vmm exits 0" [ "$status" -eq 0 ]
check "the guest has a virtio sound card" has_line sound.log "ATOLL-SND card=.* pcms=.*pcmC0D0p"
check "the guest played 2 s" has_line sound.log "TONE-PLAYED frames=96000"
check "atoll-vmm connected to PulseAudio" has_line sound.log "connected to PulseAudio"
check "the mixer lists the VM's stream by its name" has_line sink-inputs.log 'media.name = "e2e-sound playback"'
check "under the application Atoll: VM" has_line sink-inputs.log 'application.name = "Atoll: e2e-sound"'
check "PulseAudio heard about 2 s of tone (got ${ms} ms)" [ "$ms" -ge 1900 -a "$ms" -le 2150 ]
check "at 1 kHz (got ${heard_hz} Hz)" [ "$decihz" -ge 9900 -a "$decihz" -le 10100 ]
finish

// Where a VM's sound goes: the host side of virtio-snd. One back-end per VM
// process (it outlives each boot of the machine); the device opens a host
// stream per PCM stream it prepares. PulseAudio is the host's mixer, so the
// pulse back-end is one PulseAudio client per VM; the null back-end discards
// playback and records silence. Neither ever blocks the caller on the server.
#pragma once

#include <atoll/result.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace atl::vmm {

enum class AudioDirection { Playback, Capture };

enum class AudioSample { S16, S32, Float32 };  // little-endian, interleaved

struct AudioFormat {
    AudioSample sample = AudioSample::S16;
    uint32_t rate = 48000;
    uint8_t channels = 2;

    uint32_t bytes_per_sample() const { return sample == AudioSample::S16 ? 2 : 4; }
    uint32_t frame_bytes() const { return bytes_per_sample() * channels; }
    bool operator==(const AudioFormat&) const = default;
};

// One host stream. Called on the VMM's I/O thread only.
class AudioStream {
public:
    // A running playback stream that is let go plays out what it was given
    // (the end of a drained sound); flush() first to drop it.
    virtual ~AudioStream() = default;
    // Playback: hands whole frames over; returns at once. `unplayed_bytes`
    // is how much of all that was written (these frames included) the guest
    // still counts as queued: the device completes it later, by its clock. It
    // is the part of the server's queue that is not added latency, so the
    // back-end keeps the server near that plus where its latency settled;
    // frames far beyond (a server hung, or away) are dropped, never played
    // late, and counted in AudioStatus::dropped_frames while connected.
    virtual void write(std::span<const uint8_t> frames, uint64_t unplayed_bytes) = 0;
    // Capture: fills `frames` (whole frames) with what was recorded, oldest
    // first; silence where nothing was. Returns at once.
    virtual void read(std::span<uint8_t> frames) = 0;
    // Capture: how many recorded bytes wait to be read.
    virtual size_t readable_bytes() const { return 0; }
    // Capture: whether recorded audio is coming (the server is there and the
    // stream records). While it is not, the device completes the guest's
    // periods by its own clock, with silence.
    virtual bool recording() const { return false; }
    // Capture: `callback` runs, on the back-end's thread, each time recorded
    // audio arrives; it must only hand the news over to the I/O thread.
    virtual void set_recorded_callback(std::function<void()> callback) { (void)callback; }
    // Pauses (corks) or resumes the stream; data written meanwhile waits.
    virtual void set_running(bool running) = 0;
    // Playback: the guest supplied nothing more for now. The stream ends what
    // it has with a short fade so the gap is silence, not a click.
    virtual void starved() = 0;
    // Throws away what was written and not yet played (the guest released the stream).
    virtual void flush() = 0;
    // How far behind the guest's data the listener is, in bytes of this stream's format.
    virtual uint32_t latency_bytes() const = 0;
};

struct AudioChannelState {
    unsigned volume_percent = 100;  // 0-150, as pavucontrol shows it
    bool muted = false;
};

struct AudioStatus {
    std::string backend;  // "pulse", "none"
    bool connected = false;
    uint64_t underruns = 0;  // the server ran out of playback data
    uint64_t overruns = 0;   // recorded data the guest did not take in time
    uint64_t capture_gaps = 0;  // recorded data that came too late: the guest got silence instead
    uint64_t dropped_frames = 0;  // playback the server could not take in time (would have played late)
    AudioChannelState playback;
    AudioChannelState capture;
};

class AudioBackend {
public:
    virtual ~AudioBackend() = default;
    // Safe from the I/O thread. A server that is away is not an error: the
    // stream plays into nothing until it comes back.
    virtual Result<std::unique_ptr<AudioStream>> open(AudioDirection direction, const AudioFormat& format) = 0;
    // Safe from any thread. Apply to the VM's open streams and to later ones.
    virtual void set_volume(AudioDirection direction, unsigned percent) = 0;
    virtual void set_muted(AudioDirection direction, bool muted) = 0;
    virtual AudioStatus status() const = 0;
};

constexpr unsigned kMaxAudioVolumePercent = 150;

std::shared_ptr<AudioBackend> make_null_audio_backend();

struct PulseAudioOptions {
    std::string vm_name;
    std::string server;  // empty: libpulse's default (PULSE_SERVER, XDG_RUNTIME_DIR/pulse/native...)
    unsigned retry_ms = 1000;
};
// Starts the client's thread; connects (and reconnects) in the background.
// The back-end is a module, atoll-audio-pulse.so, loaded on first use from
// beside the executable (or the install or build directory): libpulse brings
// some thirty libraries (X11, codecs, glib, systemd) that cost a VM without
// sound about 5 MiB of resident memory and their start-up relocations.
Result<std::shared_ptr<AudioBackend>> make_pulse_audio_backend(const PulseAudioOptions& options);

// The module's entry point (C linkage, so dlsym finds it by this name; the
// version in the name changes whenever these types do).
using PulseAudioModuleEntry = void (*)(const PulseAudioOptions* options, Result<std::shared_ptr<AudioBackend>>* out);
inline constexpr const char* kPulseAudioModuleName = "atoll-audio-pulse.so";
inline constexpr const char* kPulseAudioModuleEntry = "atoll_audio_pulse_make_v3";

// Appends to `out` a fade from `last_frame` to silence over `frames` frames
// (the anti-click tail of a starved stream).
void append_fade_out(const AudioFormat& format, std::span<const uint8_t> last_frame, uint32_t frames,
                     std::vector<uint8_t>& out);

}  // namespace atl::vmm

#include "devices/audio_backend.h"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace atl::vmm {
namespace {

class NullAudioStream final : public AudioStream {
public:
    void write(std::span<const uint8_t>, uint64_t) override {}
    void read(std::span<uint8_t> frames) override { std::fill(frames.begin(), frames.end(), 0); }
    void set_running(bool) override {}
    void starved() override {}
    void flush() override {}
    uint32_t latency_bytes() const override { return 0; }
};

class NullAudioBackend final : public AudioBackend {
public:
    Result<std::unique_ptr<AudioStream>> open(AudioDirection, const AudioFormat&) override {
        return std::unique_ptr<AudioStream>(std::make_unique<NullAudioStream>());
    }
    void set_volume(AudioDirection direction, unsigned percent) override {
        std::lock_guard lock(mutex_);
        channel(direction).volume_percent = std::min(percent, kMaxAudioVolumePercent);
    }
    void set_muted(AudioDirection direction, bool muted) override {
        std::lock_guard lock(mutex_);
        channel(direction).muted = muted;
    }
    AudioStatus status() const override {
        std::lock_guard lock(mutex_);
        return status_;
    }

private:
    AudioChannelState& channel(AudioDirection direction) {
        return direction == AudioDirection::Playback ? status_.playback : status_.capture;
    }
    mutable std::mutex mutex_;
    AudioStatus status_{.backend = "none"};
};

}  // namespace

std::shared_ptr<AudioBackend> make_null_audio_backend() { return std::make_shared<NullAudioBackend>(); }

void append_fade_out(const AudioFormat& format, std::span<const uint8_t> last_frame, uint32_t frames,
                     std::vector<uint8_t>& out) {
    if (last_frame.size() != format.frame_bytes() || frames == 0) return;
    const size_t start = out.size();
    out.resize(start + size_t{frames} * format.frame_bytes());
    uint8_t* next = out.data() + start;
    for (uint32_t i = 0; i < frames; ++i) {
        // Linear to zero: the last step is silence itself.
        const double gain = double(frames - 1 - i) / double(frames);
        for (unsigned channel = 0; channel < format.channels; ++channel) {
            const uint8_t* sample = last_frame.data() + channel * format.bytes_per_sample();
            switch (format.sample) {
            case AudioSample::S16: {
                int16_t value;
                std::memcpy(&value, sample, 2);
                value = static_cast<int16_t>(value * gain);
                std::memcpy(next, &value, 2);
                break;
            }
            case AudioSample::S32: {
                int32_t value;
                std::memcpy(&value, sample, 4);
                value = static_cast<int32_t>(value * gain);
                std::memcpy(next, &value, 4);
                break;
            }
            case AudioSample::Float32: {
                float value;
                std::memcpy(&value, sample, 4);
                value = (value == value) ? static_cast<float>(value * gain) : 0.0f;  // NaN fades to silence too
                std::memcpy(next, &value, 4);
                break;
            }
            }
            next += format.bytes_per_sample();
        }
    }
}

}  // namespace atl::vmm

// virtio-snd (virtio 1.2 section 5.14): one output and one input PCM stream,
// a jack and a channel map for each, played and recorded through an
// AudioBackend (PulseAudio). Message-based transport only (no shared memory).
//
// Timing: a playback buffer is handed to the back-end when it arrives (or at
// START when it was queued for pre-buffering) and completed once its frames
// have been played at the stream's rate by the device's own clock, so the
// guest neither stalls nor races when the server is slow or away. A capture
// buffer is completed as soon as the back-end has recorded enough to fill it
// (section 5.14.6.8.2: the device returns it when it is full), so the guest
// hears with no more delay than the server's and follows the sound card's
// clock; when recorded audio does not come (the server is away, hung, or very
// late), buffers complete by the device's clock, with silence, so the guest
// never stalls either.
#pragma once

#include "devices/audio_backend.h"
#include "devices/virtio/device.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace atl::vmm::virtio {

class SoundDevice : public Device {
public:
    using Clock = std::chrono::steady_clock;

    static constexpr uint16_t kControlQueue = 0;
    static constexpr uint16_t kEventQueue = 1;
    static constexpr uint16_t kTxQueue = 2;
    static constexpr uint16_t kRxQueue = 3;

    // Section 5.14.6: request codes and status codes.
    enum : uint32_t {
        kJackInfo = 1,
        kJackRemap = 2,
        kPcmInfo = 0x0100,
        kPcmSetParams = 0x0101,
        kPcmPrepare = 0x0102,
        kPcmRelease = 0x0103,
        kPcmStart = 0x0104,
        kPcmStop = 0x0105,
        kChmapInfo = 0x0200,
        kStatusOk = 0x8000,
        kStatusBadMsg = 0x8001,
        kStatusNotSupp = 0x8002,
        kStatusIoErr = 0x8003,
    };
    enum : uint8_t { kDirectionOutput = 0, kDirectionInput = 1 };
    // Section 5.14.6.6.2: format and rate bit numbers.
    enum : uint8_t { kFormatS16 = 5, kFormatS32 = 17, kFormatFloat = 19 };
    enum : uint8_t { kRate44100 = 6, kRate48000 = 7 };
    enum : uint8_t { kChmapFrontLeft = 3, kChmapFrontRight = 4 };

    static constexpr uint32_t kStreamCount = 2;  // 0 output, 1 input
    static constexpr uint32_t kJackCount = 2;
    static constexpr uint32_t kChmapCount = 2;
    static constexpr uint32_t kPlaybackStream = 0;
    static constexpr uint32_t kCaptureStream = 1;
    // A hardware buffer larger than this is refused (a second of 8 channels
    // of 32-bit samples at 192 kHz is 6 MiB; we offer far less).
    static constexpr uint32_t kMaxBufferBytes = 4 << 20;
    static constexpr uint32_t kMaxInfoSize = 1024;

    struct Config {
        std::string vm_name = "atoll";
        // The device's clock; tests drive time by hand.
        std::function<Clock::time_point()> now = [] { return Clock::now(); };
    };

    SoundDevice(std::shared_ptr<AudioBackend> backend, Config config);
    ~SoundDevice() override;

    DeviceType type() const override { return kDeviceSound; }
    uint64_t offered_features() const override;
    uint16_t queue_count() const override { return 4; }
    void read_config(uint64_t offset, std::span<uint8_t> data) const override;
    Result<void> activate(ActivationContext context) override;
    void queue_notify(uint16_t queue) override;
    void reset() override;
    std::string name() const override { return "virtio-snd"; }

    // Completes what is due by the clock and arms the timer for the next
    // completion. The event loop's timer calls it; tests call it after moving
    // their clock.
    void service();

    // For tests and the status line.
    enum class State { Idle, ParamsSet, Prepared, Started, Stopped, Released };
    State state(uint32_t stream) const { return streams_.at(stream).state; }
    size_t pending(uint32_t stream) const { return streams_.at(stream).pending.size(); }
    uint64_t rejected_requests() const { return rejected_requests_; }
    uint64_t guest_underruns() const { return guest_underruns_; }

private:
    struct Params {
        uint32_t buffer_bytes = 0;
        uint32_t period_bytes = 0;
        AudioFormat format;
    };
    struct Io {
        DescriptorChain chain;
        uint32_t data_bytes = 0;  // frames to play or record
        bool handed = false;      // playback: already written to the back-end
        std::optional<Clock::time_point> due;  // playback: when played; capture: whether started
        Clock::time_point scheduled_at{};       // capture: when the stream could first fill it
    };
    struct Stream {
        uint8_t direction = kDirectionOutput;
        State state = State::Idle;
        std::optional<Params> params;
        std::deque<Io> pending;
        uint64_t pending_bytes = 0;
        uint64_t handed_bytes = 0;  // playback: with the host, not yet completed
        Clock::time_point clock_end{};  // when the last scheduled buffer is done
        std::unique_ptr<AudioStream> host;
        bool starved = false;
        bool drained = false;  // stopped with nothing queued: the host plays out its tail
        // Capture: when the last buffer completed (or the stream started),
        // and whether recorded audio failed to come in time since.
        Clock::time_point capture_clock{};
        bool capture_late = false;
    };

    bool usable(uint16_t queue) const;
    void stop_device(const std::string& error);
    void process_control();
    void process_io(uint16_t queue);
    void notify(uint16_t queue);
    // Each returns the status and fills `payload` with what follows it.
    uint32_t handle_control(uint32_t code, ChainReader& reader, uint32_t response_room, std::vector<uint8_t>& payload);
    uint32_t query_info(uint32_t code, ChainReader& reader, uint32_t response_room, std::vector<uint8_t>& payload);
    uint32_t set_params(ChainReader& reader);
    uint32_t change_state(uint32_t code, uint32_t stream_id);
    void release(Stream& stream, uint16_t queue);
    void start(Stream& stream);
    void hand_to_host(Stream& stream, Io& io);
    void schedule(Stream& stream, Io& io, Clock::time_point now);
    void complete(Stream& stream, Io& io, uint32_t status, bool fill);
    bool serve_capture(Stream& stream, Clock::time_point now);
    Clock::time_point capture_deadline(const Stream& stream) const;
    // How long `bytes` of whole frames take to play or record.
    static Clock::duration duration_of(const AudioFormat& format, uint64_t bytes);
    void watch_recording(Stream& stream);
    void arm_timer();
    static bool holds_last_capture_buffer(const Stream& stream);
    uint16_t queue_of(const Stream& stream) const { return stream.direction == kDirectionOutput ? kTxQueue : kRxQueue; }

    std::shared_ptr<AudioBackend> backend_;
    Config config_;
    std::optional<ActivationContext> context_;
    bool stopped_ = false;
    std::array<Stream, kStreamCount> streams_;
    std::optional<uint64_t> timer_;
    std::optional<Clock::time_point> timer_deadline_;
    uint64_t rejected_requests_ = 0;
    uint64_t guest_underruns_ = 0;
    bool used_pushed_[4] = {};
    // Set while a service() for newly recorded audio is posted to the I/O
    // thread; the back-end's callbacks hold it weakly, so one that comes
    // after the device is gone does nothing.
    std::shared_ptr<std::atomic<bool>> recorded_posted_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace atl::vmm::virtio

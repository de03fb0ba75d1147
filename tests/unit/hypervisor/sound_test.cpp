#include "devices/virtio/sound.h"
#include "virtio_test_driver.h"

#include <gtest/gtest.h>

#include <cstring>

namespace atl::vmm::virtio {
namespace {

using testing::DriverBuffer;
using testing::FakeInterrupt;
using testing::TestDriver;
using namespace std::chrono_literals;

// Records what the device hands the host; capture returns a counting pattern.
struct FakeAudio : AudioBackend {
    struct Stream : AudioStream {
        explicit Stream(FakeAudio& owner, AudioDirection direction, AudioFormat format)
            : owner(owner), direction(direction), format(format) {}
        ~Stream() override { ++owner.closed; }
        void write(std::span<const uint8_t> frames, uint64_t unplayed_bytes) override {
            owner.played.insert(owner.played.end(), frames.begin(), frames.end());
            owner.unplayed.push_back(unplayed_bytes);
        }
        void read(std::span<uint8_t> frames) override {
            if (!owner.recording) {
                for (auto& byte : frames) byte = owner.next_recorded++;
                return;
            }
            // A server: what it recorded so far, then silence.
            const size_t taken = std::min(frames.size(), owner.readable);
            for (size_t i = 0; i < frames.size(); ++i) frames[i] = i < taken ? owner.next_recorded++ : 0;
            owner.readable -= taken;
        }
        size_t readable_bytes() const override { return owner.recording ? owner.readable : 0; }
        bool recording() const override { return owner.recording; }
        void set_running(bool value) override { owner.running[direction == AudioDirection::Capture] = value; }
        void starved() override { ++owner.starved; }
        void flush() override { ++owner.flushed; }
        uint32_t latency_bytes() const override { return 5000; }
        FakeAudio& owner;
        AudioDirection direction;
        AudioFormat format;
    };
    Result<std::unique_ptr<AudioStream>> open(AudioDirection direction, const AudioFormat& format) override {
        ++opened;
        last_format = format;
        return std::unique_ptr<AudioStream>(std::make_unique<Stream>(*this, direction, format));
    }
    void set_volume(AudioDirection, unsigned) override {}
    void set_muted(AudioDirection, bool) override {}
    AudioStatus status() const override { return {}; }

    std::vector<uint8_t> played;
    std::vector<uint64_t> unplayed;  // what each write said the guest still counts as queued
    uint8_t next_recorded = 1;
    bool recording = false;  // capture: a server delivers `readable` bytes (else: a pattern, by the clock)
    size_t readable = 0;
    bool running[2] = {};
    int opened = 0, closed = 0, starved = 0, flushed = 0;
    AudioFormat last_format;
};

struct Header {
    uint32_t code;
};
struct PcmRequest {
    uint32_t code;
    uint32_t stream_id;
};
struct QueryRequest {
    uint32_t code, start_id, count, size;
};
struct SetParamsRequest {
    uint32_t code, stream_id, buffer_bytes, period_bytes, features;
    uint8_t channels, format, rate, padding;
};
struct IoStatus {
    uint32_t status;
    uint32_t latency_bytes;
};

template <class T>
std::vector<uint8_t> bytes_of(const T& value) {
    std::vector<uint8_t> bytes(sizeof value);
    std::memcpy(bytes.data(), &value, sizeof value);
    return bytes;
}

// 10 ms periods of 48 kHz stereo S16.
constexpr uint32_t kPeriodBytes = 480 * 4;
constexpr uint32_t kBufferBytes = 4 * kPeriodBytes;

class SoundTest : public ::testing::Test {
protected:
    SoundTest() {
        SoundDevice::Config config;
        config.vm_name = "test-vm";
        config.now = [this] { return now_; };
        audio_ = std::make_shared<FakeAudio>();
        device_ = std::make_unique<SoundDevice>(audio_, config);
        auto context = driver_.activation_context(false, &interrupt_);
        context.acked_features = kFeatureVersion1;
        EXPECT_TRUE(device_->activate(std::move(context)).ok());
    }

    struct Answer {
        uint32_t status = 0;
        uint32_t used_length = 0;
        std::vector<uint8_t> payload;
    };
    // Sends one control request the way the Linux driver does: the request in
    // one readable buffer, the response in one writable buffer.
    Answer control(const std::vector<uint8_t>& request, uint32_t response_bytes = 4) {
        auto& queue = driver_.queue(SoundDevice::kControlQueue);
        std::vector<DriverBuffer> buffers;
        if (!request.empty()) buffers.push_back({driver_.put(request), static_cast<uint32_t>(request.size()), false});
        const uint64_t response = driver_.fill(std::max<uint32_t>(response_bytes, 1), 0xEE);
        if (response_bytes) buffers.push_back({response, response_bytes, true});
        const uint16_t before = queue.used_index();
        queue.add_chain(buffers);
        device_->queue_notify(SoundDevice::kControlQueue);
        EXPECT_EQ(queue.used_index(), static_cast<uint16_t>(before + 1));
        Answer answer;
        answer.used_length = queue.used_element(before).length;
        if (response_bytes >= 4) {
            const auto bytes = driver_.get(response, response_bytes);
            std::memcpy(&answer.status, bytes.data(), 4);
            answer.payload.assign(bytes.begin() + 4, bytes.end());
        }
        return answer;
    }
    uint32_t pcm(uint32_t code, uint32_t stream) { return control(bytes_of(PcmRequest{code, stream})).status; }
    uint32_t set_params(uint32_t stream, uint32_t buffer = kBufferBytes, uint32_t period = kPeriodBytes,
                        uint8_t channels = 2, uint8_t format = SoundDevice::kFormatS16,
                        uint8_t rate = SoundDevice::kRate48000, uint32_t features = 0) {
        return control(bytes_of(SetParamsRequest{SoundDevice::kPcmSetParams, stream, buffer, period, features, channels,
                                                 format, rate, 0}))
            .status;
    }
    Answer query(uint32_t code, uint32_t start, uint32_t count, uint32_t size, uint32_t response_bytes = 0) {
        if (!response_bytes) response_bytes = 4 + count * size;
        return control(bytes_of(QueryRequest{code, start, count, size}), response_bytes);
    }
    void prepare_playback() {
        ASSERT_EQ(set_params(SoundDevice::kPlaybackStream), SoundDevice::kStatusOk);
        ASSERT_EQ(pcm(SoundDevice::kPcmPrepare, SoundDevice::kPlaybackStream), SoundDevice::kStatusOk);
    }
    void prepare_capture() {
        ASSERT_EQ(set_params(SoundDevice::kCaptureStream), SoundDevice::kStatusOk);
        ASSERT_EQ(pcm(SoundDevice::kPcmPrepare, SoundDevice::kCaptureStream), SoundDevice::kStatusOk);
    }

    struct Io {
        uint16_t head;
        uint64_t data;
        uint64_t status;
    };
    // Output message (section 5.14.6.8): xfer header, frames, then the status.
    Io tx(uint32_t stream, const std::vector<uint8_t>& frames, uint32_t status_bytes = 8) {
        auto& queue = driver_.queue(SoundDevice::kTxQueue);
        Io io{};
        std::vector<DriverBuffer> buffers{{driver_.put(bytes_of(stream)), 4, false}};
        if (!frames.empty()) {
            io.data = driver_.put(frames);
            buffers.push_back({io.data, static_cast<uint32_t>(frames.size()), false});
        }
        if (status_bytes) {
            io.status = driver_.fill(status_bytes, 0xEE);
            buffers.push_back({io.status, status_bytes, true});
        }
        io.head = queue.add_chain(buffers);
        device_->queue_notify(SoundDevice::kTxQueue);
        return io;
    }
    Io rx(uint32_t stream, uint32_t data_bytes) {
        auto& queue = driver_.queue(SoundDevice::kRxQueue);
        Io io{};
        io.data = driver_.fill(data_bytes, 0xEE);
        io.status = driver_.fill(8, 0xEE);
        io.head = queue.add_chain({{driver_.put(bytes_of(stream)), 4, false}, {io.data, data_bytes, true}, {io.status, 8, true}});
        device_->queue_notify(SoundDevice::kRxQueue);
        return io;
    }
    IoStatus status_at(uint64_t address) {
        IoStatus status{};
        driver_.memory()->read_object(GuestAddress{address}, status);
        return status;
    }
    uint16_t used(uint16_t queue) { return driver_.queue(queue).used_index(); }
    void advance(std::chrono::microseconds by) {
        now_ += by;
        device_->service();
    }
    static std::vector<uint8_t> pattern(uint32_t bytes, uint8_t seed) {
        std::vector<uint8_t> data(bytes);
        for (uint32_t i = 0; i < bytes; ++i) data[i] = static_cast<uint8_t>(seed + i * 7);
        return data;
    }

    TestDriver driver_{64, 1 << 20, 4};
    FakeInterrupt interrupt_;
    SoundDevice::Clock::time_point now_{std::chrono::seconds(1000)};
    std::shared_ptr<FakeAudio> audio_;
    std::unique_ptr<SoundDevice> device_;
};

TEST_F(SoundTest, DescribesItself) {
    EXPECT_EQ(device_->type(), kDeviceSound);
    EXPECT_EQ(device_->queue_count(), 4);
    uint32_t config[3] = {};
    device_->read_config(0, std::span(reinterpret_cast<uint8_t*>(config), sizeof config));
    EXPECT_EQ(config[0], 2u);  // jacks
    EXPECT_EQ(config[1], 2u);  // streams
    EXPECT_EQ(config[2], 2u);  // chmaps
    uint8_t beyond[4] = {1, 1, 1, 1};
    device_->read_config(12, beyond);
    EXPECT_EQ(beyond[0] | beyond[1] | beyond[2] | beyond[3], 0);
}

TEST_F(SoundTest, AnswersTheLinuxDriversInfoQueries) {
    // virtsnd_jack_parse_cfg, virtsnd_pcm_parse_cfg, virtsnd_chmap_parse_cfg: all items at once.
    auto jacks = query(SoundDevice::kJackInfo, 0, 2, 24);
    ASSERT_EQ(jacks.status, SoundDevice::kStatusOk);
    EXPECT_EQ(jacks.used_length, 4u + 48);
    uint32_t jack[6];
    std::memcpy(jack, jacks.payload.data(), 24);
    EXPECT_EQ(jack[1], 0u);                 // no remap
    EXPECT_EQ((jack[2] >> 20) & 0xF, 0u);   // Line Out
    EXPECT_EQ(jack[4] & 0xFF, 1u);          // connected
    std::memcpy(jack, jacks.payload.data() + 24, 24);
    EXPECT_EQ((jack[2] >> 20) & 0xF, 0xAu);  // Mic In

    auto streams = query(SoundDevice::kPcmInfo, 0, 2, 32);
    ASSERT_EQ(streams.status, SoundDevice::kStatusOk);
    for (int id = 0; id < 2; ++id) {
        const uint8_t* info = streams.payload.data() + 32 * id;
        uint64_t formats, rates;
        std::memcpy(&formats, info + 8, 8);
        std::memcpy(&rates, info + 16, 8);
        EXPECT_TRUE(formats & (1ull << SoundDevice::kFormatS16));
        EXPECT_TRUE(rates & (1ull << SoundDevice::kRate44100));
        EXPECT_TRUE(rates & (1ull << SoundDevice::kRate48000));
        EXPECT_EQ(info[24], id == 0 ? SoundDevice::kDirectionOutput : SoundDevice::kDirectionInput);
        EXPECT_EQ(info[25], 1);  // channels_min
        EXPECT_EQ(info[26], 2);  // channels_max
        for (int i = 27; i < 32; ++i) EXPECT_EQ(info[i], 0) << "padding";
    }

    auto chmaps = query(SoundDevice::kChmapInfo, 1, 1, 24);
    ASSERT_EQ(chmaps.status, SoundDevice::kStatusOk);
    EXPECT_EQ(chmaps.payload[4], SoundDevice::kDirectionInput);
    EXPECT_EQ(chmaps.payload[5], 2);
    EXPECT_EQ(chmaps.payload[6], SoundDevice::kChmapFrontLeft);
    EXPECT_EQ(chmaps.payload[7], SoundDevice::kChmapFrontRight);

    // A driver with larger structures gets zero-padded slots.
    auto padded = query(SoundDevice::kPcmInfo, 1, 1, 40);
    ASSERT_EQ(padded.status, SoundDevice::kStatusOk);
    EXPECT_EQ(padded.used_length, 44u);
    for (int i = 32; i < 40; ++i) EXPECT_EQ(padded.payload[i], 0);
}

TEST_F(SoundTest, RefusesMalformedControlRequests) {
    EXPECT_EQ(query(SoundDevice::kPcmInfo, 1, 2, 32).status, SoundDevice::kStatusBadMsg);
    EXPECT_EQ(query(SoundDevice::kPcmInfo, 3, 0, 32).status, SoundDevice::kStatusBadMsg);
    EXPECT_EQ(query(SoundDevice::kJackInfo, 1, 0xFFFFFFFF, 24, 64).status, SoundDevice::kStatusBadMsg);
    EXPECT_EQ(query(SoundDevice::kChmapInfo, 0, 1, 0, 64).status, SoundDevice::kStatusBadMsg);
    EXPECT_EQ(query(SoundDevice::kChmapInfo, 0, 1, 1 << 20, 64).status, SoundDevice::kStatusBadMsg);
    auto small = query(SoundDevice::kPcmInfo, 0, 2, 32, 40);  // room for one item only
    EXPECT_EQ(small.status, SoundDevice::kStatusBadMsg);
    EXPECT_EQ(small.used_length, 4u);
    EXPECT_EQ(small.payload[0], 0xEE) << "nothing written past the status";

    EXPECT_EQ(control({0x01, 0x01}).status, SoundDevice::kStatusBadMsg) << "short header";
    EXPECT_EQ(control({}).status, SoundDevice::kStatusBadMsg) << "no request at all";
    EXPECT_EQ(control(bytes_of(Header{0x0300})).status, SoundDevice::kStatusNotSupp) << "control elements not offered";
    EXPECT_EQ(control(bytes_of(Header{0x7777})).status, SoundDevice::kStatusNotSupp);
    EXPECT_EQ(control(bytes_of(Header{SoundDevice::kPcmInfo})).status, SoundDevice::kStatusBadMsg) << "query cut short";
    EXPECT_EQ(control(bytes_of(Header{SoundDevice::kPcmStart})).status, SoundDevice::kStatusBadMsg) << "no stream id";

    uint32_t remap[4] = {SoundDevice::kJackRemap, 0, 1, 0};
    EXPECT_EQ(control(bytes_of(remap)).status, SoundDevice::kStatusNotSupp);
    remap[1] = 2;
    EXPECT_EQ(control(bytes_of(remap)).status, SoundDevice::kStatusBadMsg);

    // No room for the status: completed with nothing written.
    auto silent = control(bytes_of(PcmRequest{SoundDevice::kPcmPrepare, 0}), 2);
    EXPECT_EQ(silent.used_length, 0u);
    EXPECT_EQ(device_->state(0), SoundDevice::State::Idle);
    EXPECT_TRUE(interrupt_.device_errors.empty());
}

TEST_F(SoundTest, ValidatesParameters) {
    using S = SoundDevice;
    EXPECT_EQ(set_params(2), S::kStatusBadMsg) << "no such stream";
    EXPECT_EQ(set_params(0, kBufferBytes, kPeriodBytes, 2, S::kFormatS16, S::kRate48000, 1u << 2), S::kStatusNotSupp)
        << "MSG_POLLING is not offered";
    EXPECT_EQ(set_params(0, kBufferBytes, kPeriodBytes, 2, 4 /* U8 */), S::kStatusNotSupp);
    EXPECT_EQ(set_params(0, kBufferBytes, kPeriodBytes, 2, 200), S::kStatusNotSupp);
    EXPECT_EQ(set_params(0, kBufferBytes, kPeriodBytes, 2, S::kFormatS16, 1 /* 8 kHz */), S::kStatusNotSupp);
    EXPECT_EQ(set_params(0, kBufferBytes, kPeriodBytes, 0), S::kStatusNotSupp);
    EXPECT_EQ(set_params(0, kBufferBytes, kPeriodBytes, 3), S::kStatusNotSupp);
    EXPECT_EQ(set_params(0, kBufferBytes + 4, kPeriodBytes), S::kStatusBadMsg) << "buffer not whole periods";
    EXPECT_EQ(set_params(0, 600, 6), S::kStatusBadMsg) << "period not whole frames";
    EXPECT_EQ(set_params(0, 0, 0), S::kStatusBadMsg);
    EXPECT_EQ(set_params(0, S::kMaxBufferBytes + kPeriodBytes, kPeriodBytes), S::kStatusBadMsg);
    EXPECT_EQ(device_->state(0), S::State::Idle);
    EXPECT_EQ(pcm(S::kPcmPrepare, 0), S::kStatusBadMsg) << "refused parameters were not kept";
    EXPECT_EQ(audio_->opened, 0);

    EXPECT_EQ(set_params(0, kBufferBytes, kPeriodBytes, 1, S::kFormatFloat, S::kRate44100), S::kStatusOk);
    EXPECT_EQ(pcm(S::kPcmPrepare, 0), S::kStatusOk);
    EXPECT_EQ(audio_->last_format.sample, AudioSample::Float32);
    EXPECT_EQ(audio_->last_format.rate, 44100u);
    EXPECT_EQ(audio_->last_format.channels, 1);
}

TEST_F(SoundTest, FollowsThePcmCommandLifecycle) {
    using S = SoundDevice;
    EXPECT_EQ(pcm(S::kPcmPrepare, 0), S::kStatusBadMsg);
    EXPECT_EQ(pcm(S::kPcmStart, 0), S::kStatusBadMsg);
    EXPECT_EQ(pcm(S::kPcmStop, 0), S::kStatusBadMsg);
    EXPECT_EQ(pcm(S::kPcmRelease, 0), S::kStatusBadMsg);
    EXPECT_EQ(pcm(S::kPcmStart, 7), S::kStatusBadMsg);
    ASSERT_EQ(set_params(0), S::kStatusOk);
    EXPECT_EQ(pcm(S::kPcmStart, 0), S::kStatusBadMsg);
    EXPECT_EQ(device_->state(0), S::State::ParamsSet);
    ASSERT_EQ(pcm(S::kPcmPrepare, 0), S::kStatusOk);
    ASSERT_EQ(pcm(S::kPcmPrepare, 0), S::kStatusOk) << "prepare may repeat";
    EXPECT_EQ(audio_->opened, 1);
    ASSERT_EQ(pcm(S::kPcmStart, 0), S::kStatusOk);
    EXPECT_TRUE(audio_->running[0]);
    EXPECT_EQ(pcm(S::kPcmStart, 0), S::kStatusBadMsg);
    EXPECT_EQ(set_params(0), S::kStatusBadMsg);
    EXPECT_EQ(pcm(S::kPcmPrepare, 0), S::kStatusBadMsg);
    EXPECT_EQ(pcm(S::kPcmRelease, 0), S::kStatusBadMsg);
    EXPECT_EQ(device_->state(0), S::State::Started);
    ASSERT_EQ(pcm(S::kPcmStop, 0), S::kStatusOk);
    EXPECT_TRUE(audio_->running[0]) << "nothing was queued: the end of a drain, the host plays out";
    EXPECT_EQ(pcm(S::kPcmStop, 0), S::kStatusBadMsg);
    ASSERT_EQ(pcm(S::kPcmStart, 0), S::kStatusOk) << "a pause ends with START";
    ASSERT_EQ(pcm(S::kPcmStop, 0), S::kStatusOk);
    ASSERT_EQ(pcm(S::kPcmRelease, 0), S::kStatusOk);
    EXPECT_EQ(audio_->closed, 1);
    EXPECT_EQ(pcm(S::kPcmStart, 0), S::kStatusBadMsg);
    ASSERT_EQ(pcm(S::kPcmPrepare, 0), S::kStatusOk) << "released streams prepare again";
    EXPECT_EQ(audio_->opened, 2);
    ASSERT_EQ(pcm(S::kPcmRelease, 0), S::kStatusOk);
    ASSERT_EQ(set_params(0, kBufferBytes, kPeriodBytes, 1), S::kStatusOk);
    EXPECT_EQ(device_->state(1), S::State::Idle) << "the other stream is untouched";
}

TEST_F(SoundTest, PlaybackIsConsumedAtRealTimePace) {
    prepare_playback();
    // Pre-buffering (section 5.14.6.6.1): queued before START, kept until then.
    const auto first = pattern(kPeriodBytes, 1);
    const auto second = pattern(kPeriodBytes, 2);
    const Io a = tx(0, first);
    const Io b = tx(0, second);
    advance(50ms);
    EXPECT_EQ(used(SoundDevice::kTxQueue), 0);
    EXPECT_TRUE(audio_->played.empty());
    ASSERT_EQ(pcm(SoundDevice::kPcmStart, 0), SoundDevice::kStatusOk);
    // Handed to the host at once (no added latency), completed when played.
    std::vector<uint8_t> expected = first;
    expected.insert(expected.end(), second.begin(), second.end());
    EXPECT_EQ(audio_->played, expected);
    // With each write the host learns how much of what it holds the guest
    // still counts as queued (the rest of its queue is added latency).
    EXPECT_EQ(audio_->unplayed, (std::vector<uint64_t>{kPeriodBytes, 2 * kPeriodBytes}));
    advance(9900us);
    EXPECT_EQ(used(SoundDevice::kTxQueue), 0) << "never completed in a burst";
    advance(100us);
    ASSERT_EQ(used(SoundDevice::kTxQueue), 1);
    EXPECT_EQ(driver_.queue(SoundDevice::kTxQueue).used_element(0).id, a.head);
    EXPECT_EQ(driver_.queue(SoundDevice::kTxQueue).used_element(0).length, 8u);
    EXPECT_EQ(status_at(a.status).status, SoundDevice::kStatusOk);
    EXPECT_EQ(status_at(a.status).latency_bytes, 5000u - kPeriodBytes) << "beyond the one buffer still queued";
    advance(10ms);
    ASSERT_EQ(used(SoundDevice::kTxQueue), 2);
    EXPECT_EQ(driver_.queue(SoundDevice::kTxQueue).used_element(1).id, b.head);
    EXPECT_EQ(audio_->starved, 1) << "the queue ran dry: the host fades out";

    // The guest comes back 5 ms late: that gap is counted, and pacing restarts from now.
    advance(5ms);
    tx(0, pattern(kPeriodBytes, 3));
    EXPECT_EQ(device_->guest_underruns(), 1u);
    EXPECT_EQ(audio_->unplayed.back(), kPeriodBytes) << "the two before were completed";
    advance(9ms);
    EXPECT_EQ(used(SoundDevice::kTxQueue), 2);
    advance(1ms);
    EXPECT_EQ(used(SoundDevice::kTxQueue), 3);
    EXPECT_FALSE(interrupt_.queue_notifications.empty());

    // The end of a drain: nothing queued when STOP comes, so the host keeps
    // playing its own short queue and RELEASE does not throw it away.
    ASSERT_EQ(pcm(SoundDevice::kPcmStop, 0), SoundDevice::kStatusOk);
    EXPECT_TRUE(audio_->running[0]);
    ASSERT_EQ(pcm(SoundDevice::kPcmRelease, 0), SoundDevice::kStatusOk);
    EXPECT_EQ(audio_->flushed, 0);
    EXPECT_EQ(audio_->closed, 1);
}

TEST_F(SoundTest, StopHoldsBuffersAndReleaseCompletesThem) {
    prepare_playback();
    ASSERT_EQ(pcm(SoundDevice::kPcmStart, 0), SoundDevice::kStatusOk);
    tx(0, pattern(kPeriodBytes, 1));
    const Io b = tx(0, pattern(kPeriodBytes, 2));
    advance(10ms);
    ASSERT_EQ(used(SoundDevice::kTxQueue), 1);
    ASSERT_EQ(pcm(SoundDevice::kPcmStop, 0), SoundDevice::kStatusOk);
    EXPECT_FALSE(audio_->running[0]) << "a pause with frames queued silences the host at once";
    advance(100ms);
    EXPECT_EQ(used(SoundDevice::kTxQueue), 1) << "a stopped stream plays nothing";
    EXPECT_EQ(device_->pending(0), 1u);
    ASSERT_EQ(pcm(SoundDevice::kPcmRelease, 0), SoundDevice::kStatusOk);
    // Section 5.14.6.6.5.1: the pending message completed before the RELEASE did.
    ASSERT_EQ(used(SoundDevice::kTxQueue), 2);
    EXPECT_EQ(driver_.queue(SoundDevice::kTxQueue).used_element(1).id, b.head);
    EXPECT_EQ(status_at(b.status).status, SoundDevice::kStatusOk);
    EXPECT_EQ(device_->pending(0), 0u);
    EXPECT_EQ(audio_->flushed, 1);
    EXPECT_EQ(audio_->closed, 1);
    EXPECT_EQ(audio_->played.size(), 2u * kPeriodBytes) << "no data handed twice";
}

TEST_F(SoundTest, CaptureIsFilledFromTheHostAtRealTimePace) {
    prepare_capture();
    const Io a = rx(1, kPeriodBytes);
    const Io b = rx(1, kPeriodBytes);
    advance(20ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 0) << "nothing before START";
    ASSERT_EQ(pcm(SoundDevice::kPcmStart, 1), SoundDevice::kStatusOk);
    EXPECT_TRUE(audio_->running[1]);
    advance(9ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 0);
    advance(1ms);
    ASSERT_EQ(used(SoundDevice::kRxQueue), 1);
    const auto element = driver_.queue(SoundDevice::kRxQueue).used_element(0);
    EXPECT_EQ(element.id, a.head);
    EXPECT_EQ(element.length, kPeriodBytes + 8) << "frames plus the status";
    const auto frames = driver_.get(a.data, kPeriodBytes);
    for (uint32_t i = 0; i < kPeriodBytes; ++i) ASSERT_EQ(frames[i], static_cast<uint8_t>(1 + i)) << i;
    EXPECT_EQ(status_at(a.status).status, SoundDevice::kStatusOk);
    advance(10ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 1) << "the last buffer held waits for the guest to queue another";
    rx(1, kPeriodBytes);
    advance(0ms);
    ASSERT_EQ(used(SoundDevice::kRxQueue), 2) << "late already: completed as the next one comes";
    EXPECT_EQ(driver_.get(b.data, 1)[0], static_cast<uint8_t>(1 + kPeriodBytes));
}

TEST_F(SoundTest, AGuestThatDidNotRunForAWholeBufferFindsItsCaptureStillMoving) {
    // Linux's snd_virtio reads progress as the position in its buffer: had
    // the whole buffer completed while its vCPUs were stopped, it would see
    // none, queue nothing more, and record nothing ever after.
    prepare_capture();
    const uint32_t periods = kBufferBytes / kPeriodBytes;
    for (uint32_t i = 0; i < periods; ++i) rx(1, kPeriodBytes);
    ASSERT_EQ(pcm(SoundDevice::kPcmStart, 1), SoundDevice::kStatusOk);
    advance(std::chrono::milliseconds(10 * periods + 500));  // the guest was paused for half a second
    EXPECT_EQ(used(SoundDevice::kRxQueue), periods - 1);
    EXPECT_EQ(device_->pending(1), 1u);
    // The guest runs again and queues the periods it got back: the stream
    // goes on by the clock.
    for (uint32_t i = 0; i + 1 < periods; ++i) rx(1, kPeriodBytes);
    advance(0ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), periods);
    advance(10ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), periods + 1);
}

TEST_F(SoundTest, CaptureCompletesAsSoonAsTheServerHasRecordedAPeriod) {
    audio_->recording = true;
    prepare_capture();
    const Io a = rx(1, kPeriodBytes);
    rx(1, kPeriodBytes);
    rx(1, kPeriodBytes);
    ASSERT_EQ(pcm(SoundDevice::kPcmStart, 1), SoundDevice::kStatusOk);
    advance(10ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 0) << "a server that records is waited for";
    audio_->readable = kPeriodBytes - 4;
    advance(2ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 0) << "a period not yet full";
    audio_->readable = kPeriodBytes + 4;
    device_->service();  // as the back-end's callback does when a fragment comes
    ASSERT_EQ(used(SoundDevice::kRxQueue), 1) << "no later than the frames are there";
    const auto frames = driver_.get(a.data, kPeriodBytes);
    for (uint32_t i = 0; i < kPeriodBytes; ++i) ASSERT_EQ(frames[i], static_cast<uint8_t>(1 + i)) << i;
    // A card a little faster than the host's clock: two periods at once.
    audio_->readable += kPeriodBytes * 2;
    advance(1ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 2) << "all that is recorded, but the last buffer is held back";
    rx(1, kPeriodBytes);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 3) << "a buffer queued while recorded frames wait is filled at once";
    EXPECT_EQ(audio_->readable, 4u);
}

TEST_F(SoundTest, CaptureThatDoesNotComeIsSilenceAfterAGraceThenByTheClock) {
    audio_->recording = true;
    prepare_capture();
    Io ios[6];
    for (auto& io : ios) io = rx(1, kPeriodBytes);
    ASSERT_EQ(pcm(SoundDevice::kPcmStart, 1), SoundDevice::kStatusOk);
    advance(69ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 0) << "a period and the grace for a late server";
    audio_->readable = kPeriodBytes / 2;
    advance(1ms);
    ASSERT_EQ(used(SoundDevice::kRxQueue), 1);
    const auto frames = driver_.get(ios[0].data, kPeriodBytes);
    EXPECT_EQ(frames[0], 1);
    EXPECT_EQ(frames[kPeriodBytes - 1], 0) << "what was missing is silence";
    EXPECT_EQ(status_at(ios[0].status).status, SoundDevice::kStatusOk);
    // The server stays away: the guest's recording goes on at its pace.
    advance(9ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 1);
    advance(1ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 2);
    advance(10ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 3);
    // It comes back: the next buffer is filled as soon as a period is there,
    // and after that the server is waited for again.
    audio_->readable = kPeriodBytes;
    advance(1ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 4);
    advance(60ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 4);
    advance(10ms);
    EXPECT_EQ(used(SoundDevice::kRxQueue), 5);
}

TEST_F(SoundTest, RefusesMalformedIoMessagesAndKeepsNothing) {
    using S = SoundDevice;
    // Before any parameters: an I/O error, nothing queued.
    const Io early = tx(0, pattern(kPeriodBytes, 1));
    EXPECT_EQ(status_at(early.status).status, S::kStatusIoErr);
    prepare_playback();
    prepare_capture();
    ASSERT_EQ(pcm(S::kPcmStart, 0), S::kStatusOk);
    const Io bad_id = tx(5, pattern(kPeriodBytes, 1));
    EXPECT_EQ(status_at(bad_id.status).status, S::kStatusBadMsg);
    const Io wrong_direction = tx(1, pattern(kPeriodBytes, 1));
    EXPECT_EQ(status_at(wrong_direction.status).status, S::kStatusBadMsg);
    const Io partial_frame = tx(0, pattern(kPeriodBytes + 2, 1));
    EXPECT_EQ(status_at(partial_frame.status).status, S::kStatusBadMsg);
    const Io oversized = tx(0, pattern(kBufferBytes + 4, 1));
    EXPECT_EQ(status_at(oversized.status).status, S::kStatusBadMsg);
    const Io no_status = tx(0, pattern(kPeriodBytes, 1), 4);
    EXPECT_EQ(driver_.queue(S::kTxQueue).used_element(used(S::kTxQueue) - 1).length, 0u);
    EXPECT_EQ(driver_.get(no_status.status, 4)[0], 0xEE);
    const Io capture_on_output = rx(0, kPeriodBytes);
    EXPECT_EQ(status_at(capture_on_output.status).status, S::kStatusBadMsg);
    EXPECT_EQ(driver_.get(capture_on_output.data, 4), std::vector<uint8_t>(4, 0)) << "silence, never stale bytes";
    EXPECT_EQ(used(S::kTxQueue), 6);
    EXPECT_EQ(used(S::kRxQueue), 1);
    EXPECT_EQ(device_->pending(0), 0u);
    EXPECT_EQ(device_->pending(1), 0u);
    EXPECT_TRUE(audio_->played.empty());
    EXPECT_EQ(device_->rejected_requests(), 7u);
    EXPECT_TRUE(interrupt_.device_errors.empty());

    // More than two hardware buffers queued: refused, the rest plays on.
    for (int i = 0; i < 8; ++i) tx(0, pattern(kPeriodBytes, 1));
    EXPECT_EQ(device_->pending(0), 8u);
    const Io too_many = tx(0, pattern(kPeriodBytes, 1));
    EXPECT_EQ(status_at(too_many.status).status, S::kStatusBadMsg);
    EXPECT_EQ(device_->pending(0), 8u);
    // Parameters cannot change under queued messages.
    ASSERT_EQ(pcm(S::kPcmStop, 0), S::kStatusOk);
    EXPECT_EQ(set_params(0), S::kStatusBadMsg);
}

TEST_F(SoundTest, DescriptorOutsideRamNeedsReset) {
    auto& queue = driver_.queue(SoundDevice::kControlQueue);
    queue.add_chain({{driver_.memory_end() - 2, 16, false}, {driver_.fill(4, 0), 4, true}});
    device_->queue_notify(SoundDevice::kControlQueue);
    ASSERT_EQ(interrupt_.device_errors.size(), 1u);
    EXPECT_EQ(queue.used_index(), 0);
    // Stopped until reset: further requests are left alone.
    queue.add_chain({{driver_.put(bytes_of(QueryRequest{SoundDevice::kPcmInfo, 0, 1, 32})), 16, false},
                     {driver_.fill(36, 0), 36, true}});
    device_->queue_notify(SoundDevice::kControlQueue);
    EXPECT_EQ(queue.used_index(), 0);
    EXPECT_EQ(interrupt_.device_errors.size(), 1u);
}

TEST_F(SoundTest, ResetForgetsStreams) {
    prepare_playback();
    ASSERT_EQ(pcm(SoundDevice::kPcmStart, 0), SoundDevice::kStatusOk);
    tx(0, pattern(kPeriodBytes, 1));
    device_->reset();
    EXPECT_EQ(audio_->closed, 1);
    EXPECT_EQ(device_->state(0), SoundDevice::State::Idle);
    EXPECT_EQ(device_->pending(0), 0u);
    device_->service();  // nothing to do, nothing touched
    EXPECT_EQ(used(SoundDevice::kTxQueue), 0);
}

TEST(AudioFade, RampsTheLastFrameToSilence) {
    AudioFormat format{AudioSample::S16, 48000, 2};
    const int16_t last[2] = {16000, -8000};
    std::vector<uint8_t> out;
    append_fade_out(format, std::span(reinterpret_cast<const uint8_t*>(last), 4), 8, out);
    ASSERT_EQ(out.size(), 32u);
    std::vector<int16_t> samples(16);
    std::memcpy(samples.data(), out.data(), out.size());
    EXPECT_LT(samples[0], 16000);
    EXPECT_GT(samples[0], 12000);
    for (int i = 2; i < 16; i += 2) EXPECT_LE(samples[i], samples[i - 2]);
    EXPECT_EQ(samples[14], 0);
    EXPECT_EQ(samples[15], 0);
}

}  // namespace
}  // namespace atl::vmm::virtio

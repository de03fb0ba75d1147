// Fuzzes virtio-snd (virtio 1.2 section 5.14): control requests and PCM I/O
// messages whose bytes come from the input, with the device's clock moved by
// the input too, against a back-end that checks what it is handed.
//
// Input: byte 0 = flags (bit 0: EVENT_IDX), then records until the input
// ends (at most 96):
//   u8 op     bits 0-2 what to do:
//               0 control request (controlq): the body is the request
//               1 output message (txq): the body is the xfer header and frames
//               2 input message (rxq): the body is the xfer header
//               3 move the clock by body[0] ms (at least 1) and service
//               4 device reset, then activate again
//               5-7 as 0 (control requests are where the states change)
//             bit 4 split the readable part after 4 bytes into a second
//             descriptor; bit 5 indirect table; bit 7 then corrupt the ring
//             (a descriptor loop) and stop
//   u8 size   control: response bytes; txq: status bytes (size % 16);
//             rxq: 16 * size frame bytes plus an 8-byte status
//   u8 body length, then the body (zeros when the input runs out)
//
// The oracle: no crash or sanitizer report; each chain completes at most
// once, with a used length no larger than its writable bytes; control
// answers carry a known status; the device holds at most what the spec lets
// it (two hardware buffers per stream); the back-end only ever sees whole
// frames of the format it opened.

#include "devices/virtio/sound.h"
#include "fuzz_input.h"
#include "offered_chain.h"
#include "virtio_test_driver.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

using atl::fuzz::FuzzInput;
using atl::fuzz::OfferedChain;
using atl::vmm::AudioBackend;
using atl::vmm::AudioDirection;
using atl::vmm::AudioFormat;
using atl::vmm::AudioStatus;
using atl::vmm::AudioStream;
using atl::vmm::virtio::SoundDevice;
using atl::vmm::virtio::testing::DriverBuffer;
using atl::vmm::virtio::testing::FakeInterrupt;
using atl::vmm::virtio::testing::TestDriver;

namespace {

constexpr uint16_t kQueueSize = 64;
constexpr int kMaxRecords = 96;

class CheckingStream : public AudioStream {
public:
    CheckingStream(AudioDirection direction, AudioFormat format) : direction_(direction), format_(format) {}
    void write(std::span<const uint8_t> frames, uint64_t) override {
        FUZZ_CHECK(direction_ == AudioDirection::Playback);
        FUZZ_CHECK(frames.size() % format_.frame_bytes() == 0);
    }
    void read(std::span<uint8_t> frames) override {
        FUZZ_CHECK(direction_ == AudioDirection::Capture);
        std::memset(frames.data(), 0x5A, frames.size());
    }
    void set_running(bool) override {}
    void starved() override { FUZZ_CHECK(direction_ == AudioDirection::Playback); }
    void flush() override {}
    uint32_t latency_bytes() const override { return 4096; }

private:
    AudioDirection direction_;
    AudioFormat format_;
};

class CheckingBackend : public AudioBackend {
public:
    atl::Result<std::unique_ptr<AudioStream>> open(AudioDirection direction, const AudioFormat& format) override {
        FUZZ_CHECK(format.channels >= 1 && format.channels <= 2);
        FUZZ_CHECK(format.rate == 44100 || format.rate == 48000);
        return std::unique_ptr<AudioStream>(std::make_unique<CheckingStream>(direction, format));
    }
    void set_volume(AudioDirection, unsigned) override {}
    void set_muted(AudioDirection, bool) override {}
    AudioStatus status() const override { return {}; }
};

struct Outstanding {
    uint16_t head;
    uint64_t writable;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    FuzzInput input(data, size);
    const bool event_index = input.byte() & 1;

    auto driver = std::make_unique<TestDriver>(kQueueSize, 1 << 20, 4);
    FakeInterrupt interrupt;
    SoundDevice::Clock::time_point now{std::chrono::seconds(1)};
    SoundDevice::Config config;
    config.now = [&now] { return now; };
    SoundDevice device(std::make_shared<CheckingBackend>(), config);
    auto activate = [&] {
        auto context = driver->activation_context(event_index, &interrupt);
        context.acked_features = atl::vmm::virtio::kFeatureVersion1;
        FUZZ_CHECK(device.activate(std::move(context)).ok());
    };
    activate();
    // What each I/O queue's chains may write; checked as they complete.
    std::vector<Outstanding> outstanding[4];
    uint16_t used_seen[4] = {};
    uint16_t next_head[4] = {};


    for (int record = 0; record < kMaxRecords && !input.empty(); ++record) {
        if (driver->memory_end() - driver->allocate(0) < 64 * 1024) driver->reset_data();
        const uint8_t op = input.byte();
        const uint8_t selector = input.byte();
        const auto body = input.bytes(input.byte());
        const unsigned what = op & 7;

        if (what == 3) {
            now += std::chrono::milliseconds(body.empty() || body[0] == 0 ? 1 : body[0]);
            device.service();
        } else if (what == 4) {
            device.reset();
            driver = std::make_unique<TestDriver>(kQueueSize, 1 << 20, 4);
            for (auto& list : outstanding) list.clear();
            for (auto& seen : used_seen) seen = 0;
            for (auto& head : next_head) head = 0;
            activate();
            continue;
        } else {
            const uint16_t queue_index = what == 1 ? SoundDevice::kTxQueue
                                         : what == 2 ? SoundDevice::kRxQueue
                                                     : SoundDevice::kControlQueue;
            std::vector<DriverBuffer> buffers;
            if ((op & 16) && body.size() > 4) {
                const std::vector<uint8_t> head(body.begin(), body.begin() + 4);
                const std::vector<uint8_t> tail(body.begin() + 4, body.end());
                buffers.push_back({driver->put(head), 4, false});
                buffers.push_back({driver->put(tail), static_cast<uint32_t>(tail.size()), false});
            } else if (!body.empty()) {
                buffers.push_back({driver->put(body), static_cast<uint32_t>(body.size()), false});
            }
            uint64_t writable = 0;
            if (what == 2) {
                const uint32_t frames = 16u * selector;
                if (frames) buffers.push_back({driver->fill(frames, 0xEE), frames, true});
                buffers.push_back({driver->fill(8, 0xEE), 8, true});
                writable = frames + 8;
            } else {
                const uint32_t room = what == 1 ? selector % 16 : selector;
                if (room) buffers.push_back({driver->fill(room, 0xEE), room, true});
                writable = room;
            }
            if (buffers.empty()) continue;
            auto& queue = driver->queue(queue_index);
            // The device holds chains for a while: a new chain must not reuse
            // a held head, or the used ring could not tell the two apart.
            uint16_t head = next_head[queue_index];
            auto held = [&](uint16_t candidate) {
                for (const auto& chain : outstanding[queue_index])
                    if (chain.head == candidate) return true;
                return false;
            };
            for (int tries = 0; held(head) && tries < kQueueSize; ++tries) head = (head + 1) % kQueueSize;
            if (held(head)) continue;
            queue.set_next_descriptor(head);
            next_head[queue_index] = static_cast<uint16_t>((head + buffers.size()) % kQueueSize);
            const OfferedChain chain(queue, interrupt, buffers, op & 32, op & 128, driver->data_base());
            outstanding[queue_index].push_back({chain.head(), writable});
            device.queue_notify(queue_index);
            if (op & 128) {
                chain.check_broken_ring();
                break;
            }
            chain.check_no_device_error();
            if (queue_index == SoundDevice::kControlQueue) {
                // Control requests are answered at once, with a known status.
                FUZZ_CHECK(queue.used_index() == static_cast<uint16_t>(chain.used_before() + 1));
                const auto used = queue.used_element(chain.used_before());
                if (writable >= 4) {
                    FUZZ_CHECK(used.length >= 4);
                    uint32_t status = 0;
                    driver->memory()->read_object(atl::vmm::GuestAddress{buffers.back().address}, status);
                    FUZZ_CHECK(status >= SoundDevice::kStatusOk && status <= SoundDevice::kStatusIoErr);
                } else {
                    FUZZ_CHECK(used.length == 0);
                }
            }
        }
        for (uint16_t queue_index : {SoundDevice::kControlQueue, SoundDevice::kTxQueue, SoundDevice::kRxQueue}) {
            auto& queue = driver->queue(queue_index);
            while (used_seen[queue_index] != queue.used_index()) {
                const auto element = queue.used_element(used_seen[queue_index]++);
                auto& list = outstanding[queue_index];
                auto it = list.begin();
                while (it != list.end() && it->head != element.id) ++it;
                FUZZ_CHECK(it != list.end());  // completed once, and only what was offered
                FUZZ_CHECK(element.length <= it->writable);
                list.erase(it);
            }
        }
        // Everything not completed is held by the stream it names.
        FUZZ_CHECK(device.pending(0) == outstanding[SoundDevice::kTxQueue].size());
        FUZZ_CHECK(device.pending(1) == outstanding[SoundDevice::kRxQueue].size());
    }
    return 0;
}

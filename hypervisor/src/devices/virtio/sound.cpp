#include "devices/virtio/sound.h"

#include "vmm/event_loop.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace atl::vmm::virtio {

namespace {

// Section 5.14.4: struct virtio_snd_config (no control elements offered).
struct SoundConfig {
    uint32_t jacks;
    uint32_t streams;
    uint32_t chmaps;
};

// Section 5.14.6.1: the query after its code.
struct QueryInfo {
    uint32_t start_id;
    uint32_t count;
    uint32_t size;
};

// Section 5.14.6.4.1.
struct JackInfo {
    uint32_t hda_fn_nid;
    uint32_t features;
    uint32_t hda_reg_defconf;
    uint32_t hda_reg_caps;
    uint8_t connected;
    uint8_t padding[7];
};
static_assert(sizeof(JackInfo) == 24);

// Section 5.14.6.6.2.
struct PcmInfo {
    uint32_t hda_fn_nid;
    uint32_t features;
    uint64_t formats;
    uint64_t rates;
    uint8_t direction;
    uint8_t channels_min;
    uint8_t channels_max;
    uint8_t padding[5];
};
static_assert(sizeof(PcmInfo) == 32);

// Section 5.14.6.6.3: virtio_snd_pcm_set_params after its code.
struct SetParams {
    uint32_t stream_id;
    uint32_t buffer_bytes;
    uint32_t period_bytes;
    uint32_t features;
    uint8_t channels;
    uint8_t format;
    uint8_t rate;
    uint8_t padding;
};
static_assert(sizeof(SetParams) == 20);

// Section 5.14.6.9.1.
struct ChmapInfo {
    uint32_t hda_fn_nid;
    uint8_t direction;
    uint8_t channels;
    uint8_t positions[18];
};
static_assert(sizeof(ChmapInfo) == 24);

// Section 5.14.6.8: struct virtio_snd_pcm_status.
struct PcmStatus {
    uint32_t status;
    uint32_t latency_bytes;
};

// HDA 7.3.3.31 pin default configuration: jack at the rear, 1/8" connector,
// association 1 (output) or 2 (input). Line Out green, Mic In pink.
constexpr uint32_t kDefconfLineOut = (0x01u << 24) | (0x0u << 20) | (0x1u << 16) | (0x4u << 12) | (0x1u << 4);
constexpr uint32_t kDefconfMicIn = (0x01u << 24) | (0xAu << 20) | (0x1u << 16) | (0x9u << 12) | (0x2u << 4);
// HDA 7.3.4.9 pin capabilities: presence detect, output or input capable.
constexpr uint32_t kPinCapsOutput = (1u << 2) | (1u << 4);
constexpr uint32_t kPinCapsInput = (1u << 2) | (1u << 5);

constexpr uint64_t kOfferedFormats =
    (1ull << SoundDevice::kFormatS16) | (1ull << SoundDevice::kFormatS32) | (1ull << SoundDevice::kFormatFloat);
constexpr uint64_t kOfferedRates = (1ull << SoundDevice::kRate44100) | (1ull << SoundDevice::kRate48000);
constexpr uint8_t kChannelsMin = 1;
constexpr uint8_t kChannelsMax = 2;

template <class T>
void append(std::vector<uint8_t>& out, const T& item, uint32_t slot_bytes) {
    const size_t start = out.size();
    out.resize(start + slot_bytes, 0);
    std::memcpy(out.data() + start, &item, std::min<size_t>(sizeof item, slot_bytes));
}

}  // namespace

SoundDevice::SoundDevice(std::shared_ptr<AudioBackend> backend, Config config)
    : backend_(backend ? std::move(backend) : make_null_audio_backend()), config_(std::move(config)) {
    streams_[kPlaybackStream].direction = kDirectionOutput;
    streams_[kCaptureStream].direction = kDirectionInput;
}

SoundDevice::~SoundDevice() { reset(); }

uint64_t SoundDevice::offered_features() const {
    return kFeatureVersion1 | kFeatureRingIndirectDesc | kFeatureRingEventIdx;
}

void SoundDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
    const SoundConfig config{kJackCount, kStreamCount, kChmapCount};
    read_config_window(config, offset, data);
}

Result<void> SoundDevice::activate(ActivationContext context) {
    if (!context.memory) return make_error(name() + ": activated without guest memory");
    if (context.queues.size() < 4) return make_error(name() + ": the driver set up fewer than 4 queues");
    context_.emplace(std::move(context));
    stopped_ = false;
    return {};
}

void SoundDevice::reset() {
    if (timer_ && context_ && context_->event_loop) context_->event_loop->cancel_timer(*timer_);
    timer_.reset();
    timer_deadline_.reset();
    // The rings are gone with the driver's reset: nothing pending is completed.
    for (auto& stream : streams_) {
        const uint8_t direction = stream.direction;
        stream = Stream{};
        stream.direction = direction;
    }
    context_.reset();
    stopped_ = false;
}

bool SoundDevice::usable(uint16_t queue) const {
    if (!context_ || stopped_ || queue >= context_->queues.size()) return false;
    return queue >= context_->queue_enabled.size() || context_->queue_enabled[queue];
}

void SoundDevice::stop_device(const std::string& error) {
    stopped_ = true;
    if (context_->interrupt) context_->interrupt->report_device_error(name() + ": " + error);
}

void SoundDevice::queue_notify(uint16_t queue) {
    if (queue == kControlQueue) process_control();
    else if (queue == kTxQueue || queue == kRxQueue) process_io(queue);
    // The event queue's buffers stay with the device: no events are sent
    // (no jack changes, no shared-memory periods, no xrun events offered).
}

void SoundDevice::notify(uint16_t queue) {
    if (!used_pushed_[queue]) return;
    used_pushed_[queue] = false;
    if (usable(queue) && context_->queues[queue].needs_interrupt() && context_->interrupt)
        context_->interrupt->notify_queue(queue);
}

void SoundDevice::process_control() {
    if (!usable(kControlQueue)) return;
    Virtqueue& queue = context_->queues[kControlQueue];
    for (;;) {
        queue.disable_notifications();
        for (;;) {
            auto popped = queue.pop();
            if (!popped.error.empty()) {
                stop_device(popped.error);
                return;
            }
            if (!popped.chain) break;
            const DescriptorChain& chain = *popped.chain;
            const uint64_t room = chain.writable_bytes();
            if (room < sizeof(uint32_t)) {
                // No room even for a status: nothing to answer with, nothing done.
                ++rejected_requests_;
                queue.push_used(chain.head, 0);
                used_pushed_[kControlQueue] = true;
                continue;
            }
            ChainReader reader(*context_->memory, chain.readable);
            std::vector<uint8_t> payload;
            uint32_t code = 0;
            uint32_t status = kStatusBadMsg;
            if (reader.read_object(code))
                status = handle_control(code, reader, static_cast<uint32_t>(std::min<uint64_t>(room, UINT32_MAX)), payload);
            if (status != kStatusOk) ++rejected_requests_;
            ChainWriter writer(*context_->memory, chain.writable);
            writer.write_object(status);
            if (status == kStatusOk && !payload.empty()) writer.write(payload.data(), payload.size());
            // RELEASE completed its stream's I/O first (section 5.14.6.6.5.1).
            notify(kTxQueue);
            notify(kRxQueue);
            queue.push_used(chain.head, static_cast<uint32_t>(writer.written()));
            used_pushed_[kControlQueue] = true;
            if (!usable(kControlQueue)) return;
        }
        if (!queue.enable_notifications()) break;
    }
    notify(kControlQueue);
    arm_timer();
}

uint32_t SoundDevice::handle_control(uint32_t code, ChainReader& reader, uint32_t response_room,
                                     std::vector<uint8_t>& payload) {
    switch (code) {
    case kJackInfo:
    case kPcmInfo:
    case kChmapInfo: return query_info(code, reader, response_room, payload);
    case kJackRemap: {
        uint32_t fields[3];  // jack_id, association, sequence
        if (!reader.read(fields, sizeof fields)) return kStatusBadMsg;
        if (fields[0] >= kJackCount) return kStatusBadMsg;
        return kStatusNotSupp;  // VIRTIO_SND_JACK_F_REMAP is not offered
    }
    case kPcmSetParams: return set_params(reader);
    case kPcmPrepare:
    case kPcmRelease:
    case kPcmStart:
    case kPcmStop: {
        uint32_t stream_id = 0;
        if (!reader.read_object(stream_id)) return kStatusBadMsg;
        return change_state(code, stream_id);
    }
    default: return kStatusNotSupp;
    }
}

uint32_t SoundDevice::query_info(uint32_t code, ChainReader& reader, uint32_t response_room,
                                 std::vector<uint8_t>& payload) {
    QueryInfo query;
    if (!reader.read_object(query)) return kStatusBadMsg;
    const uint32_t total = code == kJackInfo ? kJackCount : code == kPcmInfo ? kStreamCount : kChmapCount;
    // Section 5.14.6.1: start_id + count within the items, a response buffer
    // of a header plus count * size. `size` is the driver's idea of the
    // structure: larger slots are zero-padded, smaller ones truncated.
    if (query.start_id > total || query.count > total - query.start_id) return kStatusBadMsg;
    if (query.size < sizeof(uint32_t) || query.size > kMaxInfoSize) return kStatusBadMsg;
    if (sizeof(uint32_t) + uint64_t{query.count} * query.size > response_room) return kStatusBadMsg;
    for (uint32_t id = query.start_id; id < query.start_id + query.count; ++id) {
        const bool output = id == 0;
        if (code == kJackInfo) {
            JackInfo info{};
            info.hda_reg_defconf = output ? kDefconfLineOut : kDefconfMicIn;
            info.hda_reg_caps = output ? kPinCapsOutput : kPinCapsInput;
            info.connected = 1;
            append(payload, info, query.size);
        } else if (code == kPcmInfo) {
            PcmInfo info{};
            info.formats = kOfferedFormats;
            info.rates = kOfferedRates;
            info.direction = output ? kDirectionOutput : kDirectionInput;
            info.channels_min = kChannelsMin;
            info.channels_max = kChannelsMax;
            append(payload, info, query.size);
        } else {
            ChmapInfo info{};
            info.direction = output ? kDirectionOutput : kDirectionInput;
            info.channels = 2;
            info.positions[0] = kChmapFrontLeft;
            info.positions[1] = kChmapFrontRight;
            append(payload, info, query.size);
        }
    }
    return kStatusOk;
}

uint32_t SoundDevice::set_params(ChainReader& reader) {
    SetParams request;
    if (!reader.read_object(request)) return kStatusBadMsg;
    if (request.stream_id >= kStreamCount) return kStatusBadMsg;
    Stream& stream = streams_[request.stream_id];
    // Section 5.14.6.6.1: parameters may change before START and after RELEASE only.
    if (stream.state == State::Started || stream.state == State::Stopped) return kStatusBadMsg;
    if (!stream.pending.empty()) return kStatusBadMsg;
    if (request.features != 0) return kStatusNotSupp;  // no PCM features are offered
    Params params;
    switch (request.format) {
    case kFormatS16: params.format.sample = AudioSample::S16; break;
    case kFormatS32: params.format.sample = AudioSample::S32; break;
    case kFormatFloat: params.format.sample = AudioSample::Float32; break;
    default: return kStatusNotSupp;
    }
    switch (request.rate) {
    case kRate44100: params.format.rate = 44100; break;
    case kRate48000: params.format.rate = 48000; break;
    default: return kStatusNotSupp;
    }
    if (request.channels < kChannelsMin || request.channels > kChannelsMax) return kStatusNotSupp;
    params.format.channels = request.channels;
    const uint32_t frame = params.format.frame_bytes();
    if (request.period_bytes == 0 || request.buffer_bytes == 0 || request.buffer_bytes > kMaxBufferBytes ||
        request.buffer_bytes % request.period_bytes != 0 || request.period_bytes % frame != 0)
        return kStatusBadMsg;
    params.buffer_bytes = request.buffer_bytes;
    params.period_bytes = request.period_bytes;
    if (stream.host && stream.params && !(stream.params->format == params.format)) stream.host.reset();
    stream.params = params;
    stream.state = State::ParamsSet;
    return kStatusOk;
}

uint32_t SoundDevice::change_state(uint32_t code, uint32_t stream_id) {
    if (stream_id >= kStreamCount) return kStatusBadMsg;
    Stream& stream = streams_[stream_id];
    const State state = stream.state;
    // Section 5.14.6.6.1, the PCM command lifecycle.
    switch (code) {
    case kPcmPrepare: {
        if (state != State::ParamsSet && state != State::Prepared && state != State::Released) return kStatusBadMsg;
        if (!stream.host) {
            auto opened = backend_->open(stream.direction == kDirectionOutput ? AudioDirection::Playback
                                                                              : AudioDirection::Capture,
                                         stream.params->format);
            if (!opened) {
                fprintf(stderr, "atoll-vmm: %s: %s\n", name().c_str(), opened.error().message.c_str());
                return kStatusIoErr;
            }
            stream.host = std::move(*opened);
            stream.host->set_running(false);
            if (stream.direction == kDirectionInput) watch_recording(stream);
        }
        stream.state = State::Prepared;
        return kStatusOk;
    }
    case kPcmStart:
        if (state != State::Prepared && state != State::Stopped) return kStatusBadMsg;
        start(stream);
        return kStatusOk;
    case kPcmStop:
        if (state != State::Started) return kStatusBadMsg;
        stream.state = State::Stopped;
        // A STOP with nothing queued ends a drain (the guest thinks its last
        // frame played): the host plays out its own short queue. Otherwise it
        // is a pause: silence now, and what is queued waits for the next START.
        stream.drained = stream.direction == kDirectionOutput && stream.pending.empty();
        if (!stream.drained) stream.host->set_running(false);
        for (auto& io : stream.pending) io.due.reset();
        stream.starved = false;
        return kStatusOk;
    case kPcmRelease:
        if (state != State::Prepared && state != State::Stopped) return kStatusBadMsg;
        release(stream, queue_of(stream));
        return kStatusOk;
    }
    return kStatusNotSupp;
}

void SoundDevice::start(Stream& stream) {
    stream.state = State::Started;
    stream.drained = false;
    stream.host->set_running(true);
    const auto now = config_.now();
    stream.clock_end = now;
    stream.capture_clock = now;
    stream.capture_late = false;
    stream.starved = false;
    for (auto& io : stream.pending) {
        if (stream.direction == kDirectionOutput && !io.handed) hand_to_host(stream, io);
        schedule(stream, io, now);
    }
}

void SoundDevice::release(Stream& stream, uint16_t queue) {
    // Section 5.14.6.6.5.1: every pending I/O message completes before the
    // RELEASE does (the driver waits for them to free its buffers).
    while (!stream.pending.empty()) {
        complete(stream, stream.pending.front(), kStatusOk, false);
        stream.pending.pop_front();
    }
    stream.pending_bytes = 0;
    used_pushed_[queue] = true;
    if (stream.host) {
        if (!stream.drained) stream.host->flush();
        stream.host.reset();
    }
    stream.starved = false;
    stream.drained = false;
    stream.state = State::Released;
}

void SoundDevice::process_io(uint16_t queue_index) {
    if (!usable(queue_index)) return;
    Virtqueue& queue = context_->queues[queue_index];
    const uint8_t direction = queue_index == kTxQueue ? kDirectionOutput : kDirectionInput;
    const auto now = config_.now();
    for (;;) {
        queue.disable_notifications();
        for (;;) {
            auto popped = queue.pop();
            if (!popped.error.empty()) {
                stop_device(popped.error);
                return;
            }
            if (!popped.chain) break;
            Io io{std::move(*popped.chain), 0, false, std::nullopt, {}};
            const uint64_t writable = io.chain.writable_bytes();
            if (writable < sizeof(PcmStatus)) {
                // No room for the status: the message cannot even be refused.
                ++rejected_requests_;
                queue.push_used(io.chain.head, 0);
                used_pushed_[queue_index] = true;
                continue;
            }
            // Section 5.14.6.8: header, then frames (readable for output,
            // writable for input), then the status.
            const uint64_t readable = io.chain.readable_bytes();
            const uint64_t data = direction == kDirectionOutput ? (readable >= 4 ? readable - 4 : 0)
                                                                : writable - sizeof(PcmStatus);
            uint32_t stream_id = UINT32_MAX;
            ChainReader reader(*context_->memory, io.chain.readable);
            uint32_t refusal = 0;
            if (!reader.read_object(stream_id) || stream_id >= kStreamCount ||
                streams_[stream_id].direction != direction)
                refusal = kStatusBadMsg;
            Stream* stream = refusal ? nullptr : &streams_[stream_id];
            if (!refusal) {
                const bool prepared = stream->state == State::Prepared || stream->state == State::Started ||
                                      stream->state == State::Stopped;
                if (!prepared || !stream->params) {
                    refusal = kStatusIoErr;
                } else {
                    const Params& params = *stream->params;
                    // Whole frames, at most one hardware buffer per message and
                    // two buffers queued: the guest cannot make us hold more.
                    if (data % params.format.frame_bytes() != 0 || data > params.buffer_bytes ||
                        stream->pending_bytes + data > 2ull * params.buffer_bytes)
                        refusal = kStatusBadMsg;
                }
            }
            if (refusal) {
                ++rejected_requests_;
                Stream scratch;  // format-free completion: status only (and silence for input)
                scratch.direction = direction;
                io.data_bytes = static_cast<uint32_t>(std::min<uint64_t>(data, UINT32_MAX));
                complete(scratch, io, refusal, false);
                used_pushed_[queue_index] = true;
                continue;
            }
            io.data_bytes = static_cast<uint32_t>(data);
            stream->pending_bytes += data;
            stream->pending.push_back(std::move(io));
            Io& queued = stream->pending.back();
            if (stream->state == State::Started) {
                if (stream->starved) {
                    // The guest let the device run dry and resumed: a gap the listener heard.
                    ++guest_underruns_;
                    stream->starved = false;
                }
                if (direction == kDirectionOutput) hand_to_host(*stream, queued);
                schedule(*stream, queued, now);
            }
        }
        if (!queue.enable_notifications()) break;
    }
    if (direction == kDirectionInput) {
        // What is recorded already may fill the buffers just queued (and the
        // one held back is free to go now).
        service();
        return;
    }
    notify(queue_index);
    arm_timer();
}

void SoundDevice::hand_to_host(Stream& stream, Io& io) {
    io.handed = true;
    stream.handed_bytes += io.data_bytes;
    if (io.data_bytes == 0 || !stream.host) return;
    ChainReader reader(*context_->memory, io.chain.readable);
    uint32_t header;
    if (!reader.read_object(header)) return;
    std::vector<uint8_t> frames(io.data_bytes);
    if (!reader.read(frames.data(), frames.size())) return;
    stream.host->write(frames, stream.handed_bytes);
}

void SoundDevice::schedule(Stream& stream, Io& io, Clock::time_point now) {
    io.scheduled_at = now;
    const auto begin = std::max(now, stream.clock_end);
    io.due = begin + duration_of(stream.params->format, io.data_bytes);
    stream.clock_end = *io.due;
}

void SoundDevice::complete(Stream& stream, Io& io, uint32_t status, bool fill) {
    ChainWriter writer(*context_->memory, io.chain.writable);
    PcmStatus result{status, 0};
    if (stream.direction == kDirectionInput) {
        // Frames first, then the status; silence unless recorded frames are due.
        for (const auto& [host, length] : writer.take(io.data_bytes)) {
            if (fill && stream.host) stream.host->read(std::span<uint8_t>(host, length));
            else std::memset(host, 0, length);
        }
    }
    stream.pending_bytes -= std::min<uint64_t>(stream.pending_bytes, io.data_bytes);
    if (io.handed) stream.handed_bytes -= std::min<uint64_t>(stream.handed_bytes, io.data_bytes);
    if (status == kStatusOk && stream.host) {
        // The driver counts its uncompleted buffers itself (runtime->delay is
        // on top of them): report only the host's latency beyond those.
        const uint64_t host = stream.host->latency_bytes();
        result.latency_bytes = static_cast<uint32_t>(host > stream.handed_bytes ? host - stream.handed_bytes : 0);
    }
    writer.write_object(result);
    context_->queues[queue_of(stream)].push_used(io.chain.head, static_cast<uint32_t>(writer.written()));
}

void SoundDevice::service() {
    if (!context_ || stopped_) return;
    const auto now = config_.now();
    for (auto& stream : streams_) {
        if (stream.direction == kDirectionInput) {
            if (serve_capture(stream, now)) used_pushed_[queue_of(stream)] = true;
            continue;
        }
        bool completed = false;
        while (!stream.pending.empty() && stream.pending.front().due && *stream.pending.front().due <= now) {
            complete(stream, stream.pending.front(), kStatusOk, true);
            stream.pending.pop_front();
            completed = true;
        }
        if (!completed) continue;
        used_pushed_[queue_of(stream)] = true;
        if (stream.direction == kDirectionOutput && stream.pending.empty() && stream.state == State::Started &&
            !stream.starved) {
            stream.starved = true;
            if (stream.host) stream.host->starved();
        }
    }
    notify(kTxQueue);
    notify(kRxQueue);
    arm_timer();
}

bool SoundDevice::serve_capture(Stream& stream, Clock::time_point now) {
    bool completed = false;
    while (!stream.pending.empty() && stream.pending.front().due && !holds_last_capture_buffer(stream)) {
        Io& io = stream.pending.front();
        const bool recorded = stream.host && stream.host->readable_bytes() >= io.data_bytes;
        if (!recorded) {
            const auto deadline = capture_deadline(stream);
            if (deadline > now) break;
            // Late or away: the guest gets silence on time, by the device's
            // clock, until recorded audio comes again.
            stream.capture_late = true;
            stream.capture_clock = deadline;
        } else {
            stream.capture_late = false;
            stream.capture_clock = now;
        }
        complete(stream, io, kStatusOk, true);
        stream.pending.pop_front();
        completed = true;
    }
    return completed;
}

SoundDevice::Clock::time_point SoundDevice::capture_deadline(const Stream& stream) const {
    // A period's time after the last one, and while the server records and
    // was on time so far, a grace for its lateness: a loaded host's server
    // sends fragments tens of ms late now and then, and waiting for them is
    // a delay the guest does not notice, where silence would be a dropout.
    // But Linux gives up a read that found no period for 1.1 buffer times
    // (at least 100 ms) with EIO: the wait stays well inside that.
    using std::chrono::milliseconds;
    const Io& io = stream.pending.front();
    const auto period = duration_of(stream.params->format, io.data_bytes);
    Clock::duration grace{};
    if (!stream.capture_late && stream.host && stream.host->recording()) {
        const auto buffer = duration_of(stream.params->format, stream.params->buffer_bytes);
        const auto guest_patience = std::max<Clock::duration>(milliseconds(100), buffer * 11 / 10);
        grace = std::clamp<Clock::duration>(guest_patience - period - milliseconds(30), Clock::duration{},
                                            milliseconds(60));
    }
    // (Never sooner than a period after the buffer came: a guest that left
    // the device without buffers gets no burst of silence.)
    return std::max(stream.capture_clock, io.scheduled_at) + period + grace;
}

SoundDevice::Clock::duration SoundDevice::duration_of(const AudioFormat& format, uint64_t bytes) {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::nanoseconds(bytes / format.frame_bytes() * 1'000'000'000ull / format.rate));
}

void SoundDevice::watch_recording(Stream& stream) {
    if (!context_ || !context_->event_loop) return;  // tests call service() themselves
    EventLoop* loop = context_->event_loop;
    std::weak_ptr<std::atomic<bool>> posted = recorded_posted_;
    stream.host->set_recorded_callback([this, loop, posted] {
        auto flag = posted.lock();
        // One service() in flight at a time: the server delivers a fragment
        // every few ms, and one pass completes all that is filled.
        if (!flag || flag->exchange(true)) return;
        loop->post([this, posted] {
            auto flag = posted.lock();
            if (!flag) return;
            flag->store(false);
            service();
        });
    });
}

bool SoundDevice::holds_last_capture_buffer(const Stream& stream) {
    // A capture stream's last buffer waits for the guest to queue another.
    // Linux's snd_virtio tells the stream's progress by the position in its
    // buffer: a guest that finds its whole buffer recorded at once (its vCPUs
    // were paused or descheduled while the device recorded on) sees no
    // progress, queues nothing more, and its microphone stops for good. One
    // buffer held back, the guest always sees it moved, and queues again.
    return stream.direction == kDirectionInput && stream.pending.size() == 1 && stream.params &&
           stream.params->buffer_bytes > stream.params->period_bytes;
}

void SoundDevice::arm_timer() {
    if (!context_ || !context_->event_loop) return;
    std::optional<Clock::time_point> next;
    for (const auto& stream : streams_) {
        if (stream.pending.empty() || !stream.pending.front().due || holds_last_capture_buffer(stream)) continue;
        const auto due = stream.direction == kDirectionInput ? capture_deadline(stream) : *stream.pending.front().due;
        if (!next || due < *next) next = due;
    }
    if (timer_deadline_ == next) return;
    if (timer_) context_->event_loop->cancel_timer(*timer_);
    timer_.reset();
    timer_deadline_ = next;
    if (!next) return;
    timer_ = context_->event_loop->add_timer(*next, [this] {
        timer_.reset();
        timer_deadline_.reset();
        service();
    });
}

}  // namespace atl::vmm::virtio

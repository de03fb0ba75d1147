// The PulseAudio back-end: one libpulse client per VM on its own
// pa_threaded_mainloop. Streams exist on our side whether or not the server
// does; while it is away their data goes nowhere, and when it comes back (the
// client retries every retry_ms) each open stream is created again, so sound
// returns without the guest noticing. Every libpulse call runs with the
// mainloop's lock held (or on its thread), and no call waits for the server.
#include "devices/audio_backend.h"

#include <pulse/pulseaudio.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <set>

namespace atl::vmm {
namespace {

// What the server keeps queued ahead of the sink for us: small, so the
// guest's own buffer is what sets the latency a listener hears.
constexpr uint32_t kPlaybackTargetMs = 20;
constexpr uint32_t kCaptureFragmentMs = 10;
// Recorded audio the guest has not taken yet; older frames are dropped.
constexpr uint32_t kCaptureBacklogMs = 500;
// The anti-click tail after the guest's last frame.
constexpr uint32_t kFadeOutMs = 3;
// Playback kept while the server creates the stream (the guest's pre-buffer).
constexpr uint32_t kUnsentLimitMs = 1000;
// Added latency (the server's queue beyond what the guest itself still
// counts as queued) above where it settled (or the target, if that is more)
// that is tolerated before new frames are dropped instead of queued. After
// the server was silent, what came meanwhile is late: little is kept, so the
// latency is back near where it was at once. Otherwise only sound far behind
// is dropped: a busy or emulated machine's timing scatters by tens of ms.
constexpr uint32_t kDropSlackAfterSilenceMs = 25;
constexpr uint32_t kDropSlackMs = 80;
// A server that has not answered a timing request for this long is taken to
// have stopped playing (hung or stopped): nothing it holds counts as played.
// Generous: an emulated machine's server can take hundreds of ms.
constexpr uint32_t kServerSilentMs = 1000;
// How often the server is asked how far it has played.
constexpr uint32_t kTimingIntervalMs = 100;
// Clock drift. The device completes the guest's buffers by the host's
// monotonic clock, the sound card plays by its own crystal; the two differ
// by up to a few hundred ppm, so over minutes the server's queue would creep
// up (late sound, then drops) or down (underruns). As other players and
// VMMs do, the stream is resampled by the server at a rate nudged a little
// around the nominal one so that the added latency stays where it settled
// when the stream began: a PI controller on the smoothed error. Gains: 10 ms
// of error asks for the whole ±1 % (17 cents of pitch at most: a real
// card's drift needs a hundredth of that); the integral learns the drift and
// removes the offset it would leave within a few seconds.
constexpr double kMaxRateCorrection = 0.01;
constexpr double kRateGainPerMs = kMaxRateCorrection / 10;
constexpr double kRateIntegralSeconds = 3;
constexpr double kErrorSmoothingSeconds = 0.3;
// How long the stream plays before its added latency is taken as settled.
constexpr double kSettleSeconds = 1.0;
// Each rate change is a message to the server; a few a second is plenty.
constexpr auto kRateUpdateInterval = std::chrono::milliseconds(100);

pa_sample_format_t pulse_format(AudioSample sample) {
    switch (sample) {
    case AudioSample::S16: return PA_SAMPLE_S16LE;
    case AudioSample::S32: return PA_SAMPLE_S32LE;
    case AudioSample::Float32: return PA_SAMPLE_FLOAT32LE;
    }
    return PA_SAMPLE_S16LE;
}

pa_volume_t pulse_volume(unsigned percent) {
    return static_cast<pa_volume_t>(uint64_t{PA_VOLUME_NORM} * std::min(percent, kMaxAudioVolumePercent) / 100);
}

class PulseBackend;

class PulseStream final : public AudioStream {
public:
    PulseStream(PulseBackend& backend, AudioDirection direction, const AudioFormat& format);
    ~PulseStream() override;

    void write(std::span<const uint8_t> frames, uint64_t unplayed_bytes) override;
    void read(std::span<uint8_t> frames) override;
    size_t readable_bytes() const override;
    bool recording() const override;
    void set_recorded_callback(std::function<void()> callback) override;
    void set_running(bool running) override;
    void starved() override;
    void flush() override;
    uint32_t latency_bytes() const override;

    // Mainloop lock held.
    void create(pa_context* context);
    void detach();
    void apply_volume(pa_context* context, const AudioChannelState& state);
    AudioDirection direction() const { return direction_; }
    // The server's sink-input or source-output index; PA_INVALID_INDEX until ready.
    uint32_t index() const { return ready() ? pa_stream_get_index(stream_) : PA_INVALID_INDEX; }

private:
    static void on_state(pa_stream* stream, void* self);
    static void on_underflow(pa_stream* stream, void* self);
    static void on_read(pa_stream* stream, size_t bytes, void* self);
    static void on_timing(pa_stream* stream, int success, void* self);
    bool ready() const { return stream_ && pa_stream_get_state(stream_) == PA_STREAM_READY; }
    bool records() const { return ready() && running_; }  // capture, with the lock held
    void write_locked(const uint8_t* data, size_t bytes);
    // Playback: the server's latency for us (its queue and the sink's
    // buffer), from its last timing report carried forward by the clock;
    // none while unknown (no report yet, or a flush made it stale).
    std::optional<int64_t> latency_estimate_bytes() const;
    bool server_silent() const;
    void request_timing();
    void follow_sound_card(int64_t latency_bytes);
    void reset_rate_control();

    PulseBackend& backend_;
    const AudioDirection direction_;
    const AudioFormat format_;
    pa_sample_spec spec_{};
    pa_stream* stream_ = nullptr;
    bool running_ = false;
    std::vector<uint8_t> last_frame_;
    // The server ran out of sound. That is an underrun (a gap in the middle
    // of the sound) only if more sound follows: the server runs out at the
    // end of every sound too, at about the moment the device sees the guest
    // has given its last. So the next write counts it, starved() forgets it.
    bool ran_out_ = false;
    std::vector<uint8_t> unsent_;  // written while the server was creating the stream
    uint64_t unplayed_ = 0;        // playback: the guest's part of what was written (see write())
    bool dropping_ = false;        // playback: in an episode of frames dropped
    bool after_silence_ = false;   // playback: the server was silent, and we have not caught up yet
    pa_operation* timing_request_ = nullptr;
    timeval timing_requested_at_{};
    // Playback: drift control (see kMaxRateCorrection).
    uint32_t rate_ = 0;  // what the server resamples the stream from
    double smoothed_added_ms_ = 0;  // the added latency (see write()), smoothed
    std::optional<double> reference_ms_;  // where it is held
    double settled_seconds_ = 0;
    double integral_ms_seconds_ = 0;
    std::optional<std::chrono::steady_clock::time_point> last_control_;
    std::chrono::steady_clock::time_point last_rate_update_{};
    std::deque<uint8_t> recorded_;
    std::function<void()> recorded_callback_;
};

class PulseBackend final : public AudioBackend {
public:
    explicit PulseBackend(PulseAudioOptions options) : options_(std::move(options)) {}
    ~PulseBackend() override {
        if (!loop_) return;
        pa_threaded_mainloop_stop(loop_);
        if (retry_event_) pa_threaded_mainloop_get_api(loop_)->time_free(retry_event_);
        drop_context();
        pa_threaded_mainloop_free(loop_);
    }

    Result<void> start() {
        loop_ = pa_threaded_mainloop_new();
        if (!loop_) return make_error("audio: cannot create the PulseAudio client's main loop");
        pa_threaded_mainloop_set_name(loop_, "atoll-pulse");
        if (pa_threaded_mainloop_start(loop_) < 0) return make_error("audio: cannot start the PulseAudio client's thread");
        Lock lock(loop_);
        connect();
        return {};
    }

    Result<std::unique_ptr<AudioStream>> open(AudioDirection direction, const AudioFormat& format) override {
        auto stream = std::make_unique<PulseStream>(*this, direction, format);
        Lock lock(loop_);
        streams_.insert(stream.get());
        if (context_ && pa_context_get_state(context_) == PA_CONTEXT_READY) stream->create(context_);
        return std::unique_ptr<AudioStream>(std::move(stream));
    }

    void set_volume(AudioDirection direction, unsigned percent) override {
        Lock lock(loop_);
        {
            std::lock_guard guard(status_mutex_);
            channel(direction).volume_percent = std::min(percent, kMaxAudioVolumePercent);
        }
        apply_volumes(direction);
    }
    void set_muted(AudioDirection direction, bool muted) override {
        Lock lock(loop_);
        {
            std::lock_guard guard(status_mutex_);
            channel(direction).muted = muted;
        }
        apply_volumes(direction);
    }
    AudioStatus status() const override {
        std::lock_guard guard(status_mutex_);
        AudioStatus status = status_;
        status.connected = connected_.load();
        status.underruns = underruns_.load();
        status.overruns = overruns_.load();
        status.capture_gaps = capture_gaps_.load();
        status.dropped_frames = dropped_frames_.load();
        return status;
    }

    AudioChannelState channel_state(AudioDirection direction) const {
        std::lock_guard guard(status_mutex_);
        return direction == AudioDirection::Playback ? status_.playback : status_.capture;
    }
    const std::string& vm_name() const { return options_.vm_name; }
    pa_threaded_mainloop* loop() const { return loop_; }
    void forget(PulseStream* stream) { streams_.erase(stream); }  // mainloop lock held

    void count_underrun() {
        const uint64_t count = ++underruns_;
        const auto now = std::chrono::steady_clock::now();
        // One line per 10 s at most: an underrun storm must not flood the log.
        if (count == 1 || now - last_underrun_log_ > std::chrono::seconds(10)) {
            last_underrun_log_ = now;
            fprintf(stderr, "atoll-vmm: audio: VM %s: playback underrun (%llu so far)\n", options_.vm_name.c_str(),
                    static_cast<unsigned long long>(count));
        }
    }
    void count_overrun() { ++overruns_; }
    void count_capture_gap() { ++capture_gaps_; }
    void count_dropped(uint64_t frames, bool episode_begins) {
        const uint64_t count = dropped_frames_ += frames;
        const auto now = std::chrono::steady_clock::now();
        // One line per episode (a hang), and one per 10 s at most.
        if (episode_begins && (last_drop_log_ == std::chrono::steady_clock::time_point{} ||
                               now - last_drop_log_ > std::chrono::seconds(10))) {
            last_drop_log_ = now;
            fprintf(stderr,
                    "atoll-vmm: audio: VM %s: PulseAudio is not taking playback in time; dropping it "
                    "(%llu frames so far)\n",
                    options_.vm_name.c_str(), static_cast<unsigned long long>(count));
        }
    }

    struct Lock {
        explicit Lock(pa_threaded_mainloop* loop) : loop(loop) { pa_threaded_mainloop_lock(loop); }
        ~Lock() { pa_threaded_mainloop_unlock(loop); }
        pa_threaded_mainloop* loop;
    };

private:
    AudioChannelState& channel(AudioDirection direction) {
        return direction == AudioDirection::Playback ? status_.playback : status_.capture;
    }

    void apply_volumes(AudioDirection direction) {
        if (!context_ || pa_context_get_state(context_) != PA_CONTEXT_READY) return;
        const auto state = channel_state(direction);
        for (auto* stream : streams_)
            if (stream->direction() == direction) stream->apply_volume(context_, state);
    }

    void connect() {
        pa_proplist* properties = pa_proplist_new();
        const std::string application = "Atoll: " + options_.vm_name;
        pa_proplist_sets(properties, PA_PROP_APPLICATION_NAME, application.c_str());
        pa_proplist_sets(properties, PA_PROP_APPLICATION_ID, "org.atoll.Atoll");
        pa_proplist_sets(properties, PA_PROP_APPLICATION_ICON_NAME, "computer");
        pa_proplist_sets(properties, "atoll.vm", options_.vm_name.c_str());
        context_ = pa_context_new_with_proplist(pa_threaded_mainloop_get_api(loop_), application.c_str(), properties);
        pa_proplist_free(properties);
        if (!context_) {
            schedule_retry();
            return;
        }
        pa_context_set_state_callback(context_, &PulseBackend::on_context_state, this);
        // No autospawn: a VMM must not start a sound server of its own.
        if (pa_context_connect(context_, options_.server.empty() ? nullptr : options_.server.c_str(),
                               PA_CONTEXT_NOAUTOSPAWN, nullptr) < 0)
            lost(pa_strerror(pa_context_errno(context_)));
    }

    void drop_context() {
        for (auto* stream : streams_) stream->detach();
        if (!context_) return;
        pa_context_set_state_callback(context_, nullptr, nullptr);
        pa_context_disconnect(context_);
        pa_context_unref(context_);
        context_ = nullptr;
    }

    void lost(const std::string& why) {
        const bool was_connected = connected_.exchange(false);
        if (was_connected || !reported_absent_) {
            fprintf(stderr, "atoll-vmm: audio: VM %s: PulseAudio%s%s: %s; retrying every %u ms\n",
                    options_.vm_name.c_str(), options_.server.empty() ? "" : " at ", options_.server.c_str(),
                    why.c_str(), options_.retry_ms);
            reported_absent_ = true;
        }
        drop_context();
        schedule_retry();
    }

    void schedule_retry() {
        if (retry_event_) return;
        timeval when{};
        gettimeofday(&when, nullptr);
        pa_timeval_add(&when, pa_usec_t{options_.retry_ms} * 1000);
        retry_event_ = pa_threaded_mainloop_get_api(loop_)->time_new(
            pa_threaded_mainloop_get_api(loop_), &when,
            [](pa_mainloop_api* api, pa_time_event* event, const timeval*, void* self) {
                auto* backend = static_cast<PulseBackend*>(self);
                api->time_free(event);
                backend->retry_event_ = nullptr;
                backend->connect();
            },
            this);
    }

    static void on_context_state(pa_context* context, void* self) {
        auto* backend = static_cast<PulseBackend*>(self);
        switch (pa_context_get_state(context)) {
        case PA_CONTEXT_READY:
            backend->connected_ = true;
            backend->reported_absent_ = false;
            fprintf(stderr, "atoll-vmm: audio: VM %s: connected to PulseAudio\n", backend->options_.vm_name.c_str());
            for (auto* stream : backend->streams_) stream->create(context);
            // Volume and mute set in pavucontrol or pactl show in `status` too.
            pa_context_set_subscribe_callback(context, &PulseBackend::on_subscribe, backend);
            if (pa_operation* operation = pa_context_subscribe(
                    context,
                    static_cast<pa_subscription_mask_t>(PA_SUBSCRIPTION_MASK_SINK_INPUT | PA_SUBSCRIPTION_MASK_SOURCE_OUTPUT),
                    nullptr, nullptr))
                pa_operation_unref(operation);
            break;
        case PA_CONTEXT_FAILED:
        case PA_CONTEXT_TERMINATED:
            backend->lost(pa_strerror(pa_context_errno(context)));
            break;
        default: break;
        }
    }

    static void on_subscribe(pa_context* context, pa_subscription_event_type_t type, uint32_t index, void* self) {
        auto* backend = static_cast<PulseBackend*>(self);
        if ((type & PA_SUBSCRIPTION_EVENT_TYPE_MASK) != PA_SUBSCRIPTION_EVENT_CHANGE) return;
        const auto facility = type & PA_SUBSCRIPTION_EVENT_FACILITY_MASK;
        for (auto* stream : backend->streams_) {
            if (stream->index() != index) continue;
            pa_operation* operation = nullptr;
            if (facility == PA_SUBSCRIPTION_EVENT_SINK_INPUT && stream->direction() == AudioDirection::Playback)
                operation = pa_context_get_sink_input_info(
                    context, index,
                    [](pa_context*, const pa_sink_input_info* info, int, void* self) {
                        if (info) static_cast<PulseBackend*>(self)->observed(AudioDirection::Playback, info->volume, info->mute);
                    },
                    backend);
            if (facility == PA_SUBSCRIPTION_EVENT_SOURCE_OUTPUT && stream->direction() == AudioDirection::Capture)
                operation = pa_context_get_source_output_info(
                    context, index,
                    [](pa_context*, const pa_source_output_info* info, int, void* self) {
                        if (info) static_cast<PulseBackend*>(self)->observed(AudioDirection::Capture, info->volume, info->mute);
                    },
                    backend);
            if (operation) pa_operation_unref(operation);
        }
    }

    // What the server says the VM's stream is set to, whoever set it.
    void observed(AudioDirection direction, const pa_cvolume& volume, int muted) {
        std::lock_guard guard(status_mutex_);
        auto& state = channel(direction);
        state.volume_percent = static_cast<unsigned>(
            std::min<uint64_t>((uint64_t{pa_cvolume_avg(&volume)} * 100 + PA_VOLUME_NORM / 2) / PA_VOLUME_NORM,
                               kMaxAudioVolumePercent));
        state.muted = muted != 0;
    }

    PulseAudioOptions options_;
    pa_threaded_mainloop* loop_ = nullptr;
    pa_context* context_ = nullptr;
    pa_time_event* retry_event_ = nullptr;
    std::set<PulseStream*> streams_;
    bool reported_absent_ = false;
    std::atomic<bool> connected_{false};
    std::atomic<uint64_t> underruns_{0};
    std::atomic<uint64_t> overruns_{0};
    std::atomic<uint64_t> capture_gaps_{0};
    std::atomic<uint64_t> dropped_frames_{0};
    std::chrono::steady_clock::time_point last_underrun_log_{};
    std::chrono::steady_clock::time_point last_drop_log_{};
    mutable std::mutex status_mutex_;
    AudioStatus status_{.backend = "pulse"};
};

PulseStream::PulseStream(PulseBackend& backend, AudioDirection direction, const AudioFormat& format)
    : backend_(backend), direction_(direction), format_(format) {
    spec_.format = pulse_format(format.sample);
    spec_.rate = format.rate;
    spec_.channels = format.channels;
    rate_ = format.rate;
}

PulseStream::~PulseStream() {
    PulseBackend::Lock lock(backend_.loop());
    backend_.forget(this);
    if (direction_ == AudioDirection::Playback && running_ && ready()) {
        // The guest is done with a drained stream; the server still holds its
        // last few milliseconds. The pa_stream lives on until they played.
        pa_stream_set_state_callback(stream_, nullptr, nullptr);
        pa_stream_set_underflow_callback(stream_, nullptr, nullptr);
        auto finished = [](pa_stream* stream, int, void*) {
            pa_stream_disconnect(stream);
            pa_stream_unref(stream);
        };
        if (pa_operation* operation = pa_stream_drain(stream_, finished, nullptr)) {
            pa_operation_unref(operation);
            stream_ = nullptr;
            return;
        }
    }
    detach();
}

void PulseStream::create(pa_context* context) {
    detach();
    const bool playback = direction_ == AudioDirection::Playback;
    pa_proplist* properties = pa_proplist_new();
    const std::string media = backend_.vm_name() + (playback ? " playback" : " capture");
    pa_proplist_sets(properties, PA_PROP_MEDIA_NAME, media.c_str());
    pa_proplist_sets(properties, "atoll.vm", backend_.vm_name().c_str());
    pa_channel_map map;
    pa_channel_map_init_auto(&map, spec_.channels, PA_CHANNEL_MAP_DEFAULT);
    stream_ = pa_stream_new_with_proplist(context, media.c_str(), &spec_, &map, properties);
    pa_proplist_free(properties);
    if (!stream_) return;
    pa_stream_set_state_callback(stream_, &PulseStream::on_state, this);
    reset_rate_control();

    const auto state = backend_.channel_state(direction_);
    pa_buffer_attr attributes;
    attributes.maxlength = static_cast<uint32_t>(-1);
    attributes.prebuf = static_cast<uint32_t>(-1);
    attributes.minreq = static_cast<uint32_t>(-1);
    attributes.tlength = static_cast<uint32_t>(-1);
    attributes.fragsize = static_cast<uint32_t>(-1);
    int flags = PA_STREAM_ADJUST_LATENCY | PA_STREAM_AUTO_TIMING_UPDATE | PA_STREAM_INTERPOLATE_TIMING |
                (state.muted ? PA_STREAM_START_MUTED : PA_STREAM_START_UNMUTED) | (running_ ? 0 : PA_STREAM_START_CORKED);
    pa_cvolume volume;
    pa_cvolume_set(&volume, spec_.channels, pulse_volume(state.volume_percent));
    int result;
    if (playback) {
        attributes.tlength = static_cast<uint32_t>(pa_usec_to_bytes(pa_usec_t{kPlaybackTargetMs} * 1000, &spec_));
        pa_stream_set_underflow_callback(stream_, &PulseStream::on_underflow, this);
        flags |= PA_STREAM_VARIABLE_RATE;  // for follow_sound_card()
        result = pa_stream_connect_playback(stream_, nullptr, &attributes, static_cast<pa_stream_flags_t>(flags),
                                            &volume, nullptr);
    } else {
        attributes.fragsize = static_cast<uint32_t>(pa_usec_to_bytes(pa_usec_t{kCaptureFragmentMs} * 1000, &spec_));
        pa_stream_set_read_callback(stream_, &PulseStream::on_read, this);
        result = pa_stream_connect_record(stream_, nullptr, &attributes, static_cast<pa_stream_flags_t>(flags));
    }
    if (result < 0) detach();
}

void PulseStream::detach() {
    unsent_.clear();
    if (timing_request_) {
        pa_operation_cancel(timing_request_);
        pa_operation_unref(timing_request_);
        timing_request_ = nullptr;
    }
    if (!stream_) return;
    pa_stream_set_state_callback(stream_, nullptr, nullptr);
    pa_stream_set_underflow_callback(stream_, nullptr, nullptr);
    pa_stream_set_read_callback(stream_, nullptr, nullptr);
    if (pa_stream_get_state(stream_) == PA_STREAM_READY || pa_stream_get_state(stream_) == PA_STREAM_CREATING)
        pa_stream_disconnect(stream_);
    pa_stream_unref(stream_);
    stream_ = nullptr;
}

void PulseStream::on_state(pa_stream* stream, void* self) {
    // A START or STOP that came while the server was creating the stream
    // could not be sent then: bring the server's cork state in line now.
    auto* us = static_cast<PulseStream*>(self);
    if (pa_stream_get_state(stream) != PA_STREAM_READY) return;
    if (pa_operation* operation = pa_stream_cork(stream, us->running_ ? 0 : 1, nullptr, nullptr))
        pa_operation_unref(operation);
    if (!us->unsent_.empty()) {
        // Of what came meanwhile, only the guest's queue and the target are
        // not late yet: keep the newest of it.
        const size_t keep = std::min<size_t>(
            us->unsent_.size(), us->unplayed_ + pa_usec_to_bytes(pa_usec_t{kPlaybackTargetMs} * 1000, &us->spec_));
        const size_t late = us->unsent_.size() - keep;
        if (late) us->backend_.count_dropped(late / us->format_.frame_bytes(), true);
        pa_stream_write(stream, us->unsent_.data() + late, keep, nullptr, 0, PA_SEEK_RELATIVE);
        us->unsent_.clear();
    }
}

void PulseStream::on_underflow(pa_stream*, void* self) {
    static_cast<PulseStream*>(self)->ran_out_ = true;
}

void PulseStream::on_read(pa_stream* stream, size_t, void* self) {
    auto* us = static_cast<PulseStream*>(self);
    const size_t limit = pa_usec_to_bytes(pa_usec_t{kCaptureBacklogMs} * 1000, &us->spec_);
    const void* data = nullptr;
    size_t bytes = 0;
    while (pa_stream_readable_size(stream) > 0) {
        if (pa_stream_peek(stream, &data, &bytes) < 0 || bytes == 0) break;
        const auto* begin = static_cast<const uint8_t*>(data);
        if (begin) us->recorded_.insert(us->recorded_.end(), begin, begin + bytes);
        else us->recorded_.insert(us->recorded_.end(), bytes, 0);  // a hole: silence
        pa_stream_drop(stream);
    }
    if (us->recorded_.size() > limit) {
        // The guest is not reading: keep the newest, whole frames.
        size_t excess = us->recorded_.size() - limit;
        excess -= excess % us->format_.frame_bytes();
        us->recorded_.erase(us->recorded_.begin(), us->recorded_.begin() + static_cast<ptrdiff_t>(excess));
        us->backend_.count_overrun();
    }
    if (us->recorded_callback_) us->recorded_callback_();
}

void PulseStream::write_locked(const uint8_t* data, size_t bytes) {
    if (bytes == 0 || !stream_) return;
    if (pa_stream_get_state(stream_) == PA_STREAM_CREATING) {
        // The server has not answered yet: keep it (up to a bound) for when it does.
        if (unsent_.size() + bytes <= pa_usec_to_bytes(pa_usec_t{kUnsentLimitMs} * 1000, &spec_))
            unsent_.insert(unsent_.end(), data, data + bytes);
        return;
    }
    if (!ready()) return;
    // libpulse queues whatever it is given in our memory until the server
    // reads it; a hung server reads nothing, and all of it would play late
    // when it resumes. So the server's latency may reach the guest's own
    // queue plus the settled latency and some slack; newer frames beyond are
    // dropped (the oldest of this write go first: what is kept is the most
    // recent sound).
    const auto latency = latency_estimate_bytes();
    size_t allowed = bytes;
    if (server_silent()) after_silence_ = true;
    if ((latency && reference_ms_) || server_silent()) {
        const double added_ms = std::max(reference_ms_.value_or(0), double(kPlaybackTargetMs)) +
                                (after_silence_ ? kDropSlackAfterSilenceMs : kDropSlackMs);
        const int64_t bound = static_cast<int64_t>(unplayed_) +
                              static_cast<int64_t>(added_ms * format_.rate / 1000) * format_.frame_bytes();
        const int64_t room = latency ? bound - *latency : 0;
        allowed = static_cast<size_t>(std::clamp<int64_t>(room, 0, static_cast<int64_t>(bytes)));
        allowed -= allowed % format_.frame_bytes();
    }
    if (allowed < bytes) {
        backend_.count_dropped((bytes - allowed) / format_.frame_bytes(), !dropping_);
        dropping_ = true;
    } else {
        dropping_ = false;
        if (latency && !server_silent()) after_silence_ = false;  // caught up
    }
    if (allowed > 0) pa_stream_write(stream_, data + (bytes - allowed), allowed, nullptr, 0, PA_SEEK_RELATIVE);
    if (latency && !server_silent()) follow_sound_card(*latency + static_cast<int64_t>(allowed));
    request_timing();
}

bool PulseStream::server_silent() const {
    return timing_request_ && pa_timeval_age(&timing_requested_at_) > pa_usec_t{kServerSilentMs} * 1000;
}

std::optional<int64_t> PulseStream::latency_estimate_bytes() const {
    if (!ready()) return std::nullopt;
    const pa_timing_info* info = pa_stream_get_timing_info(stream_);
    if (!info || info->write_index_corrupt || info->read_index_corrupt) return std::nullopt;
    int64_t latency = info->write_index - info->read_index;
    if (info->playing && running_) {
        // The sink has played on since the report, at the stream's current
        // rate; but not past the moment a request went unanswered for long.
        pa_usec_t played_usec = pa_timeval_age(&info->timestamp);
        if (server_silent()) {
            timeval silent_since = timing_requested_at_;
            pa_timeval_add(&silent_since, pa_usec_t{kServerSilentMs} * 1000);
            played_usec = pa_timeval_cmp(&silent_since, &info->timestamp) > 0
                              ? std::min(played_usec, pa_timeval_diff(&silent_since, &info->timestamp))
                              : 0;
        }
        latency -= static_cast<int64_t>(played_usec * rate_ / 1'000'000 * format_.frame_bytes());
    }
    // The sink's own buffer delays our frames only once they flow into it.
    if (info->playing) latency += static_cast<int64_t>(pa_usec_to_bytes(info->sink_usec, &spec_));
    return std::max<int64_t>(latency, 0);
}

void PulseStream::request_timing() {
    // libpulse's own timing updates thin out to one per 1.5 s; the bound and
    // the drift control want fresher ones, but not many: each costs the
    // server a little, which a slow (emulated) host's guest notices. One
    // request at a time: a server that does not answer it is a silent one.
    if (timing_request_ || !ready()) return;
    // (While frames are being dropped, each write asks: the sooner the
    // server is seen to have caught up, the fewer are lost.)
    if (!dropping_ && pa_timeval_age(&timing_requested_at_) < pa_usec_t{kTimingIntervalMs} * 1000) return;
    pa_gettimeofday(&timing_requested_at_);
    timing_request_ = pa_stream_update_timing_info(stream_, &PulseStream::on_timing, this);
}

void PulseStream::on_timing(pa_stream*, int, void* self) {
    auto* us = static_cast<PulseStream*>(self);
    if (!us->timing_request_) return;
    pa_operation_unref(us->timing_request_);
    us->timing_request_ = nullptr;
}

void PulseStream::reset_rate_control() {
    // A new server stream: it starts at the nominal rate, on a sink that may
    // behave otherwise than the last one.
    rate_ = format_.rate;
    integral_ms_seconds_ = 0;
    reference_ms_.reset();
    settled_seconds_ = 0;
    last_control_.reset();
    dropping_ = false;
    after_silence_ = false;
}

void PulseStream::follow_sound_card(int64_t latency_bytes) {
    const pa_timing_info* info = pa_stream_get_timing_info(stream_);
    if (!running_ || !info || !info->playing) {
        last_control_.reset();
        return;
    }
    // Sampled right after the guest's writes, which follow the device's
    // completions: the phase is steady, and smoothing removes the sink's
    // block-sized steps.
    const auto now = std::chrono::steady_clock::now();
    const double bytes_per_ms = double(format_.rate) * format_.frame_bytes() / 1000;
    const double added_ms = (double(latency_bytes) - double(unplayed_)) / bytes_per_ms;
    if (!last_control_) {
        last_control_ = now;
        smoothed_added_ms_ = added_ms;
        return;
    }
    const double dt = std::min(std::chrono::duration<double>(now - *last_control_).count(), 0.5);
    last_control_ = now;
    smoothed_added_ms_ += (added_ms - smoothed_added_ms_) * std::min(1.0, dt / kErrorSmoothingSeconds);
    if (!reference_ms_) {
        // Where the added latency settles when playing starts depends on the
        // sink (what it had rendered ahead, how deep its own buffer is: a
        // Bluetooth sink's is 100 ms and more), not on us: hold it there
        // rather than pull it somewhere (a pitch change for seconds).
        settled_seconds_ += dt;
        if (settled_seconds_ < kSettleSeconds) return;
        reference_ms_ = smoothed_added_ms_;
    }
    const double error_ms = smoothed_added_ms_ - *reference_ms_;
    const double integral_limit = kMaxRateCorrection / kRateGainPerMs * kRateIntegralSeconds;
    const double wanted = kRateGainPerMs * (error_ms + integral_ms_seconds_ / kRateIntegralSeconds);
    // The integral (the drift's estimate) only learns while the correction
    // is not at its limit: a hang's backlog must not wind it up.
    if (std::abs(wanted) < kMaxRateCorrection)
        integral_ms_seconds_ = std::clamp(integral_ms_seconds_ + error_ms * dt, -integral_limit, integral_limit);
    const double correction = std::clamp(wanted, -kMaxRateCorrection, kMaxRateCorrection);
    // Too much queued: the card is slower than the host's clock, so the
    // server must take our frames faster: a higher source rate.
    const auto rate = static_cast<uint32_t>(std::lround(format_.rate * (1 + correction)));
    if (rate == rate_ || now - last_rate_update_ < kRateUpdateInterval) return;
    if (pa_operation* operation = pa_stream_update_sample_rate(stream_, rate, nullptr, nullptr)) {
        pa_operation_unref(operation);
        rate_ = rate;
        last_rate_update_ = now;
    }
}

void PulseStream::write(std::span<const uint8_t> frames, uint64_t unplayed_bytes) {
    if (frames.size() < format_.frame_bytes()) return;
    PulseBackend::Lock lock(backend_.loop());
    unplayed_ = unplayed_bytes;
    write_locked(frames.data(), frames.size());
    last_frame_.assign(frames.end() - format_.frame_bytes(), frames.end());
    if (ran_out_) {
        ran_out_ = false;
        backend_.count_underrun();
    }
}

void PulseStream::starved() {
    PulseBackend::Lock lock(backend_.loop());
    ran_out_ = false;
    if (last_frame_.empty()) return;
    std::vector<uint8_t> tail;
    append_fade_out(format_, last_frame_, format_.rate * kFadeOutMs / 1000, tail);
    write_locked(tail.data(), tail.size());
    last_frame_.clear();
}

void PulseStream::read(std::span<uint8_t> frames) {
    PulseBackend::Lock lock(backend_.loop());
    // The device asks when a period's worth is here, or when it waited for it
    // as long as it could: then what is missing is a gap of silence.
    const size_t taken = std::min(frames.size(), recorded_.size());
    std::copy_n(recorded_.begin(), taken, frames.begin());
    recorded_.erase(recorded_.begin(), recorded_.begin() + static_cast<ptrdiff_t>(taken));
    std::fill(frames.begin() + static_cast<ptrdiff_t>(taken), frames.end(), 0);
    if (taken < frames.size() && records()) backend_.count_capture_gap();
}

size_t PulseStream::readable_bytes() const {
    PulseBackend::Lock lock(backend_.loop());
    return recorded_.size();
}

bool PulseStream::recording() const {
    PulseBackend::Lock lock(backend_.loop());
    return records();
}

void PulseStream::set_recorded_callback(std::function<void()> callback) {
    PulseBackend::Lock lock(backend_.loop());
    recorded_callback_ = std::move(callback);
}

void PulseStream::set_running(bool running) {
    PulseBackend::Lock lock(backend_.loop());
    if (running_ == running) return;
    running_ = running;
    if (running && direction_ == AudioDirection::Capture) recorded_.clear();
    if (ready()) {
        if (pa_operation* operation = pa_stream_cork(stream_, running ? 0 : 1, nullptr, nullptr))
            pa_operation_unref(operation);
    }
}

void PulseStream::flush() {
    PulseBackend::Lock lock(backend_.loop());
    recorded_.clear();
    last_frame_.clear();
    unsent_.clear();
    if (ready()) {
        if (pa_operation* operation = pa_stream_flush(stream_, nullptr, nullptr)) pa_operation_unref(operation);
    }
}

uint32_t PulseStream::latency_bytes() const {
    PulseBackend::Lock lock(backend_.loop());
    if (!ready()) return 0;
    if (direction_ == AudioDirection::Playback) {
        if (const auto latency = latency_estimate_bytes())
            return static_cast<uint32_t>(std::min<int64_t>(*latency, UINT32_MAX));
    }
    pa_usec_t latency = 0;
    int negative = 0;
    if (pa_stream_get_latency(stream_, &latency, &negative) < 0 || negative) return 0;
    return static_cast<uint32_t>(std::min<size_t>(pa_usec_to_bytes(latency, &spec_), UINT32_MAX));
}

void PulseStream::apply_volume(pa_context* context, const AudioChannelState& state) {
    if (!ready()) return;
    const uint32_t index = pa_stream_get_index(stream_);
    pa_cvolume volume;
    pa_cvolume_set(&volume, spec_.channels, pulse_volume(state.volume_percent));
    pa_operation* volume_operation;
    pa_operation* mute_operation;
    if (direction_ == AudioDirection::Playback) {
        volume_operation = pa_context_set_sink_input_volume(context, index, &volume, nullptr, nullptr);
        mute_operation = pa_context_set_sink_input_mute(context, index, state.muted, nullptr, nullptr);
    } else {
        volume_operation = pa_context_set_source_output_volume(context, index, &volume, nullptr, nullptr);
        mute_operation = pa_context_set_source_output_mute(context, index, state.muted, nullptr, nullptr);
    }
    if (volume_operation) pa_operation_unref(volume_operation);
    if (mute_operation) pa_operation_unref(mute_operation);
}

}  // namespace

}  // namespace atl::vmm

// The one symbol the module exports (it is built with hidden visibility).
extern "C" __attribute__((visibility("default"))) void atoll_audio_pulse_make_v3(
    const atl::vmm::PulseAudioOptions* options, atl::Result<std::shared_ptr<atl::vmm::AudioBackend>>* out) {
    auto backend = std::make_shared<atl::vmm::PulseBackend>(*options);
    if (auto started = backend->start(); !started.ok()) {
        *out = started.error();
        return;
    }
    *out = std::shared_ptr<atl::vmm::AudioBackend>(std::move(backend));
}

#include "audio_state.h"

#include <algorithm>

namespace atl::dom0 {
namespace {

using nlohmann::json;

void take_bool(const json& object, const char* key, bool& field) {
    const auto it = object.find(key);
    if (it != object.end() && it->is_boolean()) field = it->get<bool>();
}

// nlohmann keeps non-negative integers as unsigned; negative ones, fractions
// and integers past 2^64 are other types and are refused here.
void take_count(const json& object, const char* key, uint64_t& field) {
    const auto it = object.find(key);
    if (it != object.end() && it->is_number_unsigned()) field = it->get<uint64_t>();
}

}  // namespace

std::optional<AudioState> audio_state_from(const json& audio, const std::optional<AudioState>& before) {
    if (!audio.is_object()) return std::nullopt;
    AudioState state = before.value_or(AudioState{});
    take_bool(audio, "connected", state.connected);
    take_count(audio, "underruns", state.underruns);
    take_count(audio, "overruns", state.overruns);
    take_count(audio, "dropped_frames", state.dropped_frames);
    take_count(audio, "capture_gaps", state.capture_gaps);
    const auto playback = audio.find("playback");
    if (playback != audio.end() && playback->is_object()) {
        uint64_t percent = state.volume_percent;
        take_count(*playback, "volume_percent", percent);
        state.volume_percent = static_cast<unsigned>(std::min<uint64_t>(percent, 150));
        take_bool(*playback, "muted", state.muted);
    }
    return state;
}

std::vector<std::string> audio_trouble_news(const AudioState& before, const AudioState& now) {
    std::vector<std::string> lines;
    if (now.underruns > before.underruns)
        lines.push_back(std::to_string(now.underruns) + " audio underruns so far (PulseAudio ran out of its sound)");
    if (now.dropped_frames > before.dropped_frames)
        lines.push_back(std::to_string(now.dropped_frames) +
                        " audio frames dropped so far (PulseAudio could not take them in time; they would have "
                        "played late)");
    if (now.capture_gaps > before.capture_gaps)
        lines.push_back(std::to_string(now.capture_gaps) +
                        " audio capture gaps so far (recorded sound came too late; the guest got silence)");
    return lines;
}

}  // namespace atl::dom0

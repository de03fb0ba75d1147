// A VM's sound as atoll-vmm reports it: the "audio" object of its greeting,
// `status`, `audio-*` replies and `audio` events
// (hypervisor/docs/control-protocol.md).
#pragma once

#include <atoll/dom0/daemon.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace atl::dom0 {

// nullopt when `audio` is not an object (null: the VM has no sound device).
// Each field is taken only when it is there with the right type and range;
// otherwise it keeps its value in `before` (its default without one), so that
// one bad field from atoll-vmm changes nothing else and no counter drops back.
std::optional<AudioState> audio_state_from(const nlohmann::json& audio,
                                           const std::optional<AudioState>& before = std::nullopt);

// Log lines (without the VM's name) for the trouble counters that grew from
// `before` to `now`. atoll-vmm reports at most once a second, so at most one
// line per counter per second and VM.
std::vector<std::string> audio_trouble_news(const AudioState& before, const AudioState& now);

}  // namespace atl::dom0

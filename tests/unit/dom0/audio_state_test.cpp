// atolld's reading of the "audio" object atoll-vmm sends
// (hypervisor/docs/control-protocol.md, `status`): every counter taken, and a
// bad or missing field changes nothing else.
#include "audio_state.h"

#include <gtest/gtest.h>

namespace atl::dom0 {
namespace {

using nlohmann::json;

// As hypervisor/src/vmm/run.cpp writes it.
json full_status() {
    return json::parse(R"({"backend": "pulse", "connected": true, "underruns": 3, "overruns": 5,
        "dropped_frames": 4800, "capture_gaps": 7,
        "playback": {"volume_percent": 40, "muted": true},
        "capture": {"volume_percent": 90, "muted": false}})");
}

TEST(AudioStateTest, TakesEveryField) {
    const auto state = audio_state_from(full_status());
    ASSERT_TRUE(state);
    EXPECT_TRUE(state->connected);
    EXPECT_EQ(state->underruns, 3u);
    EXPECT_EQ(state->overruns, 5u);
    EXPECT_EQ(state->dropped_frames, 4800u);
    EXPECT_EQ(state->capture_gaps, 7u);
    EXPECT_EQ(state->volume_percent, 40u);
    EXPECT_TRUE(state->muted);
}

TEST(AudioStateTest, NoObjectMeansNoSound) {
    EXPECT_FALSE(audio_state_from(json(nullptr)));
    EXPECT_FALSE(audio_state_from(json("pulse")));
    EXPECT_FALSE(audio_state_from(json::array({1, 2})));
}

TEST(AudioStateTest, CountersUpToTheLargestUnsigned64) {
    auto status = full_status();
    status["capture_gaps"] = UINT64_MAX;
    EXPECT_EQ(audio_state_from(status)->capture_gaps, UINT64_MAX);
}

TEST(AudioStateTest, MissingFieldsTakeDefaultsWithoutAnEarlierState) {
    const auto state = audio_state_from(json::object({{"connected", true}}));
    ASSERT_TRUE(state);
    AudioState expected;
    expected.connected = true;
    EXPECT_EQ(*state, expected);
}

// Each bad value for each counter: that counter keeps what it was, all the
// other fields of the same object are still taken.
TEST(AudioStateTest, ABadCounterKeepsItsValueAndChangesNothingElse) {
    AudioState before;
    before.underruns = 1;
    before.overruns = 2;
    before.dropped_frames = 3;
    before.capture_gaps = 4;
    const json bad_values[] = {json(-1),   json(2.5),         json("12"), json(nullptr),
                               json(true), json::array({1}), json::object(), json(1e30)};
    for (const char* key : {"underruns", "overruns", "dropped_frames", "capture_gaps"}) {
        for (const auto& bad : bad_values) {
            SCOPED_TRACE(std::string(key) + " = " + bad.dump());
            auto status = full_status();
            status[key] = bad;
            const auto state = audio_state_from(status, before);
            ASSERT_TRUE(state);
            AudioState expected = *audio_state_from(full_status());
            if (std::string(key) == "underruns") expected.underruns = before.underruns;
            if (std::string(key) == "overruns") expected.overruns = before.overruns;
            if (std::string(key) == "dropped_frames") expected.dropped_frames = before.dropped_frames;
            if (std::string(key) == "capture_gaps") expected.capture_gaps = before.capture_gaps;
            EXPECT_EQ(*state, expected);

            status.erase(key);
            EXPECT_EQ(*audio_state_from(status, before), expected) << "missing";
        }
    }
}

TEST(AudioStateTest, BadPlaybackFieldsKeepTheirValues) {
    AudioState before;
    before.volume_percent = 70;
    before.muted = true;
    auto status = full_status();
    status["playback"] = {{"volume_percent", -5}, {"muted", "no"}};
    status["connected"] = 1;
    auto state = audio_state_from(status, before);
    ASSERT_TRUE(state);
    EXPECT_EQ(state->volume_percent, 70u);
    EXPECT_TRUE(state->muted);
    EXPECT_FALSE(state->connected);
    EXPECT_EQ(state->dropped_frames, 4800u);

    status["playback"] = "loud";
    EXPECT_EQ(audio_state_from(status, before)->volume_percent, 70u);
    // Past 150 (and past 2^32, which must not wrap to a small number): 150.
    status["playback"] = {{"volume_percent", 4294967346ull}};
    EXPECT_EQ(audio_state_from(status, before)->volume_percent, 150u);
}

TEST(AudioStateTest, NewsOnlyForTroubleCountersThatGrew) {
    AudioState before;
    before.underruns = 2;
    before.overruns = 1;
    before.dropped_frames = 100;
    before.capture_gaps = 3;
    EXPECT_TRUE(audio_trouble_news(before, before).empty());

    AudioState now = before;
    now.volume_percent = 20;
    now.overruns = 9;  // the guest's own doing: counted, not logged
    EXPECT_TRUE(audio_trouble_news(before, now).empty());

    now.dropped_frames = 4900;
    auto news = audio_trouble_news(before, now);
    ASSERT_EQ(news.size(), 1u);
    EXPECT_NE(news[0].find("4900 audio frames dropped"), std::string::npos) << news[0];

    now.capture_gaps = 5;
    now.underruns = 4;
    news = audio_trouble_news(before, now);
    ASSERT_EQ(news.size(), 3u);
    EXPECT_NE(news[0].find("4 audio underruns"), std::string::npos) << news[0];
    EXPECT_NE(news[2].find("5 audio capture gaps"), std::string::npos) << news[2];

    // A counter that went back (a new atoll-vmm) is no news.
    EXPECT_TRUE(audio_trouble_news(now, before).empty());
}

}  // namespace
}  // namespace atl::dom0

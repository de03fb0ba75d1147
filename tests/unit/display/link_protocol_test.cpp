#include "base64.h"
#include "link_protocol.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <sys/eventfd.h>

namespace atl::display::link {
namespace {

using nlohmann::json;

json valid_surface() {
    return {{"type", "surface"}, {"scanout", 0}, {"width", 640}, {"height", 480}, {"stride", 2560},
            {"format", "XRGB8888"}, {"offset", 0}, {"fds", 1}};
}

Result<VmmMessage> parse(const json& message) { return parse_vmm_message(message.dump()); }

testing::AssertionResult rejected(const json& message) {
    auto parsed = parse(message);
    if (parsed) return testing::AssertionFailure() << message.dump() << " was accepted";
    return testing::AssertionSuccess() << parsed.error().message;
}

TEST(LinkProtocolTest, ParsesHello) {
    auto parsed = parse({{"type", "hello"}, {"protocol", 1}, {"vm_name", "web-1"}, {"vm_uuid", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"},
                         {"scanouts", 2}});
    ASSERT_TRUE(parsed) << parsed.error().message;
    const auto& hello = std::get<Hello>(*parsed);
    EXPECT_EQ(hello.vm_name, "web-1");
    EXPECT_EQ(hello.vm_uuid, "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    EXPECT_EQ(hello.scanouts, 2u);
}

TEST(LinkProtocolTest, RejectsBadHellos) {
    const json good = {{"type", "hello"}, {"protocol", 1}, {"vm_name", "web"}, {"vm_uuid", ""}, {"scanouts", 1}};
    ASSERT_TRUE(parse(good));
    auto with = [&](const char* key, json value) {
        json changed = good;
        changed[key] = std::move(value);
        return changed;
    };
    EXPECT_TRUE(rejected(with("protocol", 2)));
    EXPECT_TRUE(rejected(with("protocol", "1")));
    EXPECT_TRUE(rejected(with("vm_name", "")));
    EXPECT_TRUE(rejected(with("vm_name", "../etc")));
    EXPECT_TRUE(rejected(with("vm_name", ".hidden")));
    EXPECT_TRUE(rejected(with("vm_name", "a/b")));
    EXPECT_TRUE(rejected(with("vm_name", std::string(65, 'a'))));
    EXPECT_TRUE(rejected(with("vm_name", 7)));
    EXPECT_TRUE(rejected(with("vm_uuid", "not a uuid")));
    EXPECT_TRUE(parse(with("scanouts", 0)));  // input devices, no display adapter
    EXPECT_TRUE(rejected(with("scanouts", 17)));
    EXPECT_TRUE(rejected(with("scanouts", 1.5)));
    EXPECT_TRUE(rejected(with("fds", 1)));
    json missing = good;
    missing.erase("scanouts");
    EXPECT_TRUE(rejected(missing));
}

TEST(LinkProtocolTest, ParsesSurface) {
    auto parsed = parse(valid_surface());
    ASSERT_TRUE(parsed) << parsed.error().message;
    const auto& surface = std::get<Surface>(*parsed);
    EXPECT_EQ(surface.width, 640u);
    EXPECT_EQ(surface.height, 480u);
    EXPECT_EQ(surface.stride, 2560u);
    EXPECT_EQ(surface.offset, 0u);
    EXPECT_EQ(fds_required(*parsed), 1u);
}

TEST(LinkProtocolTest, RejectsSurfacesOutOfRange) {
    auto with = [](const char* key, json value) {
        json changed = valid_surface();
        changed[key] = std::move(value);
        return changed;
    };
    EXPECT_TRUE(rejected(with("width", 0)));
    EXPECT_TRUE(rejected(with("width", 16385)));
    EXPECT_TRUE(rejected(with("height", -1)));
    EXPECT_TRUE(rejected(with("stride", 2556)));           // < width * 4
    EXPECT_TRUE(rejected(with("stride", 2562)));           // not a multiple of 4
    EXPECT_TRUE(rejected(with("offset", 2)));              // not a multiple of 4
    EXPECT_TRUE(rejected(with("offset", (1ll << 40) + 4)));
    EXPECT_TRUE(rejected(with("offset", 18446744073709551615ull)));
    EXPECT_TRUE(rejected(with("format", "ARGB8888")));
    EXPECT_TRUE(rejected(with("scanout", 16)));
    EXPECT_TRUE(rejected(with("fds", 0)));                 // a surface carries its memfd
    EXPECT_TRUE(rejected(with("fds", 2)));
    json no_fds = valid_surface();
    no_fds.erase("fds");
    EXPECT_TRUE(rejected(no_fds));
    // 16384 x 16384 x 4 is exactly 1 GiB; a wider stride is more.
    json huge = with("width", 16384);
    huge["height"] = 16384;
    huge["stride"] = 65536;
    EXPECT_TRUE(parse(huge));
    huge["stride"] = 65540;
    EXPECT_TRUE(rejected(huge));
}

TEST(LinkProtocolTest, ParsesDamageAndChecksRectangles) {
    auto parsed = parse({{"type", "damage"}, {"scanout", 0}, {"rects", {{0, 0, 10, 10}, {5, 6, 7, 8}}}});
    ASSERT_TRUE(parsed) << parsed.error().message;
    const auto& damage = std::get<Damage>(*parsed);
    ASSERT_EQ(damage.rects.size(), 2u);
    EXPECT_EQ(damage.rects[1], (Rect{5, 6, 7, 8}));

    EXPECT_TRUE(rejected({{"type", "damage"}, {"scanout", 0}, {"rects", {{0, 0, 10}}}}));
    EXPECT_TRUE(rejected({{"type", "damage"}, {"scanout", 0}, {"rects", {{-1, 0, 10, 10}}}}));
    EXPECT_TRUE(rejected({{"type", "damage"}, {"scanout", 0}, {"rects", {{16000, 0, 1000, 10}}}}));
    EXPECT_TRUE(rejected({{"type", "damage"}, {"scanout", 0}, {"rects", {{0, 0, 1.5, 10}}}}));
    EXPECT_TRUE(rejected({{"type", "damage"}, {"scanout", 0}, {"rects", "everything"}}));
    EXPECT_TRUE(rejected({{"type", "damage"}, {"scanout", 0}}));
    json many = {{"type", "damage"}, {"scanout", 0}, {"rects", json::array()}};
    for (int i = 0; i < 4097; ++i) many["rects"].push_back({0, 0, 1, 1});
    EXPECT_TRUE(rejected(many));
}

TEST(LinkProtocolTest, ParsesCursorWithAndWithoutShape) {
    auto moved = parse({{"type", "cursor"}, {"scanout", 0}, {"x", -3}, {"y", 40}, {"visible", true}});
    ASSERT_TRUE(moved) << moved.error().message;
    EXPECT_FALSE(std::get<Cursor>(*moved).shape);
    EXPECT_EQ(std::get<Cursor>(*moved).x, -3);

    const uint8_t pixels[2 * 1 * 4] = {0x10, 0x20, 0x30, 0xff, 0x01, 0x02, 0x03, 0x00};
    json shaped = {{"type", "cursor"}, {"scanout", 0}, {"x", 1}, {"y", 2}, {"visible", true}, {"hot_x", 1},
                   {"hot_y", 0}, {"width", 2}, {"height", 1}, {"pixels", encode_base64(pixels, sizeof pixels)}};
    auto parsed = parse(shaped);
    ASSERT_TRUE(parsed) << parsed.error().message;
    const auto& shape = *std::get<Cursor>(*parsed).shape;
    ASSERT_EQ(shape.pixels.size(), 2u);
    EXPECT_EQ(shape.pixels[0], 0xff302010u);  // little-endian ARGB8888
    EXPECT_EQ(shape.pixels[1], 0x00030201u);

    auto with = [&](const char* key, json value) {
        json changed = shaped;
        changed[key] = std::move(value);
        return changed;
    };
    EXPECT_TRUE(rejected(with("width", 65)));
    EXPECT_TRUE(rejected(with("hot_x", 2)));                           // outside the cursor
    EXPECT_TRUE(rejected(with("pixels", "AAAA")));                     // wrong size
    EXPECT_TRUE(rejected(with("pixels", "!!!!!!!!!!!=")));             // not base64
    EXPECT_TRUE(rejected(with("visible", 1)));
    EXPECT_TRUE(parse(with("x", -16384)));  // off-screen, within the protocol's range
    EXPECT_TRUE(parse(with("y", 32768)));
    EXPECT_TRUE(rejected(with("x", -16385)));
    EXPECT_TRUE(rejected(with("y", 32769)));
    json partial = shaped;
    partial.erase("pixels");
    EXPECT_TRUE(rejected(partial));
}

TEST(LinkProtocolTest, RejectsWhatIsNotAMessage) {
    EXPECT_FALSE(parse_vmm_message(""));
    EXPECT_FALSE(parse_vmm_message("{"));
    EXPECT_FALSE(parse_vmm_message("[]"));
    EXPECT_FALSE(parse_vmm_message("42"));
    EXPECT_FALSE(parse_vmm_message("{\"type\": 3}"));
    EXPECT_FALSE(parse_vmm_message("{\"type\": \"reboot\"}"));
    EXPECT_FALSE(parse_vmm_message("{\"type\": \"disable\", \"scanout\": 0} trailing"));
    EXPECT_FALSE(parse_vmm_message("{\"type\": \"disable\", \"scanout\": \"\xff\xfe\"}"));  // not UTF-8
    std::string deep = "{\"type\":\"disable\",\"scanout\":0,\"x\":";
    for (int i = 0; i < 10000; ++i) deep += '[';
    EXPECT_FALSE(parse_vmm_message(deep));
    EXPECT_TRUE(parse_vmm_message("{\"type\": \"disable\", \"scanout\": 0, \"future_field\": [1, 2]}"));
}

TEST(LinkProtocolTest, RefusesNestingPastTheLimitBeforeParsing) {
    // The message object itself is the first level.
    auto nested = [](size_t depth) {
        return "{\"type\":\"disable\",\"scanout\":0,\"x\":" + std::string(depth - 1, '[') +
               std::string(depth - 1, ']') + "}";
    };
    EXPECT_TRUE(parse_vmm_message(nested(kMaxJsonDepth)));
    auto refused = parse_vmm_message(nested(kMaxJsonDepth + 1));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message, "JSON nested too deeply");
    // Brackets inside strings do not count.
    EXPECT_TRUE(parse_vmm_message("{\"type\":\"disable\",\"scanout\":0,\"x\":\"" + std::string(100, '[') + "\"}"));
}

TEST(LinkProtocolTest, EncodesOutgoingMessages) {
    const std::string key = encode_key(30, true);
    ASSERT_GE(key.size(), 4u);
    const uint32_t length = uint8_t(key[0]) | uint8_t(key[1]) << 8 | uint8_t(key[2]) << 16 | uint8_t(key[3]) << 24;
    EXPECT_EQ(length, key.size() - 4);
    const json body = json::parse(key.substr(4));
    EXPECT_EQ(body, (json{{"type", "key"}, {"code", 30}, {"pressed", true}}));
    EXPECT_EQ(json::parse(encode_resize(0, 1024, 768).substr(4)),
              (json{{"type", "resize"}, {"scanout", 0}, {"width", 1024}, {"height", 768}}));
    EXPECT_EQ(json::parse(encode_pointer(32767, 0, 5).substr(4)),
              (json{{"type", "pointer"}, {"x", 32767}, {"y", 0}, {"buttons", 5}}));
    EXPECT_EQ(json::parse(encode_wheel(-1).substr(4)), (json{{"type", "wheel"}, {"dy", -1}}));
    EXPECT_EQ(json::parse(encode_welcome().substr(4)), (json{{"type", "welcome"}, {"protocol", 1}}));
}

TEST(FrameReaderTest, SplitsAStreamIntoFrames) {
    FrameReader reader;
    const std::string stream = frame("{\"a\":1}") + frame("{\"b\":2}");
    // Byte by byte: frames appear only when complete.
    std::vector<std::string> bodies;
    for (char c : stream) {
        ASSERT_TRUE(reader.feed(std::string_view(&c, 1), {}));
        for (;;) {
            auto next = reader.next();
            ASSERT_TRUE(next);
            if (!*next) break;
            bodies.push_back((*next)->body);
        }
    }
    ASSERT_EQ(bodies.size(), 2u);
    EXPECT_EQ(bodies[0], "{\"a\":1}");
    EXPECT_EQ(bodies[1], "{\"b\":2}");
}

TEST(FrameReaderTest, RejectsBadLengths) {
    FrameReader zero;
    ASSERT_TRUE(zero.feed(std::string("\0\0\0\0", 4), {}));
    EXPECT_FALSE(zero.next());
    FrameReader huge;
    ASSERT_TRUE(huge.feed(std::string("\x01\x00\x01\x00", 4), {}));  // 65537
    EXPECT_FALSE(huge.next());
    FrameReader largest;
    ASSERT_TRUE(largest.feed(std::string("\x00\x00\x01\x00", 4), {}));  // 65536: allowed, incomplete
    auto next = largest.next();
    ASSERT_TRUE(next);
    EXPECT_FALSE(*next);
}

TEST(FrameReaderTest, QueuesDescriptorsAndTellsWhetherMoreBytesFollow) {
    FrameReader reader;
    const int a = eventfd(0, EFD_CLOEXEC), b = eventfd(0, EFD_CLOEXEC);
    ASSERT_TRUE(reader.feed(frame("{}") + frame("{}").substr(0, 2), {a}));
    auto first = reader.next();
    ASSERT_TRUE(first && *first);
    EXPECT_FALSE((*first)->nothing_after);  // part of a second frame is here
    EXPECT_EQ(reader.queued_fds(), 1u);
    auto taken = reader.take_fds(1);
    ASSERT_TRUE(taken);
    EXPECT_EQ((*taken)[0], a);
    close(a);
    EXPECT_FALSE(reader.take_fds(1));  // none left
    ASSERT_TRUE(reader.feed(frame("{}").substr(2), {b}));
    auto second = reader.next();
    ASSERT_TRUE(second && *second);
    EXPECT_TRUE((*second)->nothing_after);
    EXPECT_EQ(reader.queued_fds(), 1u);  // closed by the reader's destructor
}

TEST(FrameReaderTest, RefusesTooManyQueuedDescriptors) {
    FrameReader reader;
    std::vector<int> fds;
    for (size_t i = 0; i <= FrameReader::kMaxQueuedFds; ++i) fds.push_back(eventfd(0, EFD_CLOEXEC));
    EXPECT_FALSE(reader.feed("", fds));
}

TEST(Base64Test, DecodesCanonicalTextOnly) {
    EXPECT_EQ(*decode_base64(""), std::vector<uint8_t>{});
    EXPECT_EQ(*decode_base64("Zg=="), (std::vector<uint8_t>{'f'}));
    EXPECT_EQ(*decode_base64("Zm8="), (std::vector<uint8_t>{'f', 'o'}));
    EXPECT_EQ(*decode_base64("Zm9v"), (std::vector<uint8_t>{'f', 'o', 'o'}));
    EXPECT_FALSE(decode_base64("Zg="));     // length
    EXPECT_FALSE(decode_base64("Zh=="));    // non-zero padding bits
    EXPECT_FALSE(decode_base64("Z==="));    // too much padding
    EXPECT_FALSE(decode_base64("Zg==Zg==")); // padding in the middle
    EXPECT_FALSE(decode_base64("Zm9 "));    // whitespace
    const uint8_t bytes[] = {0, 1, 2, 253, 254, 255, 7};
    EXPECT_EQ(*decode_base64(encode_base64(bytes, sizeof bytes)), std::vector<uint8_t>(bytes, bytes + sizeof bytes));
}

}  // namespace
}  // namespace atl::display::link

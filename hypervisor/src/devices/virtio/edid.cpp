#include "devices/virtio/edid.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace atl::vmm::virtio {
namespace {

// Byte offsets in the base block (VESA E-EDID 1.4, section 3).
constexpr size_t kManufacturerOffset = 8;
constexpr size_t kProductCodeOffset = 10;
constexpr size_t kSerialOffset = 12;
constexpr size_t kWeekOffset = 16;
constexpr size_t kVersionOffset = 18;
constexpr size_t kVideoInputOffset = 20;
constexpr size_t kScreenSizeOffset = 21;
constexpr size_t kGammaOffset = 23;
constexpr size_t kFeatureOffset = 24;
constexpr size_t kChromaticityOffset = 25;
constexpr size_t kEstablishedTimingsOffset = 35;
constexpr size_t kStandardTimingsOffset = 38;
constexpr size_t kDescriptorOffset = 54;
constexpr size_t kDescriptorBytes = 18;
constexpr size_t kExtensionCountOffset = 126;
constexpr size_t kChecksumOffset = 127;

constexpr uint32_t kMaxDescriptorActive = 4095;             // 12-bit fields
constexpr uint64_t kMaxPixelClockHz = 65535ull * 10'000;    // 16 bits of 10 kHz
constexpr uint32_t kAssumedDpi = 96;

// Reduced blanking in the spirit of VESA CVT-RB: a fixed horizontal blank and a
// vertical blank of at least 460 us.
constexpr uint32_t kHorizontalFrontPorch = 48;
constexpr uint32_t kHorizontalSync = 32;
constexpr uint32_t kHorizontalBlank = 160;
constexpr uint32_t kVerticalFrontPorch = 3;
constexpr uint32_t kVerticalSync = 6;
constexpr uint32_t kMinVerticalBlank = 15;  // front porch + sync + a back porch of 6
constexpr uint32_t kMinVerticalBlankMicroseconds = 460;

// Three letters A-Z packed five bits each, big-endian (section 3.4.1).
void put_manufacturer(uint8_t* out, const char (&id)[4]) {
    const uint16_t packed = static_cast<uint16_t>(((id[0] - 'A' + 1) << 10) | ((id[1] - 'A' + 1) << 5) | (id[2] - 'A' + 1));
    out[0] = static_cast<uint8_t>(packed >> 8);
    out[1] = static_cast<uint8_t>(packed);
}

// sRGB primaries and D65 white point as 10-bit binary fractions (section 3.7).
void put_srgb_chromaticity(uint8_t* out) {
    auto fraction = [](double value) { return static_cast<uint16_t>(value * 1024 + 0.5); };
    const uint16_t red_x = fraction(0.640), red_y = fraction(0.330);
    const uint16_t green_x = fraction(0.300), green_y = fraction(0.600);
    const uint16_t blue_x = fraction(0.150), blue_y = fraction(0.060);
    const uint16_t white_x = fraction(0.3127), white_y = fraction(0.3290);
    auto low = [](uint16_t value, int shift) { return static_cast<uint8_t>((value & 3) << shift); };
    out[0] = low(red_x, 6) | low(red_y, 4) | low(green_x, 2) | low(green_y, 0);
    out[1] = low(blue_x, 6) | low(blue_y, 4) | low(white_x, 2) | low(white_y, 0);
    const uint16_t high[] = {red_x, red_y, green_x, green_y, blue_x, blue_y, white_x, white_y};
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<uint8_t>(high[i] >> 2);
}

uint32_t millimetres(uint32_t pixels) { return (pixels * 254 + kAssumedDpi * 5) / (kAssumedDpi * 10); }

// Section 3.10.2: an 18-byte detailed timing descriptor.
void put_detailed_timing(uint8_t* out, uint32_t width, uint32_t height, uint32_t refresh_hz) {
    if (width > kMaxDescriptorActive || height > kMaxDescriptorActive) {
        const uint32_t longest = std::max(width, height);
        width = std::max<uint32_t>(1, static_cast<uint32_t>(uint64_t{width} * kMaxDescriptorActive / longest));
        height = std::max<uint32_t>(1, static_cast<uint32_t>(uint64_t{height} * kMaxDescriptorActive / longest));
    }
    refresh_hz = std::clamp<uint32_t>(refresh_hz, 1, 240);
    // Vertical blank b lines: b * line_time >= 460 us with line_time = 1 / (refresh * (height + b)).
    const uint64_t numerator = uint64_t{kMinVerticalBlankMicroseconds} * refresh_hz * height;
    const uint64_t denominator = 1'000'000 - uint64_t{kMinVerticalBlankMicroseconds} * refresh_hz;
    const uint32_t vertical_blank =
        std::max<uint32_t>(kMinVerticalBlank, static_cast<uint32_t>((numerator + denominator - 1) / denominator));
    const uint64_t horizontal_total = width + kHorizontalBlank;
    const uint64_t vertical_total = height + vertical_blank;
    uint64_t clock_hz = horizontal_total * vertical_total * refresh_hz;
    if (clock_hz > kMaxPixelClockHz) clock_hz = horizontal_total * vertical_total * (kMaxPixelClockHz / (horizontal_total * vertical_total));
    const uint16_t clock_10khz = static_cast<uint16_t>(std::max<uint64_t>(1, (clock_hz + 9'999) / 10'000));

    const uint32_t width_mm = std::min<uint32_t>(millimetres(width), 4095);
    const uint32_t height_mm = std::min<uint32_t>(millimetres(height), 4095);
    out[0] = static_cast<uint8_t>(clock_10khz);
    out[1] = static_cast<uint8_t>(clock_10khz >> 8);
    out[2] = static_cast<uint8_t>(width);
    out[3] = static_cast<uint8_t>(kHorizontalBlank);
    out[4] = static_cast<uint8_t>(((width >> 8) << 4) | (kHorizontalBlank >> 8));
    out[5] = static_cast<uint8_t>(height);
    out[6] = static_cast<uint8_t>(vertical_blank);
    out[7] = static_cast<uint8_t>(((height >> 8) << 4) | ((vertical_blank >> 8) & 0xf));
    out[8] = static_cast<uint8_t>(kHorizontalFrontPorch);
    out[9] = static_cast<uint8_t>(kHorizontalSync);
    out[10] = static_cast<uint8_t>((kVerticalFrontPorch << 4) | kVerticalSync);
    out[11] = static_cast<uint8_t>(((kHorizontalFrontPorch >> 8) << 6) | ((kHorizontalSync >> 8) << 4) |
                                   ((kVerticalFrontPorch >> 4) << 2) | (kVerticalSync >> 4));
    out[12] = static_cast<uint8_t>(width_mm);
    out[13] = static_cast<uint8_t>(height_mm);
    out[14] = static_cast<uint8_t>(((width_mm >> 8) << 4) | (height_mm >> 8));
    out[15] = 0;  // no borders
    out[16] = 0;
    // Digital separate sync, +hsync -vsync (as CVT reduced blanking uses).
    out[17] = 0x18 | 0x02;
}

// Section 3.10.3: a display descriptor holding up to 13 characters of text.
void put_text_descriptor(uint8_t* out, uint8_t tag, const char* text) {
    std::memset(out, 0, kDescriptorBytes);
    out[3] = tag;
    const size_t length = std::min<size_t>(std::strlen(text), 13);
    std::memcpy(out + 5, text, length);
    if (length < 13) {
        out[5 + length] = 0x0a;
        std::memset(out + 6 + length, 0x20, 13 - length - 1);
    }
}

}  // namespace

std::array<uint8_t, kEdidBlockBytes> build_edid(const EdidSpec& spec) {
    std::array<uint8_t, kEdidBlockBytes> edid{};
    const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    std::memcpy(edid.data(), header, sizeof header);
    put_manufacturer(&edid[kManufacturerOffset], "ATL");
    edid[kProductCodeOffset] = static_cast<uint8_t>(spec.product_code);
    edid[kProductCodeOffset + 1] = static_cast<uint8_t>(spec.product_code >> 8);
    for (int i = 0; i < 4; ++i) edid[kSerialOffset + i] = static_cast<uint8_t>(spec.serial_number >> (8 * i));
    edid[kWeekOffset] = 1;
    edid[kWeekOffset + 1] = 2025 - 1990;
    edid[kVersionOffset] = 1;
    edid[kVersionOffset + 1] = 4;
    // Digital input, 8 bits per primary, interface not defined (section 3.6.1).
    edid[kVideoInputOffset] = 0x80 | (2 << 4);
    const uint32_t width_cm = std::clamp<uint32_t>((millimetres(spec.width) + 5) / 10, 1, 255);
    const uint32_t height_cm = std::clamp<uint32_t>((millimetres(spec.height) + 5) / 10, 1, 255);
    edid[kScreenSizeOffset] = static_cast<uint8_t>(width_cm);
    edid[kScreenSizeOffset + 1] = static_cast<uint8_t>(height_cm);
    edid[kGammaOffset] = 220 - 100;  // gamma 2.2
    // RGB 4:4:4, sRGB is the default colour space, the preferred timing is native.
    edid[kFeatureOffset] = 0x04 | 0x02;
    put_srgb_chromaticity(&edid[kChromaticityOffset]);
    // 640x480@60, 800x600@60, 1024x768@60 (section 3.8).
    edid[kEstablishedTimingsOffset] = 0x20 | 0x01;
    edid[kEstablishedTimingsOffset + 1] = 0x08;
    edid[kEstablishedTimingsOffset + 2] = 0x00;
    for (size_t i = 0; i < 8; ++i) {
        edid[kStandardTimingsOffset + 2 * i] = 0x01;  // unused (section 3.9)
        edid[kStandardTimingsOffset + 2 * i + 1] = 0x01;
    }
    put_detailed_timing(&edid[kDescriptorOffset], spec.width, spec.height, spec.refresh_hz);
    put_text_descriptor(&edid[kDescriptorOffset + kDescriptorBytes], 0xfc, "Atoll Display");
    const std::string serial = "ATOLL-" + std::to_string(spec.serial_number);
    put_text_descriptor(&edid[kDescriptorOffset + 2 * kDescriptorBytes], 0xff, serial.c_str());
    // Dummy descriptor (tag 0x10) in the last slot.
    std::memset(&edid[kDescriptorOffset + 3 * kDescriptorBytes], 0, kDescriptorBytes);
    edid[kDescriptorOffset + 3 * kDescriptorBytes + 3] = 0x10;
    edid[kExtensionCountOffset] = 0;
    uint8_t sum = 0;
    for (size_t i = 0; i < kChecksumOffset; ++i) sum = static_cast<uint8_t>(sum + edid[i]);
    edid[kChecksumOffset] = static_cast<uint8_t>(0x100 - sum);
    return edid;
}

}  // namespace atl::vmm::virtio

// A VESA EDID 1.4 base block (128 bytes, no extensions) describing a virtual
// monitor whose preferred mode is the scanout's size: what virtio-gpu's
// VIRTIO_GPU_CMD_GET_EDID returns (virtio 1.2 section 5.7.6.8).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace atl::vmm::virtio {

constexpr size_t kEdidBlockBytes = 128;

struct EdidSpec {
    uint32_t width = 1280;   // preferred mode, in pixels
    uint32_t height = 800;
    uint32_t refresh_hz = 60;
    uint16_t product_code = 1;
    uint32_t serial_number = 0;
};

// The detailed timing descriptor can describe at most 4095x4095; a larger
// preferred size is scaled down (same aspect) there, and refresh is lowered
// until the pixel clock fits the descriptor's 655.35 MHz. The guest's virtio-gpu
// driver takes the preferred size from GET_DISPLAY_INFO anyway.
std::array<uint8_t, kEdidBlockBytes> build_edid(const EdidSpec& spec);

}  // namespace atl::vmm::virtio

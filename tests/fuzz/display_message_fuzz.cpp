// libFuzzer target: what a hostile VMM feeds atoll-display over its display
// link. The input is the byte stream of the link, cut into reads of a size
// the input chooses; it goes through the framing, the message parser and a
// VM's display state, as in the server. A surface message gets a sealed
// 64 KiB memfd, so the fuzzer reaches the mapping checks with its own sizes,
// and a sink reads every pixel of every damage rectangle it is told about
// (outside the mapping, that read faults).
//
// Input: [read size seed] then the stream (4-byte little-endian length, JSON).
#include "link_protocol.h"
#include "surface.h"
#include "vm_display.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace {

using namespace atl::display;

constexpr size_t kMemfdBytes = 64 * 1024;

int sealed_memfd() {
    static const int fd = [] {
        const int created = memfd_create("display-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (created < 0 || ftruncate(created, kMemfdBytes) != 0) abort();
        fcntl(created, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
        return created;
    }();
    return fd;
}

class NoInput final : public InputSink {
public:
    void key(uint16_t, bool) override {}
    void pointer(uint32_t, uint32_t, uint32_t) override {}
    void wheel(int32_t) override {}
    void motion(int32_t, int32_t, uint32_t) override {}
    void resize(uint32_t, uint32_t, uint32_t) override {}
};

// Touches what a VNC encoder would read.
class ReadingSink final : public DisplaySink {
public:
    void surface_changed(uint32_t scanout, const std::shared_ptr<SurfaceMapping>& surface) override {
        if (scanout < surfaces_.size()) surfaces_[scanout] = surface;
    }
    void damaged(uint32_t scanout, const std::vector<link::Rect>& rects) override {
        if (scanout >= surfaces_.size() || !surfaces_[scanout]) return;
        const SurfaceMapping& surface = *surfaces_[scanout];
        volatile uint8_t sink = 0;
        for (const auto& rect : rects)
            for (uint32_t y = rect.y; y < rect.y + rect.height; ++y)
                for (uint32_t x = rect.x; x < rect.x + rect.width; ++x)
                    sink = sink ^ surface.pixels()[uint64_t{y} * surface.stride() + uint64_t{x} * 4];
    }
    void cursor_changed(uint32_t, const CursorState& cursor, bool) override {
        if (!cursor.image) return;
        volatile uint32_t sink = 0;
        for (uint32_t pixel : cursor.image->argb) sink = sink ^ pixel;
    }

private:
    std::array<std::shared_ptr<SurfaceMapping>, link::kMaxScanouts> surfaces_;
};

// One link: false once the server would drop it.
bool handle(std::unique_ptr<VmDisplay>& vm, ReadingSink& sink, const link::VmmMessage& message) {
    if (const auto* hello = std::get_if<link::Hello>(&message)) {
        if (vm) return false;
        vm = std::make_unique<VmDisplay>(*hello, std::make_shared<NoInput>());
        vm->add_sink(&sink);
        return true;
    }
    if (!vm) return false;
    if (const auto* surface = std::get_if<link::Surface>(&message))
        return static_cast<bool>(vm->apply_surface(*surface, dup(sealed_memfd())));
    if (const auto* disable = std::get_if<link::Disable>(&message)) return static_cast<bool>(vm->apply(*disable));
    if (const auto* damage = std::get_if<link::Damage>(&message)) return static_cast<bool>(vm->apply(*damage));
    if (const auto* cursor = std::get_if<link::Cursor>(&message)) return static_cast<bool>(vm->apply(*cursor));
    if (const auto* modes = std::get_if<link::Modes>(&message)) return static_cast<bool>(vm->apply(*modes));
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const size_t read_size = data[0] % 64 + 1;
    const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);

    link::FrameReader reader;
    ReadingSink sink;
    std::unique_ptr<VmDisplay> vm;
    for (size_t at = 0; at < stream.size(); at += read_size) {
        if (!reader.feed(stream.substr(at, read_size), {})) return 0;
        for (;;) {
            auto frame = reader.next();
            if (!frame) return 0;  // a bad length word
            if (!*frame) break;
            auto message = link::parse_vmm_message((*frame)->body);
            if (!message) return 0;
            // The stream carries no descriptors except the surface's, which
            // the harness supplies itself.
            if (!handle(vm, sink, *message)) return 0;
        }
    }
    if (vm) vm->remove_sink(&sink);
    return 0;
}

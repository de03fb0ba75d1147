// A scanout surface a VMM shared: its memfd, mapped read-only.
//
// A mapping of a file that shrinks afterwards raises SIGBUS on access, and the
// server reads these mappings from every VNC thread. So a surface is accepted
// only from a memfd sealed against shrinking (F_SEAL_SHRINK): once sealed, the
// size checked with fstat stays true for the life of the mapping, whatever the
// VMM does next (display-protocol.md, "Surface memory").
#pragma once

#include "link_protocol.h"

#include <atoll/result.h>

#include <cstdint>
#include <memory>

namespace atl::display {

class SurfaceMapping {
public:
    // Validates `fd` against `description` and maps it. Takes ownership of
    // `fd` (closed on failure too).
    static Result<std::shared_ptr<SurfaceMapping>> map(int fd, const link::Surface& description);
    ~SurfaceMapping();
    SurfaceMapping(const SurfaceMapping&) = delete;
    SurfaceMapping& operator=(const SurfaceMapping&) = delete;

    const link::Surface& description() const { return description_; }
    uint32_t width() const { return description_.width; }
    uint32_t height() const { return description_.height; }
    uint32_t stride() const { return description_.stride; }
    // The first pixel (the mapping starts at description().offset).
    const uint8_t* pixels() const { return pixels_; }
    // A read-only descriptor of the same memory for local viewers (opened
    // anew, so a viewer can neither write, resize nor re-seal the VMM's file);
    // pixels start at description().offset in it. Owned by the mapping.
    int read_only_fd() const { return read_only_fd_; }
    // Increases with every surface the server accepts (any VM).
    uint64_t serial() const { return serial_; }

private:
    SurfaceMapping() = default;
    link::Surface description_;
    void* mapping_ = nullptr;
    size_t mapping_bytes_ = 0;
    const uint8_t* pixels_ = nullptr;
    int read_only_fd_ = -1;
    uint64_t serial_ = 0;
};

}  // namespace atl::display

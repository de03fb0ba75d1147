#include "surface.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

namespace atl::display {

namespace {

std::atomic<uint64_t> next_serial{1};

struct FdCloser {
    int fd;
    ~FdCloser() {
        if (fd >= 0) close(fd);
    }
};

}  // namespace

Result<std::shared_ptr<SurfaceMapping>> SurfaceMapping::map(int fd, const link::Surface& description) {
    FdCloser owned{fd};
    // Not a memfd (F_GET_SEALS fails), or one that may still shrink: refused.
    const int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0) return make_error("surface: the descriptor is not a sealable memfd");
    if (!(seals & F_SEAL_SHRINK)) return make_error("surface: the memfd is not sealed with F_SEAL_SHRINK");

    struct stat status {};
    if (fstat(fd, &status) != 0) return make_error(std::string("surface: fstat: ") + strerror(errno));
    if (!S_ISREG(status.st_mode)) return make_error("surface: the descriptor is not a regular file");
    // Sizes are bounded by the parser (offset < 2^40, stride * height <= 1 GiB),
    // so the sum cannot overflow.
    const uint64_t bytes = uint64_t{description.stride} * description.height;
    const uint64_t end = description.offset + bytes;
    if (status.st_size < 0 || static_cast<uint64_t>(status.st_size) < end)
        return make_error("surface: memfd of " + std::to_string(status.st_size) +
                          " bytes, needs offset + stride * height = " + std::to_string(end));

    const long page_size = sysconf(_SC_PAGESIZE);
    const uint64_t map_offset = description.offset - description.offset % static_cast<uint64_t>(page_size);
    const size_t map_bytes = static_cast<size_t>(end - map_offset);
    void* mapping = mmap(nullptr, map_bytes, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(map_offset));
    if (mapping == MAP_FAILED) return make_error(std::string("surface: mmap: ") + strerror(errno));

    // A read-only descriptor of its own for viewers: reopening through /proc
    // gives a new open file description, O_RDONLY, that cannot be truncated
    // or sealed (F_ADD_SEALS needs write access).
    const std::string proc_path = "/proc/self/fd/" + std::to_string(fd);
    const int read_only = open(proc_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (read_only < 0) {
        const std::string why = strerror(errno);
        munmap(mapping, map_bytes);
        return make_error("surface: reopening the memfd read-only: " + why);
    }

    std::shared_ptr<SurfaceMapping> surface(new SurfaceMapping());
    surface->description_ = description;
    surface->mapping_ = mapping;
    surface->mapping_bytes_ = map_bytes;
    surface->pixels_ = static_cast<const uint8_t*>(mapping) + (description.offset - map_offset);
    surface->read_only_fd_ = read_only;
    surface->serial_ = next_serial.fetch_add(1);
    return surface;
}

SurfaceMapping::~SurfaceMapping() {
    if (mapping_) munmap(mapping_, mapping_bytes_);
    if (read_only_fd_ >= 0) close(read_only_fd_);
}

}  // namespace atl::display

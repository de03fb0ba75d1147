#include "surface.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace atl::display {
namespace {

// A memfd of `bytes` bytes whose pixel words are their own index.
int make_memfd(size_t bytes, int seals) {
    const int fd = memfd_create("surface-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(bytes)), 0);
    void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    auto* words = static_cast<uint32_t*>(map);
    for (size_t i = 0; i < bytes / 4; ++i) words[i] = static_cast<uint32_t>(i);
    munmap(map, bytes);
    if (seals) {
        EXPECT_EQ(fcntl(fd, F_ADD_SEALS, seals), 0);
    }
    return fd;
}

link::Surface description(uint32_t width, uint32_t height, uint32_t stride, uint64_t offset) {
    link::Surface surface;
    surface.width = width;
    surface.height = height;
    surface.stride = stride;
    surface.offset = offset;
    return surface;
}

TEST(SurfaceTest, MapsASealedMemfdReadOnly) {
    const int fd = make_memfd(64 * 48 * 4, F_SEAL_SHRINK | F_SEAL_GROW);
    const int kept = dup(fd);
    auto surface = SurfaceMapping::map(fd, description(64, 48, 256, 0));
    ASSERT_TRUE(surface) << surface.error().message;
    uint32_t word;
    memcpy(&word, (*surface)->pixels() + 256 * 2 + 4 * 3, 4);
    EXPECT_EQ(word, 64u * 2 + 3);
    // The VMM cannot shrink it under the mapping any more.
    EXPECT_NE(ftruncate(kept, 16), 0);
    close(kept);
}

TEST(SurfaceTest, HonoursAnOffsetThatIsNotPageAligned) {
    const uint64_t offset = 4096 + 64;
    const int fd = make_memfd(offset + 16 * 16 * 4, F_SEAL_SHRINK);
    auto surface = SurfaceMapping::map(fd, description(16, 16, 64, offset));
    ASSERT_TRUE(surface) << surface.error().message;
    uint32_t word;
    memcpy(&word, (*surface)->pixels(), 4);
    EXPECT_EQ(word, offset / 4);
}

TEST(SurfaceTest, RefusesAMemfdThatMayShrink) {
    const int fd = make_memfd(64 * 64 * 4, 0);
    auto surface = SurfaceMapping::map(fd, description(64, 64, 256, 0));
    ASSERT_FALSE(surface);
    EXPECT_NE(surface.error().message.find("F_SEAL_SHRINK"), std::string::npos);
}

TEST(SurfaceTest, RefusesSomethingThatIsNotAMemfd) {
    EXPECT_FALSE(SurfaceMapping::map(eventfd(0, EFD_CLOEXEC), description(1, 1, 4, 0)));
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    close(pipe_fds[1]);
    EXPECT_FALSE(SurfaceMapping::map(pipe_fds[0], description(1, 1, 4, 0)));
}

TEST(SurfaceTest, RefusesAMemfdSmallerThanTheSurface) {
    const int fd = make_memfd(64 * 64 * 4 - 4, F_SEAL_SHRINK);
    auto surface = SurfaceMapping::map(fd, description(64, 64, 256, 0));
    ASSERT_FALSE(surface);
    EXPECT_NE(surface.error().message.find("needs"), std::string::npos);
    // The offset counts too.
    EXPECT_FALSE(SurfaceMapping::map(make_memfd(64 * 64 * 4, F_SEAL_SHRINK), description(64, 64, 256, 4)));
}

TEST(SurfaceTest, GivesViewersADescriptorTheyCannotResizeOrWriteThrough) {
    auto surface = SurfaceMapping::map(make_memfd(4096, F_SEAL_SHRINK), description(32, 32, 128, 0));
    ASSERT_TRUE(surface) << surface.error().message;
    const int viewer = (*surface)->read_only_fd();
    EXPECT_EQ(fcntl(viewer, F_GETFL) & O_ACCMODE, O_RDONLY);
    EXPECT_NE(ftruncate(viewer, 1 << 20), 0);
    EXPECT_EQ(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, viewer, 0), MAP_FAILED);
    void* map = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, viewer, 0);
    ASSERT_NE(map, MAP_FAILED);
    EXPECT_EQ(static_cast<const uint32_t*>(map)[5], 5u);
    munmap(map, 4096);
}

TEST(SurfaceTest, EverySurfaceHasANewSerial) {
    auto a = SurfaceMapping::map(make_memfd(4096, F_SEAL_SHRINK), description(32, 32, 128, 0));
    auto b = SurfaceMapping::map(make_memfd(4096, F_SEAL_SHRINK), description(32, 32, 128, 0));
    ASSERT_TRUE(a && b);
    EXPECT_LT((*a)->serial(), (*b)->serial());
}

}  // namespace
}  // namespace atl::display

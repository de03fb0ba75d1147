#include "vm_display.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

namespace atl::display {
namespace {

class RecordingInput final : public InputSink {
public:
    void key(uint16_t, bool) override {}
    void pointer(uint32_t, uint32_t, uint32_t) override {}
    void wheel(int32_t) override {}
    void motion(int32_t, int32_t, uint32_t) override {}
    void resize(uint32_t, uint32_t, uint32_t) override {}
};

class RecordingSink final : public DisplaySink {
public:
    void surface_changed(uint32_t scanout, const std::shared_ptr<SurfaceMapping>& surface) override {
        surfaces.emplace_back(scanout, surface != nullptr);
    }
    void damaged(uint32_t, const std::vector<link::Rect>& rects) override { damage.push_back(rects); }
    void cursor_changed(uint32_t, const CursorState& cursor, bool shape_changed) override {
        cursors.emplace_back(cursor, shape_changed);
    }
    std::vector<std::pair<uint32_t, bool>> surfaces;
    std::vector<std::vector<link::Rect>> damage;
    std::vector<std::pair<CursorState, bool>> cursors;
};

int sealed_memfd(size_t bytes) {
    const int fd = memfd_create("vm-display-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(bytes)), 0);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    return fd;
}

link::Hello hello(uint32_t scanouts) {
    link::Hello message;
    message.vm_name = "test";
    message.scanouts = scanouts;
    return message;
}

TEST(ClipRectTest, KeepsWhatLiesInsideTheSurface) {
    EXPECT_EQ(*clip_rect({0, 0, 10, 10}, 100, 100), (link::Rect{0, 0, 10, 10}));
    EXPECT_EQ(*clip_rect({95, 90, 10, 20}, 100, 100), (link::Rect{95, 90, 5, 10}));
    EXPECT_FALSE(clip_rect({100, 0, 1, 1}, 100, 100));
    EXPECT_FALSE(clip_rect({0, 0, 0, 5}, 100, 100));
}

TEST(VmDisplayTest, PassesValidatedStateToItsSinks) {
    VmDisplay vm(hello(2), std::make_shared<RecordingInput>());
    RecordingSink sink;
    vm.add_sink(&sink);
    link::Surface surface;
    surface.scanout = 1;
    surface.width = 16;
    surface.height = 16;
    surface.stride = 64;
    ASSERT_TRUE(vm.apply_surface(surface, sealed_memfd(1024)));
    ASSERT_EQ(sink.surfaces.size(), 1u);
    EXPECT_EQ(sink.surfaces[0], std::make_pair(1u, true));
    EXPECT_TRUE(vm.scanout(1).surface);
    EXPECT_FALSE(vm.scanout(0).surface);

    ASSERT_TRUE(vm.apply(link::Damage{1, {{8, 8, 100, 100}, {20, 0, 1, 1}}}));
    ASSERT_EQ(sink.damage.size(), 1u);
    EXPECT_EQ(sink.damage[0], (std::vector<link::Rect>{{8, 8, 8, 8}}));  // clipped; the second was outside
    ASSERT_TRUE(vm.apply(link::Damage{0, {{0, 0, 1, 1}}}));            // no surface on 0: nothing to say
    EXPECT_EQ(sink.damage.size(), 1u);

    link::Cursor cursor;
    cursor.scanout = 1;
    cursor.visible = true;
    cursor.shape = link::CursorShape{1, 1, 2, 2, {0xff000000, 0xffffffff, 0, 0xff00ff00}};
    ASSERT_TRUE(vm.apply(cursor));
    cursor.shape.reset();
    cursor.x = 5;
    ASSERT_TRUE(vm.apply(cursor));
    ASSERT_EQ(sink.cursors.size(), 2u);
    EXPECT_TRUE(sink.cursors[0].second);
    EXPECT_FALSE(sink.cursors[1].second);
    ASSERT_TRUE(sink.cursors[1].first.image);  // a move keeps the shape
    EXPECT_EQ(sink.cursors[1].first.image->argb[3], 0xff00ff00u);
    EXPECT_EQ(sink.cursors[1].first.x, 5);

    ASSERT_TRUE(vm.apply(link::Disable{1}));
    EXPECT_FALSE(vm.scanout(1).surface);
    EXPECT_EQ(sink.surfaces.back(), std::make_pair(1u, false));
    vm.remove_sink(&sink);
}

TEST(VmDisplayTest, RefusesScanoutsBeyondTheHello) {
    VmDisplay vm(hello(1), std::make_shared<RecordingInput>());
    EXPECT_FALSE(vm.apply(link::Disable{1}));
    EXPECT_FALSE(vm.apply(link::Damage{3, {}}));
    link::Surface surface;
    surface.scanout = 1;
    surface.width = surface.height = 1;
    surface.stride = 4;
    EXPECT_FALSE(vm.apply_surface(surface, sealed_memfd(4096)));
}

}  // namespace
}  // namespace atl::display

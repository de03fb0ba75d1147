#include <atoll/display/dbus_api.h>

#include <gtest/gtest.h>

namespace atl::display::dbus {
namespace {

TEST(DbusApiTest, ObjectPathsEscapeVmNames) {
    EXPECT_EQ(object_path("web"), "/org/atoll/Display1/vm/web");
    EXPECT_EQ(object_path("web-1"), "/org/atoll/Display1/vm/web_2d1");
    EXPECT_EQ(object_path("a.b_c"), "/org/atoll/Display1/vm/a_2eb_5fc");
    // Distinct names never share a path.
    EXPECT_NE(object_path("a_2d"), object_path("a-"));
}

}  // namespace
}  // namespace atl::display::dbus

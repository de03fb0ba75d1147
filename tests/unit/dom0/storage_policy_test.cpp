#include <atoll/dom0/storage_policy.h>

#include "temp_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace atl::dom0 {
namespace {

using testing::TempDir;

class StoragePolicyTest : public ::testing::Test {
protected:
    TempDir dir;
    std::string images = dir / "images";
    std::string other = dir / "other";
    StoragePolicy policy{{images}};

    void SetUp() override {
        dir.write("images/vmlinuz");
        dir.write("images/sub/disk.img");
        dir.write("other/secret");
    }

    void expect_refused(const std::string& path, const std::string& words,
                        StoragePolicy::Access access = StoragePolicy::Access::Read) {
        auto checked = policy.check(path, access, "disk image");
        ASSERT_FALSE(checked.ok()) << path;
        EXPECT_EQ(checked.error().kind, ErrorKind::InvalidArgument);
        EXPECT_NE(checked.error().message.find(words), std::string::npos) << checked.error().message;
        EXPECT_NE(checked.error().message.find("disk image"), std::string::npos) << checked.error().message;
    }
};

TEST_F(StoragePolicyTest, PermitsFilesInsideTheDirectories) {
    auto checked = policy.check(images + "/vmlinuz", StoragePolicy::Access::Read, "kernel");
    ASSERT_TRUE(checked.ok()) << checked.error().message;
    EXPECT_EQ(*checked, images + "/vmlinuz");
    EXPECT_TRUE(policy.check(images + "/sub/disk.img", StoragePolicy::Access::ReadWrite, "disk image").ok());
}

TEST_F(StoragePolicyTest, RefusesFilesOutside) {
    expect_refused(other + "/secret", "outside the permitted storage directories");
    expect_refused("/etc/passwd", "outside");
}

TEST_F(StoragePolicyTest, RefusesTraversalBySymlinkAndDotDot) {
    ASSERT_EQ(symlink((other + "/secret").c_str(), (images + "/link").c_str()), 0);
    expect_refused(images + "/link", "outside");
    ASSERT_EQ(symlink(other.c_str(), (images + "/dirlink").c_str()), 0);
    expect_refused(images + "/dirlink/secret", "outside");
    expect_refused(images + "/../other/secret", "outside");
    // A directory whose name starts like a permitted one is not inside it.
    dir.write("images-evil/x");
    expect_refused(dir / "images-evil/x", "outside");
}

TEST_F(StoragePolicyTest, PermitsSymlinksThatStayInside) {
    ASSERT_EQ(symlink((images + "/vmlinuz").c_str(), (images + "/current").c_str()), 0);
    auto checked = policy.check(images + "/current", StoragePolicy::Access::Read, "kernel");
    ASSERT_TRUE(checked.ok()) << checked.error().message;
    EXPECT_EQ(*checked, images + "/vmlinuz");
}

TEST_F(StoragePolicyTest, RefusesMissingAndSpecialFiles) {
    expect_refused(images + "/missing.img", "not found");
    expect_refused(images + "/sub", "not a regular file");
    ASSERT_EQ(mkfifo((images + "/fifo").c_str(), 0600), 0);
    expect_refused(images + "/fifo", "not a regular file");
    expect_refused("relative.img", "not an absolute path");
}

TEST_F(StoragePolicyTest, RefusesWhatCannotBeOpened) {
    if (geteuid() == 0) GTEST_SKIP() << "root opens every file";
    chmod((images + "/vmlinuz").c_str(), 0400);
    expect_refused(images + "/vmlinuz", "cannot be opened for reading and writing", StoragePolicy::Access::ReadWrite);
    chmod((images + "/vmlinuz").c_str(), 0);
    expect_refused(images + "/vmlinuz", "cannot be opened for reading");
}

TEST_F(StoragePolicyTest, DirectoriesCreatedLaterCount) {
    StoragePolicy later({dir / "later"});
    EXPECT_TRUE(later.check(dir.write("later/disk.img"), StoragePolicy::Access::Read, "disk").ok());
    StoragePolicy none({});
    auto checked = none.check(images + "/vmlinuz", StoragePolicy::Access::Read, "kernel");
    ASSERT_FALSE(checked.ok());
    EXPECT_NE(checked.error().message.find("none"), std::string::npos);
}

TEST_F(StoragePolicyTest, ChecksEveryFileOfADefinition) {
    VmDefinition definition;
    definition.name = "web";
    definition.boot.kernel = images + "/vmlinuz";
    definition.disks = {{images + "/sub/disk.img", false, ""}};
    auto checked = policy.check_definition(definition);
    ASSERT_TRUE(checked.ok()) << checked.error().message;
    definition.boot.initrd = other + "/secret";
    checked = policy.check_definition(definition);
    ASSERT_FALSE(checked.ok());
    EXPECT_NE(checked.error().message.find("initrd"), std::string::npos);
    EXPECT_NE(checked.error().message.find("(VM 'web')"), std::string::npos);
}

}  // namespace
}  // namespace atl::dom0

// The KVM back-end against the host's real /dev/kvm, with a guest of a few
// instructions (this machine's /dev/kvm can run those, not a full OS).
#include "hv/hypervisor.h"

#include "memory/guest_memory.h"

#include <gtest/gtest.h>

#include <cstring>

namespace atl::vmm {
namespace {

std::unique_ptr<hv::Hypervisor> open_or_skip() {
    auto kvm = hv::open_kvm();
    if (!kvm) return nullptr;
    return std::move(*kvm);
}

TEST(Kvm, MissingDeviceIsAClearError) {
    auto kvm = hv::open_kvm("/nonexistent/kvm");
    ASSERT_FALSE(kvm);
    EXPECT_NE(kvm.error().message.find("/nonexistent/kvm: not found"), std::string::npos) << kvm.error().message;
}

TEST(Kvm, NotKvmIsUnusable) {
    auto kvm = hv::open_kvm("/dev/null");
    ASSERT_FALSE(kvm);
    EXPECT_NE(kvm.error().message.find("unusable"), std::string::npos) << kvm.error().message;
}

TEST(Kvm, RealModeGuestWritesAPort) {
    auto kvm = open_or_skip();
    if (!kvm) GTEST_SKIP() << "no usable /dev/kvm on this machine";
    auto vm = kvm->create_vm();
    ASSERT_TRUE(vm) << vm.error().message;
    auto memory = GuestMemory::create_flat(0x10000);
    ASSERT_TRUE((*vm)->map_memory(0, 0, memory->total_size_bytes(), memory->base(), false));
    // mov al, 0x42; out 0x10, al; mov dx, 0x3f8; in al, dx; hlt
    const uint8_t code[] = {0xb0, 0x42, 0xe6, 0x10, 0xba, 0xf8, 0x03, 0xec, 0xf4};
    ASSERT_TRUE(memory->write(GuestAddress{0x1000}, code, sizeof code));
    auto vcpu = (*vm)->create_vcpu(0);
    ASSERT_TRUE(vcpu) << vcpu.error().message;
    auto sregs = (*vcpu)->special_registers();
    ASSERT_TRUE(sregs);
    sregs->cs.base = 0;
    sregs->cs.selector = 0;
    ASSERT_TRUE((*vcpu)->set_special_registers(*sregs));
    hv::Registers regs{};
    regs.rip = 0x1000;
    regs.rflags = 2;
    ASSERT_TRUE((*vcpu)->set_registers(regs));

    auto exit = (*vcpu)->run();
    ASSERT_TRUE(exit) << exit.error().message;
    ASSERT_EQ(exit->kind, hv::VcpuExit::Kind::PortIo);
    EXPECT_EQ(exit->address, 0x10u);
    EXPECT_TRUE(exit->is_write);
    EXPECT_EQ(exit->size, 1u);
    EXPECT_EQ(exit->data[0], 0x42);

    exit = (*vcpu)->run();
    ASSERT_TRUE(exit) << exit.error().message;
    ASSERT_EQ(exit->kind, hv::VcpuExit::Kind::PortIo);
    EXPECT_EQ(exit->address, 0x3f8u);
    EXPECT_FALSE(exit->is_write);
    exit->data[0] = 0x99;

    exit = (*vcpu)->run();
    ASSERT_TRUE(exit) << exit.error().message;
    EXPECT_EQ(exit->kind, hv::VcpuExit::Kind::Halt);
    auto after = (*vcpu)->registers();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->rax & 0xff, 0x99u);
}

TEST(Kvm, RequestExitInterruptsRun) {
    auto kvm = open_or_skip();
    if (!kvm) GTEST_SKIP() << "no usable /dev/kvm on this machine";
    auto vm = kvm->create_vm();
    ASSERT_TRUE(vm);
    auto vcpu = (*vm)->create_vcpu(0);
    ASSERT_TRUE(vcpu);
    (*vcpu)->request_exit();
    auto exit = (*vcpu)->run();
    ASSERT_TRUE(exit) << exit.error().message;
    EXPECT_EQ(exit->kind, hv::VcpuExit::Kind::Interrupted);
}

TEST(Kvm, SupportedCpuidHasBasicLeaves) {
    auto kvm = open_or_skip();
    if (!kvm) GTEST_SKIP() << "no usable /dev/kvm on this machine";
    auto cpuid = kvm->supported_cpuid();
    ASSERT_TRUE(cpuid) << cpuid.error().message;
    bool has_leaf_1 = false;
    for (const auto& entry : *cpuid) has_leaf_1 = has_leaf_1 || entry.function == 1;
    EXPECT_TRUE(has_leaf_1);
    EXPECT_GE(kvm->max_vcpus(), 1u);
}

}  // namespace
}  // namespace atl::vmm

// CpuTimeNs comes from /proc/<pid>/stat: it grows as the process works.
#include <atoll/dom0/daemon.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

namespace atl::dom0 {
namespace {

TEST(ProcessCpuTime, GrowsWithWorkAndIsZeroForNoProcess) {
    const uint64_t before = process_cpu_time_ns(getpid());
    const auto start = std::chrono::steady_clock::now();
    volatile uint64_t sink = 0;
    while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(200)) sink = sink + 1;
    const uint64_t after = process_cpu_time_ns(getpid());
    EXPECT_GE(after - before, 50'000'000u) << "200 ms of spinning shows as CPU time";
    EXPECT_LT(after - before, 5'000'000'000u);
    EXPECT_EQ(process_cpu_time_ns(0), 0u);
    EXPECT_EQ(process_cpu_time_ns(4194304 + 1), 0u);  // above pid_max: no such process
}

}  // namespace
}  // namespace atl::dom0

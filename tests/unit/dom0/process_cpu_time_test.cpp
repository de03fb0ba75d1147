// CpuTimeNs comes from /proc/<pid>/stat: it grows as the process works.
#include <atoll/dom0/daemon.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

namespace atl::dom0 {
namespace {

TEST(ProcessCpuTime, GrowsWithWorkAndIsZeroForNoProcess) {
    const uint64_t before = process_cpu_time_ns(getpid());
    // Spin until the kernel's own clock of this process says 200 ms were
    // spent (not 200 ms of wall time: a loaded machine gives a spinner far
    // less CPU than that), within a generous wall-time bound.
    auto own_cpu_ns = [] {
        timespec now{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
        return uint64_t(now.tv_sec) * 1'000'000'000u + uint64_t(now.tv_nsec);
    };
    const uint64_t spin_start = own_cpu_ns();
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    volatile uint64_t sink = 0;
    while (own_cpu_ns() - spin_start < 200'000'000u && std::chrono::steady_clock::now() < give_up) sink = sink + 1;
    const uint64_t after = process_cpu_time_ns(getpid());
    // /proc counts in ticks (10 ms): some may not have been booked yet.
    EXPECT_GE(after - before, 150'000'000u) << "200 ms of spinning shows as CPU time";
    EXPECT_LT(after - before, 5'000'000'000u);
    EXPECT_EQ(process_cpu_time_ns(0), 0u);
    EXPECT_EQ(process_cpu_time_ns(4194304 + 1), 0u);  // above pid_max: no such process
}

}  // namespace
}  // namespace atl::dom0

// A guest's bad request gets an error status and a log line; a guest that
// sends them in a loop must not flood the log (STYLE.md). At most a few lines
// per window, then one line saying how many were left out.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace atl::vmm::virtio {

class GuestErrorLog {
public:
    static constexpr auto kWindow = std::chrono::seconds(5);
    static constexpr uint32_t kLinesPerWindow = 10;

    // Safe from any thread. `source` names the device ("virtio-blk data").
    void write(const std::string& source, const std::string& message) {
        std::lock_guard lock(mutex_);
        const auto now = std::chrono::steady_clock::now();
        if (now - window_start_ >= kWindow) {
            if (suppressed_ > 0)
                fprintf(stderr, "%s: %llu similar messages suppressed\n", source.c_str(),
                        static_cast<unsigned long long>(suppressed_));
            window_start_ = now;
            lines_in_window_ = 0;
            suppressed_ = 0;
        }
        if (lines_in_window_ >= kLinesPerWindow) {
            ++suppressed_;
            return;
        }
        ++lines_in_window_;
        fprintf(stderr, "%s: %s\n", source.c_str(), message.c_str());
    }

private:
    std::mutex mutex_;
    std::chrono::steady_clock::time_point window_start_{};
    uint32_t lines_in_window_ = 0;
    uint64_t suppressed_ = 0;
};

}  // namespace atl::vmm::virtio

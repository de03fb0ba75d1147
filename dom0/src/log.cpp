#include "log.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace atl::dom0 {

void log_line(LogLevel level, const std::string& message) {
    static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
    static std::mutex mutex;
    std::string line;
    if (journal) line = "<" + std::to_string(static_cast<int>(level)) + ">";
    else if (level == LogLevel::Error) line = "atolld: error: ";
    else if (level == LogLevel::Warning) line = "atolld: warning: ";
    else line = "atolld: ";
    line += message;
    line += '\n';
    std::lock_guard lock(mutex);
    (void)!write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace atl::dom0

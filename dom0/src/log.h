// atolld's log: one line per event on stderr, with a syslog priority prefix
// ("<3>") when stderr goes to the systemd journal.
#pragma once

#include <string>

namespace atl::dom0 {

enum class LogLevel { Error = 3, Warning = 4, Info = 6, Debug = 7 };

void log_line(LogLevel level, const std::string& message);
inline void log_error(const std::string& message) { log_line(LogLevel::Error, message); }
inline void log_warning(const std::string& message) { log_line(LogLevel::Warning, message); }
inline void log_info(const std::string& message) { log_line(LogLevel::Info, message); }

}  // namespace atl::dom0

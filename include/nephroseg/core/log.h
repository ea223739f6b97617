// nephroseg/core/log.h: the library never prints directly; it logs through a sink
// the caller can replace (the CLI installs one that writes to stderr).
#pragma once

#include <functional>
#include <string>

#include "nephroseg/core/error.h"

namespace nephroseg {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

using LogSink = std::function<void(LogLevel, const std::string&)>;

/// Replaces the sink (thread-safe). An empty function restores the default, which
/// writes warnings and errors to stderr.
void set_log_sink(LogSink sink);
/// Messages below this level are dropped (default kInfo).
void set_log_level(LogLevel level);
void log_message(LogLevel level, const std::string& message);

template <typename... Parts>
void log_info(const Parts&... parts) { log_message(LogLevel::kInfo, detail::concat(parts...)); }
template <typename... Parts>
void log_warn(const Parts&... parts) { log_message(LogLevel::kWarn, detail::concat(parts...)); }
template <typename... Parts>
void log_error(const Parts&... parts) { log_message(LogLevel::kError, detail::concat(parts...)); }
template <typename... Parts>
void log_debug(const Parts&... parts) { log_message(LogLevel::kDebug, detail::concat(parts...)); }

}  // namespace nephroseg

#include "nephroseg/core/log.h"

#include <atomic>
#include <iostream>
#include <mutex>

namespace nephroseg {
namespace {

std::mutex g_mutex;
LogSink g_sink;
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

void default_sink(LogLevel level, const std::string& message) {
  if (level < LogLevel::kWarn) return;
  std::cerr << (level == LogLevel::kWarn ? "warning: " : "error: ") << message << std::endl;
}

}  // namespace

void set_log_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_sink = std::move(sink);
}

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }

void log_message(LogLevel level, const std::string& message) {
  if (static_cast<int>(level) < g_level.load()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_sink) {
    g_sink(level, message);
  } else {
    default_sink(level, message);
  }
}

}  // namespace nephroseg

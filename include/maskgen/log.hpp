#pragma once
// maskgen's only channel for messages that are not errors (such as the pad-id fallback warning).
// The application can replace the sink; the default writes one line to stderr.

#include <functional>
#include <iostream>
#include <mutex>
#include <string_view>
#include <utility>

namespace maskgen {

enum class LogLevel { Debug, Info, Warning, Error };

// Receives every message maskgen logs. Called from any thread, one call at a time.
using LogSink = std::function<void(LogLevel level, std::string_view message)>;

namespace detail {

inline void default_log_sink(LogLevel level, std::string_view message) {
  static constexpr const char* names[] = {"debug", "info", "warning", "error"};
  std::cerr << "maskgen: " << names[static_cast<int>(level)] << ": " << message << '\n';
}

struct LogState {
  std::mutex mutex;
  LogSink sink = default_log_sink;
};

inline LogState& log_state() {
  static LogState state;
  return state;
}

}  // namespace detail

// Replaces the sink for the whole process; an empty sink restores the default (stderr).
inline void set_log_sink(LogSink sink) {
  auto& state = detail::log_state();
  std::lock_guard lock(state.mutex);
  state.sink = sink ? std::move(sink) : LogSink(detail::default_log_sink);
}

inline void log(LogLevel level, std::string_view message) {
  auto& state = detail::log_state();
  std::lock_guard lock(state.mutex);
  state.sink(level, message);
}

}  // namespace maskgen

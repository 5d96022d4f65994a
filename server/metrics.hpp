#pragma once
// The server's counters for GET /metrics, in Prometheus' text exposition format (version 0.0.4):
// requests by endpoint and status, prompt and generated tokens, time to first token, time
// between tokens and request duration as histograms. The engine's gauges (running and waiting
// requests, cache tokens used and retained) are read when the page is written. Thread-safe.

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace maskgen_server {

// A Prometheus histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

  void observe(double x) {
    std::size_t i = 0;
    while (i < bounds_.size() && x > bounds_[i]) ++i;
    ++counts_[i];
    sum_ += x;
    ++count_;
  }

  void write(std::ostream& out, const std::string& name) const {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += counts_[i];
      out << name << "_bucket{le=\"" << bounds_[i] << "\"} " << cumulative << '\n';
    }
    out << name << "_bucket{le=\"+Inf\"} " << count_ << '\n' << name << "_sum " << sum_ << '\n' << name << "_count " << count_ << '\n';
  }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; the last is above every bound
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// The engine's state when /metrics is read.
struct EngineGauges {
  std::size_t running = 0, waiting = 0, cached_tokens = 0, retained_tokens = 0, max_cached_tokens = 0;
};

class Metrics {
 public:
  // One answered HTTP request.
  void request(const std::string& method, const std::string& path, int status) {
    std::lock_guard lock(mutex_);
    ++requests_[{method, path, status}];
  }

  // One finished completion choice (its prompt counted once per request: `prompt_tokens` 0 for
  // the other choices).
  void completion(std::size_t prompt_tokens, std::size_t generated_tokens, double seconds_to_first_token, double seconds) {
    std::lock_guard lock(mutex_);
    prompt_tokens_ += prompt_tokens;
    generated_tokens_ += generated_tokens;
    if (generated_tokens > 0) first_token_.observe(seconds_to_first_token);
    duration_.observe(seconds);
  }

  void inter_token(double seconds) {
    std::lock_guard lock(mutex_);
    inter_token_.observe(seconds);
  }

  std::string page(const EngineGauges& g) const {
    std::ostringstream out;
    out.precision(9);
    std::lock_guard lock(mutex_);
    out << "# HELP maskgen_requests_total HTTP requests answered, by method, path and status.\n"
           "# TYPE maskgen_requests_total counter\n";
    for (const auto& [key, count] : requests_) {
      const auto& [method, path, status] = key;
      out << "maskgen_requests_total{method=\"" << label(method) << "\",path=\"" << label(path) << "\",status=\"" << status
          << "\"} " << count << '\n';
    }
    auto scalar = [&](const char* name, const char* type, const char* help, auto value) {
      out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n' << name << ' ' << value << '\n';
    };
    scalar("maskgen_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", prompt_tokens_);
    scalar("maskgen_generation_tokens_total", "counter", "Tokens generated for finished requests.", generated_tokens_);
    scalar("maskgen_requests_running", "gauge", "Requests being prefilled or decoded.", g.running);
    scalar("maskgen_requests_waiting", "gauge", "Requests waiting for room in the batch or the cache.", g.waiting);
    scalar("maskgen_cache_tokens_used", "gauge", "Keys and values held for running requests, in tokens.", g.cached_tokens);
    scalar("maskgen_cache_tokens_retained", "gauge", "Keys and values of finished requests kept as reusable prefixes, in tokens.",
           g.retained_tokens);
    scalar("maskgen_cache_tokens_max", "gauge", "Keys and values the engine may hold, in tokens.", g.max_cached_tokens);
    auto histogram = [&](const char* name, const char* help, const Histogram& h) {
      out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " histogram\n";
      h.write(out, name);
    };
    histogram("maskgen_time_to_first_token_seconds", "From a request's arrival to its first generated token.", first_token_);
    histogram("maskgen_inter_token_latency_seconds", "Between consecutive generated tokens of one choice.", inter_token_);
    histogram("maskgen_request_duration_seconds", "From a request's arrival to its last token.", duration_);
    return out.str();
  }

 private:
  // A label value with \, " and newline escaped.
  static std::string label(const std::string& s) {
    std::string out;
    for (const char c : s) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    return out;
  }

  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;
  std::uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram first_token_{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  Histogram inter_token_{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
  Histogram duration_{{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}};
};

}  // namespace maskgen_server

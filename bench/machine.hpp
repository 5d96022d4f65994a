#pragma once
// What the machine can do, measured in the same run as the benchmarks that are judged against it:
// the FP32 fused multiply-add peak of `threads` cores (a loop that touches no memory) and the read
// bandwidth of memory (the sum of a 1 GiB array). Each is the best of a few short runs: what the
// machine can do (shared machines lose a run now and then).

#include <maskgen/detail/parallel.hpp>
#include <maskgen/ops/matmul.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

namespace maskgen::bench {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// FLOP/s of `iterations` steps of independent FMA chains on every one of `threads` threads.
inline double fma_flops(int threads, long iterations) {
  using V = ops::detail::Simd<float>::type;
  // Enough chains to hide the FMA latency on two units, few enough to stay in registers.
  constexpr int chains = ops::detail::simd_bytes == 64 ? 24 : 12;
  std::vector<float> sink(static_cast<std::size_t>(threads));
  const auto start = std::chrono::steady_clock::now();
  maskgen::detail::parallel_for(static_cast<std::size_t>(threads), threads, [&](std::size_t b, std::size_t e) {
    for (std::size_t t = b; t < e; ++t) {
      V acc[chains], a, x;
      ops::detail::splat(a, 1e-3f);
      ops::detail::splat(x, 1e-3f);
      // Distinct starting values, hidden from the compiler: identical chains would be merged.
      for (int c = 0; c < chains; ++c) {
        ops::detail::splat(acc[c], static_cast<float>(t) + 0.5f * static_cast<float>(c));
        asm volatile("" : "+x"(acc[c]));
      }
      for (long i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
        for (int c = 0; c < chains; ++c) ops::detail::madd(acc[c], a, x);
      }
      float s = 0;
      for (const auto& v : acc) s += v[0];
      sink[t] = s;
    }
  });
  const double took = seconds_since(start);
  asm volatile("" : : "r"(sink.data()) : "memory");
  return 2.0 * chains * static_cast<double>(ops::detail::Simd<float>::lanes) * static_cast<double>(iterations) *
         threads / took;
}

// Bytes/s read by `threads` threads summing `data` (each its share).
inline double read_bandwidth(const std::vector<float>& data, int threads) {
  std::vector<double> partial(static_cast<std::size_t>(threads));
  const auto start = std::chrono::steady_clock::now();
  maskgen::detail::parallel_for(static_cast<std::size_t>(threads), threads, [&](std::size_t b, std::size_t e) {
    for (std::size_t t = b; t < e; ++t) {
      const std::size_t n = data.size() / static_cast<std::size_t>(threads);
      const float* p = data.data() + t * n;
      float acc[64] = {};  // 64 independent sums: the adds never wait on each other
      for (std::size_t i = 0; i + 64 <= n; i += 64)
        for (int l = 0; l < 64; ++l) acc[l] += p[i + static_cast<std::size_t>(l)];
      float total = 0;
      for (float a : acc) total += a;
      partial[t] = total;
    }
  });
  const double took = seconds_since(start);
  asm volatile("" : : "r"(partial.data()) : "memory");
  return static_cast<double>(data.size() * sizeof(float)) / took;
}

struct MachineFigures {
  double fma_peak_flops = 0;   // FP32, all `threads`
  double read_bytes_per_s = 0;
};

// The best of 5 peak runs (about 0.1 s each) and of 5 bandwidth runs over 1 GiB.
inline MachineFigures measure_machine(int threads) {
  MachineFigures m;
  for (int i = 0; i < 5; ++i) m.fma_peak_flops = std::max(m.fma_peak_flops, fma_flops(threads, 20'000'000));
  std::vector<float> data(std::size_t{1} << 28, 1.0f);
  for (int i = 0; i < 5; ++i) m.read_bytes_per_s = std::max(m.read_bytes_per_s, read_bandwidth(data, threads));
  return m;
}

}  // namespace maskgen::bench

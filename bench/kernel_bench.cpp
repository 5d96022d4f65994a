// The named kernels alone at the shapes of real models, with the machine's FP32 FMA peak and read
// bandwidth measured at the start of the same run:
//   kernel_bench [--threads N] [Google Benchmark flags]
//
//   BM_Matmul/type/m/shape   Y = X · Wᵀ, W in its stored type (0 F32, 1 BF16, 2 F16, 3 int8), packed
//                            as a model holds it; shapes (k x n): 0 2048x5632 (TinyLlama gate/up),
//                            1 5632x2048 (its down), 2 2048x2048 (its q/o), 3 1024x3072 (Qwen3-0.6B
//                            gate/up), 4 4096x14336 (Llama-3-8B gate/up). Where m is small the
//                            product cycles through copies of W filling 1 GiB, so W comes from
//                            memory as in a model, not from a cache that holds it.
//   BM_Attention/keys/cap    16 queries (one per row) over `keys` cached keys, 32 heads of 64;
//                            cap 1: scores soft-capped (Gemma 2's attn_logit_softcapping)
//   BM_Gated/act/tokens      the MLP activation of `tokens` rows of 6912 (Gemma 3 1B's
//                            intermediate): act 0 SwiGLU, 1 GeGLU; BM_Softcap/rows: rows of 262,144
//                            logits soft-capped (Gemma 2's final_logit_softcapping)
//   BM_FmaPeak, BM_ReadBandwidth
// Counters: GFLOP/s and pct_of_peak; weight_GB/s for the matmul.

#include <maskgen/ops/activation.hpp>
#include <maskgen/ops/attention.hpp>
#include <maskgen/ops/matmul.hpp>

#include <bit>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "machine.hpp"

namespace {

using maskgen::ops::Matrix;
using maskgen::ops::WeightMatrix;
using maskgen::ops::WeightType;

int threads = 2;
maskgen::bench::MachineFigures machine;

constexpr std::pair<std::size_t, std::size_t> shapes[] = {{2048, 5632}, {5632, 2048}, {2048, 2048}, {1024, 3072}, {4096, 14336}};
constexpr WeightType types[] = {WeightType::F32, WeightType::BF16, WeightType::F16, WeightType::I8};

// `copies` packed [n, k] weight matrices of `type` with values in [-1, 1] (never subnormal).
std::vector<WeightMatrix> weights(WeightType type, std::size_t n, std::size_t k, std::size_t copies) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> rows(n * k);
  for (auto& v : rows) v = uniform(rng);
  std::vector<std::uint16_t> half(rows.size());
  WeightMatrix row_major = maskgen::ops::view_weights(rows.data(), n, k);
  if (type == WeightType::BF16 || type == WeightType::F16) {
    for (std::size_t i = 0; i < rows.size(); ++i) {
      half[i] = type == WeightType::BF16 ? static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(rows[i]) >> 16)
                                         : std::bit_cast<std::uint16_t>(static_cast<_Float16>(rows[i]));
    }
    row_major = {type, reinterpret_cast<const std::byte*>(half.data()), n, k, nullptr, false, nullptr};
  } else if (type == WeightType::I8) {
    row_major = maskgen::ops::quantize_int8(rows.data(), n, k);
  }
  std::vector<WeightMatrix> out;
  for (std::size_t c = 0; c < copies; ++c) out.push_back(maskgen::ops::pack_panels(row_major, threads));
  return out;
}

void BM_Matmul(benchmark::State& state) {
  const WeightType type = types[state.range(0)];
  const auto m = static_cast<Eigen::Index>(state.range(1));
  const auto [k, n] = shapes[state.range(2)];
  const std::size_t bytes = n * k * (type == WeightType::F32 ? 4 : type == WeightType::I8 ? 1 : 2);
  // Enough copies that one pass reads 1 GiB, where a pass is short; else one.
  const std::size_t copies = m <= 16 ? std::max<std::size_t>(1, (std::size_t{1} << 30) / bytes) : 1;
  const auto w = weights(type, n, k, copies);
  const Matrix<float> x = Matrix<float>::Random(m, static_cast<Eigen::Index>(k));
  Matrix<float> y;
  std::size_t next = 0;
  for (auto _ : state) {
    maskgen::ops::matmul_transposed(x, w[next], y, threads);
    next = (next + 1) % w.size();
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n * k) * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
  state.counters["pct_of_peak"] = benchmark::Counter(100.0 * flops / machine.fma_peak_flops, benchmark::Counter::kIsRate);
  state.counters["weight_GB/s"] = benchmark::Counter(
      static_cast<double>(bytes) * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void BM_Attention(benchmark::State& state) {
  maskgen::ModelConfig config;
  config.num_layers = 1;
  config.num_heads = 32;
  config.num_kv_heads = 4;
  config.head_dim = 64;
  const auto keys = static_cast<std::size_t>(state.range(0));
  maskgen::KVCache<float> cache(config, 16);
  const Matrix<float> kv = Matrix<float>::Random(static_cast<Eigen::Index>(keys), 4 * 64);
  std::vector<maskgen::QuerySpan> spans;
  for (std::size_t r = 0; r < 16; ++r) {
    cache.append(0, r, kv.data(), kv.data(), keys);
    spans.push_back({r, keys});
  }
  const Matrix<float> q = Matrix<float>::Random(16, 32 * 64);
  Matrix<float> out;
  const std::optional<double> cap = state.range(1) ? std::optional<double>(50.0) : std::nullopt;
  for (auto _ : state) {
    maskgen::ops::attend<float>(q, spans, cache, 0, 32, 4, 64, out, threads, std::nullopt, 0.0, cap);
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 16.0 * 4.0 * static_cast<double>(keys) * 32 * 64 * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
}

void BM_Gated(benchmark::State& state) {
  const auto act = state.range(0) ? maskgen::ops::Activation::GeluTanh : maskgen::ops::Activation::Silu;
  const Matrix<float> gate = Matrix<float>::Random(state.range(1), 6912), up = Matrix<float>::Random(state.range(1), 6912);
  Matrix<float> g = gate;
  for (auto _ : state) {
    state.PauseTiming();
    g = gate;
    state.ResumeTiming();
    maskgen::ops::gated_activation(g, up, act, threads);
    benchmark::DoNotOptimize(g.data());
  }
  state.SetItemsProcessed(state.iterations() * gate.size());
}

void BM_Softcap(benchmark::State& state) {
  const Matrix<float> logits = Matrix<float>::Random(state.range(0), 262144) * 60.0f;
  Matrix<float> x = logits;
  for (auto _ : state) {
    state.PauseTiming();
    x = logits;
    state.ResumeTiming();
    maskgen::ops::softcap(x, 30.0, threads);
    benchmark::DoNotOptimize(x.data());
  }
  state.SetItemsProcessed(state.iterations() * logits.size());
}

void BM_FmaPeak(benchmark::State& state) {
  double flops = 0;
  for (auto _ : state) flops = maskgen::bench::fma_flops(threads, 20'000'000);
  state.counters["GFLOP/s"] = flops / 1e9;
}

void BM_ReadBandwidth(benchmark::State& state) {
  static const std::vector<float> data(std::size_t{1} << 28, 1.0f);
  double bytes = 0;
  for (auto _ : state) bytes = maskgen::bench::read_bandwidth(data, threads);
  state.counters["GB/s"] = bytes / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--threads" && i + 1 < argc) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  benchmark::Initialize(&argc, argv);
  machine = maskgen::bench::measure_machine(threads);
  std::cerr << threads << " threads; FP32 FMA peak " << machine.fma_peak_flops / 1e9 << " GFLOP/s, read bandwidth "
            << machine.read_bytes_per_s / 1e9 << " GB/s\n";
  benchmark::RegisterBenchmark("BM_Matmul", BM_Matmul)
      ->ArgsProduct({{0, 1, 2, 3}, {1, 2, 4, 16, 128, 512, 2048}, {0, 1, 2, 3, 4}})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_Attention", BM_Attention)
      ->ArgsProduct({{128, 1024, 2048}, {0, 1}})
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_Gated", BM_Gated)->ArgsProduct({{0, 1}, {1, 16, 128}})->UseRealTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_Softcap", BM_Softcap)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_FmaPeak", BM_FmaPeak)->Iterations(3)->UseRealTime();
  benchmark::RegisterBenchmark("BM_ReadBandwidth", BM_ReadBandwidth)->Iterations(3)->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

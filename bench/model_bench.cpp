// The forward pass and its kernels on a random-weight model of the 110M shape (hidden 768, 12
// layers, 12 heads, intermediate 2048, vocab 32000), written on first use by tools/random_model.hpp
// in float32, bfloat16 and float16; and decode and load of a random model of Qwen3-0.6B's shape
// (bfloat16). Weight formats (the second argument of Prefill and DecodeStep): 0 the F32 file,
// 1 the BF16 file, 2 the F16 file, 3 the F32 file quantized to int8 at load.
//   build/bench/model_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <maskgen/model.hpp>

#include <cstring>
#include <filesystem>
#include <random>

#include <benchmark/benchmark.h>

#include "random_model.hpp"

namespace {

using maskgen::LogitsFor;
using maskgen::Model;
using maskgen::TokenMatrix;

const Model<float>& model_110m(std::int64_t format = 0) {
  using maskgen::DType;
  static const Model<float> f32 = Model<float>::load(maskgen::tools::random_110m_folder());
  switch (format) {
    case 1: {
      static const Model<float> bf16 = Model<float>::load(maskgen::tools::random_110m_folder(DType::BF16));
      return bf16;
    }
    case 2: {
      static const Model<float> f16 = Model<float>::load(maskgen::tools::random_110m_folder(DType::F16));
      return f16;
    }
    case 3: {
      static const Model<float> i8 = Model<float>::load(maskgen::tools::random_110m_folder(),
                                                         {.weights = maskgen::WeightFormat::Int8});
      return i8;
    }
    default: return f32;
  }
}

const Model<float>& model_qwen3_06b() {
  static const Model<float> model = Model<float>::load(maskgen::tools::random_qwen3_06b_folder());
  return model;
}

// Bytes of weights one decode step reads: every projection, and the output head (the embedding
// lookup reads one row per token and is left out).
double weight_bytes_per_step(const maskgen::ModelConfig& c, double bytes_per_weight) {
  const double per_layer = static_cast<double>(c.hidden_size) * static_cast<double>(2 * c.q_dim() + 2 * c.kv_dim()) +
                           3.0 * static_cast<double>(c.hidden_size) * static_cast<double>(c.intermediate_size);
  return bytes_per_weight * (static_cast<double>(c.num_layers) * per_layer +
                             static_cast<double>(c.vocab_size) * static_cast<double>(c.hidden_size));
}

TokenMatrix random_ids(Eigen::Index rows, Eigen::Index cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  TokenMatrix ids(rows, cols);
  for (Eigen::Index i = 0; i < ids.size(); ++i) ids.data()[i] = static_cast<std::int32_t>(3 + rng() % 31000);
  return ids;
}

// Prefill: `batch` prompts of 128 tokens; counter: prompt tokens per second.
void BM_Prefill(benchmark::State& state) {
  const auto& model = model_110m(state.range(1));
  const auto ids = random_ids(state.range(0), 128, 1);
  const TokenMatrix mask = TokenMatrix::Ones(ids.rows(), ids.cols());
  for (auto _ : state) benchmark::DoNotOptimize(model.forward(ids, mask));
  state.SetItemsProcessed(state.iterations() * ids.size());
}

void decode_steps(benchmark::State& state, const Model<float>& model);

// Decode steps: `batch` rows that start with 128 cached tokens; each iteration feeds one new token
// per row through the same cache, as generation does (the context grows by one per iteration).
// Counter: new tokens per second.
void BM_DecodeStep(benchmark::State& state) {
  decode_steps(state, model_110m(state.range(1)));
}

// The same on Qwen3-0.6B's shape in bfloat16. Counters: the weight bytes each step reads, and
// those bytes over the step's time (compare with ReadBandwidth/2 for the floor).
void BM_Qwen3DecodeStep(benchmark::State& state) {
  decode_steps(state, model_qwen3_06b());
  const double bytes = weight_bytes_per_step(model_qwen3_06b().config(), 2.0);
  state.counters["weight_bytes"] = bytes;
  state.counters["weight_GB/s"] = benchmark::Counter(bytes * static_cast<double>(state.iterations()) / 1e9,
                                                     benchmark::Counter::kIsRate);
}

// Loading the Qwen3-0.6B-shaped bfloat16 folder (file in the page cache after the first run).
void BM_Qwen3Load(benchmark::State& state) {
  const auto dir = maskgen::tools::random_qwen3_06b_folder();
  for (auto _ : state) benchmark::DoNotOptimize(Model<float>::load(dir));
}

void decode_steps(benchmark::State& state, const Model<float>& model) {
  const auto rows = state.range(0);
  const auto prompt = random_ids(rows, 128, 2), next = random_ids(rows, 1, 3);
  const TokenMatrix mask = TokenMatrix::Ones(rows, 128), one = TokenMatrix::Ones(rows, 1);
  auto cache = model.make_cache(static_cast<std::size_t>(rows));
  model.forward(prompt, mask, &cache);
  for (int warm_up = 0; warm_up < 2; ++warm_up) model.forward(next, one, &cache);  // first touches cost more
  for (auto _ : state) {
    if (cache.length(0) + 1 > 2048) {  // keep inside the context (not reached at the usual times)
      state.PauseTiming();
      cache = model.make_cache(static_cast<std::size_t>(rows));
      model.forward(prompt, mask, &cache);
      state.ResumeTiming();
    }
    benchmark::DoNotOptimize(model.forward(next, one, &cache));
  }
  state.SetItemsProcessed(state.iterations() * rows);
  state.counters["context"] = static_cast<double>(cache.length(0));
}

// Padding cost: 8 rows of 128 real tokens, padded to 256 columns (half the positions are pads),
// against the same rows without padding.
void BM_PaddingCost(benchmark::State& state) {
  const auto& model = model_110m();
  const bool padded = state.range(0) == 1;
  const auto real = random_ids(8, 128, 4);
  TokenMatrix ids = real, mask = TokenMatrix::Ones(8, 128);
  if (padded) {
    ids = TokenMatrix::Zero(8, 256);
    mask = TokenMatrix::Zero(8, 256);
    ids.rightCols(128) = real;
    mask.rightCols(128).setOnes();
  }
  for (auto _ : state) benchmark::DoNotOptimize(model.forward(ids, mask));
  state.SetItemsProcessed(state.iterations() * 8 * 128);
}

// The matmul kernel alone: [m, 768] · [2048, 768]ᵀ; counter: FLOP/s.
void BM_Matmul(benchmark::State& state) {
  const auto m = state.range(0);
  const maskgen::ops::Matrix<float> x = maskgen::ops::Matrix<float>::Random(m, 768),
                                    w = maskgen::ops::Matrix<float>::Random(2048, 768);
  maskgen::ops::Matrix<float> y;
  for (auto _ : state) {
    maskgen::ops::matmul_transposed(x, w, y, static_cast<int>(state.range(1)));
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(m) * 768 * 2048 * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

// Eigen's own GEMM on the same shapes, single thread, for comparison.
void BM_EigenGemm(benchmark::State& state) {
  const auto m = state.range(0);
  const maskgen::ops::Matrix<float> x = maskgen::ops::Matrix<float>::Random(m, 768),
                                    w = maskgen::ops::Matrix<float>::Random(2048, 768);
  maskgen::ops::Matrix<float> y(m, 2048);
  for (auto _ : state) {
    y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(m) * 768 * 2048 * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

// The attention kernel alone: 16 rows of `keys` cached tokens, 12 heads of 64, one query per row.
void BM_Attention(benchmark::State& state) {
  maskgen::ModelConfig config;
  config.num_layers = 1;
  config.num_heads = config.num_kv_heads = 12;
  config.head_dim = 64;
  const auto keys = static_cast<std::size_t>(state.range(0));
  maskgen::KVCache<float> cache(config, 16);
  const maskgen::ops::Matrix<float> kv = maskgen::ops::Matrix<float>::Random(static_cast<Eigen::Index>(keys), 768);
  std::vector<maskgen::QuerySpan> spans;
  for (std::size_t r = 0; r < 16; ++r) {
    cache.append(0, r, kv.data(), kv.data(), keys);
    spans.push_back({r, keys});
  }
  const maskgen::ops::Matrix<float> q = maskgen::ops::Matrix<float>::Random(16, 768);
  maskgen::ops::Matrix<float> out;
  for (auto _ : state) {
    maskgen::ops::attend<float>(q, spans, cache, 0, 12, 12, 64, out, 0);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * 16);
}

// Memory read bandwidth: sum of a 1 GiB array (counter: bytes read per second), for the decode floor.
void BM_ReadBandwidth(benchmark::State& state) {
  static std::vector<float> data(std::size_t{1} << 28, 1.0f);
  const int threads = static_cast<int>(state.range(0));
  std::vector<double> partial(static_cast<std::size_t>(threads));
  for (auto _ : state) {
    maskgen::detail::parallel_for(static_cast<std::size_t>(threads), threads, [&](std::size_t b, std::size_t e) {
      for (std::size_t t = b; t < e; ++t) {
        const std::size_t n = data.size() / static_cast<std::size_t>(threads);
        const float* p = data.data() + t * n;
        // 64 independent sums: enough chains in flight that the adds never wait on each other.
        float acc[64] = {};
        for (std::size_t i = 0; i < n; i += 64)
          for (int l = 0; l < 64; ++l) acc[l] += p[i + static_cast<std::size_t>(l)];
        float total = 0;
        for (float a : acc) total += a;
        partial[t] = total;
      }
    });
    benchmark::DoNotOptimize(partial.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(data.size() * sizeof(float)));
}

// Memory copy bandwidth: memcpy of 512 MiB (counter: bytes read per second).
void BM_CopyBandwidth(benchmark::State& state) {
  static std::vector<char> from(std::size_t{1} << 29, 1), to(std::size_t{1} << 29, 0);
  for (auto _ : state) {
    std::memcpy(to.data(), from.data(), from.size());
    benchmark::DoNotOptimize(to.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(from.size()));
}

// Second argument: the weight format (0 F32, 1 BF16, 2 F16, 3 int8).
BENCHMARK(BM_Prefill)->ArgsProduct({{1, 16}, {0, 1, 2, 3}})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeStep)->ArgsProduct({{1, 4, 16}, {0, 1, 2, 3}})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Qwen3DecodeStep)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Qwen3Load)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PaddingCost)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Matmul)->Args({1, 1})->Args({1, 2})->Args({16, 2})->Args({128, 1})->Args({128, 2})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_EigenGemm)->Arg(1)->Arg(16)->Arg(128)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Attention)->Arg(128)->Arg(1024)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CopyBandwidth)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

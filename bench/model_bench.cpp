// Prefill, decode and the engine on one model folder, at real model sizes, with the machine's FP32
// FMA peak and read bandwidth measured at the start of the same run:
//   model_bench [--model DIR] [--int8 | --int4] [--threads N] [--long] [Google Benchmark flags]
// Without --model: a random model of TinyLlama-1.1B's shape in bfloat16
// (tests/support/random_model.hpp), written under TMPDIR on first use. Keep the folder in tmpfs
// while measuring (this machine kind evicts idle file pages), and use bench/real_size_peers.sh to
// run it beside llama.cpp.
//
//   BM_Prefill/rows         rows prompts of 128 tokens at once (pp128 at 1, "16 x 128" at 16)
//   BM_LongPrefill          one prompt of 2048 tokens (--long only: tens of seconds an iteration)
//   BM_DecodeStep/rows      one new token for each of `rows` rows after 128 cached tokens
//   BM_Engine/requests      `requests` requests (128-token prompts, 32 new tokens) submitted at once
//   BM_FmaPeak, BM_ReadBandwidth  the machine's figures once more, for the record
// Counters: tokens/s; GFLOP/s and pct_of_peak for work bound by arithmetic; weight_GB/s and
// pct_of_bandwidth for decode (the weights every step reads).

#include <maskgen/engine.hpp>
#include <maskgen/model.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "machine.hpp"
#include "support/random_model.hpp"

namespace {

using maskgen::Model;
using maskgen::TokenMatrix;

struct Setup {
  std::filesystem::path dir;
  maskgen::WeightFormat weights = maskgen::WeightFormat::AsStored;  // --int8, --int4: quantized at load
  bool long_prefill = false;
  int threads = 2;
  maskgen::bench::MachineFigures machine;
};

Setup& setup() {
  static Setup s;
  return s;
}

const Model<float>& model() {
  static const Model<float> m = Model<float>::load(
      setup().dir, {.weights = setup().weights});
  return m;
}

const maskgen::ModelConfig& config() { return model().config(); }

// Multiply-adds of the projections for one token (the output head apart).
double projection_flops() {
  const auto& c = config();
  const double h = static_cast<double>(c.hidden_size), q = static_cast<double>(c.q_dim()),
               kv = static_cast<double>(c.kv_dim()), i = static_cast<double>(c.intermediate_size);
  return 2.0 * static_cast<double>(c.num_layers) * (h * (q + 2 * kv) + q * h + 3 * h * i);
}
double head_flops() { return 2.0 * static_cast<double>(config().vocab_size) * static_cast<double>(config().hidden_size); }
// Attention of a query that sees `keys` keys, all layers (scores and the weighted sum).
double attention_flops(double keys) {
  const auto& c = config();
  return 4.0 * static_cast<double>(c.num_layers) * keys * static_cast<double>(c.q_dim());
}
// Bytes of weights one decode step reads: every projection and the output head.
// (Q4 and Q8: the codes, and a zero byte and a float16 scale per group of 32, --int4's groups;
// FP8: a byte and a float32 scale per block column of 128; FP4: half a byte and one per 32.)
double weight_bytes_per_step() {
  using maskgen::ops::WeightType;
  const WeightType type = model().weight_type();
  const double bytes = type == WeightType::I8   ? 1.0
                       : type == WeightType::Q4 ? 0.5 + 3.0 / 32
                       : type == WeightType::Q8 ? 1.0 + 3.0 / 32
                       : type == WeightType::FP8 ? 1.0 + 4.0 / 128
                       : type == WeightType::FP4 ? 0.5 + 1.0 / 32
                       : type == WeightType::F32 ? 4.0
                                                 : 2.0;
  return bytes * (projection_flops() + head_flops()) / 2.0;
}

void compute_counters(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  state.counters["pct_of_peak"] = benchmark::Counter(
      100.0 * flops_per_iteration * static_cast<double>(state.iterations()) / setup().machine.fma_peak_flops,
      benchmark::Counter::kIsRate);
}

TokenMatrix random_ids(Eigen::Index rows, Eigen::Index cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  const auto vocab = static_cast<std::uint32_t>(std::min<std::int64_t>(config().vocab_size, 32000));
  TokenMatrix ids(rows, cols);
  for (Eigen::Index i = 0; i < ids.size(); ++i) ids.data()[i] = static_cast<std::int32_t>(3 + rng() % (vocab - 3));
  return ids;
}

void prefill(benchmark::State& state, Eigen::Index rows, Eigen::Index length) {
  const auto ids = random_ids(rows, length, 1);
  const TokenMatrix mask = TokenMatrix::Ones(rows, length);
  const maskgen::ForwardOptions options{.num_threads = setup().threads};
  for (auto _ : state) benchmark::DoNotOptimize(model().forward(ids, mask, nullptr, options));
  state.SetItemsProcessed(state.iterations() * ids.size());
  const double n = static_cast<double>(length);
  compute_counters(state, static_cast<double>(rows) * (n * projection_flops() + attention_flops(n * (n + 1) / 2) +
                                                         head_flops()));
}

void BM_Prefill(benchmark::State& state) { prefill(state, state.range(0), 128); }
void BM_LongPrefill(benchmark::State& state) { prefill(state, 1, 2048); }

void BM_DecodeStep(benchmark::State& state) {
  const auto rows = state.range(0);
  const auto prompt = random_ids(rows, 128, 2), next = random_ids(rows, 1, 3);
  const TokenMatrix mask = TokenMatrix::Ones(rows, 128), one = TokenMatrix::Ones(rows, 1);
  const maskgen::ForwardOptions options{.num_threads = setup().threads};
  auto cache = model().make_cache(static_cast<std::size_t>(rows));
  model().forward(prompt, mask, &cache, options);
  for (int warm_up = 0; warm_up < 2; ++warm_up) model().forward(next, one, &cache, options);
  const double context_before = static_cast<double>(cache.length(0));
  for (auto _ : state) {
    if (cache.length(0) + 1 > 1024) {  // keep the context near the prompt's length
      state.PauseTiming();
      cache = model().make_cache(static_cast<std::size_t>(rows));
      model().forward(prompt, mask, &cache, options);
      state.ResumeTiming();
    }
    benchmark::DoNotOptimize(model().forward(next, one, &cache, options));
  }
  state.SetItemsProcessed(state.iterations() * rows);
  const double context = (context_before + static_cast<double>(cache.length(0))) / 2;
  compute_counters(state, static_cast<double>(rows) * (projection_flops() + head_flops() + attention_flops(context)));
  const double bytes = weight_bytes_per_step();
  state.counters["weight_GB/s"] =
      benchmark::Counter(bytes * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  state.counters["pct_of_bandwidth"] = benchmark::Counter(
      100.0 * bytes * static_cast<double>(state.iterations()) / setup().machine.read_bytes_per_s,
      benchmark::Counter::kIsRate);
}

// The tokenizer of the folder, else Llama 2's (../shared) for a 32000-piece vocabulary.
const maskgen::AutoTokenizer* tokenizer() {
  static const std::optional<maskgen::AutoTokenizer> t = []() -> std::optional<maskgen::AutoTokenizer> {
    const auto own = setup().dir;
    if (std::filesystem::exists(own / "tokenizer.json") || std::filesystem::exists(own / "tokenizer.model"))
      return maskgen::load_tokenizer(own);
    const auto llama2 = std::filesystem::path(MASKGEN_SHARED_DIR) / "tokenizers/llama2";
    if (config().vocab_size == 32000 && std::filesystem::exists(llama2 / "tokenizer.model"))
      return maskgen::load_tokenizer(llama2);
    return std::nullopt;
  }();
  return t ? &*t : nullptr;
}

void BM_Engine(benchmark::State& state) {
  if (!tokenizer()) {
    state.SkipWithError("no tokenizer for this vocabulary (the folder has none, and it is not Llama 2's 32000)");
    return;
  }
  const auto requests = static_cast<int>(state.range(0));
  maskgen::Engine engine(model(), *tokenizer(), {.reuse_prefixes = false, .num_threads = setup().threads});
  const maskgen::GenerationConfig gen{.max_new_tokens = 32, .min_new_tokens = 32, .pad_token_id = 0};
  std::uint32_t seed = 100;
  double ttft = 0;
  for (auto _ : state) {
    std::vector<maskgen::RequestHandle> handles;
    for (int r = 0; r < requests; ++r) {
      const auto ids = random_ids(1, 128, ++seed);
      handles.push_back(engine.submit(std::vector<std::int32_t>(ids.data(), ids.data() + ids.size()), gen));
    }
    for (auto& h : handles) ttft += h.wait().seconds_to_first_token;
  }
  state.SetItemsProcessed(state.iterations() * requests * 32);  // new tokens
  state.counters["mean_ttft_s"] = ttft / static_cast<double>(state.iterations() * requests);
}

void BM_FmaPeak(benchmark::State& state) {
  double flops = 0;
  for (auto _ : state) flops = maskgen::bench::fma_flops(setup().threads, 20'000'000);
  state.counters["GFLOP/s"] = flops / 1e9;
}

void BM_ReadBandwidth(benchmark::State& state) {
  static const std::vector<float> data(std::size_t{1} << 28, 1.0f);
  double bytes = 0;
  for (auto _ : state) bytes = maskgen::bench::read_bandwidth(data, setup().threads);
  state.counters["GB/s"] = bytes / 1e9;
}

// Removes this program's own flags from argv (Google Benchmark refuses what it does not know).
void parse_own_flags(int& argc, char** argv) {
  Setup& s = setup();
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--model" && i + 1 < argc) {
      s.dir = argv[++i];
    } else if (a == "--int8") {
      s.weights = maskgen::WeightFormat::Int8;
    } else if (a == "--int4") {
      s.weights = maskgen::WeightFormat::Int4;
    } else if (a == "--long") {
      s.long_prefill = true;
    } else if (a == "--threads" && i + 1 < argc) {
      s.threads = std::max(1, std::atoi(argv[++i]));
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
}

}  // namespace

int main(int argc, char** argv) {
  parse_own_flags(argc, argv);
  Setup& s = setup();
  if (s.dir.empty()) s.dir = maskgen::tools::random_model_folder("tinyllama-1.1B", maskgen::tools::tinyllama_shape());
  benchmark::Initialize(&argc, argv);
  s.machine = maskgen::bench::measure_machine(s.threads);
  const char* format = s.weights == maskgen::WeightFormat::Int8   ? " (int8)"
                       : s.weights == maskgen::WeightFormat::Int4 ? " (int4)"
                                                                   : "";
  std::cerr << "model " << s.dir << format << ", " << s.threads << " threads; FP32 FMA peak "
            << s.machine.fma_peak_flops / 1e9 << " GFLOP/s, read bandwidth " << s.machine.read_bytes_per_s / 1e9
            << " GB/s\n";
  benchmark::AddCustomContext("fma_peak_gflops", std::to_string(s.machine.fma_peak_flops / 1e9));
  benchmark::AddCustomContext("read_bandwidth_gbps", std::to_string(s.machine.read_bytes_per_s / 1e9));
  const auto load_start = std::chrono::steady_clock::now();
  model();  // loaded before any timing
  benchmark::AddCustomContext("load_seconds", std::to_string(maskgen::bench::seconds_since(load_start)));
  benchmark::AddCustomContext("weights", std::string(maskgen::ops::weight_type_name(model().weight_type())));
  using benchmark::RegisterBenchmark;
  RegisterBenchmark("BM_Prefill", BM_Prefill)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
  if (s.long_prefill) RegisterBenchmark("BM_LongPrefill", BM_LongPrefill)->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
  RegisterBenchmark("BM_DecodeStep", BM_DecodeStep)->Arg(1)->Arg(4)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
  RegisterBenchmark("BM_Engine", BM_Engine)->Arg(16)->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
  RegisterBenchmark("BM_FmaPeak", BM_FmaPeak)->Iterations(3)->UseRealTime();
  RegisterBenchmark("BM_ReadBandwidth", BM_ReadBandwidth)->Iterations(3)->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

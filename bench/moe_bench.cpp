// A mixture-of-experts model folder (Qwen3-MoE's layout: make_random_model --qwen3-30b-a3b
// --layers N) stepped as a server would, with the machine's FP32 FMA peak and read bandwidth
// measured at the start of the same run:
//   moe_bench [--model DIR] [--int8] [--threads N] [Google Benchmark flags]
// The folder is --model DIR, else the environment's MASKGEN_BENCH_MOE_MODEL. Keep it in tmpfs
// while measuring (idle file pages are evicted on some machines); bench/moe_peers.sh runs it
// beside llama.cpp on the same weights.
//
//   BM_MoeDecode/1    one new token after a prompt of 256 (the context stays within 256 to 320)
//   BM_MoeDecode/16   one new token for each of 16 rows after prompts of 128 (context 128 to 192)
//   BM_MoePrefill/1   one prompt of 128 tokens, logits of the last one
//   BM_FmaPeak, BM_ReadBandwidth  the machine's figures once more, for the record
//
// Every figure comes from config.json, not from the model's own accounting. With h hidden_size,
// q = heads x head_dim, kv = KV heads x head_dim, E experts, k experts per token, I their width,
// V the vocabulary and L the layers whose MLP is sparse (all of them for Qwen3-30B-A3B):
//   attention (a layer)       h (q + 2 kv) + q h            the q, k, v and o projections
//   router (a layer)          E h
//   routed experts (a layer)  k 3 h I                       gate, up and down of the k chosen
//   head                      V h
//   active parameters a token = L (attention + router + routed experts) + head
// (the embedding row, the norms and the dense MLP of any layer not sparse are left out of the
// bytes; a dense layer's 3 h intermediate_size is counted where config.json has one). Counters:
//   tokens/s (items_per_second)
//   GFLOP/s, pct_of_peak   2 x active parameters x tokens, the output head once a row in prefill
//                          (attention's own products are not: about 4% more at 1 row, less in the others)
//   weight_bytes           bytes of weights one step reads: at 1 row, the active parameters x the
//                          stored width (2 for BF16/F16, 4 for F32, 1 for int8, scales apart); at
//                          r rows, every layer's experts become the expected number that r tokens
//                          choose among them if routing were uniform, E (1 - (1 - k/E)^r)
//   weight_GB/s, pct_of_bandwidth   weight_bytes per step over the step's time
//   layers, active_params  constants, so that two folders of different depths can be differenced
//                          into per-layer figures (bench/moe_peers.sh does)

#include <maskgen/model.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "machine.hpp"

namespace {

using maskgen::Model;
using maskgen::TokenMatrix;

struct Setup {
  std::filesystem::path dir;
  bool int8 = false;
  int threads = 2;
  maskgen::bench::MachineFigures machine;
};

Setup& setup() {
  static Setup s;
  return s;
}

const Model<float>& model() {
  static const Model<float> m = Model<float>::load(
      setup().dir, {.weights = setup().int8 ? maskgen::WeightFormat::Int8 : maskgen::WeightFormat::AsStored});
  return m;
}

// The shape as config.json gives it (Qwen3-MoE's keys; Mixtral's and OLMoE's spellings too).
struct MoeShape {
  double hidden = 0, q = 0, kv = 0, experts = 0, per_token = 0, expert_width = 0, dense_width = 0, vocab = 0;
  double sparse_layers = 0, dense_layers = 0;
  std::int64_t layers = 0;

  double attention() const { return hidden * (q + 2 * kv) + q * hidden; }
  double router() const { return experts * hidden; }
  double expert() const { return 3 * hidden * expert_width; }
  double head() const { return vocab * hidden; }
  // Parameters one token multiplies by, the output head apart.
  double active_body() const {
    return sparse_layers * (attention() + router() + per_token * expert()) + dense_layers * (attention() + 3 * hidden * dense_width);
  }
  double active() const { return active_body() + head(); }
  // Parameters a step of `rows` tokens reads, each expert once however many tokens chose it.
  double read_by_step(double rows) const {
    const double touched = experts * (1.0 - std::pow(1.0 - per_token / experts, rows));
    return sparse_layers * (attention() + router() + touched * expert()) + dense_layers * (attention() + 3 * hidden * dense_width) +
           head();
  }
};

MoeShape read_shape(const std::filesystem::path& dir) {
  std::ifstream in(dir / "config.json");
  if (!in) throw std::runtime_error("moe_bench: no config.json in " + dir.string());
  const auto j = nlohmann::json::parse(in);
  auto number = [&](std::initializer_list<const char*> keys) -> double {
    for (const char* k : keys)
      if (j.contains(k) && j[k].is_number()) return j[k].get<double>();
    throw std::runtime_error(std::string("moe_bench: config.json has none of ") + *keys.begin() + " and its other spellings");
  };
  MoeShape s;
  s.hidden = number({"hidden_size"});
  const double heads = number({"num_attention_heads"});
  const double head_dim = j.contains("head_dim") && j["head_dim"].is_number() ? j["head_dim"].get<double>() : s.hidden / heads;
  s.q = heads * head_dim;
  s.kv = number({"num_key_value_heads"}) * head_dim;
  s.experts = number({"num_experts", "num_local_experts"});
  s.per_token = number({"num_experts_per_tok"});
  s.expert_width = j.contains("moe_intermediate_size") ? number({"moe_intermediate_size"}) : number({"intermediate_size"});
  s.dense_width = number({"intermediate_size"});
  s.vocab = number({"vocab_size"});
  s.layers = static_cast<std::int64_t>(number({"num_hidden_layers"}));
  // Qwen3-MoE: layer l is sparse unless listed in mlp_only_layers, and only if (l + 1) % decoder_sparse_step == 0.
  const std::int64_t step = j.contains("decoder_sparse_step") ? static_cast<std::int64_t>(number({"decoder_sparse_step"})) : 1;
  std::vector<char> dense(static_cast<std::size_t>(s.layers), 0);
  if (j.contains("mlp_only_layers") && j["mlp_only_layers"].is_array())
    for (const auto& l : j["mlp_only_layers"])
      if (l.is_number_integer() && l.get<std::int64_t>() >= 0 && l.get<std::int64_t>() < s.layers) dense[l.get<std::size_t>()] = 1;
  for (std::int64_t l = 0; l < s.layers; ++l) {
    const bool sparse = !dense[static_cast<std::size_t>(l)] && step > 0 && (l + 1) % step == 0;
    (sparse ? s.sparse_layers : s.dense_layers) += 1;
  }
  return s;
}

const MoeShape& shape() {
  static const MoeShape s = read_shape(setup().dir);
  return s;
}

double bytes_per_parameter() {
  const auto t = model().weight_type();
  return t == maskgen::ops::WeightType::I8 ? 1.0 : t == maskgen::ops::WeightType::F32 ? 4.0 : 2.0;
}

void rate_counters(benchmark::State& state, double flops_per_iteration) {
  const double it = static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iteration * it / 1e9, benchmark::Counter::kIsRate);
  state.counters["pct_of_peak"] =
      benchmark::Counter(100.0 * flops_per_iteration * it / setup().machine.fma_peak_flops, benchmark::Counter::kIsRate);
  state.counters["layers"] = static_cast<double>(shape().layers);
  state.counters["active_params"] = shape().active();
}

void bandwidth_counters(benchmark::State& state, double bytes_per_iteration) {
  const double it = static_cast<double>(state.iterations());
  state.counters["weight_bytes"] = bytes_per_iteration;
  state.counters["weight_GB/s"] = benchmark::Counter(bytes_per_iteration * it / 1e9, benchmark::Counter::kIsRate);
  state.counters["pct_of_bandwidth"] =
      benchmark::Counter(100.0 * bytes_per_iteration * it / setup().machine.read_bytes_per_s, benchmark::Counter::kIsRate);
}

TokenMatrix random_ids(Eigen::Index rows, Eigen::Index cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  const auto vocab = static_cast<std::uint32_t>(std::min<double>(shape().vocab, 32000));
  TokenMatrix ids(rows, cols);
  for (Eigen::Index i = 0; i < ids.size(); ++i) ids.data()[i] = static_cast<std::int32_t>(3 + rng() % (vocab - 3));
  return ids;
}

void BM_MoePrefill(benchmark::State& state) {
  const auto rows = state.range(0);
  const Eigen::Index length = 128;
  const auto ids = random_ids(rows, length, 1);
  const TokenMatrix mask = TokenMatrix::Ones(rows, length);
  const maskgen::ForwardOptions options{.num_threads = setup().threads};
  for (auto _ : state) benchmark::DoNotOptimize(model().forward(ids, mask, nullptr, options));
  state.SetItemsProcessed(state.iterations() * ids.size());
  rate_counters(state, 2.0 * static_cast<double>(rows) *
                           (static_cast<double>(length) * shape().active_body() + shape().head()));
}

void BM_MoeDecode(benchmark::State& state) {
  const auto rows = state.range(0);
  const Eigen::Index prompt_length = rows == 1 ? 256 : 128, most = prompt_length + 64;
  const auto prompt = random_ids(rows, prompt_length, 2), next = random_ids(rows, 1, 3);
  const TokenMatrix mask = TokenMatrix::Ones(rows, prompt_length), one = TokenMatrix::Ones(rows, 1);
  const maskgen::ForwardOptions options{.num_threads = setup().threads};
  auto cache = model().make_cache(static_cast<std::size_t>(rows));
  model().forward(prompt, mask, &cache, options);
  for (int warm_up = 0; warm_up < 2; ++warm_up) model().forward(next, one, &cache, options);
  for (auto _ : state) {
    if (static_cast<Eigen::Index>(cache.length(0)) + 1 > most) {  // keep the context near the prompt's length
      state.PauseTiming();
      cache = model().make_cache(static_cast<std::size_t>(rows));
      model().forward(prompt, mask, &cache, options);
      state.ResumeTiming();
    }
    benchmark::DoNotOptimize(model().forward(next, one, &cache, options));
  }
  state.SetItemsProcessed(state.iterations() * rows);
  rate_counters(state, 2.0 * static_cast<double>(rows) * shape().active());
  bandwidth_counters(state, bytes_per_parameter() * shape().read_by_step(static_cast<double>(rows)));
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
      s.int8 = true;
    } else if (a == "--threads" && i + 1 < argc) {
      s.threads = std::max(1, std::atoi(argv[++i]));
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
}

}  // namespace

int main(int argc, char** argv) try {
  parse_own_flags(argc, argv);
  Setup& s = setup();
  if (s.dir.empty()) {
    const char* env = std::getenv("MASKGEN_BENCH_MOE_MODEL");
    if (!env || !*env) {
      std::cerr << "moe_bench: give the model folder as --model DIR or MASKGEN_BENCH_MOE_MODEL=DIR "
                   "(make_random_model --qwen3-30b-a3b --layers 3 --out DIR writes one)\n";
      return 2;
    }
    s.dir = env;
  }
  benchmark::Initialize(&argc, argv);
  const MoeShape& m = shape();
  s.machine = maskgen::bench::measure_machine(s.threads);
  std::cerr << "model " << s.dir << (s.int8 ? " (int8)" : "") << ": " << m.layers << " layers (" << m.sparse_layers
            << " sparse), " << m.experts << " experts, top-" << m.per_token << ", " << m.active() / 1e6
            << "M active parameters a token; " << s.threads << " threads; FP32 FMA peak " << s.machine.fma_peak_flops / 1e9
            << " GFLOP/s, read bandwidth " << s.machine.read_bytes_per_s / 1e9 << " GB/s\n";
  benchmark::AddCustomContext("fma_peak_gflops", std::to_string(s.machine.fma_peak_flops / 1e9));
  benchmark::AddCustomContext("read_bandwidth_gbps", std::to_string(s.machine.read_bytes_per_s / 1e9));
  benchmark::AddCustomContext("layers", std::to_string(m.layers));
  benchmark::AddCustomContext("active_params_per_token", std::to_string(m.active()));
  benchmark::AddCustomContext("active_params_per_layer",
                              std::to_string(m.attention() + m.router() + m.per_token * m.expert()));
  benchmark::AddCustomContext("head_params", std::to_string(m.head()));
  const auto load_start = std::chrono::steady_clock::now();
  model();  // loaded before any timing
  benchmark::AddCustomContext("load_seconds", std::to_string(maskgen::bench::seconds_since(load_start)));
  benchmark::AddCustomContext("weights", std::string(maskgen::ops::weight_type_name(model().weight_type())));
  using benchmark::RegisterBenchmark;
  RegisterBenchmark("BM_MoeDecode", BM_MoeDecode)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
  RegisterBenchmark("BM_MoePrefill", BM_MoePrefill)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
  RegisterBenchmark("BM_FmaPeak", BM_FmaPeak)->Iterations(3)->UseRealTime();
  RegisterBenchmark("BM_ReadBandwidth", BM_ReadBandwidth)->Iterations(3)->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
} catch (const std::exception& e) {
  std::cerr << "moe_bench: " << e.what() << "\n";
  return 1;
}

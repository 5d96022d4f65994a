// generate() end to end: new tokens per second of wall time (prefill included) at batch 1, 4 and
// 16, on stories260K (../shared) and on a random-weight model of the 110M shape; and the cost of
// rows that finish early.
//   build/bench/generate_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Rows are kept from ending at EOS (min_new_tokens = max_new_tokens) so every run generates the
// same number of tokens. Prompts: 8 random tokens after BOS.

#include <maskgen/generate.hpp>

#include <filesystem>
#include <random>

#include <benchmark/benchmark.h>

#include "support/random_model.hpp"

namespace {

using maskgen::GenerationConfig;
using maskgen::Model;
using maskgen::TokenMatrix;

const Model<float>& model_110m() {
  static const Model<float> model = Model<float>::load(maskgen::tools::random_110m_folder());
  return model;
}

const Model<float>* stories() {
  static const std::optional<Model<float>> model = []() -> std::optional<Model<float>> {
    const std::filesystem::path dir = std::filesystem::path(MASKGEN_SHARED_DIR) / "models/stories260K";
    if (!std::filesystem::exists(dir / "config.json")) return std::nullopt;
    return Model<float>::load(dir);
  }();
  return model ? &*model : nullptr;
}

TokenMatrix prompts(Eigen::Index rows, std::int32_t vocab) {
  std::mt19937 rng(5);
  TokenMatrix ids(rows, 9);
  for (Eigen::Index r = 0; r < rows; ++r) {
    ids(r, 0) = 1;
    for (Eigen::Index c = 1; c < 9; ++c) ids(r, c) = static_cast<std::int32_t>(3 + rng() % static_cast<unsigned>(vocab - 3));
  }
  return ids;
}

// Greedy generation of `new_tokens` per row for a batch of `state.range(0)` prompts.
// Counter: new tokens per second.
void run_generate(benchmark::State& state, const Model<float>* model, int new_tokens) {
  if (!model) {
    state.SkipWithError("needs ../shared/models/stories260K");
    return;
  }
  const auto rows = state.range(0);
  const TokenMatrix ids = prompts(rows, static_cast<std::int32_t>(model->config().vocab_size));
  const TokenMatrix mask = TokenMatrix::Ones(ids.rows(), ids.cols());
  const GenerationConfig gen{.max_new_tokens = new_tokens, .min_new_tokens = new_tokens, .pad_token_id = 0};
  for (auto _ : state) benchmark::DoNotOptimize(maskgen::generate(*model, ids, mask, gen));
  state.SetItemsProcessed(state.iterations() * rows * new_tokens);
}

void BM_GenerateStories(benchmark::State& state) { run_generate(state, stories(), 128); }
void BM_Generate110M(benchmark::State& state) { run_generate(state, &model_110m(), 32); }

// Finished rows cost nothing: arg 0 runs 16 rows where every other row stops after 4 of 32 tokens;
// arg 1 the 8 long rows alone; arg 2 all 16 rows to the end. Counter: generated tokens per second.
void BM_EarlyFinish110M(benchmark::State& state) {
  const auto& model = model_110m();
  const int variant = static_cast<int>(state.range(0));
  const Eigen::Index rows = variant == 1 ? 8 : 16;
  const TokenMatrix ids = prompts(rows, 32000), mask = TokenMatrix::Ones(rows, 9);
  const GenerationConfig gen{.max_new_tokens = 32, .min_new_tokens = 32, .pad_token_id = 0};
  const maskgen::Streamer half_stop = [](maskgen::StreamStep& step) {
    if (step.step() != 3) return;
    for (const std::size_t row : step.rows()) {
      if (row % 2 == 1) step.stop(row);
    }
  };
  std::size_t generated = 0;
  for (auto _ : state) {
    const auto out = maskgen::generate(model, ids, mask, gen, variant == 0 ? half_stop : maskgen::Streamer{});
    for (const auto n : out.lengths) generated += n;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(generated));
}

}  // namespace

BENCHMARK(BM_GenerateStories)->Arg(1)->Arg(4)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Generate110M)->Arg(1)->Arg(4)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EarlyFinish110M)->Arg(0)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();

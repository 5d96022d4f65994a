// The tokenizer.json backend (Qwen3's file from ../shared, or the one MASKGEN_BENCH_TOKENIZER
// names) on bench/data/mixed_zh_en.txt: load time,
// one text, and encode_batch of 64 and 1024 texts (about 200 characters, Chinese and English).
// Counter: texts per second. Its peer, Hugging Face tokenizers on the same file and texts, is
// bench/peer/hf_tokenizers.js; bench/RESULTS.md has the command that runs them in turns.
//   build/bench/tokenizer_json_bench --benchmark_repetitions=9 --benchmark_report_aggregates_only=true

#include <maskgen/tokenizer.hpp>

#include <filesystem>
#include <fstream>

#include <benchmark/benchmark.h>

namespace {

// MASKGEN_BENCH_TOKENIZER: qwen3 (default), llama3, llama2-json, or one that ../shared keeps as a
// tarball (gemma3, gptoss, deepseek_v3: extracted into the build folder at configure time).
std::filesystem::path tokenizer_dir() {
  const char* env = std::getenv("MASKGEN_BENCH_TOKENIZER");
  const std::string name = env ? env : "qwen3";
  const auto shared = std::filesystem::path(MASKGEN_SHARED_DIR) / "tokenizers" / name;
  if (std::filesystem::exists(shared / "tokenizer.json")) return shared;
  return std::filesystem::path(MASKGEN_EXTRACTED_TOKENIZERS_DIR) / name;
}

const std::vector<std::string>& texts() {
  static const std::vector<std::string> all = [] {
    std::ifstream in(std::filesystem::path(MASKGEN_BENCH_DATA_DIR) / "mixed_zh_en.txt");
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) lines.push_back(line);
    }
    return lines;
  }();
  return all;
}

const maskgen::AutoTokenizer* tokenizer() {
  static const auto tok = std::filesystem::exists(tokenizer_dir() / "tokenizer.json")
                              ? std::optional(maskgen::load_tokenizer(tokenizer_dir()))
                              : std::nullopt;
  return tok ? &*tok : nullptr;
}

void BM_JsonLoad(benchmark::State& state) {
  if (!tokenizer()) return state.SkipWithError("no ../shared tokenizer.json");
  for (auto _ : state) benchmark::DoNotOptimize(maskgen::load_tokenizer(tokenizer_dir()));
}

void BM_JsonEncodeOne(benchmark::State& state) {
  if (!tokenizer()) return state.SkipWithError("no ../shared tokenizer.json");
  const std::string& text = texts().at(0);
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer()->encode(text, {.add_bos = false, .add_eos = false}));
  state.SetItemsProcessed(state.iterations());
}

void BM_JsonEncodeBatch(benchmark::State& state) {
  if (!tokenizer()) return state.SkipWithError("no ../shared tokenizer.json");
  const std::vector<std::string> batch(texts().begin(), texts().begin() + state.range(0));
  const maskgen::PaddingOptions options{.add_bos = false, .add_eos = false, .pad_token_id = 0,
                                        .num_threads = static_cast<int>(state.range(1))};
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer()->encode_batch(batch, options));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

BENCHMARK(BM_JsonLoad)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_JsonEncodeOne)->UseRealTime()->Unit(benchmark::kMicrosecond);
// Second argument: threads (0 = every core).
BENCHMARK(BM_JsonEncodeBatch)
    ->Args({1, 0})->Args({64, 1})->Args({64, 0})->Args({1024, 1})->Args({1024, 0})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();

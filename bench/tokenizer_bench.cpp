// encode_batch (every core) against plain SentencePiece EncodeAsIds calls in a loop on one thread,
// for batches of 1, 64 and 1024 texts of about 200 characters. Counter: texts per second.
//   build/bench/tokenizer_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <maskgen/tokenizer.hpp>

#include <filesystem>
#include <random>

#include <benchmark/benchmark.h>

namespace {

std::filesystem::path model_path() {
  return std::filesystem::path(MASKGEN_SHARED_DIR) / "tokenizers/llama2/tokenizer.model";
}

// Deterministic English-like texts of about 200 characters.
std::vector<std::string> make_texts(std::size_t n) {
  static const char* words[] = {"the", "little", "girl", "named", "Lily", "loved", "to", "play",
                                "outside", "in", "park", "with", "her", "dog", "Max", "one", "day",
                                "they", "found", "a", "shiny", "red", "ball", "under", "tree",
                                "patient", "reported", "mild", "headache", "after", "3.5", "hours"};
  std::mt19937 rng(42);
  std::vector<std::string> texts(n);
  for (auto& t : texts) {
    while (t.size() < 200) {
      if (!t.empty()) t += ' ';
      t += words[rng() % std::size(words)];
    }
  }
  return texts;
}

void BM_SentencePieceLoop(benchmark::State& state) {
  if (!std::filesystem::exists(model_path())) return state.SkipWithError("no ../shared Llama 2 tokenizer");
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load(model_path().string()).ok()) return state.SkipWithError("cannot load tokenizer");
  const auto texts = make_texts(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    for (const auto& t : texts) benchmark::DoNotOptimize(sp.EncodeAsIds(t));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_EncodeBatch(benchmark::State& state) {
  if (!std::filesystem::exists(model_path())) return state.SkipWithError("no ../shared Llama 2 tokenizer");
  const auto tok = maskgen::Tokenizer<>::from_file(model_path());
  const auto texts = make_texts(static_cast<std::size_t>(state.range(0)));
  const maskgen::PaddingOptions options{.pad_token_id = 0, .num_threads = static_cast<int>(state.range(1))};
  for (auto _ : state) benchmark::DoNotOptimize(tok.encode_batch(texts, options));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

BENCHMARK(BM_SentencePieceLoop)->Arg(1)->Arg(64)->Arg(1024)->UseRealTime()->Unit(benchmark::kMicrosecond);
// Second argument: threads (0 = every core).
BENCHMARK(BM_EncodeBatch)
    ->Args({1, 0})->Args({64, 1})->Args({64, 0})->Args({1024, 1})->Args({1024, 0})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();

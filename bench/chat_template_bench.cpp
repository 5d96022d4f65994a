// Chat templates with Qwen3's template (../shared/tokenizers/qwen3): compiling it, rendering a
// 10-message conversation (a system prompt, then user and assistant turns of about 200 characters
// from bench/data/mixed_zh_en.txt, the assistant turns with a <think> block), and, for scale,
// tokenizing that rendering with Qwen3's tokenizer.json on one thread.
//   build/bench/chat_template_bench --benchmark_repetitions=9 --benchmark_report_aggregates_only=true

#include <maskgen/chat_template.hpp>
#include <maskgen/tokenizer.hpp>

#include <filesystem>
#include <fstream>

#include <benchmark/benchmark.h>

namespace {

using json = nlohmann::ordered_json;

const std::filesystem::path qwen3 = std::filesystem::path(MASKGEN_SHARED_DIR) / "tokenizers" / "qwen3";

const maskgen::ChatTemplate& chat() {
  static const auto t = maskgen::ChatTemplate::from_tokenizer_config(qwen3);
  return t;
}

const json& conversation() {
  static const json messages = [] {
    std::ifstream in(std::filesystem::path(MASKGEN_BENCH_DATA_DIR) / "mixed_zh_en.txt");
    std::vector<std::string> lines;
    for (std::string line; lines.size() < 9 && std::getline(in, line);) {
      if (!line.empty()) lines.push_back(line);
    }
    json m = json::array({{{"role", "system"}, {"content", "You are a careful medical assistant. Answer briefly."}}});
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const bool user = i % 2 == 0;
      m.push_back({{"role", user ? "user" : "assistant"},
                   {"content", user ? lines[i] : "<think>\nThe user asks about this.\n</think>\n\n" + lines[i]}});
    }
    return m;
  }();
  return messages;
}

const maskgen::ChatOptions options{.add_generation_prompt = true};

void BM_ChatCompile(benchmark::State& state) {
  const std::string source = chat().source();
  for (auto _ : state) benchmark::DoNotOptimize(maskgen::ChatTemplate(source, chat().special_tokens()));
}

void BM_ChatRender10Messages(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(chat().apply(conversation(), options));
  state.counters["bytes"] = static_cast<double>(chat().apply(conversation(), options).size());
}

void BM_TokenizeRendered10Messages(benchmark::State& state) {
  static const auto tok = maskgen::load_tokenizer(qwen3);
  const std::string text = chat().apply(conversation(), options);
  for (auto _ : state) benchmark::DoNotOptimize(tok.encode(text, {.add_bos = false}));
  state.counters["tokens"] = static_cast<double>(tok.encode(text, {.add_bos = false}).size());
}

}  // namespace

BENCHMARK(BM_ChatCompile)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ChatRender10Messages)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TokenizeRendered10Messages)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();

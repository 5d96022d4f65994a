// The engine (continuous batching) on the random 110M-shape model (float32), 2 threads:
//   BM_TtftIdle/chunk              time to first token of a 16-token prompt on an idle engine
//   BM_TtftDuringLongPrefill/chunk the same prompt submitted while a 1500-token prompt is prefilling
//   BM_TtftSharedPreamble/reuse    a 500-token preamble + 12-token question, after another question
//                                  on the same preamble finished: reuse 0 recomputes it, 1 copies it
//   BM_Aggregate/clients           clients each sending 2 requests (128-token prompt, 64 new tokens)
//                                  back to back: new tokens per second over all of them
// Times to first token come from RequestResult::seconds_to_first_token (submit to first token).
//   build/bench/engine_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <maskgen/engine.hpp>
#include <maskgen/model.hpp>

#include <random>
#include <thread>

#include <benchmark/benchmark.h>

#include "support/random_model.hpp"

namespace {

using Model = maskgen::Model<float>;

const Model& model() {
  static const Model m = Model::load(maskgen::tools::random_110m_folder());
  return m;
}

const maskgen::AutoTokenizer& tokenizer() {  // the 110M shape has Llama 2's vocabulary
  static const auto t = maskgen::load_tokenizer(std::filesystem::path(MASKGEN_SHARED_DIR) / "tokenizers/llama2");
  return t;
}

std::vector<std::int32_t> random_prompt(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> ids{1};
  while (ids.size() < n) ids.push_back(static_cast<std::int32_t>(3 + rng() % 31000));
  return ids;
}

const maskgen::GenerationConfig one_token{.max_new_tokens = 1, .pad_token_id = 0};

void BM_TtftIdle(benchmark::State& state) {
  maskgen::Engine engine(model(), tokenizer(), {.prefill_chunk = static_cast<std::size_t>(state.range(0)), .reuse_prefixes = false, .num_threads = 2});
  std::uint32_t seed = 0;
  for (auto _ : state) {
    const auto& r = engine.submit(random_prompt(16, ++seed), one_token).wait();
    state.SetIterationTime(r.seconds_to_first_token);
  }
}

void BM_TtftDuringLongPrefill(benchmark::State& state) {
  const auto chunk = static_cast<std::size_t>(state.range(0));
  maskgen::Engine engine(model(), tokenizer(), {.prefill_chunk = chunk, .reuse_prefixes = false, .num_threads = 2});
  std::uint32_t seed = 100;
  double long_prefill = 0;
  for (auto _ : state) {
    auto long_request = engine.submit(random_prompt(1500, ++seed), one_token);
    // Arrive while it prefills: after its first chunk has started.
    while (engine.stats().steps == 0 && engine.stats().running == 0) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto& r = engine.submit(random_prompt(16, ++seed), one_token).wait();
    state.SetIterationTime(r.seconds_to_first_token);
    long_prefill += long_request.wait().seconds_to_first_token;
  }
  state.counters["long_prompt_ttft_s"] = long_prefill / static_cast<double>(state.iterations());
}

void BM_TtftSharedPreamble(benchmark::State& state) {
  const bool reuse = state.range(0) != 0;
  maskgen::Engine engine(model(), tokenizer(), {.reuse_prefixes = reuse, .num_threads = 2});
  const auto preamble = random_prompt(500, 7);
  std::uint32_t seed = 1000;
  auto ask = [&] {
    auto p = preamble;
    const auto q = random_prompt(13, ++seed);
    p.insert(p.end(), q.begin() + 1, q.end());
    return engine.submit(p, one_token).wait();
  };
  for (auto _ : state) {
    state.PauseTiming();
    engine.clear_prefix_cache();
    ask();  // another question on the same preamble, finished
    state.ResumeTiming();
    const auto r = ask();
    state.SetIterationTime(r.seconds_to_first_token);
    state.counters["reused_tokens"] = static_cast<double>(r.reused_prompt_tokens);
  }
}

void BM_Aggregate(benchmark::State& state) {
  const int clients = static_cast<int>(state.range(0));
  maskgen::Engine engine(model(), tokenizer(), {.reuse_prefixes = false, .num_threads = 2});
  const maskgen::GenerationConfig gen{.max_new_tokens = 64, .min_new_tokens = 64, .pad_token_id = 0};
  std::uint32_t seed = 5000;
  double tokens = 0, ttft = 0, seconds = 0;
  int firsts = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    std::vector<double> ttfts(static_cast<std::size_t>(clients) * 2);
    for (int c = 0; c < clients; ++c) {
      seed += 10;
      threads.emplace_back([&, c, s = seed] {
        for (int k = 0; k < 2; ++k) {
          const auto& r = engine.submit(random_prompt(128, s + static_cast<std::uint32_t>(k)), gen).wait();
          ttfts[static_cast<std::size_t>(c * 2 + k)] = r.seconds_to_first_token;
        }
      });
    }
    for (auto& t : threads) t.join();
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(took);
    seconds += took;
    tokens += 64.0 * 2 * clients;
    for (double t : ttfts) ttft += t;
    firsts += 2 * clients;
  }
  state.counters["tokens_per_s"] = tokens / seconds;
  state.counters["mean_ttft_s"] = ttft / firsts;
}

}  // namespace

BENCHMARK(BM_TtftIdle)->Arg(16)->Arg(64)->Arg(256)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_TtftDuringLongPrefill)->Arg(16)->Arg(32)->Arg(64)->Arg(256)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_TtftSharedPreamble)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_Aggregate)->Arg(1)->Arg(4)->Arg(8)->Arg(16)->UseManualTime()->Unit(benchmark::kSecond)->Iterations(1);

BENCHMARK_MAIN();

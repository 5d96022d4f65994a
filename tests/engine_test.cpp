// Engine: continuous batching where every request's tokens are bitwise those generate() gives the
// same prompt and config alone, whatever else runs, whenever it arrives, however its prompt is
// chunked and whether its prefix was computed or copied from another request. The reference is
// generate() itself on a batch of one, which the other suites tie to transformers.

#include <maskgen/engine.hpp>
#include <maskgen/model.hpp>

#include <random>
#include <thread>

#include "support/test_support.hpp"

namespace {

using maskgen::Engine;
using maskgen::FinishReason;
using maskgen::GenerationConfig;
using Tok = maskgen::AutoTokenizer;
using Model = maskgen::Model<float>;

struct Reference {
  std::vector<std::int32_t> tokens;
  FinishReason reason;
};

// generate() alone on one prompt; with stop strings, a streamer stops the row once the text
// decoded after the prompt contains one (as the engine does).
Reference alone(const Model& model, const Tok& tok, const std::vector<std::int32_t>& prompt, const GenerationConfig& gen,
                const std::vector<std::string>& stop = {}) {
  maskgen::TokenMatrix ids(1, static_cast<Eigen::Index>(prompt.size()));
  for (std::size_t i = 0; i < prompt.size(); ++i) ids(0, static_cast<Eigen::Index>(i)) = prompt[i];
  const maskgen::TokenMatrix mask = maskgen::TokenMatrix::Ones(1, ids.cols());
  maskgen::Streamer streamer;
  auto text = std::make_shared<std::string>();
  auto stream = std::make_shared<maskgen::DecodeStream<maskgen::AnyTokenizerBackend>>(tok, prompt);
  if (!stop.empty()) {
    streamer = [&stop, text, stream](maskgen::StreamStep& step) {
      *text += stream->put(step.tokens()[0]);
      if (step.finished(0)) *text += stream->finish();
      for (const auto& s : stop) {
        if (text->find(s) != std::string::npos) step.stop(0);
      }
    };
  }
  const auto out = maskgen::generate(model, ids, mask, gen, streamer);
  Reference r;
  for (std::size_t i = 0; i < out.lengths[0]; ++i) r.tokens.push_back(out.sequences(0, static_cast<Eigen::Index>(i)));
  r.reason = out.finish_reasons[0];
  return r;
}

struct Case {
  std::vector<std::int32_t> prompt;
  GenerationConfig gen;
  bool shares_preamble = false;
};

// Random prompts (a third start with one shared preamble) and random settings.
std::vector<Case> random_cases(std::mt19937& rng, int count, std::int32_t vocab, std::size_t context) {
  std::uniform_int_distribution<std::int32_t> token(3, vocab - 1);
  std::vector<std::int32_t> preamble(std::min<std::size_t>(20, context / 4));
  for (auto& t : preamble) t = token(rng);
  std::vector<Case> cases;
  for (int i = 0; i < count; ++i) {
    Case c;
    if (rng() % 3 == 0) {
      c.prompt = preamble;
      c.shares_preamble = true;
    }
    const std::size_t extra = 1 + rng() % std::min<std::size_t>(30, context / 3);
    for (std::size_t k = 0; k < extra; ++k) c.prompt.push_back(token(rng));
    c.gen.max_new_tokens = static_cast<int>(rng() % std::min<std::size_t>(17, context - c.prompt.size()));
    c.gen.num_threads = 1;
    c.gen.pad_token_id = 0;  // (only generate() reads it)
    if (rng() % 2) {
      c.gen.do_sample = true;
      c.gen.seed = rng();
      c.gen.top_k = std::array{0, 5, 50}[rng() % 3];
      c.gen.temperature = std::array{0.7, 1.0, 1.3}[rng() % 3];
      c.gen.top_p = rng() % 2 ? 1.0 : 0.9;
    }
    if (rng() % 4 == 0) c.gen.repetition_penalty = 1.3;
    if (rng() % 5 == 0) c.gen.min_new_tokens = 2;
    cases.push_back(std::move(c));
  }
  return cases;
}

// Submits `cases` from three threads at random moments and checks every result against generate().
void check_random_traffic(const std::string& model_name, const std::filesystem::path& tokenizer_dir, unsigned seed) {
  const auto dir = maskgen::test::model_dir(model_name);
  MASKGEN_REQUIRE_SHARED(dir);
  MASKGEN_REQUIRE_SHARED(tokenizer_dir);
  const Model model = Model::load(dir);
  const Tok tok = maskgen::load_tokenizer(tokenizer_dir);
  const auto context = static_cast<std::size_t>(model.config().max_position_embeddings);
  std::mt19937 rng(seed);
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(model_name + " round " + std::to_string(round));
    const auto cases = random_cases(rng, 18, static_cast<std::int32_t>(std::min<std::int64_t>(model.config().vocab_size, 4000)), context);
    maskgen::EngineOptions options;
    options.prefill_chunk = std::array<std::size_t, 4>{1, 5, 16, 256}[round % 4 + (rng() % 2)];
    options.max_running = std::array<std::size_t, 3>{2, 5, 32}[rng() % 3];
    options.max_cached_tokens = round == 1 ? context + 40 : 0;  // round 1: requests wait for room
    options.num_threads = 1 + static_cast<int>(rng() % 2);
    SCOPED_TRACE("prefill_chunk " + std::to_string(options.prefill_chunk) + ", max_running " +
                 std::to_string(options.max_running));
    std::vector<maskgen::RequestHandle> handles(cases.size());
    {
      Engine<Model> engine(model, tok, options);
      std::vector<std::thread> clients;
      for (unsigned t = 0; t < 3; ++t) {
        clients.emplace_back([&, t] {
          std::mt19937 pause(seed + t);
          for (std::size_t i = t; i < cases.size(); i += 3) {
            std::this_thread::sleep_for(std::chrono::microseconds(pause() % 3000));
            handles[i] = engine.submit(cases[i].prompt, cases[i].gen);
          }
        });
      }
      for (auto& c : clients) c.join();
      engine.wait_idle();
      const auto stats = engine.stats();
      EXPECT_EQ(stats.running, 0u);
      EXPECT_EQ(stats.reserved_tokens, 0u);
      EXPECT_EQ(stats.cached_tokens, 0u);
      EXPECT_LE(stats.retained_tokens, stats.max_cached_tokens);
      engine.clear_prefix_cache();
      for (int i = 0; i < 1000 && engine.stats().retained_tokens != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      EXPECT_EQ(engine.stats().retained_tokens, 0u);
    }
    std::size_t reused = 0;
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const auto& got = handles[i].wait();
      const Reference want = alone(model, tok, cases[i].prompt, cases[i].gen);
      EXPECT_EQ(got.tokens, want.tokens) << "request " << i;
      EXPECT_EQ(got.finish_reason, want.reason) << "request " << i;
      EXPECT_EQ(got.prompt_tokens, cases[i].prompt.size());
      reused += got.reused_prompt_tokens;
    }
    // (Requests admitted in the same step cannot share: neither holds the preamble yet.)
    ::testing::Test::RecordProperty("reused_prompt_tokens_round_" + std::to_string(round), static_cast<int>(reused));
  }
}

TEST(Engine, RandomTrafficEqualsGenerateAloneQwen3) {
  check_random_traffic("qwen3", maskgen::test::shared_dir() / "models/stories260K", 11);
}
TEST(Engine, RandomTrafficEqualsGenerateAloneMistralSlidingWindow) {
  check_random_traffic("mistral_window", maskgen::test::shared_dir() / "models/stories260K", 12);
}
TEST(Engine, RandomTrafficEqualsGenerateAloneSmolLM3WithoutRopeLayers) {
  check_random_traffic("smollm3", maskgen::test::shared_dir() / "models/stories260K", 14);
}
TEST(Engine, RandomTrafficEqualsGenerateAloneGemma2SoftCapped) {
  check_random_traffic("gemma2", maskgen::test::shared_dir() / "models/stories260K", 15);
}
TEST(Engine, RandomTrafficEqualsGenerateAloneGemma3LocalAndGlobalRope) {
  check_random_traffic("gemma3_text", maskgen::test::shared_dir() / "models/stories260K", 16);
}
// Phi-3's LongRoPE: prompts past original_max_position_embeddings (16) rotate with the long
// factors, fed in chunks or whole.
TEST(Engine, RandomTrafficEqualsGenerateAlonePhi3LongRope) {
  check_random_traffic("phi3", maskgen::test::shared_dir() / "models/stories260K", 17);
}
TEST(Engine, RandomTrafficEqualsGenerateAloneOlmo2) {
  check_random_traffic("olmo2", maskgen::test::shared_dir() / "models/stories260K", 18);
}
TEST(Engine, RandomTrafficEqualsGenerateAloneGranite) {
  check_random_traffic("granite", maskgen::test::shared_dir() / "models/stories260K", 19);
}
// Mixtures of experts: the rows of a step share experts, and each row's tokens must still be what
// generate() gives it alone (Qwen3-MoE with a dense layer among the sparse ones; gpt-oss with
// sinks, sliding layers, YaRN and the clamped SwiGLU).
TEST(Engine, RandomTrafficEqualsGenerateAloneQwen3Moe) {
  check_random_traffic("qwen3_moe", maskgen::test::shared_dir() / "models/stories260K", 20);
}
TEST(Engine, RandomTrafficEqualsGenerateAloneGptOss) {
  check_random_traffic("gpt_oss", maskgen::test::shared_dir() / "models/stories260K", 21);
}
// Quantized checkpoints as published: GPTQ with act-order (a group per k), fine-grained FP8 with
// partial blocks, and gpt-oss with MXFP4 experts.
TEST(Engine, RandomTrafficEqualsGenerateAloneGptqActOrder) {
  check_random_traffic("gptq_qwen3_actorder", maskgen::test::shared_dir() / "models/stories260K", 22);
}
TEST(Engine, RandomTrafficEqualsGenerateAloneFp8Blocks) {
  check_random_traffic("fp8_block_qwen3", maskgen::test::shared_dir() / "models/stories260K", 23);
}
TEST(Engine, RandomTrafficEqualsGenerateAloneGptOssMxfp4) {
  check_random_traffic("gpt_oss_mxfp4", maskgen::test::shared_dir() / "models/stories260K", 24);
}
TEST(Engine, RandomTrafficEqualsGenerateAloneStories260K) {
  check_random_traffic("stories260K", maskgen::test::shared_dir() / "models/stories260K", 13);
}

TEST(Engine, SharedPrefixIsCopiedNotRecomputedAndChangesNothing) {
  const auto dir = maskgen::test::model_dir("qwen3");
  const auto tok_dir = maskgen::test::shared_dir() / "models/stories260K";
  MASKGEN_REQUIRE_SHARED(tok_dir);
  const Model model = Model::load(dir);
  const Tok tok = maskgen::load_tokenizer(tok_dir);
  std::vector<std::int32_t> preamble;
  for (int i = 0; i < 60; ++i) preamble.push_back(3 + (i * 37) % 120);
  auto with = [&](std::vector<std::int32_t> tail) {
    auto p = preamble;
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  const GenerationConfig greedy{.max_new_tokens = 12, .pad_token_id = 0, .num_threads = 1};
  const GenerationConfig sampled{.max_new_tokens = 12, .pad_token_id = 0, .do_sample = true, .seed = 7, .num_threads = 1};
  Engine<Model> engine(model, tok, {.prefill_chunk = 7, .num_threads = 1});
  // A first request computes the preamble; once it is finished its keys and values are retained.
  const auto first = engine.submit(with({5, 6}), greedy);
  EXPECT_EQ(first.wait().reused_prompt_tokens, 0u);
  engine.wait_idle();
  // Later ones copy it: all of it, or up to where they differ; a running request can be a donor too.
  const auto second = engine.submit(with({9, 9, 9}), sampled);
  const auto third = engine.submit(with({5, 6, 7, 8}), greedy);
  auto short_prompt = preamble;
  short_prompt.resize(30);
  short_prompt.push_back(100);
  const auto fourth = engine.submit(short_prompt, sampled);
  EXPECT_EQ(second.wait().reused_prompt_tokens, 60u);
  // `first` holds its prompt and all its new tokens but the last; a prompt's last token is always computed.
  auto held = with({5, 6});
  held.insert(held.end(), first.wait().tokens.begin(), first.wait().tokens.end() - 1);
  const auto third_prompt = with({5, 6, 7, 8});
  std::size_t common = 0;
  while (common < third_prompt.size() - 1 && common < held.size() && held[common] == third_prompt[common]) ++common;
  EXPECT_EQ(third.wait().reused_prompt_tokens, common);
  EXPECT_GE(common, 62u);
  EXPECT_EQ(fourth.wait().reused_prompt_tokens, 30u);
  EXPECT_EQ(first.wait().tokens, alone(model, tok, with({5, 6}), greedy).tokens);
  EXPECT_EQ(second.wait().tokens, alone(model, tok, with({9, 9, 9}), sampled).tokens);
  EXPECT_EQ(third.wait().tokens, alone(model, tok, with({5, 6, 7, 8}), greedy).tokens);
  EXPECT_EQ(fourth.wait().tokens, alone(model, tok, short_prompt, sampled).tokens);
}

// Prompt chunks go to the prompts with the fewest tokens left first: a short prompt submitted with
// a long one is answered while the long one is still prefilling, and both answers are unchanged.
TEST(Engine, ShortPromptsAreNotStuckBehindALongPrefill) {
  const auto tok_dir = maskgen::test::shared_dir() / "models/stories260K";
  MASKGEN_REQUIRE_SHARED(tok_dir);
  const Model model = Model::load(maskgen::test::model_dir("qwen3"));
  const Tok tok = maskgen::load_tokenizer(tok_dir);
  std::vector<std::int32_t> long_prompt, short_prompt = {5, 6, 7};
  for (int i = 0; i < 240; ++i) long_prompt.push_back(3 + (i * 53) % 120);
  const GenerationConfig gen{.max_new_tokens = 4, .pad_token_id = 0, .num_threads = 1};
  Engine<Model> engine(model, tok, {.prefill_chunk = 4, .num_threads = 1});
  const auto long_handle = engine.submit(long_prompt, gen);
  const auto short_handle = engine.submit(short_prompt, gen);
  const auto& short_result = short_handle.wait();
  // Submitted together: the short one is over (about 4 steps) before the long one's first token (60).
  EXPECT_LT(short_result.seconds, long_handle.wait().seconds_to_first_token);
  EXPECT_EQ(short_result.tokens, alone(model, tok, short_prompt, gen).tokens);
  EXPECT_EQ(long_handle.wait().tokens, alone(model, tok, long_prompt, gen).tokens);
}

// One Model shared by threads: each thread's generate() (greedy, sampling, beam search) gets
// exactly what it gets alone, while an engine decodes on the same model. Built under
// ThreadSanitizer by .ci/run (maskgen_thread_tests).
TEST(Engine, ThreadsShareOneModel) {
  const auto tok_dir = maskgen::test::shared_dir() / "models/stories260K";
  MASKGEN_REQUIRE_SHARED(tok_dir);
  const Model model = Model::load(maskgen::test::model_dir("llama_gqa"));
  const Tok tok = maskgen::load_tokenizer(tok_dir);
  const std::vector<GenerationConfig> configs = {
      {.max_new_tokens = 10, .pad_token_id = 0, .num_threads = 2},
      {.max_new_tokens = 10, .pad_token_id = 0, .do_sample = true, .top_k = 20, .seed = 3, .num_threads = 1},
      {.max_new_tokens = 8, .pad_token_id = 0, .num_beams = 3, .num_return_sequences = 2, .num_threads = 2},
      {.max_new_tokens = 10, .pad_token_id = 0, .repetition_penalty = 1.5, .num_threads = 1}};
  maskgen::TokenMatrix ids(2, 6), mask(2, 6);
  ids << 0, 0, 5, 9, 17, 33, 7, 8, 9, 10, 11, 12;
  mask << 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1;
  std::vector<maskgen::TokenMatrix> expected;
  for (const auto& gen : configs) expected.push_back(maskgen::generate(model, ids, mask, gen).sequences);
  Engine<Model> engine(model, tok, {.num_threads = 1});
  std::vector<maskgen::RequestHandle> handles;
  for (int i = 0; i < 6; ++i) handles.push_back(engine.submit(std::vector<std::int32_t>{5, 9, 17, 33, static_cast<std::int32_t>(40 + i)}, configs[0]));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(configs.size() * 2, 0);
  for (std::size_t t = 0; t < configs.size() * 2; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        const auto out = maskgen::generate(model, ids, mask, configs[t % configs.size()]);
        mismatches[t] += out.sequences != expected[t % configs.size()];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (std::size_t t = 0; t < mismatches.size(); ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(handles[static_cast<std::size_t>(i)].wait().tokens,
              alone(model, tok, {5, 9, 17, 33, 40 + i}, configs[0]).tokens);
  }
}

std::filesystem::path bundled() { return maskgen::test::data_dir().parent_path().parent_path() / "models/sort-reverse"; }

TEST(Engine, BundledModelAnswersAsGenerate) {
  const Model model = Model::load(bundled());
  const Tok tok = maskgen::load_tokenizer(bundled());
  Engine<Model> engine(model, tok, {.prefill_chunk = 3});
  const std::vector<std::string> prompts = {"sort 9 0 4 =", "reverse 1 2 3 4 5 6 7 8 9 9 8 =", "sort 7 =", "reverse 4 0 4 2 ="};
  std::vector<maskgen::RequestHandle> handles;
  const GenerationConfig gen{.max_new_tokens = 16, .pad_token_id = 3};
  for (const auto& p : prompts) handles.push_back(engine.submit(p, gen));
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const auto& got = handles[i].wait();
    EXPECT_EQ(got.tokens, alone(model, tok, tok.encode(prompts[i]), gen).tokens) << prompts[i];
  }
  // The task's answers, by arithmetic, as they follow the prompt (after a space).
  EXPECT_EQ(handles[0].wait().text, " 0 4 9");
  EXPECT_EQ(handles[3].wait().text, " 2 4 0 4");
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    std::vector<std::int32_t> all = tok.encode(prompts[i]);
    all.insert(all.end(), handles[i].wait().tokens.begin(), handles[i].wait().tokens.end());
    EXPECT_EQ(tok.decode(tok.encode(prompts[i])) + handles[i].wait().text, tok.decode(all));
  }
}

TEST(Engine, StopStringsEndTheRequestAndAreNotStreamed) {
  const auto dir = maskgen::test::model_dir("stories260K");
  MASKGEN_REQUIRE_SHARED(dir);
  const Model model = Model::load(dir);
  const Tok tok = maskgen::load_tokenizer(dir);
  const GenerationConfig gen{.max_new_tokens = 60, .pad_token_id = 0};
  const auto prompt = tok.encode("Once upon a time");
  std::vector<std::int32_t> all = prompt;
  for (const auto t : alone(model, tok, prompt, gen).tokens) all.push_back(t);
  const std::string full = tok.decode(all).substr(tok.decode(prompt).size());  // what it says after the prompt
  ASSERT_GT(full.size(), 20u);
  const std::string stop = full.substr(12, 4);  // a piece from the middle of what it would say
  Engine<Model> engine(model, tok);
  std::string streamed;
  auto handle = engine.submit(prompt, gen, {.stop = {stop, "never appears here"}},
                              {.on_text = [&](std::string_view piece) { streamed += piece; }});
  const auto& got = handle.wait();
  const Reference want = alone(model, tok, prompt, gen, {stop, "never appears here"});
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.finish_reason, FinishReason::Stop);
  EXPECT_EQ(got.text, full.substr(0, full.find(stop)));
  EXPECT_EQ(streamed, got.text);
}

TEST(Engine, CancelEndsARequestAndGivesItsMemoryBack) {
  const Model model = Model::load(bundled());
  const Tok tok = maskgen::load_tokenizer(bundled());
  Engine<Model> engine(model, tok, {.reuse_prefixes = false});
  std::atomic<int> tokens{0};
  std::promise<maskgen::RequestHandle> stored;  // the callback may run before submit() returns
  auto handle_future = stored.get_future().share();
  const auto handle = engine.submit("sort 3 1 2 =", {.max_new_tokens = 40, .eos_token_id = 0},  // an id it never emits
                                    {}, {.on_token = [&](std::int32_t) {
                                      if (++tokens == 3) handle_future.get().cancel();
                                    }});
  stored.set_value(handle);
  const auto& got = handle.wait();
  EXPECT_EQ(tokens.load(), 3);  // nothing after the cancel
  EXPECT_EQ(got.finish_reason, FinishReason::Cancel);
  EXPECT_GE(got.tokens.size(), 3u);
  EXPECT_LT(got.tokens.size(), 40u);
  engine.wait_idle();
  EXPECT_EQ(engine.stats().cached_tokens, 0u);
  EXPECT_EQ(engine.stats().reserved_tokens, 0u);
  EXPECT_EQ(engine.stats().retained_tokens, 0u);
}

TEST(Engine, RequestsThatCanNeverRunAreRefusedAtSubmit) {
  const Model model = Model::load(bundled());
  const Tok tok = maskgen::load_tokenizer(bundled());
  Engine<Model> engine(model, tok, {.max_cached_tokens = 100});
  using maskgen::argument_error;
  using maskgen::test::expect_error;
  expect_error<argument_error>([&] { engine.submit(std::vector<std::int32_t>{}, {}); }, {"prompt has no tokens"});
  expect_error<argument_error>([&] { engine.submit(std::vector<std::int32_t>{5, 48}, {}); }, {"prompt[1] is 48", "[0, 48)"});
  expect_error<argument_error>([&] { engine.submit("sort 1 =", {.num_beams = 2}); }, {"num_beams"});
  expect_error<argument_error>([&] { engine.submit(std::vector<std::int32_t>(65, 5), {}); }, {"65 tokens", "context of 64"});
  expect_error<argument_error>([&] { engine.submit("sort 1 =", {.max_new_tokens = -1}); }, {"max_new_tokens"});
  expect_error<argument_error>([&] { engine.submit("sort 1 =", {}, {.stop = {""}}); }, {"stop[0]"});
  Engine<Model> small(model, tok, {.max_cached_tokens = 10});
  expect_error<argument_error>([&] { small.submit("sort 1 2 3 4 =", {.max_new_tokens = 20}); }, {"max_cached_tokens", "at most 10"});
}

}  // namespace

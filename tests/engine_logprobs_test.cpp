// Log-probabilities through the Engine, and OpenAI's penalties and logit_bias there. The reference
// for logprobs is computed here: one float64 forward pass over the prompt and the new tokens (no
// cache, no chunks), then log_softmax of each position's logits in long double. The reference for
// tokens is generate() alone, which the other suites tie to transformers. A request's logprobs and
// tokens must be bitwise the same alone and among many concurrent others.

#include <maskgen/engine.hpp>
#include <maskgen/generation/logprobs.hpp>
#include <maskgen/model.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <thread>

#include "support/test_support.hpp"

namespace {

using maskgen::Engine;
using maskgen::GenerationConfig;
using maskgen::RequestResult;
using maskgen::TokenLogprobs;
using Tok = maskgen::AutoTokenizer;
using Tokens = std::vector<std::int32_t>;

std::filesystem::path tokenizer_dir() { return maskgen::test::shared_dir() / "models/stories260K"; }

// [new tokens][vocab] log_softmax of the logits each new token was chosen from.
std::vector<std::vector<long double>> reference_logprobs(const maskgen::Model<double>& model, const Tokens& prompt,
                                                         const Tokens& tokens) {
  Tokens sequence = prompt;
  if (!tokens.empty()) sequence.insert(sequence.end(), tokens.begin(), tokens.end() - 1);
  maskgen::TokenMatrix ids(1, static_cast<Eigen::Index>(sequence.size()));
  for (std::size_t i = 0; i < sequence.size(); ++i) ids(0, static_cast<Eigen::Index>(i)) = sequence[i];
  const auto logits = model.forward(ids, maskgen::TokenMatrix::Ones(1, ids.cols()), nullptr,
                                    {maskgen::LogitsFor::All, 1});  // [seq, vocab]
  std::vector<std::vector<long double>> out;
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    const auto row = logits.row(static_cast<Eigen::Index>(prompt.size() - 1 + t));
    long double top = row.maxCoeff(), total = 0;
    for (Eigen::Index j = 0; j < row.size(); ++j) total += std::exp(static_cast<long double>(row(j)) - top);
    const long double log_total = top + std::log(total);
    std::vector<long double> lp(static_cast<std::size_t>(row.size()));
    for (Eigen::Index j = 0; j < row.size(); ++j) lp[static_cast<std::size_t>(j)] = row(j) - log_total;
    out.push_back(std::move(lp));
  }
  return out;
}

// `got`'s logprobs against the reference, within `tol`: the chosen token's value; the top k are
// distinct, ordered (logprob descending, ties by id ascending), each equal to its reference value,
// and together the k best of the reference.
void expect_matches_reference(const RequestResult& got, const std::vector<std::vector<long double>>& ref, std::size_t k,
                              double tol) {
  ASSERT_EQ(got.logprobs.size(), got.tokens.size());
  ASSERT_EQ(ref.size(), got.tokens.size());
  for (std::size_t t = 0; t < got.tokens.size(); ++t) {
    SCOPED_TRACE("token " + std::to_string(t));
    const TokenLogprobs& lp = got.logprobs[t];
    EXPECT_EQ(lp.token, got.tokens[t]);
    EXPECT_NEAR(lp.logprob, static_cast<double>(ref[t][static_cast<std::size_t>(lp.token)]), tol);
    ASSERT_EQ(lp.top.size(), k);
    std::vector<long double> sorted = ref[t];
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    double mass = 0;
    for (std::size_t j = 0; j < k; ++j) {
      const auto id = static_cast<std::size_t>(lp.top[j].token);
      ASSERT_LT(id, ref[t].size());
      EXPECT_NEAR(lp.top[j].logprob, static_cast<double>(ref[t][id]), tol) << "top " << j;
      EXPECT_NEAR(lp.top[j].logprob, static_cast<double>(sorted[j]), tol) << "top " << j << " is the j-th best";
      if (j + 1 < k) {
        const auto& a = lp.top[j];
        const auto& b = lp.top[j + 1];
        EXPECT_TRUE(a.logprob > b.logprob || (a.logprob == b.logprob && a.token < b.token)) << "order at " << j;
      }
      for (std::size_t i = 0; i < j; ++i) EXPECT_NE(lp.top[i].token, lp.top[j].token);
      mass += std::exp(lp.top[j].logprob);
    }
    EXPECT_LE(mass, 1.0 + 1e-12);
  }
}

TEST(TokenLogprobs, HandComputedValuesTiesAndRange) {
  // Probabilities 1/8, 2/8, 2/8, 3/8 (logits log 1, log 2, log 2, log 3 + a shift that cancels;
  // the shifted logits are rounded, hence a few units of 1e-16 of slack).
  const std::vector<double> logits{5.0, 5.0 + std::log(2.0), 5.0 + std::log(2.0), 5.0 + std::log(3.0)};
  const TokenLogprobs lp = maskgen::token_logprobs<double>(logits, 0, 3);
  EXPECT_EQ(lp.token, 0);
  EXPECT_NEAR(lp.logprob, std::log(1.0 / 8), 1e-14);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].token, 3);
  EXPECT_NEAR(lp.top[0].logprob, std::log(3.0 / 8), 1e-14);
  EXPECT_EQ(lp.top[1].token, 1);  // tied with 2: the lower id first
  EXPECT_EQ(lp.top[2].token, 2);
  EXPECT_EQ(lp.top[1].logprob, lp.top[2].logprob);
  EXPECT_NEAR(lp.top[1].logprob, std::log(2.0 / 8), 1e-14);
  // No top: just the chosen one; more than the vocabulary: every token, whose mass is 1.
  EXPECT_TRUE(maskgen::token_logprobs<double>(logits, 2, 0).top.empty());
  const TokenLogprobs all = maskgen::token_logprobs<double>(logits, 2, 50);
  ASSERT_EQ(all.top.size(), 4u);
  double mass = 0;
  for (const auto& e : all.top) mass += std::exp(e.logprob);
  EXPECT_NEAR(mass, 1.0, 1e-14);
  // float logits, large values: the largest is subtracted first, so the result is exact.
  const std::vector<float> big{1000.0f, 1000.0f};
  EXPECT_EQ(maskgen::token_logprobs<float>(big, 1, 1).logprob, -std::log(2.0));
  using maskgen::argument_error;
  using maskgen::test::expect_error;
  expect_error<argument_error>([&] { maskgen::token_logprobs<double>(logits, 4, 1); }, {"token", "4", "[0, 4)"});
  expect_error<argument_error>([&] { maskgen::token_logprobs<double>(std::vector<double>{}, 0, 1); }, {"empty"});
}

// A real model's logits: the full distribution sums to 1 and agrees with the reference.
TEST(TokenLogprobs, AFullDistributionOfModelLogitsSumsToOne) {
  const auto model = maskgen::Model<double>::load(maskgen::test::model_dir("qwen3"));
  maskgen::TokenMatrix ids(1, 4);
  ids << 5, 9, 17, 33;
  const auto logits = model.forward(ids, maskgen::TokenMatrix::Ones(1, 4));  // [1, vocab]
  const auto vocab = static_cast<std::size_t>(logits.cols());
  const TokenLogprobs lp = maskgen::token_logprobs<double>(std::span<const double>(logits.data(), vocab), 7, vocab);
  ASSERT_EQ(lp.top.size(), vocab);
  long double mass = 0;
  for (const auto& e : lp.top) mass += std::exp(static_cast<long double>(e.logprob));
  EXPECT_NEAR(static_cast<double>(mass), 1.0, 1e-12);
}

// Greedy and sampled requests through engines on the float64 and float32 model, against the
// float64 reference. The sampled ones have penalties, a bias and a temperature of 0.6, which the
// reference knows nothing of: the logprobs are those of the raw logits.
TEST(EngineLogprobs, EqualLogSoftmaxOfTheModelsOwnLogits) {
  MASKGEN_REQUIRE_SHARED(tokenizer_dir());
  const auto dir = maskgen::test::model_dir("qwen3");
  const auto reference_model = maskgen::Model<double>::load(dir);
  const auto float_model = maskgen::Model<float>::load(dir);
  const Tok tok = maskgen::load_tokenizer(tokenizer_dir());
  const std::vector<Tokens> prompts = {{5, 9, 17, 33, 40}, {7, 8, 9}, {100, 3, 3, 3, 64, 90, 12, 4, 4, 1, 2, 3}};
  GenerationConfig greedy{.max_new_tokens = 14, .pad_token_id = 0, .num_threads = 1};
  GenerationConfig sampled{.max_new_tokens = 14, .pad_token_id = 0, .do_sample = true, .temperature = 0.6, .top_k = 10, .seed = 9, .num_threads = 1};
  sampled.frequency_penalty = 1.0;
  sampled.presence_penalty = 0.5;
  sampled.logit_bias = {{20, 8.0}, {5, -10.0}};
  Engine<maskgen::Model<double>> engine64(reference_model, tok, {.prefill_chunk = 4, .num_threads = 1});
  Engine<maskgen::Model<float>> engine32(float_model, tok, {.prefill_chunk = 4, .num_threads = 1});
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    for (const auto& [name, gen] : {std::pair{"greedy", greedy}, std::pair{"sampled", sampled}}) {
      for (const int k : {0, 1, 20}) {
        SCOPED_TRACE(std::string(name) + " prompt " + std::to_string(p) + " k " + std::to_string(k));
        const RequestResult got64 = engine64.submit(prompts[p], gen, {.logprobs = k}).wait();
        const RequestResult got32 = engine32.submit(prompts[p], gen, {.logprobs = k}).wait();
        ASSERT_FALSE(got64.tokens.empty());
        expect_matches_reference(got64, reference_logprobs(reference_model, prompts[p], got64.tokens),
                                 static_cast<std::size_t>(k), 1e-9);
        expect_matches_reference(got32, reference_logprobs(reference_model, prompts[p], got32.tokens),
                                 static_cast<std::size_t>(k), 2e-3);
        if (std::string(name) == "greedy" && k > 0) {  // the chosen token is the most likely one
          for (const auto& lp : got64.logprobs) {
            EXPECT_EQ(lp.top[0].token, lp.token);
            EXPECT_EQ(lp.top[0].logprob, lp.logprob);
          }
        }
      }
    }
  }
}

TEST(EngineLogprobs, CallbackFollowsOnTokenAndPrecedesOnTextOffAndBadValues) {
  const auto bundled = maskgen::test::data_dir().parent_path().parent_path() / "models/sort-reverse";
  const auto model = maskgen::Model<float>::load(bundled);
  const Tok tok = maskgen::load_tokenizer(bundled);
  Engine<maskgen::Model<float>> engine(model, tok);
  const GenerationConfig gen{.max_new_tokens = 16, .pad_token_id = 3};
  std::string events;
  std::vector<TokenLogprobs> streamed;
  std::int32_t last_token = -1;
  const RequestResult got = engine
                        .submit("reverse 1 2 3 4 5 =", gen, {.logprobs = 3},
                                {.on_token =
                                     [&](std::int32_t t) {
                                       events += 'T';
                                       last_token = t;
                                     },
                                 .on_logprobs = [&](const TokenLogprobs& lp) {
                                   events += 'L';
                                   EXPECT_EQ(lp.token, last_token);
                                   streamed.push_back(lp);
                                 },
                                 .on_text = [&](std::string_view) { events += 'X'; }})
                        .wait();
  ASSERT_FALSE(got.tokens.empty());
  EXPECT_EQ(streamed, got.logprobs);
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i] == 'T') {
      ASSERT_LT(i + 1, events.size());
      EXPECT_EQ(events[i + 1], 'L') << events;  // right after its on_token, so before its on_text
    }
  }
  EXPECT_EQ(std::count(events.begin(), events.end(), 'L'), static_cast<std::ptrdiff_t>(got.tokens.size()));

  bool called = false;
  const RequestResult off = engine.submit("reverse 1 2 3 4 5 =", gen, {}, {.on_logprobs = [&](const TokenLogprobs&) { called = true; }}).wait();
  EXPECT_TRUE(off.logprobs.empty());
  EXPECT_FALSE(called);
  EXPECT_EQ(off.tokens, got.tokens);

  using maskgen::argument_error;
  using maskgen::test::expect_error;
  expect_error<argument_error>([&] { engine.submit("sort 1 =", gen, {.logprobs = 21}); }, {"logprobs", "[-1, 20]", "21"});
  expect_error<argument_error>([&] { engine.submit("sort 1 =", gen, {.logprobs = -2}); }, {"logprobs", "-2"});
  expect_error<argument_error>([&] { engine.submit("sort 1 =", {.logit_bias = {{48, 1.0}}}); }, {"logit_bias", "48", "[0, 48)"});
  expect_error<argument_error>([&] { engine.submit("sort 1 =", {.frequency_penalty = 3}); }, {"frequency_penalty", "3"});
}

struct Case {
  Tokens prompt;
  GenerationConfig gen;
  int logprobs = -1;
};

// Random prompts and settings, penalties and bias included; every request asks for logprobs or not.
std::vector<Case> random_cases(std::mt19937& rng, int count) {
  std::uniform_int_distribution<std::int32_t> token(3, 127);
  std::vector<Case> cases;
  for (int i = 0; i < count; ++i) {
    Case c;
    const std::size_t length = 1 + rng() % 30;
    for (std::size_t k = 0; k < length; ++k) c.prompt.push_back(token(rng));
    c.gen.max_new_tokens = 1 + static_cast<int>(rng() % 16);
    c.gen.pad_token_id = 0;
    c.gen.num_threads = 1;
    if (rng() % 2) {
      c.gen.do_sample = true;
      c.gen.seed = rng();
      c.gen.top_k = std::array{0, 5, 50}[rng() % 3];
      c.gen.temperature = std::array{0.7, 1.0, 1.3}[rng() % 3];
    }
    if (rng() % 2) c.gen.frequency_penalty = std::array{-2.0, -0.5, 0.7, 2.0}[rng() % 4];
    if (rng() % 2) c.gen.presence_penalty = std::array{-1.0, 0.4, 2.0}[rng() % 3];
    if (rng() % 3 == 0) c.gen.logit_bias = {{token(rng), 8.0}, {token(rng), -100.0}};
    if (rng() % 4 == 0) c.gen.repetition_penalty = 1.3;
    c.logprobs = static_cast<int>(rng() % 22) - 1;
    cases.push_back(std::move(c));
  }
  return cases;
}

Tokens generate_alone(const maskgen::Model<float>& model, const Case& c) {
  maskgen::TokenMatrix ids(1, static_cast<Eigen::Index>(c.prompt.size()));
  for (std::size_t i = 0; i < c.prompt.size(); ++i) ids(0, static_cast<Eigen::Index>(i)) = c.prompt[i];
  const auto out = maskgen::generate(model, ids, maskgen::TokenMatrix::Ones(1, ids.cols()), c.gen);
  Tokens t;
  for (std::size_t i = 0; i < out.lengths[0]; ++i) t.push_back(out.sequences(0, static_cast<Eigen::Index>(i)));
  return t;
}

// Requests submitted from three threads at random moments, into engines of different shapes:
// every request's tokens equal generate() alone (penalties and bias included), and its logprobs
// are bitwise those it gets alone on an idle engine.
TEST(EngineLogprobs, AloneAndUnderLoadAreBitwiseEqual) {
  MASKGEN_REQUIRE_SHARED(tokenizer_dir());
  const auto model = maskgen::Model<float>::load(maskgen::test::model_dir("qwen3"));
  const Tok tok = maskgen::load_tokenizer(tokenizer_dir());
  std::mt19937 rng(21);
  const auto cases = random_cases(rng, 30);

  std::vector<RequestResult> lone;
  {
    Engine<maskgen::Model<float>> idle(model, tok, {.num_threads = 1});
    for (const Case& c : cases) lone.push_back(idle.submit(c.prompt, c.gen, {.logprobs = c.logprobs}).wait());
  }
  for (const auto& [chunk, running, threads] : {std::tuple<std::size_t, std::size_t, int>{3, 6, 1}, {16, 32, 2}}) {
    SCOPED_TRACE("prefill_chunk " + std::to_string(chunk) + ", max_running " + std::to_string(running));
    std::vector<maskgen::RequestHandle> handles(cases.size());
    {
      Engine<maskgen::Model<float>> engine(model, tok, {.max_running = running, .prefill_chunk = chunk, .num_threads = threads});
      std::vector<std::thread> clients;
      for (unsigned t = 0; t < 3; ++t) {
        clients.emplace_back([&, t] {
          std::mt19937 pause(100 + t);
          for (std::size_t i = t; i < cases.size(); i += 3) {
            std::this_thread::sleep_for(std::chrono::microseconds(pause() % 2000));
            handles[i] = engine.submit(cases[i].prompt, cases[i].gen, {.logprobs = cases[i].logprobs});
          }
        });
      }
      for (auto& c : clients) c.join();
      engine.wait_idle();
    }
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const RequestResult& got = handles[i].wait();
      EXPECT_EQ(got.tokens, lone[i].tokens) << "request " << i;
      EXPECT_EQ(got.tokens, generate_alone(model, cases[i])) << "request " << i;
      EXPECT_EQ(got.logprobs.size(), cases[i].logprobs >= 0 ? got.tokens.size() : 0u) << "request " << i;
      EXPECT_TRUE(got.logprobs == lone[i].logprobs) << "request " << i;
      for (const auto& lp : got.logprobs) EXPECT_EQ(lp.top.size(), static_cast<std::size_t>(std::max(cases[i].logprobs, 0)));
    }
  }
}

}  // namespace

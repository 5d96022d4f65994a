// Each logits processor on its own, with expected values worked out by hand; greedy choice; the
// sampler's distribution and reproducibility.

#include <maskgen/generation/step.hpp>
#include <maskgen/sampling.hpp>

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

RowHistory history(const std::vector<std::int32_t>& tokens, std::size_t prompt_length) {
  return RowHistory{tokens, prompt_length};
}

TEST(Processors, RepetitionPenaltyDividesPositiveAndMultipliesNegativeScoresOnce) {
  std::vector<double> s{2, -2, 1, 3};
  const std::vector<std::int32_t> tokens{0, 1, 1};  // token 1 twice: penalized once
  processors::RepetitionPenalty{2.0}(history(tokens, 1), std::span<double>(s));
  EXPECT_EQ(s, (std::vector<double>{1, -4, 1, 3}));
}

TEST(Processors, FrequencyAndPresencePenaltiesCountGeneratedTokensOnly) {
  // Prompt {3, 3, 4}, generated {1, 0, 1, 1, 9}: token 0 once, token 1 three times; 3 and 4 are
  // prompt only and 9 is outside the vocabulary. OpenAI: s_j -= c_j * 0.5 + (c_j > 0) * 1.
  const std::vector<std::int32_t> tokens{3, 3, 4, 1, 0, 1, 1, 9};
  std::vector<double> s{2, -1, 0.25, 3, 1};
  processors::FrequencyPresencePenalty{0.5, 1.0}(history(tokens, 3), std::span<double>(s));
  EXPECT_EQ(s, (std::vector<double>{2 - 1.5, -1 - 2.5, 0.25, 3, 1}));
  // Negative penalties encourage repeats; a removed token stays removed.
  std::vector<float> t{2, -1, 0.25f, -static_cast<float>(inf), 1};
  const std::vector<std::int32_t> with_removed{3, 3, 4, 1, 0, 1, 1, 3};
  processors::FrequencyPresencePenalty{-0.5, -1.0}(history(with_removed, 3), std::span<float>(t));
  EXPECT_EQ(t, (std::vector<float>{3.5f, 1.5f, 0.25f, -static_cast<float>(inf), 1}));
  // Presence alone: once per distinct generated token, whatever the count.
  std::vector<double> u{0, 0, 0};
  const std::vector<std::int32_t> repeated{2, 2, 2, 2};
  processors::FrequencyPresencePenalty{0.0, 2.0}(history(repeated, 1), std::span<double>(u));
  EXPECT_EQ(u, (std::vector<double>{0, 0, -2}));
}

TEST(Processors, LogitBiasAddsEachTokensBias) {
  std::vector<float> s{1.5f, 2, 0.25f, -static_cast<float>(inf)};
  processors::LogitBias{{{0, 100.0}, {2, -100.0}, {3, 5.0}}}(history({}, 0), std::span<float>(s));
  EXPECT_EQ(s, (std::vector<float>{101.5f, 2, -99.75f, -static_cast<float>(inf)}));
}

TEST(Processors, BiasComesFirstAndOpenAIPenaltiesFollowTheRepetitionPenalty) {
  // vLLM's order: logit_bias, repetition penalty, frequency/presence penalties.
  GenerationConfig gen;
  gen.logit_bias = {{0, 2.0}};
  gen.repetition_penalty = 2.0;
  gen.frequency_penalty = 1.0;
  const auto chain = step::make_processors<double>(gen, {});
  EXPECT_EQ(chain.size(), 3u);
  // Prompt {0}, generated {1}. Token 0: (2 + 2) / 2 = 2 (the penalty first would give 2 / 2 + 2 = 3).
  // Token 1: -1 * 2 - 1 = -3 (the frequency penalty first would give (-1 - 1) * 2 = -4).
  const std::vector<std::int32_t> tokens{0, 1};
  std::vector<double> s{2, -1, 5};
  chain(history(tokens, 1), std::span<double>(s));
  EXPECT_EQ(s, (std::vector<double>{2, -3, 5}));
  // Off by default: the chain is empty for a default greedy config.
  EXPECT_TRUE(step::make_processors<double>(GenerationConfig{}, {}).empty());
}

TEST(Processors, NoRepeatNGramBansTheTokenThatWouldRepeatAnNGram) {
  std::vector<double> s(8, 0.0);
  const std::vector<std::int32_t> bigram{5, 6, 5};  // "5 6" seen, last token 5: 6 is banned
  processors::NoRepeatNGram{2}(history(bigram, 3), std::span<double>(s));
  for (std::size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i], i == 6 ? -inf : 0.0) << i;

  std::vector<double> t(8, 0.0);
  const std::vector<std::int32_t> trigram{1, 2, 3, 1, 2};  // "1 2 3" seen, ends in "1 2": 3 is banned
  processors::NoRepeatNGram{3}(history(trigram, 2), std::span<double>(t));
  for (std::size_t i = 0; i < t.size(); ++i) EXPECT_EQ(t[i], i == 3 ? -inf : 0.0) << i;

  std::vector<double> u(8, 0.0);
  const std::vector<std::int32_t> short_row{1, 2};  // too short for a 4-gram
  processors::NoRepeatNGram{4}(history(short_row, 2), std::span<double>(u));
  EXPECT_EQ(u, std::vector<double>(8, 0.0));
}

TEST(Processors, MinNewTokensRemovesEveryEosUntilReached) {
  const processors::MinNewTokens p{2, {1, 3}};
  std::vector<double> s{0, 0, 0, 0};
  const std::vector<std::int32_t> one_new{7, 7, 4};  // prompt of 2, one new token
  p(history(one_new, 2), std::span<double>(s));
  EXPECT_EQ(s, (std::vector<double>{0, -inf, 0, -inf}));
  std::vector<double> t{0, 0, 0, 0};
  const std::vector<std::int32_t> two_new{7, 7, 4, 4};
  p(history(two_new, 2), std::span<double>(t));
  EXPECT_EQ(t, (std::vector<double>{0, 0, 0, 0}));
}

TEST(Processors, TemperatureDivides) {
  std::vector<float> s{2, -4, 1};
  processors::Temperature{2.0}(history({}, 0), std::span<float>(s));
  EXPECT_EQ(s, (std::vector<float>{1, -2, 0.5f}));
}

TEST(Processors, TopKKeepsTheKBestAndTheirTies) {
  std::vector<double> s{1, 3, 2, 0};
  processors::TopK{2}(history({}, 0), std::span<double>(s));
  EXPECT_EQ(s, (std::vector<double>{-inf, 3, 2, -inf}));
  std::vector<double> tie{1, 3, 2, 3};
  processors::TopK{1}(history({}, 0), std::span<double>(tie));
  EXPECT_EQ(tie, (std::vector<double>{-inf, 3, -inf, 3}));
  std::vector<double> few{1, 3};
  processors::TopK{5}(history({}, 0), std::span<double>(few));  // k beyond the vocabulary keeps all
  EXPECT_EQ(few, (std::vector<double>{1, 3}));
}

TEST(Processors, TopPKeepsTheSmallestNucleusAboveP) {
  // Probabilities 0.5, 0.3, 0.15, 0.05. With p = 0.75 the tail 0.05 + 0.15 = 0.2 <= 0.25 goes, and
  // adding 0.3 (0.5 > 0.25) would not.
  std::vector<double> s{std::log(0.15), std::log(0.5), std::log(0.05), std::log(0.3)};
  const std::vector<double> before = s;
  processors::TopP{0.75}(history({}, 0), std::span<double>(s));
  EXPECT_EQ(s, (std::vector<double>{-inf, before[1], -inf, before[3]}));
  // p = 0.4 keeps only the best; min_keep = 2 keeps two regardless.
  std::vector<double> t = before, u = before;
  processors::TopP{0.4}(history({}, 0), std::span<double>(t));
  EXPECT_EQ(t, (std::vector<double>{-inf, before[1], -inf, -inf}));
  processors::TopP{0.4, 2}(history({}, 0), std::span<double>(u));
  EXPECT_EQ(u, (std::vector<double>{-inf, before[1], -inf, before[3]}));
}

TEST(Processors, MinPDropsTokensBelowAFractionOfTheBest) {
  // Best probability 0.5: with min_p = 0.5 the floor is 0.25, so 0.3 stays and 0.15, 0.05 go.
  std::vector<double> s{std::log(0.15), std::log(0.5), std::log(0.05), std::log(0.3)};
  const std::vector<double> before = s;
  processors::MinP{0.5}(history({}, 0), std::span<double>(s));
  EXPECT_EQ(s, (std::vector<double>{-inf, before[1], -inf, before[3]}));
}

TEST(Processors, ChainRunsInOrder) {
  LogitsProcessorChain<double> chain;
  chain.add(processors::Temperature{0.5}).add(processors::TopK{1});
  std::vector<double> s{1, 2};
  chain(history({}, 0), std::span<double>(s));
  EXPECT_EQ(s, (std::vector<double>{-inf, 4}));
  EXPECT_EQ(chain.size(), 2u);
}

TEST(Choice, ArgmaxTakesTheFirstOfEqualScoresAndRefusesAnEmptyChoice) {
  const std::vector<double> s{1, 5, 5, 2};
  EXPECT_EQ(argmax_token<double>(s), 1);
  const std::vector<double> none{-inf, -inf};
  test::expect_error<argument_error>([&] { argmax_token<double>(none); }, {"removed"});
  RowRandom random(1);
  test::expect_error<argument_error>([&] { sample_token<double>(none, random); }, {"removed"});
}

TEST(Choice, SamplingFollowsTheProbabilities) {
  const std::vector<double> s{std::log(0.5), std::log(0.3), -inf, std::log(0.2)};
  RowRandom random(42);
  std::vector<int> counts(4, 0);
  const int draws = 100000;
  for (int i = 0; i < draws; ++i) ++counts[static_cast<std::size_t>(sample_token<double>(s, random))];
  EXPECT_EQ(counts[2], 0);  // a removed token is never drawn
  // Binomial standard deviations are about 0.0016 here; allow five.
  EXPECT_NEAR(counts[0] / double(draws), 0.5, 0.008);
  EXPECT_NEAR(counts[1] / double(draws), 0.3, 0.008);
  EXPECT_NEAR(counts[3] / double(draws), 0.2, 0.008);
}

TEST(Choice, RandomStreamsAreFixedBySeed) {
  RowRandom a(7), b(7), c(8);
  for (int i = 0; i < 5; ++i) {
    const double x = a.uniform();
    EXPECT_EQ(x, b.uniform());
    EXPECT_NE(x, c.uniform());
    EXPECT_GE(x, 0.0);
    EXPECT_LT(x, 1.0);
  }
  // std::mt19937_64's 10000th output for the default seed is fixed by the C++ standard; our
  // uniform is its top 53 bits, so streams are the same on every platform.
  std::mt19937_64 reference;
  reference.discard(9999);
  EXPECT_EQ(reference(), 9981545732273789042ULL);
  EXPECT_NE(mix_seed(0, 0), mix_seed(0, 1));
  EXPECT_NE(mix_seed(0, 1), mix_seed(1, 0));
}

TEST(Choice, LogSoftmaxNormalizes) {
  std::vector<double> s{1, 2, 3, -inf};
  log_softmax<double>(s);
  double total = 0;
  for (const double v : s) total += std::exp(v);
  EXPECT_NEAR(total, 1.0, 1e-15);
  EXPECT_NEAR(s[2] - s[1], 1.0, 1e-15);
  EXPECT_EQ(s[3], -inf);
}

}  // namespace
}  // namespace maskgen

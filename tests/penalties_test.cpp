// OpenAI's logit_bias and frequency and presence penalties through generate(). The reference is a
// step-by-step recomputation written here: the model's own forward pass over the prompt and the
// tokens so far (no cache), the bias and penalties applied by hand to its logits as OpenAI
// documents them, then the argmax. Also their visible effects, batch invariance and bad values.

#include <maskgen/generate.hpp>
#include <maskgen/model.hpp>

#include <cmath>
#include <limits>
#include <map>

#include "support/test_support.hpp"

namespace {

using maskgen::GenerationConfig;
using Model = maskgen::Model<double>;
using Tokens = std::vector<std::int32_t>;

Model fixture() { return Model::load(maskgen::test::model_dir("qwen3")); }

maskgen::TokenMatrix one_row(const Tokens& tokens) {
  maskgen::TokenMatrix ids(1, static_cast<Eigen::Index>(tokens.size()));
  for (std::size_t i = 0; i < tokens.size(); ++i) ids(0, static_cast<Eigen::Index>(i)) = tokens[i];
  return ids;
}

Tokens generated_row(const maskgen::GenerationResult<double>& out, Eigen::Index r) {
  Tokens t;
  for (std::size_t i = 0; i < out.lengths[static_cast<std::size_t>(r)]; ++i) t.push_back(out.sequences(r, static_cast<Eigen::Index>(i)));
  return t;
}

Tokens alone(const Model& model, const Tokens& prompt, const GenerationConfig& gen) {
  const maskgen::TokenMatrix ids = one_row(prompt);
  return generated_row(maskgen::generate(model, ids, maskgen::TokenMatrix::Ones(1, ids.cols()), gen), 0);
}

// Greedy by hand: each step runs the whole sequence through the model and takes the argmax of
// logit_j + bias_j - count_j * frequency - (count_j > 0) * presence, count_j over generated tokens.
Tokens by_hand(const Model& model, const Tokens& prompt, int steps, const std::map<std::int32_t, double>& bias,
               double frequency, double presence, const Tokens& eos) {
  Tokens sequence = prompt, out;
  const auto vocab = static_cast<std::size_t>(model.config().vocab_size);
  for (int step = 0; step < steps; ++step) {
    const maskgen::TokenMatrix ids = one_row(sequence);
    const auto logits = model.forward(ids, maskgen::TokenMatrix::Ones(1, ids.cols()));  // [1, vocab]
    std::vector<double> count(vocab, 0.0);
    for (const std::int32_t t : out) count[static_cast<std::size_t>(t)] += 1;
    std::int32_t best = 0;
    double best_score = -std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < vocab; ++j) {
      double s = logits(0, static_cast<Eigen::Index>(j));
      if (const auto b = bias.find(static_cast<std::int32_t>(j)); b != bias.end()) s += b->second;
      s -= count[j] * frequency + (count[j] > 0 ? presence : 0.0);
      if (s > best_score) {
        best_score = s;
        best = static_cast<std::int32_t>(j);
      }
    }
    out.push_back(best);
    sequence.push_back(best);
    if (std::find(eos.begin(), eos.end(), best) != eos.end()) break;
  }
  return out;
}

const Tokens prompt_a{5, 9, 17, 33, 40}, prompt_b{7, 8, 9}, prompt_c{100, 3, 3, 3, 64, 90, 12};

TEST(Penalties, GreedyTokensAreTheArgmaxOfTheBiasedPenalizedLogits) {
  const Model model = fixture();
  const Tokens eos = model.config().eos_token_ids;
  struct Setting {
    std::map<std::int32_t, double> bias;
    double frequency, presence;
  };
  const std::vector<Setting> settings = {
      {{}, 1.5, 0.0}, {{}, 0.0, 2.0}, {{}, -1.0, 0.5}, {{{5, 3.0}, {11, -2.5}}, 0.7, 0.0}, {{{20, 20.0}, {21, 12.0}}, 0.0, 0.0}};
  std::vector<int> changed(settings.size(), 0);
  for (const Tokens& prompt : {prompt_a, prompt_b, prompt_c}) {
    const GenerationConfig plain{.max_new_tokens = 24, .pad_token_id = 0, .num_threads = 1};
    const Tokens unpenalized = alone(model, prompt, plain);
    EXPECT_EQ(unpenalized, by_hand(model, prompt, 24, {}, 0, 0, eos));  // the reference itself agrees where nothing is on
    for (std::size_t i = 0; i < settings.size(); ++i) {
      SCOPED_TRACE("setting " + std::to_string(i));
      GenerationConfig gen = plain;
      gen.logit_bias = settings[i].bias;
      gen.frequency_penalty = settings[i].frequency;
      gen.presence_penalty = settings[i].presence;
      const Tokens got = alone(model, prompt, gen);
      EXPECT_EQ(got, by_hand(model, prompt, 24, settings[i].bias, settings[i].frequency, settings[i].presence, eos));
      changed[i] += got != unpenalized;
    }
  }
  // Every setting changes some prompt's tokens on this model, so the comparison means something.
  for (std::size_t i = 0; i < settings.size(); ++i) EXPECT_GE(changed[i], 1) << "setting " << i;
}

TEST(Penalties, BiasForcesOrBansATokenAndPresenceDiscouragesRepeats) {
  const Model model = fixture();
  const GenerationConfig plain{.max_new_tokens = 16, .pad_token_id = 0, .num_threads = 1};
  const Tokens unpenalized = alone(model, prompt_a, plain);
  ASSERT_FALSE(unpenalized.empty());

  GenerationConfig forced = plain;
  forced.logit_bias = {{17, 100.0}};
  EXPECT_EQ(alone(model, prompt_a, forced), Tokens(16, 17));

  GenerationConfig banned = plain;
  banned.logit_bias = {{unpenalized[0], -100.0}};
  const Tokens without = alone(model, prompt_a, banned);
  ASSERT_FALSE(without.empty());
  EXPECT_EQ(std::count(without.begin(), without.end(), unpenalized[0]), 0);

  // Repeats: the plain run repeats tokens; a presence penalty of 2 makes fewer distinct-token
  // repeats, and a frequency penalty of -2 (encouraging repeats) makes the first token recur.
  auto repeats = [](const Tokens& t) {
    std::map<std::int32_t, int> seen;
    int r = 0;
    for (const std::int32_t x : t) r += seen[x]++ > 0;
    return r;
  };
  GenerationConfig present = plain;
  present.presence_penalty = 2.0;
  const Tokens varied = alone(model, prompt_a, present);
  EXPECT_GT(repeats(unpenalized), 0);
  EXPECT_LT(repeats(varied), repeats(unpenalized));
  GenerationConfig sticky = plain;
  sticky.frequency_penalty = -2.0;
  const Tokens stuck = alone(model, prompt_a, sticky);
  EXPECT_GT(repeats(stuck), repeats(unpenalized));
}

// Each row counts its own generated tokens: a padded batch (either side, any threads) gives every
// row what it gets alone, with the penalties, the bias and sampling on.
TEST(Penalties, EveryRowOfABatchCountsItsOwnTokensAndEqualsItselfAlone) {
  const Model model = fixture();
  const std::vector<Tokens> prompts = {prompt_a, prompt_b, prompt_c};
  for (const bool sample : {false, true}) {
    GenerationConfig gen{.max_new_tokens = 20, .pad_token_id = 0, .do_sample = sample, .top_k = 0, .seed = 5, .num_threads = 1};
    gen.frequency_penalty = 0.8;
    gen.presence_penalty = 0.6;
    gen.repetition_penalty = 1.2;
    gen.logit_bias = {{4, 1.5}, {30, -3.0}};
    for (const bool left : {true, false}) {
      maskgen::TokenMatrix ids = maskgen::TokenMatrix::Constant(3, 9, 1), mask = maskgen::TokenMatrix::Zero(3, 9);
      for (std::size_t r = 0; r < prompts.size(); ++r) {
        const auto n = static_cast<Eigen::Index>(prompts[r].size());
        const Eigen::Index start = left ? 9 - n : 0;
        for (Eigen::Index c = 0; c < n; ++c) {
          ids(static_cast<Eigen::Index>(r), start + c) = prompts[r][static_cast<std::size_t>(c)];
          mask(static_cast<Eigen::Index>(r), start + c) = 1;
        }
      }
      for (const int threads : {1, 2}) {
        gen.num_threads = threads;
        const auto out = maskgen::generate(model, ids, mask, gen);
        for (std::size_t r = 0; r < prompts.size(); ++r) {
          GenerationConfig one = gen;
          one.seed = 0;
          one.row_seeds = {maskgen::mix_seed(gen.seed, r)};  // the stream row r draws from in the batch
          EXPECT_EQ(generated_row(out, static_cast<Eigen::Index>(r)), alone(model, prompts[r], one))
              << "row " << r << (left ? " left" : " right") << " sample " << sample << " threads " << threads;
        }
      }
    }
  }
}

TEST(Penalties, OutOfRangeValuesAndIdsAreRefused) {
  const Model model = fixture();
  const maskgen::TokenMatrix ids = one_row(prompt_a), mask = maskgen::TokenMatrix::Ones(1, ids.cols());
  using maskgen::argument_error;
  using maskgen::test::expect_error;
  auto run = [&](GenerationConfig gen) { maskgen::generate(model, ids, mask, gen); };
  expect_error<argument_error>([&] { run({.frequency_penalty = 2.5}); }, {"frequency_penalty", "[-2, 2]", "2.5"});
  expect_error<argument_error>([&] { run({.presence_penalty = -3}); }, {"presence_penalty", "[-2, 2]", "-3"});
  expect_error<argument_error>([&] { run({.presence_penalty = std::nan("")}); }, {"presence_penalty"});
  expect_error<argument_error>([&] { run({.logit_bias = {{5, 150.0}}}); }, {"logit_bias[5]", "[-100, 100]", "150"});
  expect_error<argument_error>([&] { run({.logit_bias = {{128, 1.0}}}); }, {"logit_bias", "128", "[0, 128)"});
  expect_error<argument_error>([&] { run({.logit_bias = {{-1, 1.0}}}); }, {"logit_bias", "-1", "[0, 128)"});
  // The edges of the ranges are allowed.
  EXPECT_NO_THROW(run({.max_new_tokens = 2, .pad_token_id = 0, .frequency_penalty = -2, .presence_penalty = 2,
                       .logit_bias = {{0, -100.0}, {127, 100.0}}}));
}

}  // namespace

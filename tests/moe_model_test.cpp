// DESIGN 2.7 for the mixture-of-experts families: a row's logits are the same bits whatever other
// rows share its step (and so its experts), in whichever order, in its prefill and in decode steps
// on its cache, stored or Int8; and Int8's cost on a mixture-of-experts model.

#include <maskgen/model.hpp>

#include <algorithm>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

using test::model_dir;

std::vector<std::vector<std::int32_t>> random_prompts(std::size_t n, std::int32_t vocab, std::mt19937& rng) {
  std::vector<std::vector<std::int32_t>> prompts(n);
  for (auto& p : prompts) {
    p.resize(1 + rng() % 13);
    for (auto& id : p) id = static_cast<std::int32_t>(3 + rng() % static_cast<std::uint32_t>(vocab - 3));
  }
  return prompts;
}

// The packed batch of these rows, each continuing its own cache row.
PackedBatch packed(const std::vector<std::vector<std::int32_t>>& rows, const std::vector<std::size_t>& cache_rows) {
  PackedBatch b;
  for (std::size_t r = 0; r < rows.size(); ++r) b.add_row(cache_rows[r], rows[r]);
  return b;
}

class MoeRows : public ::testing::TestWithParam<std::tuple<std::string, WeightFormat>> {};

TEST_P(MoeRows, ARowsLogitsDoNotDependOnWhichRowsShareItsStep) {
  const auto& [name, format] = GetParam();
  const auto model = Model<float>::load(model_dir(name), {.weights = format});
  ASSERT_TRUE(model.config().moe.has_value());
  std::mt19937 rng(23);
  const auto prompts = random_prompts(12, static_cast<std::int32_t>(model.config().vocab_size), rng);
  const std::vector<std::int32_t> next{5, 9};  // two decode steps after each prompt
  // Alone: the prompt's last logits, then each decode step's.
  std::vector<std::vector<ops::Matrix<float>>> alone;
  for (const auto& p : prompts) {
    auto cache = model.make_cache(1);
    std::vector<ops::Matrix<float>> steps{model.forward_packed(packed({p}, {0}), cache)};
    for (const std::int32_t id : next) steps.push_back(model.forward_packed(packed({{id}}, {0}), cache));
    alone.push_back(std::move(steps));
  }
  for (int trial = 0; trial < 6; ++trial) {
    // A random subset in a random order, on one thread or two.
    std::vector<std::size_t> picks(prompts.size());
    std::iota(picks.begin(), picks.end(), 0);
    std::shuffle(picks.begin(), picks.end(), rng);
    picks.resize(2 + rng() % (prompts.size() - 1));
    const ForwardOptions options{.num_threads = 1 + trial % 2};
    auto cache = model.make_cache(picks.size());
    std::vector<std::vector<std::int32_t>> rows;
    std::vector<std::size_t> cache_rows;
    for (std::size_t i = 0; i < picks.size(); ++i) {
      rows.push_back(prompts[picks[i]]);
      cache_rows.push_back(i);
    }
    const ops::Matrix<float> first = model.forward_packed(packed(rows, cache_rows), cache, options);
    for (std::size_t i = 0; i < picks.size(); ++i) {
      EXPECT_TRUE((first.row(static_cast<Eigen::Index>(i)).array() == alone[picks[i]][0].row(0).array()).all())
          << name << " trial " << trial << " prompt " << picks[i];
    }
    for (std::size_t s = 0; s < next.size(); ++s) {
      // Decode steps of every other row only, then of all: the companions change from step to step.
      std::vector<std::vector<std::int32_t>> ids(picks.size(), std::vector<std::int32_t>{next[s]});
      const ops::Matrix<float> step = model.forward_packed(packed(ids, cache_rows), cache, options);
      for (std::size_t i = 0; i < picks.size(); ++i) {
        EXPECT_TRUE((step.row(static_cast<Eigen::Index>(i)).array() == alone[picks[i]][s + 1].row(0).array()).all())
            << name << " trial " << trial << " step " << s << " prompt " << picks[i];
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, MoeRows,
                         ::testing::Combine(::testing::Values("qwen3_moe", "mixtral", "olmoe", "gpt_oss"),
                                            ::testing::Values(WeightFormat::AsStored, WeightFormat::Int8)));

// Int8 at load quantizes the experts (the router stays as stored): logits move by int8's rounding,
// not to another model's.
TEST(MoeInt8, QuantizedExpertsStayCloseToTheStoredModel) {
  const auto stored = Model<float>::load(model_dir("qwen3_moe"));
  const auto int8 = Model<float>::load(model_dir("qwen3_moe"), {.weights = WeightFormat::Int8});
  EXPECT_EQ(int8.weight_type(), ops::WeightType::I8);
  EXPECT_EQ(stored.weight_type(), ops::WeightType::BF16);
  TokenMatrix ids(1, 5), mask = TokenMatrix::Ones(1, 5);
  ids << 1, 17, 33, 80, 4;
  const auto a = stored.forward(ids, mask), b = int8.forward(ids, mask);
  const double scale = a.cwiseAbs().maxCoeff();
  EXPECT_LT((a - b).cwiseAbs().maxCoeff(), 0.05 * scale);  // int8's rounding, not another model
  EXPECT_GT((a - b).cwiseAbs().maxCoeff(), 0.0);            // the experts are quantized
}

}  // namespace
}  // namespace maskgen

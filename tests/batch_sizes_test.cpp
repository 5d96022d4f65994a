// DESIGN 2.7 at the sizes where the kernels change their blocking: every prompt of a batch of up to
// 64 rows (prefill of up to ~1000 tokens at once, then decode steps of up to 64 rows) gets the
// tokens and the scores it gets alone, bit for bit, in every weight type, left or right padded, on
// one thread or two. The model is random, of a shape whose projections cross the matmul kernel's
// blocks of k and of rows (intermediate 1040 is the k of the down projection; a vocabulary of 300
// ends in a partial panel); it is written by tests/support/random_model.hpp into a temporary
// folder. This file is compiled into both test binaries, with and without -march=native.

#include <maskgen/generate.hpp>

#include <filesystem>
#include <random>

#include <unistd.h>

#include <gtest/gtest.h>

#include "support/random_model.hpp"

namespace maskgen {
namespace {

std::filesystem::path random_model(DType dtype) {
  tools::RandomModelShape shape;
  shape.dtype = dtype;
  shape.vocab_size = 300;
  shape.hidden_size = 256;
  shape.intermediate_size = 1040;
  shape.num_layers = 1;
  shape.num_heads = 4;
  shape.num_kv_heads = 2;
  shape.max_position_embeddings = 256;
  shape.seed = 41;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("maskgen-test-batch-sizes-" + std::to_string(::getpid()) + "-" + std::string(dtype_name(dtype)));
  tools::write_random_model(dir, shape);
  return dir;
}

struct Format {
  DType dtype;
  WeightFormat weights;
};

class BatchSizes : public ::testing::TestWithParam<Format> {};

TEST_P(BatchSizes, EveryPromptOfUpTo64RowsEqualsItAlone) {
  const auto dir = random_model(GetParam().dtype);
  const auto model = Model<float>::load(dir, {.weights = GetParam().weights});
  std::filesystem::remove_all(dir);
  std::mt19937 rng(7);
  std::vector<std::vector<std::int32_t>> prompts(64);
  for (auto& p : prompts) {
    p.resize(1 + rng() % 24);
    for (auto& id : p) id = static_cast<std::int32_t>(3 + rng() % 290);
  }
  // min_new_tokens: no row ends early, so every row has its 3 new tokens in the last 3 columns.
  GenerationConfig gen{.max_new_tokens = 3, .min_new_tokens = 3, .pad_token_id = 0, .output_scores = true};
  auto padded = [](const std::vector<std::vector<std::int32_t>>& rows, bool left, int extra) {
    std::size_t width = 0;
    for (const auto& r : rows) width = std::max(width, r.size());
    width += static_cast<std::size_t>(extra);
    TokenMatrix ids = TokenMatrix::Zero(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(width));
    TokenMatrix mask = ids;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const std::size_t offset = left ? width - rows[r].size() : 0;
      for (std::size_t t = 0; t < rows[r].size(); ++t) {
        ids(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(offset + t)) = rows[r][t];
        mask(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(offset + t)) = 1;
      }
    }
    return std::pair{ids, mask};
  };
  std::vector<GenerationResult<float>> alone;
  for (const auto& p : prompts) {
    const auto [ids, mask] = padded({p}, true, 0);
    alone.push_back(generate(model, ids, mask, gen));
  }
  for (const std::size_t rows : {64, 17, 2}) {
    for (const int threads : {1, 2}) {
      gen.num_threads = threads;
      const std::vector<std::vector<std::int32_t>> batch(prompts.begin(), prompts.begin() + static_cast<std::ptrdiff_t>(rows));
      const bool left = rows % 2 == 0;
      const auto [ids, mask] = padded(batch, left, static_cast<int>(rows % 3));
      const auto out = generate(model, ids, mask, gen);
      for (std::size_t r = 0; r < rows; ++r) {
        const auto& one = alone[r];
        ASSERT_EQ(out.sequences.row(static_cast<Eigen::Index>(r)).tail(3), one.sequences.row(0).tail(3))
            << weight_type_name(model.weight_type()) << ": row " << r << " of " << rows << (left ? " left" : " right")
            << "-padded, " << threads << " threads";
        ASSERT_TRUE((out.scores[r].array() == one.scores[0].array()).all())
            << weight_type_name(model.weight_type()) << ": scores of row " << r << " of " << rows << ", " << threads
            << " threads";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(WeightTypes, BatchSizes,
                         ::testing::Values(Format{DType::F32, WeightFormat::AsStored}, Format{DType::BF16, WeightFormat::AsStored},
                                           Format{DType::F16, WeightFormat::AsStored}, Format{DType::F32, WeightFormat::Int8}),
                         [](const auto& info) {
                           return std::string(dtype_name(info.param.dtype)) +
                                  (info.param.weights == WeightFormat::Int8 ? "_int8" : "");
                         });

}  // namespace
}  // namespace maskgen

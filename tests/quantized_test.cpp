// Checkpoints as GPTQ, AWQ, compressed-tensors, fine-grained FP8 and MXFP4 pack them
// (tests/reference/make_quant_fixtures.py packs random codes exactly as those projects write them,
// and checks its FP8 and MXFP4 dequantization against transformers' own): their layers unpack to
// the values whose float64 checksums the script recorded, and the model holds them as grouped
// codes (corrupt packed tensors: bad-input row R30). The ModelOracle and GenerateOracle suites run
// the same folders against transformers' float64 forward.

#include <maskgen/maskgen.hpp>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

using test::model_dir;

const std::vector<std::string> packed_fixtures = {"gptq_qwen3",     "gptq_qwen3_actorder", "gptq_qwen3_8bit",
                                                  "gptq_qwen3_g_uneven", "awq_qwen3", "ct_w4a16_qwen3",
                                                  "ct_w4a16_asym_qwen3", "ct_w8a16_qwen3", "ct_fp8_qwen3",
                                                  "ct_fp8_tensor_qwen3", "fp8_block_qwen3", "gpt_oss_mxfp4"};

struct Checksum {
  double sum = 0, squares = 0, weighted = 0;
  // Adds element n (row-major) of value v.
  void add(std::int64_t n, double v) {
    sum += v;
    squares += v * v;
    weighted += v * static_cast<double>(n % 251 + 1) / 251;
  }
};

// The script's checksums of a layer's dequantized [out, in] weights: Σ w, Σ w², and Σ w[n] ·
// ((n mod 251) + 1) / 251 over the row-major index n (which a permuted layout changes).
TEST(QuantizedCheckpoint, LayersUnpackToTheValuesTheOracleDequantized) {
  for (const std::string& name : packed_fixtures) {
    const auto ref = test::read_json(test::data_dir() / "reference" / (name + ".json"));
    const ModelConfig config = ModelConfig::load(model_dir(name));
    const weights::WeightReader<double> read(
        std::make_shared<const SafetensorsCheckpoint>(SafetensorsCheckpoint::open(model_dir(name))),
        weights::Quantization::AsStored, {}, config.quantization);
    for (const auto& [module, sums] : ref["dequantized_checksum"].items()) {
      // [out, in] for a linear layer; [experts, out, in] for MXFP4 experts, read expert by expert.
      const auto& shape = sums["shape"];
      const bool experts = shape.size() == 3;
      const std::int64_t count = experts ? shape[0].get<std::int64_t>() : 1;
      const auto out = shape[shape.size() - 2].get<std::int64_t>(), in = shape[shape.size() - 1].get<std::int64_t>();
      Checksum got;
      std::vector<double> row(static_cast<std::size_t>(in));
      for (std::int64_t e = 0; e < count; ++e) {
        const weights::WeightMatrix w = experts ? *read.mxfp4_rows(module, count, out, in, e, 0, 1, out)
                                                : read.matrix(module + ".weight", out, in);
        EXPECT_TRUE(w.grouped()) << name << " " << module;
        for (std::int64_t o = 0; o < out; ++o) {
          ops::weight_row(w, static_cast<std::size_t>(o), row.data());
          for (std::int64_t i = 0; i < in; ++i) got.add((e * out + o) * in + i, row[static_cast<std::size_t>(i)]);
        }
      }
      const double scale = 1e-12 * (1 + sums["sum_of_squares"].get<double>());
      EXPECT_NEAR(got.sum, sums["sum"].get<double>(), scale) << name << " " << module;
      EXPECT_NEAR(got.squares, sums["sum_of_squares"].get<double>(), scale) << name << " " << module;
      EXPECT_NEAR(got.weighted, sums["weighted_sum"].get<double>(), scale) << name << " " << module;
    }
  }
}

TEST(QuantizedCheckpoint, TheModelHoldsGroupedCodesAndTheHeadAsStored) {
  EXPECT_EQ(Model<float>::load(model_dir("gptq_qwen3")).weight_type(), ops::WeightType::Q4);
  EXPECT_EQ(Model<float>::load(model_dir("gptq_qwen3_8bit")).weight_type(), ops::WeightType::Q8);
  EXPECT_EQ(Model<float>::load(model_dir("awq_qwen3")).weight_type(), ops::WeightType::Q4);
  EXPECT_EQ(Model<float>::load(model_dir("ct_w8a16_qwen3")).weight_type(), ops::WeightType::Q8);
}

TEST(QuantizedCheckpoint, FloatCodesAreHeldAsFp8AndFp4) {
  for (const char* folder : {"ct_fp8_qwen3", "ct_fp8_tensor_qwen3", "fp8_block_qwen3"}) {
    EXPECT_EQ(Model<float>::load(model_dir(folder)).weight_type(), ops::WeightType::FP8) << folder;
  }
  const auto dir = model_dir("gpt_oss_mxfp4");
  const ModelConfig config = ModelConfig::load(dir);
  const weights::WeightReader<float> read(std::make_shared<const SafetensorsCheckpoint>(SafetensorsCheckpoint::open(dir)),
                                          weights::Quantization::AsStored, {}, config.quantization);
  const auto w = read.mxfp4_rows("model.layers.0.mlp.experts.down_proj", 8, 64, 64, 3, 0, 1, 64);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->type, ops::WeightType::FP4);
  EXPECT_EQ(w->groups.scale_type, ops::WeightType::E8M0);
  EXPECT_EQ(w->bytes(), 64 * 64 / 2 + 64 * 2);  // the file's bytes: half a byte a code, a byte per 32 codes
}

}  // namespace
}  // namespace maskgen

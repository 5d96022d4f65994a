// Checkpoints as GPTQ, AWQ and compressed-tensors pack them (tests/reference/make_quant_fixtures.py
// packs random codes exactly as those projects write them): their layers unpack to the values
// whose float64 checksums the script recorded, the model holds them as grouped codes, and formats
// not read yet are refused by name (corrupt packed tensors: bad-input row R30). The ModelOracle and
// GenerateOracle suites run the same folders against transformers' float64 forward.

#include <maskgen/maskgen.hpp>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

using test::expect_error;
using test::model_dir;

const std::vector<std::string> packed_fixtures = {"gptq_qwen3",     "gptq_qwen3_actorder", "gptq_qwen3_8bit",
                                                  "gptq_qwen3_g_uneven", "awq_qwen3", "ct_w4a16_qwen3",
                                                  "ct_w4a16_asym_qwen3", "ct_w8a16_qwen3"};

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
      const auto out = sums["shape"][0].get<std::int64_t>(), in = sums["shape"][1].get<std::int64_t>();
      const weights::WeightMatrix w = read.matrix(module + ".weight", out, in);
      EXPECT_TRUE(w.type == ops::WeightType::Q4 || w.type == ops::WeightType::Q8) << name << " " << module;
      std::vector<double> row(static_cast<std::size_t>(in));
      double sum = 0, squares = 0, weighted = 0;
      for (std::int64_t o = 0; o < out; ++o) {
        ops::weight_row(w, static_cast<std::size_t>(o), row.data());
        for (std::int64_t i = 0; i < in; ++i) {
          const double v = row[static_cast<std::size_t>(i)];
          sum += v;
          squares += v * v;
          weighted += v * static_cast<double>((o * in + i) % 251 + 1) / 251;
        }
      }
      const double scale = 1e-12 * (1 + sums["sum_of_squares"].get<double>());
      EXPECT_NEAR(sum, sums["sum"].get<double>(), scale) << name << " " << module;
      EXPECT_NEAR(squares, sums["sum_of_squares"].get<double>(), scale) << name << " " << module;
      EXPECT_NEAR(weighted, sums["weighted_sum"].get<double>(), scale) << name << " " << module;
    }
  }
}

TEST(QuantizedCheckpoint, TheModelHoldsGroupedCodesAndTheHeadAsStored) {
  EXPECT_EQ(Model<float>::load(model_dir("gptq_qwen3")).weight_type(), ops::WeightType::Q4);
  EXPECT_EQ(Model<float>::load(model_dir("gptq_qwen3_8bit")).weight_type(), ops::WeightType::Q8);
  EXPECT_EQ(Model<float>::load(model_dir("awq_qwen3")).weight_type(), ops::WeightType::Q4);
  EXPECT_EQ(Model<float>::load(model_dir("ct_w8a16_qwen3")).weight_type(), ops::WeightType::Q8);
}

// Published formats whose codecs are still to come are refused by name, before any weight is read.
TEST(QuantizedCheckpoint, FormatsNotReadYetAreRefusedByName) {
  auto refused = [](const char* folder, std::initializer_list<std::string_view> words) {
    expect_error<format_error>([&] { Model<float>::load(model_dir(folder)); }, words);
  };
  refused("ct_fp8_qwen3", {"\"format\"", "float-quantized"});
  refused("ct_fp8_tensor_qwen3", {"\"format\"", "float-quantized"});
  refused("fp8_block_qwen3", {"quant_method \"fp8\""});
  refused("gpt_oss_mxfp4", {"quant_method \"mxfp4\""});
}

}  // namespace
}  // namespace maskgen

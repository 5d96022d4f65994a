// The Qwen3-MoE folders that tests/support/random_model.hpp writes for the benchmarks
// (make_random_model --qwen3-30b-a3b): config.json as the published Qwen/Qwen3-30B-A3B has it,
// the published checkpoint's tensor names and shapes, and a folder that maskgen loads as a
// mixture of experts.

#include <maskgen/model.hpp>
#include <maskgen/safetensors.hpp>

#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "support/random_model.hpp"
#include "support/test_support.hpp"

namespace maskgen {
namespace {

TEST(RandomMoeModel, TheQwen3_30bA3bPresetWritesThePublishedConfig) {
  // The values of Qwen/Qwen3-30B-A3B's config.json on the Hugging Face hub.
  const auto c = tools::qwen3_moe_config(tools::qwen3_30b_a3b_shape());
  EXPECT_EQ(c["architectures"], nlohmann::json::array({"Qwen3MoeForCausalLM"}));
  EXPECT_EQ(c["model_type"], "qwen3_moe");
  EXPECT_EQ(c["hidden_size"], 2048);
  EXPECT_EQ(c["intermediate_size"], 6144);
  EXPECT_EQ(c["moe_intermediate_size"], 768);
  EXPECT_EQ(c["num_experts"], 128);
  EXPECT_EQ(c["num_experts_per_tok"], 8);
  EXPECT_EQ(c["norm_topk_prob"], true);
  EXPECT_EQ(c["decoder_sparse_step"], 1);
  EXPECT_EQ(c["mlp_only_layers"], nlohmann::json::array());
  EXPECT_EQ(c["num_hidden_layers"], 48);
  EXPECT_EQ(c["num_attention_heads"], 32);
  EXPECT_EQ(c["num_key_value_heads"], 4);
  EXPECT_EQ(c["head_dim"], 128);
  EXPECT_EQ(c["vocab_size"], 151936);
  EXPECT_EQ(c["max_position_embeddings"], 40960);
  EXPECT_EQ(c["rope_theta"], 1000000.0);
  EXPECT_TRUE(c["rope_scaling"].is_null());
  EXPECT_EQ(c["rms_norm_eps"], 1e-6);
  EXPECT_EQ(c["tie_word_embeddings"], false);
  EXPECT_EQ(c["bos_token_id"], 151643);
  EXPECT_EQ(c["eos_token_id"], 151645);
  EXPECT_EQ(c["torch_dtype"], "bfloat16");
}

TEST(RandomMoeModel, TheQwen3_30bA3bPresetCountsThePublishedThirtyPointFiveBillionParameters) {
  // A layer: attention 2048 x 128 x (2 x 32 + 2 x 4) = 18,874,368; router 128 x 2048 = 262,144;
  // experts 128 x 3 x 2048 x 768 = 603,979,776; four norms 2 x 2048 + 2 x 128 = 4,352; in all
  // 623,120,640, times 48 = 29,909,790,720. Embedding and head 2 x 151,936 x 2048 = 622,329,856;
  // the final norm 2048. Total 30,532,122,624 (the model card's "30.5B").
  EXPECT_EQ(tools::parameter_count(tools::qwen3_30b_a3b_shape()), 30'532'122'624);
}

tools::RandomModelShape tiny_moe() {
  tools::RandomModelShape s = tools::qwen3_30b_a3b_shape();
  s.vocab_size = 300;
  s.hidden_size = 64;
  s.intermediate_size = 96;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 16;
  s.max_position_embeddings = 256;
  s.num_experts = 6;
  s.experts_per_token = 2;
  s.moe_intermediate_size = 32;
  return s;
}

TEST(RandomMoeModel, EachExpertIsItsOwnTensorsNamedAsThePublishedCheckpoint) {
  const test::TempDir dir;
  tools::write_random_model(dir.path(), tiny_moe());
  const auto file = SafetensorsFile::open(dir.path() / "model.safetensors");
  auto shape = [&](const std::string& name) { return file.info(name).shape; };
  using Shape = std::vector<std::int64_t>;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    EXPECT_EQ(shape(p + "mlp.gate.weight"), (Shape{6, 64}));
    EXPECT_EQ(shape(p + "self_attn.q_norm.weight"), (Shape{16}));
    EXPECT_EQ(shape(p + "self_attn.k_norm.weight"), (Shape{16}));
    EXPECT_EQ(shape(p + "self_attn.q_proj.weight"), (Shape{64, 64}));
    EXPECT_EQ(shape(p + "self_attn.k_proj.weight"), (Shape{32, 64}));
    for (int e = 0; e < 6; ++e) {
      const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
      EXPECT_EQ(shape(x + "gate_proj.weight"), (Shape{32, 64}));
      EXPECT_EQ(shape(x + "up_proj.weight"), (Shape{32, 64}));
      EXPECT_EQ(shape(x + "down_proj.weight"), (Shape{64, 32}));
      EXPECT_EQ(file.info(x + "down_proj.weight").dtype, DType::BF16);
    }
    EXPECT_FALSE(file.contains(p + "mlp.gate_proj.weight")) << "no layer has a dense MLP";
  }
  EXPECT_EQ(shape("lm_head.weight"), (Shape{300, 64}));
  // the embedding; per layer 2 norms, q/k/v/o, the q and k norms, the router and 6 x 3 expert
  // matrices; the final norm and the head
  EXPECT_EQ(file.names().size(), 1u + 2u * (2u + 4u + 2u + 1u + 18u) + 1u + 1u);
}

TEST(RandomMoeModel, ATinyFolderLoadsAsAMixtureOfExpertsAndRuns) {
  const test::TempDir dir;
  tools::write_random_model(dir.path(), tiny_moe());
  const auto model = Model<float>::load(dir.path());
  const ModelConfig& c = model.config();
  ASSERT_TRUE(c.moe.has_value());
  EXPECT_EQ(c.moe->experts, 6);
  EXPECT_EQ(c.moe->experts_per_token, 2);
  EXPECT_EQ(c.moe->expert_intermediate_size, 32);
  EXPECT_TRUE(c.moe->normalize_top_k);
  EXPECT_EQ(c.sparse_layers, (std::vector<char>{1, 1}));
  const TokenMatrix ids = TokenMatrix::Constant(1, 5, 7);
  const auto logits = model.forward(ids, TokenMatrix::Ones(1, 5));
  ASSERT_EQ(logits.size(), 300);
  for (Eigen::Index i = 0; i < logits.size(); ++i) ASSERT_TRUE(std::isfinite(logits.data()[i])) << i;
}

}  // namespace
}  // namespace maskgen

// config.json parsing: both RoPE spellings, the families' differences, and clear refusals.

#include <maskgen/config.hpp>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

nlohmann::json llama() {
  return nlohmann::json::parse(R"({
    "model_type": "llama", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 172,
    "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-05, "tie_word_embeddings": true,
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": null,
    "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}})");
}

TEST(Config, ReadsTransformers5Llama) {
  const auto c = ModelConfig::from_json(llama());
  EXPECT_EQ(c.architecture, Architecture::Llama);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.kv_dim(), 32);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.rope.type, RopeType::Default);
  EXPECT_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<std::int32_t>{2});
  EXPECT_EQ(c.pad_token_id, std::nullopt);
}

TEST(Config, ReadsTransformers4RopeSpelling) {
  auto j = llama();
  j.erase("rope_parameters");
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(ModelConfig::from_json(j).rope.theta, 500000.0);
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  const auto c = ModelConfig::from_json(j);
  EXPECT_EQ(c.rope.type, RopeType::Linear);
  EXPECT_EQ(c.rope.factor, 4.0);
  EXPECT_EQ(c.rope.theta, 500000.0);
}

TEST(Config, Llama3FrequenciesFollowTheScheme) {
  auto j = llama();
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                          {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  j["head_dim"] = 128;
  const auto c = ModelConfig::from_json(j);
  const auto inv = c.rope.inverse_frequencies(128);
  ASSERT_EQ(inv.size(), 64u);
  for (std::size_t i = 0; i < inv.size(); ++i) {
    const double base = std::pow(500000.0, -static_cast<double>(2 * i) / 128.0);
    const double wavelen = 2 * std::numbers::pi / base;
    if (wavelen < 8192.0 / 4.0) {
      EXPECT_DOUBLE_EQ(inv[i], base) << i;  // high frequencies untouched
    } else if (wavelen > 8192.0) {
      EXPECT_DOUBLE_EQ(inv[i], base / 8.0) << i;  // low frequencies slowed by the factor
    } else {
      EXPECT_LT(inv[i], base) << i;
      EXPECT_GT(inv[i], base / 8.0) << i;
    }
  }
}

TEST(Config, FamilyDifferences) {
  auto q2 = llama();
  q2["model_type"] = "qwen2";
  q2["eos_token_id"] = {151645, 151643};
  q2["vocab_size"] = 151936;
  q2["sliding_window"] = 4096;
  q2["use_sliding_window"] = false;
  auto c = ModelConfig::from_json(q2);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.sliding_window, std::nullopt);  // not used
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int32_t>{151645, 151643}));
  auto q3 = llama();
  q3["model_type"] = "qwen3";
  q3["head_dim"] = 32;
  c = ModelConfig::from_json(q3);
  EXPECT_EQ(c.qk_norm, QkNorm::PerHead);
  EXPECT_EQ(c.q_dim(), 256);
  auto mistral = llama();
  mistral["model_type"] = "mistral";
  mistral["sliding_window"] = 4096;
  EXPECT_EQ(ModelConfig::from_json(mistral).sliding_window, 4096);
  EXPECT_EQ(ModelConfig::from_json(mistral).layer_window(0), 4096);
  mistral["sliding_window"] = nullptr;
  EXPECT_EQ(ModelConfig::from_json(mistral).sliding_window, std::nullopt);
  EXPECT_EQ(ModelConfig::from_json(mistral).layer_window(0), std::nullopt);
}

TEST(Config, SlidingWindowLayersAsTransformersDecides) {
  auto q2 = llama();  // 5 layers
  q2["model_type"] = "qwen2";
  q2["sliding_window"] = 64;
  q2["use_sliding_window"] = true;
  q2["max_window_layers"] = 3;  // layers from 3 up slide
  auto c = ModelConfig::from_json(q2);
  for (std::size_t l = 0; l < 5; ++l) EXPECT_EQ(c.layer_window(l), l >= 3 ? std::optional<std::int64_t>(64) : std::nullopt) << l;
  // Named per layer: these win.
  q2["layer_types"] = {"sliding_attention", "full_attention", "full_attention", "full_attention", "sliding_attention"};
  c = ModelConfig::from_json(q2);
  EXPECT_EQ(c.layer_window(0), 64);
  EXPECT_EQ(c.layer_window(1), std::nullopt);
  EXPECT_EQ(c.layer_window(4), 64);
  q2["layer_types"] = {"sliding_attention"};
  test::expect_error<format_error>([&] { ModelConfig::from_json(q2); }, {"layer_types", "num_hidden_layers"});
  q2["layer_types"] = {"sliding_attention", "chunked_attention", "full_attention", "full_attention", "full_attention"};
  test::expect_error<format_error>([&] { ModelConfig::from_json(q2); }, {"layer_types", "chunked_attention"});
  q2.erase("sliding_window");
  q2["layer_types"] = {"sliding_attention", "full_attention", "full_attention", "full_attention", "full_attention"};
  test::expect_error<format_error>([&] { ModelConfig::from_json(q2); }, {"sliding_window", "missing"});
}

// SmolLM3 (transformers' SmolLM3Config): no_rope_layers[l] is 1 where layer l applies RoPE; when
// absent, layer l skips it where (l + 1) % no_rope_layer_interval == 0 (default interval 4); with
// use_sliding_window, only the layers without RoPE slide.
TEST(Config, SmolLM3LayersWithoutRopeAsTransformersDecides) {
  auto j = llama();  // 5 layers
  j["model_type"] = "smollm3";
  auto c = ModelConfig::from_json(j);
  EXPECT_EQ(c.architecture, Architecture::Other);
  for (std::size_t l = 0; l < 5; ++l) EXPECT_EQ(c.layer(l).rope, l != 3) << l;  // (3 + 1) % 4 == 0
  j["no_rope_layer_interval"] = 2;
  c = ModelConfig::from_json(j);
  for (std::size_t l = 0; l < 5; ++l) EXPECT_EQ(c.layer(l).rope, l % 2 == 0) << l;
  j["no_rope_layers"] = {0, 1, 1, 1, 0};  // the list wins over the interval
  j["sliding_window"] = 32;
  j["use_sliding_window"] = true;
  c = ModelConfig::from_json(j);
  for (std::size_t l = 0; l < 5; ++l) {
    EXPECT_EQ(c.layer(l).rope, l != 0 && l != 4) << l;
    EXPECT_EQ(c.layer(l).window, l == 0 || l == 4 ? std::optional<std::int64_t>(32) : std::nullopt) << l;
  }
  j["no_rope_layers"] = {1, 1};
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"no_rope_layers", "num_hidden_layers"});
  j["no_rope_layers"] = {1, 1, 2, 1, 1};
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"no_rope_layers", "0 or 1"});
}

TEST(Config, RefusesWhatItDoesNotImplement) {
  auto j = llama();
  j["model_type"] = "gpt2";
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"model_type", "gpt2"});
  j = llama();
  j["rope_parameters"]["rope_type"] = "dynamic";
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"rope_type", "dynamic"});
  j = llama();
  j["rope_parameters"]["rope_type"] = "linear";  // no factor
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"factor"});
  j = llama();
  j["num_key_value_heads"] = 3;
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"num_key_value_heads", "divide"});
  j = llama();
  j.erase("hidden_size");
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"hidden_size", "missing"});
  j = llama();
  j["vocab_size"] = "512";
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"vocab_size", "integer"});
  j = llama();
  j["hidden_act"] = "gelu";
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"hidden_act", "gelu"});
  j = llama();
  j["eos_token_id"] = 9999;
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"eos_token_id", "9999"});
  j = llama();
  j["eos_token_id"] = -1;
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"eos_token_id"});
  test::expect_error<format_error>([&] { ModelConfig::from_json(nlohmann::json::array()); }, {"object"});
}

// A hostile config (a vocabulary of 10^12, a million layers) is refused by the numbers alone,
// before anything is sized by them (ConfigLimits).
TEST(Config, HostileSizesAreRefusedBeforeAnyAllocation) {
  const std::vector<std::pair<const char*, std::int64_t>> fields = {
      {"vocab_size", 1'000'000'000'000}, {"num_hidden_layers", 1'000'000}, {"hidden_size", 1 << 20},
      {"intermediate_size", 1 << 30}, {"num_attention_heads", 1 << 20}, {"max_position_embeddings", std::int64_t{1} << 40},
      {"head_dim", 1 << 20}};
  for (const auto& [field, value] : fields) {
    auto j = llama();
    j[field] = value;
    test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {field, "at most"});
  }
}

TEST(Config, LoadErrorsNameTheFile) {
  test::TempDir dir;
  EXPECT_THROW(ModelConfig::load(dir.path()), io_error);
  std::ofstream(dir.path() / "config.json") << "{ not json";
  test::expect_error<format_error>([&] { ModelConfig::load(dir.path()); }, {"config.json", "JSON"});
}

// transformers' generate() takes eos_token_id and pad_token_id from generation_config.json when
// the folder has one (Llama 3 instruct models list more EOS ids there than in config.json).
TEST(Config, GenerationConfigIdsWin) {
  test::TempDir dir;
  std::ofstream(dir.path() / "config.json") << llama().dump();
  EXPECT_EQ(ModelConfig::load(dir.path()).eos_token_ids, std::vector<std::int32_t>{2});
  EXPECT_FALSE(ModelConfig::load(dir.path()).pad_token_id);
  std::ofstream(dir.path() / "generation_config.json") << R"({"eos_token_id": [2, 7], "pad_token_id": 9})";
  const ModelConfig c = ModelConfig::load(dir.path());
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int32_t>{2, 7}));
  EXPECT_EQ(c.pad_token_id, 9);
  std::ofstream(dir.path() / "generation_config.json") << R"({"eos_token_id": 600})";
  test::expect_error<format_error>([&] { ModelConfig::load(dir.path()); },
                                   {"generation_config.json", "eos_token_id", "600"});
  std::ofstream(dir.path() / "generation_config.json") << R"({"do_sample": true})";  // no ids: config.json's stay
  EXPECT_EQ(ModelConfig::load(dir.path()).eos_token_ids, std::vector<std::int32_t>{2});
}

}  // namespace
}  // namespace maskgen

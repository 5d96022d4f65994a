// The families of tests/reference/make_family_fixtures.py beyond their forward and generate()
// oracle (model_test, generate_test): both spellings of their configs, Phi-3's LongRoPE switch,
// Gemma's soft-caps, both layouts of the mixtures' experts, and what each config refuses.

#include <maskgen/model.hpp>
#include <maskgen/safetensors.hpp>

#include <fstream>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

namespace fs = std::filesystem;
using test::model_dir;

// max |a - b| / max |b| over rows of logits.
double relative_error(const ops::Matrix<double>& ours, const nlohmann::json& reference) {
  double diff = 0, scale = 0;
  for (std::size_t r = 0; r < reference.size(); ++r) {
    for (std::size_t v = 0; v < reference[r].size(); ++v) {
      const double ref = reference[r][v].get<double>();
      diff = std::max(diff, std::abs(ours(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(v)) - ref));
      scale = std::max(scale, std::abs(ref));
    }
  }
  return diff / scale;
}

TokenMatrix row_of(const std::vector<std::int32_t>& ids) {
  TokenMatrix m(1, static_cast<Eigen::Index>(ids.size()));
  for (std::size_t i = 0; i < ids.size(); ++i) m(0, static_cast<Eigen::Index>(i)) = ids[i];
  return m;
}

// Published checkpoints carry transformers 4's spelling of the config (rope_theta, rope_scaling,
// rope_local_base_freq, sliding_window_pattern, no layer_types); the fixture script wrote it as
// config.v4.json and checked that transformers loads it to the same logits. So must maskgen.
class FamilySpellings : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilySpellings, Transformers4ConfigLoadsTheSameModel) {
  const fs::path dir = model_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir / "config.v4.json"));
  test::TempDir v4;
  fs::copy_file(dir / "config.v4.json", v4.path() / "config.json");
  for (const char* f : {"model.safetensors", "generation_config.json"}) fs::copy_file(dir / f, v4.path() / f);
  const auto j5 = test::read_json(dir / "config.json"), j4 = test::read_json(v4.path() / "config.json");
  EXPECT_FALSE(j4.contains("rope_parameters"));
  EXPECT_EQ(j4.contains("layer_types"), GetParam() == "gpt_oss");  // transformers 4 wrote them for gpt-oss alone
  ASSERT_TRUE(j5.contains("rope_parameters"));

  const auto a = Model<double>::load(dir), b = Model<double>::load(v4.path());
  const ModelConfig &ca = a.config(), &cb = b.config();
  EXPECT_EQ(ca.sliding_layers, cb.sliding_layers);
  EXPECT_EQ(ca.sliding_window, cb.sliding_window);
  EXPECT_EQ(ca.rope.theta, cb.rope.theta);
  EXPECT_EQ(ca.rope.type, cb.rope.type);
  EXPECT_EQ(ca.rope.partial_rotary_factor, cb.rope.partial_rotary_factor);
  EXPECT_EQ(ca.local_rope.has_value(), cb.local_rope.has_value());
  if (ca.local_rope) {
    EXPECT_EQ(ca.local_rope->theta, cb.local_rope->theta);
  }
  EXPECT_EQ(ca.rope.factor, cb.rope.factor);
  EXPECT_EQ(ca.rope.attention_factor, cb.rope.attention_factor);
  EXPECT_EQ(ca.sparse_layers, cb.sparse_layers);
  ASSERT_EQ(ca.moe.has_value(), cb.moe.has_value());
  if (ca.moe) {  // Qwen3-MoE: num_local_experts as transformers 5 writes it, num_experts as published
    EXPECT_EQ(ca.moe->experts, cb.moe->experts);
    EXPECT_EQ(ca.moe->experts_per_token, cb.moe->experts_per_token);
    EXPECT_EQ(ca.moe->normalize_top_k, cb.moe->normalize_top_k);
  }
  const auto reference = test::read_json(test::data_dir() / "reference" / (GetParam() + ".json"));
  const auto& batch = reference["forward"][0];
  const TokenMatrix ids = test::to_matrix(batch["input_ids"]), mask = test::to_matrix(batch["attention_mask"]);
  const auto la = a.forward(ids, mask, nullptr, {.logits = LogitsFor::All});
  const auto lb = b.forward(ids, mask, nullptr, {.logits = LogitsFor::All});
  EXPECT_TRUE((la.array() == lb.array()).all());
}

INSTANTIATE_TEST_SUITE_P(Families, FamilySpellings,
                         ::testing::Values("gemma2", "gemma3_text", "phi3", "olmo2", "granite", "qwen3_moe", "mixtral",
                                           "olmoe", "gpt_oss"));

// transformers 5.17 writes Qwen3-MoE's and Mixtral's experts one tensor each, as the published
// checkpoints have them (mlp.experts.{e}.gate_proj/up_proj/down_proj; Mixtral's
// block_sparse_moe.experts.{e}.w1/w3/w2 and block_sparse_moe.gate), and holds them fused in memory
// (mlp.experts.gate_up_proj [E, 2I, H], gate rows then up rows, and down_proj [E, H, I]), which
// checkpoints saved from that layout carry. The fixture script wrote the same weights fused beside
// each and checked that transformers loads both to bitwise the same logits. So must maskgen.
class ExpertLayouts : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(ExpertLayouts, EitherExpertLayoutLoadsTheSameModel) {
  const auto& [name, fused] = GetParam();
  const auto per_expert_file = SafetensorsFile::open(model_dir(name) / "model.safetensors");
  const auto fused_file = SafetensorsFile::open(model_dir(fused) / "model.safetensors");
  const std::string gate_up = "model.layers.0.mlp.experts.gate_up_proj";
  EXPECT_FALSE(per_expert_file.contains(gate_up));
  ASSERT_TRUE(fused_file.contains(gate_up));
  const auto c = ModelConfig::load(model_dir(name));
  ASSERT_TRUE(c.moe);
  EXPECT_EQ(fused_file.info(gate_up).shape, (std::vector<std::int64_t>{c.moe->experts, 2 * c.moe->expert_intermediate_size,
                                                                      c.hidden_size}));
  EXPECT_EQ(fused_file.info("model.layers.0.mlp.experts.down_proj").shape,
            (std::vector<std::int64_t>{c.moe->experts, c.hidden_size, c.moe->expert_intermediate_size}));

  const auto a = Model<double>::load(model_dir(name)), b = Model<double>::load(model_dir(fused));
  const auto reference = test::read_json(test::data_dir() / "reference" / (name + ".json"));
  for (const auto& batch : reference["forward"]) {
    const TokenMatrix ids = test::to_matrix(batch["input_ids"]), mask = test::to_matrix(batch["attention_mask"]);
    const auto la = a.forward(ids, mask, nullptr, {.logits = LogitsFor::All});
    const auto lb = b.forward(ids, mask, nullptr, {.logits = LogitsFor::All});
    EXPECT_TRUE((la.array() == lb.array()).all()) << batch["name"];
  }
  const auto fa = Model<float>::load(model_dir(name)), fb = Model<float>::load(model_dir(fused));
  const auto& batch = reference["forward"][0];
  const TokenMatrix ids = test::to_matrix(batch["input_ids"]), mask = test::to_matrix(batch["attention_mask"]);
  EXPECT_TRUE((fa.forward(ids, mask).array() == fb.forward(ids, mask).array()).all());
}

INSTANTIATE_TEST_SUITE_P(Families, ExpertLayouts,
                         ::testing::Values(std::pair<std::string, std::string>{"qwen3_moe", "qwen3_moe_fused"},
                                           std::pair<std::string, std::string>{"mixtral", "mixtral_fused"}));

// What transformers 5.17 reads from each mixture's config.json (the fixture script's log and
// reference files), and its defaults where a config leaves the fields out.
TEST(MixtureOfExperts, ConfigsAsTransformersReadThem) {
  const auto q = ModelConfig::load(model_dir("qwen3_moe"));
  ASSERT_TRUE(q.moe);
  EXPECT_EQ(q.moe->experts, 8);  // written as num_local_experts by transformers 5.17
  EXPECT_EQ(q.moe->experts_per_token, 2);
  EXPECT_EQ(q.moe->expert_intermediate_size, 32);  // moe_intermediate_size
  EXPECT_TRUE(q.moe->normalize_top_k);             // norm_topk_prob
  EXPECT_EQ(q.intermediate_size, 96);              // the dense MLP of layer 2 (mlp_only_layers)
  EXPECT_EQ(q.sparse_layers, (std::vector<char>{1, 1, 0, 1}));
  EXPECT_EQ(q.qk_norm, QkNorm::PerHead);
  EXPECT_FALSE(q.moe->router_bias || q.moe->expert_bias || q.attention_sinks);

  const auto m = ModelConfig::load(model_dir("mixtral"));
  ASSERT_TRUE(m.moe);
  EXPECT_EQ(m.moe->experts, 4);
  EXPECT_EQ(m.moe->experts_per_token, 2);
  EXPECT_EQ(m.moe->expert_intermediate_size, 64);  // Mixtral's experts are intermediate_size wide
  EXPECT_TRUE(m.moe->normalize_top_k);             // always
  EXPECT_EQ(m.sparse_layers, (std::vector<char>{1, 1, 1, 1}));
  EXPECT_FALSE(m.sliding_window);

  const auto o = ModelConfig::load(model_dir("olmoe"));
  ASSERT_TRUE(o.moe);
  EXPECT_EQ(o.moe->experts, 8);  // num_experts
  EXPECT_EQ(o.moe->experts_per_token, 2);
  EXPECT_EQ(o.moe->expert_intermediate_size, 32);
  EXPECT_FALSE(o.moe->normalize_top_k);
  EXPECT_EQ(o.qk_norm, QkNorm::Projection);
  EXPECT_EQ(o.norms, NormPlacement::Before);  // unlike OLMo 2
  EXPECT_EQ(o.sparse_layers, (std::vector<char>{1, 1, 1, 1}));

  const auto g = ModelConfig::load(model_dir("gpt_oss"));
  const auto reference = test::read_json(test::data_dir() / "reference" / "gpt_oss.json");
  ASSERT_TRUE(g.moe);
  EXPECT_EQ(g.moe->experts, 8);
  EXPECT_EQ(g.moe->experts_per_token, 2);
  EXPECT_EQ(g.moe->expert_intermediate_size, 32);
  EXPECT_TRUE(g.moe->normalize_top_k);  // softmax over the k chosen logits
  EXPECT_TRUE(g.moe->router_bias && g.moe->expert_bias && g.attention_sinks);
  EXPECT_TRUE(g.qkv_bias && g.o_bias);
  EXPECT_EQ(g.sliding_layers, (std::vector<char>{1, 0, 1, 0}));
  EXPECT_EQ(g.sliding_window, 6);
  EXPECT_EQ(g.rope.type, RopeType::Yarn);
  EXPECT_EQ(g.rope.factor, 4.0);
  EXPECT_EQ(g.rope.original_max_position_embeddings, 16);
  EXPECT_FALSE(g.rope.truncate);
  EXPECT_NEAR(g.rope.attention_factor, reference["yarn_attention_factor"].get<double>(), 1e-15);
  const auto inv = g.rope.inverse_frequencies(g.head_dim);
  const auto want = reference["yarn_inv_freq"].get<std::vector<double>>();
  ASSERT_EQ(inv.size(), want.size());
  for (std::size_t i = 0; i < inv.size(); ++i) EXPECT_NEAR(inv[i], want[i], 1e-15 * want[i]) << i;

  // transformers' defaults where a config leaves the fields out.
  auto j = test::read_json(model_dir("qwen3_moe") / "config.json");
  j.erase("mlp_only_layers");
  j["decoder_sparse_step"] = 2;  // sparse where (layer + 1) % step == 0
  j.erase("norm_topk_prob");     // Qwen3MoeConfig: false
  const auto d = ModelConfig::from_json(j);
  EXPECT_EQ(d.sparse_layers, (std::vector<char>{0, 1, 0, 1}));
  EXPECT_FALSE(d.moe->normalize_top_k);
  j = test::read_json(model_dir("olmoe") / "config.json");
  j.erase("norm_topk_prob");  // OlmoeConfig: false
  EXPECT_FALSE(ModelConfig::from_json(j).moe->normalize_top_k);
  j = test::read_json(model_dir("gpt_oss") / "config.json");
  j["rope_parameters"].erase("truncate");  // transformers: true
  const auto t = ModelConfig::from_json(j);
  EXPECT_TRUE(t.rope.truncate);
  const auto truncated = reference["yarn"]["inv_freq_if_truncated"].get<std::vector<double>>();
  const auto inv_t = t.rope.inverse_frequencies(t.head_dim);
  ASSERT_EQ(inv_t.size(), truncated.size());
  for (std::size_t i = 0; i < inv_t.size(); ++i) EXPECT_NEAR(inv_t[i], truncated[i], 1e-15 * truncated[i]) << i;
}

// The reference's routing margins hold what the fixture script promised: no float32 rounding can
// flip an expert (the k-th and (k+1)-th router scores of every real token apart by 1e-4 of its
// largest score), and every expert of every sparse layer is chosen somewhere.
TEST(MixtureOfExperts, ReferenceRoutingIsFarFromTies) {
  for (const char* name : {"qwen3_moe", "mixtral", "olmoe", "gpt_oss"}) {
    const auto reference = test::read_json(test::data_dir() / "reference" / (std::string(name) + ".json"));
    EXPECT_GE(reference["min_router_margin"]["relative"].get<double>(), 1e-4) << name;
    for (const auto& [layer, unused] : reference["experts_never_chosen"].items()) {
      EXPECT_TRUE(unused.empty()) << name << " layer " << layer;
    }
    const auto c = ModelConfig::load(model_dir(name));
    EXPECT_EQ(c.sparse_layers, reference["sparse_layers"].get<std::vector<char>>()) << name;
    EXPECT_EQ(c.moe->normalize_top_k, reference["normalize_top_k"].get<bool>()) << name;
  }
}

TEST(Gemma, ConfigsAsTransformersReadThem) {
  const auto g2 = ModelConfig::load(model_dir("gemma2"));
  EXPECT_EQ(g2.norms, NormPlacement::BeforeAndAfter);
  EXPECT_TRUE(g2.norm_plus_one);
  EXPECT_EQ(g2.activation, ops::Activation::GeluTanh);
  EXPECT_EQ(g2.embedding_scale, 8.0);  // sqrt(64)
  EXPECT_EQ(g2.attention_scale, 1.0 / std::sqrt(24.0));
  EXPECT_EQ(g2.attention_softcap, 3.0);
  EXPECT_EQ(g2.final_softcap, 6.0);
  EXPECT_EQ(g2.sliding_layers, (std::vector<char>{1, 0, 1, 0}));
  const auto g3 = ModelConfig::load(model_dir("gemma3_text"));
  EXPECT_EQ(g3.qk_norm, QkNorm::PerHead);
  EXPECT_FALSE(g3.attention_softcap || g3.final_softcap);
  EXPECT_EQ(g3.sliding_layers, (std::vector<char>{1, 1, 0, 1, 1, 0}));
  EXPECT_EQ(g3.rope.type, RopeType::Linear);
  EXPECT_EQ(g3.rope.theta, 100000.0);
  ASSERT_TRUE(g3.local_rope);
  EXPECT_EQ(g3.local_rope->type, RopeType::Default);
  EXPECT_EQ(g3.local_rope->theta, 10000.0);
  for (std::size_t l = 0; l < 6; ++l) EXPECT_EQ(g3.layer(l).local_rope, l % 3 != 2) << l;

  // transformers' Gemma defaults where a config leaves fields out.
  auto j = test::read_json(model_dir("gemma3_text") / "config.json");
  for (const char* k : {"head_dim", "query_pre_attn_scalar", "hidden_activation", "sliding_window", "layer_types",
                        "rope_parameters", "tie_word_embeddings", "sliding_window_pattern", "_sliding_window_pattern"}) {
    j.erase(k);
  }
  const auto d = ModelConfig::from_json(j);
  EXPECT_EQ(d.head_dim, 256);
  EXPECT_EQ(d.attention_scale, 1.0 / 16.0);
  EXPECT_EQ(d.activation, ops::Activation::GeluTanh);
  EXPECT_EQ(d.sliding_window, 4096);
  EXPECT_TRUE(d.tie_word_embeddings);
  EXPECT_EQ(d.rope.theta, 1e6);
  EXPECT_EQ(d.local_rope->theta, 1e4);
  EXPECT_EQ(d.sliding_layers, (std::vector<char>{1, 1, 1, 1, 1, 0}));  // sliding_window_pattern 6
  auto g2j = test::read_json(model_dir("gemma2") / "config.json");
  g2j.erase("attn_logit_softcapping");
  g2j.erase("final_logit_softcapping");
  const auto d2 = ModelConfig::from_json(g2j);
  EXPECT_EQ(d2.attention_softcap, 50.0);
  EXPECT_EQ(d2.final_softcap, 30.0);
  g2j["final_logit_softcapping"] = nullptr;
  EXPECT_FALSE(ModelConfig::from_json(g2j).final_softcap);
}

TEST(Gemma, RefusesWhatItDoesNotImplement) {
  auto j = test::read_json(model_dir("gemma3_text") / "config.json");
  j["use_bidirectional_attention"] = true;
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"use_bidirectional_attention"});
  j = test::read_json(model_dir("gemma2") / "config.json");
  j["hidden_activation"] = "gelu";
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"hidden_activation", "gelu"});
  j = test::read_json(model_dir("gemma2") / "config.json");
  j["attn_logit_softcapping"] = -1.0;
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"attn_logit_softcapping"});
  j = test::read_json(model_dir("llama_gqa") / "config.json");  // per-layer-type RoPE is Gemma 3's
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}}}, {"sliding_attention", {{"rope_type", "default"}}}};
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"rope_parameters", "per-layer-type"});
  // One layer type without the other (found by the model_config fuzz harness: a missing key was
  // read with operator[]).
  j = test::read_json(model_dir("gemma3_text") / "config.json");
  j["rope_parameters"] = {{"full)attention", {{"rope_type", "default"}}}, {"sliding_attention", {{"rope_type", "default"}}}};
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"rope_parameters", "\"full_attention\""});
}

// Soft-capping bounds every logit by the cap, and Gemma 2's tiny model reaches it (its raw logits
// go past 30; the oracle's checks).
TEST(Gemma, FinalLogitsStayWithinTheSoftCap) {
  const auto model = Model<double>::load(model_dir("gemma2"));
  const auto reference = test::read_json(test::data_dir() / "reference" / "gemma2.json");
  double top = 0;
  for (const auto& p : reference["prompts"]) {
    const auto ids = row_of(p.get<std::vector<std::int32_t>>());
    const auto logits = model.forward(ids, TokenMatrix::Ones(1, ids.cols()), nullptr, {.logits = LogitsFor::All});
    top = std::max(top, logits.cwiseAbs().maxCoeff());
  }
  EXPECT_LT(top, 6.0);
  EXPECT_GT(top, 5.5);
}

TEST(Phi3, ConfigAsTransformersReadsIt) {
  const auto c = ModelConfig::load(model_dir("phi3"));
  EXPECT_EQ(c.rope.type, RopeType::LongRope);
  EXPECT_EQ(c.rope.partial_rotary_factor, 0.75);
  EXPECT_EQ(c.rope.rotary_dim(c.head_dim), 12);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 16);
  EXPECT_EQ(c.rope.factor, 4.0);  // max_position_embeddings / original
  const auto reference = test::read_json(test::data_dir() / "reference" / "phi3.json");
  EXPECT_NEAR(c.rope.attention_factor, reference["attention_scaling"].get<double>(), 1e-15);
  EXPECT_EQ(c.sliding_layers, (std::vector<char>{1, 1}));
  EXPECT_EQ(c.sliding_window, 10);
}

TEST(Phi3, RefusesBadLongRopeFactors) {
  const auto base = test::read_json(model_dir("phi3") / "config.json");
  auto j = base;
  j["rope_parameters"]["long_factor"] = {1.0, 2.0};
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"long_factor", "has 2 values", "needs 6"});
  j = base;
  j["rope_parameters"]["short_factor"][3] = -1.0;
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"short_factor", "> 0"});
  j = base;
  j["rope_parameters"].erase("long_factor");
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"long_factor"});
  j = base;
  j["rope_parameters"]["partial_rotary_factor"] = 0.05;  // 0.8 of an element
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"partial_rotary_factor"});
  j = base;
  j["rope_parameters"]["partial_rotary_factor"] = 1.5;
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"partial_rotary_factor", "(0, 1]"});
}

// A prompt past original_max_position_embeddings (16), fed whole, turns every token by the long
// factors (transformers' oracle); its first 15 tokens alone turn by the short ones, so they differ.
// Fed in chunks, with the prompt's length in PackedBatch::prefill_ends (as the engine feeds it),
// it computes what it computes fed whole.
TEST(Phi3, LongPromptsTurnByTheLongFactorsFedWholeOrInChunks) {
  const auto reference = test::read_json(test::data_dir() / "reference" / "phi3.json");
  const auto prompt = reference["long_prompt"]["input_ids"].get<std::vector<std::int32_t>>();
  ASSERT_EQ(prompt.size(), 20u);
  const auto model = Model<double>::load(model_dir("phi3"));
  const auto ids = row_of(prompt);
  const auto whole = model.forward(ids, TokenMatrix::Ones(1, ids.cols()), nullptr, {.logits = LogitsFor::All});
  EXPECT_LE(relative_error(whole, reference["long_prompt"]["logits"]), 1e-9);
  const auto fmodel = Model<float>::load(model_dir("phi3"));
  const auto fwhole = fmodel.forward(ids, TokenMatrix::Ones(1, ids.cols()), nullptr, {.logits = LogitsFor::All});
  EXPECT_LE(relative_error(fwhole.cast<double>(), reference["long_prompt"]["logits"]), 1e-4);

  const auto head = row_of(std::vector<std::int32_t>(prompt.begin(), prompt.begin() + 15));
  const auto short_head = model.forward(head, TokenMatrix::Ones(1, 15), nullptr, {.logits = LogitsFor::All});
  EXPECT_GT((short_head - whole.topRows(15)).cwiseAbs().maxCoeff(), 1e-3);

  for (const bool hinted : {true, false}) {
    auto cache = model.make_cache(1);
    ops::Matrix<double> pieces(20, whole.cols());
    for (std::size_t begin = 0; begin < 20; begin += 7) {
      const std::size_t n = std::min<std::size_t>(7, 20 - begin);
      PackedBatch chunk;
      chunk.add_row(0, std::span<const std::int32_t>(prompt).subspan(begin, n));
      if (hinted) chunk.prefill_ends = {20};
      pieces.middleRows(static_cast<Eigen::Index>(begin), static_cast<Eigen::Index>(n)) =
          model.forward_packed(chunk, cache, {.logits = LogitsFor::All});
    }
    const double d = (pieces - whole).cwiseAbs().maxCoeff();
    if (hinted) {
      EXPECT_LE(d, 1e-12 * whole.cwiseAbs().maxCoeff());
    } else {
      EXPECT_GT(d, 1e-3) << "without the hint the first chunks turn by the short factors";
    }
  }
  PackedBatch bad;
  bad.add_row(0, std::span<const std::int32_t>(prompt).subspan(0, 3));
  bad.prefill_ends = {20, 20};
  auto cache = model.make_cache(1);
  test::expect_error<argument_error>([&] { model.forward_packed(bad, cache); }, {"prefill_ends"});
}

TEST(Olmo2AndGranite, ConfigsAsTransformersReadThem) {
  const auto o = ModelConfig::load(model_dir("olmo2"));
  EXPECT_EQ(o.norms, NormPlacement::After);
  EXPECT_EQ(o.qk_norm, QkNorm::Projection);
  auto j = test::read_json(model_dir("olmo2") / "config.json");
  j.erase("rms_norm_eps");
  EXPECT_EQ(ModelConfig::from_json(j).rms_norm_eps, 1e-5);  // Olmo2Config's default
  const auto g = ModelConfig::load(model_dir("granite"));
  EXPECT_EQ(g.embedding_scale, 12.0);
  EXPECT_EQ(g.residual_scale, 0.22);
  EXPECT_EQ(g.attention_scale, 0.09375);
  EXPECT_EQ(g.logits_divisor, 2.5);
  j = test::read_json(model_dir("granite") / "config.json");
  j["logits_scaling"] = 0;
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"logits_scaling", "> 0"});
}

}  // namespace
}  // namespace maskgen

namespace maskgen {
namespace {

// Gemma 3 from 4B up is published as the multimodal "gemma3": the text model's config in
// "text_config", its tensors under language_model.*, a vision tower beside them. maskgen runs the
// text model (the oracle: Gemma3ForConditionalGeneration on text-only prompts) and refuses image
// tokens by name.
TEST(Gemma3Multimodal, TextModelAsTransformersRunsIt) {
  const auto dir = model_dir("gemma3_mm");
  const auto reference = test::read_json(test::data_dir() / "reference" / "gemma3_mm.json");
  const auto c = ModelConfig::load(dir);
  EXPECT_EQ(c.model_type, "gemma3");
  EXPECT_EQ(c.qk_norm, QkNorm::PerHead);
  EXPECT_TRUE(c.local_rope);
  EXPECT_EQ(c.image_token_id, 120);
  const auto model = Model<double>::load(dir);
  const auto fmodel = Model<float>::load(dir);
  for (std::size_t p = 0; p < reference["prompts"].size(); ++p) {
    const auto ids = row_of(reference["prompts"][p].get<std::vector<std::int32_t>>());
    const TokenMatrix mask = TokenMatrix::Ones(1, ids.cols());
    EXPECT_LE(relative_error(model.forward(ids, mask, nullptr, {.logits = LogitsFor::All}), reference["single"][p]), 1e-9);
    EXPECT_LE(relative_error(fmodel.forward(ids, mask, nullptr, {.logits = LogitsFor::All}).cast<double>(),
                             reference["single"][p]),
              1e-4);
  }
  TokenMatrix image(1, 3);
  image << 1, 120, 5;
  test::expect_error<argument_error>([&] { model.forward(image, TokenMatrix::Ones(1, 3)); },
                                     {"token 1", "image token 120", "image_token_index"});

  // The transformers 4 spelling inside text_config loads to the same model.
  test::TempDir v4;
  fs::copy_file(dir / "config.v4.json", v4.path() / "config.json");
  for (const char* f : {"model.safetensors", "generation_config.json"}) fs::copy_file(dir / f, v4.path() / f);
  const auto other = Model<double>::load(v4.path());
  const auto ids = row_of(reference["prompts"][3].get<std::vector<std::int32_t>>());
  const TokenMatrix mask = TokenMatrix::Ones(1, ids.cols());
  EXPECT_TRUE((other.forward(ids, mask).array() == model.forward(ids, mask).array()).all());

  auto j = test::read_json(dir / "config.json");
  j.erase("text_config");
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"text_config"});
}

}  // namespace
}  // namespace maskgen

#pragma once
// Gemma 2 and Gemma 3 (text): four RMSNorms a layer (before and after attention, before and after
// the MLP), each scaling by (1 + w); embeddings times sqrt(hidden_size); a GeGLU MLP
// ("gelu_pytorch_tanh"); scores scaled by query_pre_attn_scalar^-1/2; sliding-window and global
// layers; tied embeddings.
//   Gemma 2: attention-score and final-logit soft-capping (tanh(x / c) * c); every other layer
//   slides (layers 0, 2, ...).
//   Gemma 3: per-head RMSNorm of queries and keys, no soft-capping (transformers ignores
//   attn_logit_softcapping there), sliding_window_pattern - 1 local layers for each global one, and
//   local layers with their own RoPE (rope_local_base_freq, unscaled).

#include <algorithm>
#include <cmath>
#include <optional>

#include "family.hpp"

namespace maskgen::families {

inline void configure_gemma_common(const detail::ConfigReader& r, ModelConfig& c) {
  using detail::cat;
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  c.norms = NormPlacement::BeforeAndAfter;
  c.norm_plus_one = true;
  c.embedding_scale = std::sqrt(static_cast<double>(c.hidden_size));
  const double scalar = r.number("query_pre_attn_scalar", 256.0);
  if (!(scalar > 0.0)) r.fail("query_pre_attn_scalar", cat("must be > 0, got ", scalar));
  c.attention_scale = 1.0 / std::sqrt(scalar);
  if (r.boolean("use_bidirectional_attention", false)) {
    r.fail("use_bidirectional_attention", "true (an encoder's attention) is not supported: maskgen is causal");
  }
  if (!r.has("sliding_window")) c.sliding_window = 4096;  // transformers' default
}

// A soft-cap's value: `fallback` when config.json leaves the field out, none when it is null.
inline std::optional<double> softcap(const detail::ConfigReader& r, const char* key, std::optional<double> fallback,
                                     const nlohmann::json& j) {
  if (!j.contains(key)) return fallback;
  if (j[key].is_null()) return std::nullopt;
  const double cap = r.number(key, 0.0);
  if (!(cap > 0.0)) r.fail(key, detail::cat("must be > 0 or null, got ", cap));
  return cap;
}

inline void configure_gemma2(const detail::ConfigReader& r, ModelConfig& c, bool has_layer_types) {
  configure_gemma_common(r, c);
  c.attention_softcap = softcap(r, "attn_logit_softcapping", 50.0, r.json());
  c.final_softcap = softcap(r, "final_logit_softcapping", 30.0, r.json());
  if (!has_layer_types) {
    for (std::size_t l = 0; l < c.sliding_layers.size(); ++l) c.sliding_layers[l] = (l + 1) % 2 != 0;
  }
}

inline void configure_gemma3(const detail::ConfigReader& r, ModelConfig& c, bool has_layer_types) {
  configure_gemma_common(r, c);
  c.qk_norm = QkNorm::PerHead;
  c.final_softcap = softcap(r, "final_logit_softcapping", std::nullopt, r.json());
  if (!has_layer_types) {
    const std::int64_t pattern = r.has("sliding_window_pattern") ? r.positive_int("sliding_window_pattern") : 6;
    for (std::size_t l = 0; l < c.sliding_layers.size(); ++l) {
      c.sliding_layers[l] = (static_cast<std::int64_t>(l) + 1) % pattern != 0;
    }
  }
}

inline constexpr Family::Defaults gemma_defaults{.rms_norm_eps = 1e-6, .tie_word_embeddings = true, .head_dim = 256,
                                                 .activation_key = "hidden_activation",
                                                 .activation = "gelu_pytorch_tanh"};
inline constexpr TensorNames gemma_names{.attention_out_norm = "post_attention_layernorm.weight",
                                         .mlp_norm = "pre_feedforward_layernorm.weight"};

// Gemma 3 as published from 4B up: config.json's "text_config" is a gemma3_text config, the
// vision tower's tensors (vision_tower.*, multi_modal_projector.*) are not read, and the text
// model's are under language_model.*. Prompts holding the image token are refused (text only).
inline constexpr TensorNames gemma3_multimodal_names{.embed = "language_model.model.embed_tokens.weight",
                                                     .layer_prefix = "language_model.model.layers.",
                                                     .attention_out_norm = "post_attention_layernorm.weight",
                                                     .mlp_norm = "pre_feedforward_layernorm.weight",
                                                     .final_norm = "language_model.model.norm.weight",
                                                     .lm_head = "language_model.lm_head.weight"};

inline constexpr Family gemma2{"gemma2", Architecture::Other, configure_gemma2, gemma_names, gemma_defaults};
inline constexpr Family gemma3_text{"gemma3_text", Architecture::Other, configure_gemma3, gemma_names, gemma_defaults,
                                    RopeRules{.default_theta = 1e6, .local_theta = 1e4}};
inline constexpr Family gemma3{"gemma3", Architecture::Other, configure_gemma3, gemma3_multimodal_names, gemma_defaults,
                               RopeRules{.default_theta = 1e6, .local_theta = 1e4}, "text_config"};

}  // namespace maskgen::families

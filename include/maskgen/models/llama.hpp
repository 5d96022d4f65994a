#pragma once
// The Llama family and its close relatives: llama, mistral, qwen2, qwen3. One block: RMSNorm
// before attention and before the SwiGLU MLP, RoPE on queries and keys, grouped-query attention.
// They differ in biases, Qwen3's per-head norm of queries and keys, and which layers slide.

#include <algorithm>

#include "family.hpp"

namespace maskgen::families {

// Qwen2 and Qwen3 slide in the layers from "max_window_layers" (default 28) up, when
// "use_sliding_window" is on and "sliding_window" is set.
inline void qwen_windows(const detail::ConfigReader& r, ModelConfig& c) {
  if (!r.has("sliding_window") || !r.boolean("use_sliding_window", false)) return;
  const std::int64_t from = r.has("max_window_layers") ? r.integer("max_window_layers") : 28;
  for (std::int64_t l = std::max<std::int64_t>(0, from); l < c.num_layers; ++l) c.sliding_layers[static_cast<std::size_t>(l)] = 1;
}

inline void configure_llama(const detail::ConfigReader& r, ModelConfig& c, bool) {
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
}

// Every layer slides when "sliding_window" is set.
inline void configure_mistral(const detail::ConfigReader& r, ModelConfig& c, bool has_layer_types) {
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  if (!has_layer_types && r.has("sliding_window")) std::fill(c.sliding_layers.begin(), c.sliding_layers.end(), 1);
}

// Queries, keys and values always carry a bias; the output projection never does.
inline void configure_qwen2(const detail::ConfigReader& r, ModelConfig& c, bool has_layer_types) {
  (void)r.boolean("attention_bias", false);  // checked, though Qwen2 does not read it
  c.qkv_bias = true;
  c.o_bias = false;
  if (!has_layer_types) qwen_windows(r, c);
}

inline void configure_qwen3(const detail::ConfigReader& r, ModelConfig& c, bool has_layer_types) {
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  c.qk_norm = QkNorm::PerHead;
  if (!has_layer_types) qwen_windows(r, c);
}

inline constexpr Family llama{"llama", Architecture::Llama, configure_llama};
inline constexpr Family mistral{"mistral", Architecture::Mistral, configure_mistral};
inline constexpr Family qwen2{"qwen2", Architecture::Qwen2, configure_qwen2};
inline constexpr Family qwen3{"qwen3", Architecture::Qwen3, configure_qwen3};

}  // namespace maskgen::families

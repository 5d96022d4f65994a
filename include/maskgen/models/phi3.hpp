#pragma once
// Phi-3, Phi-3.5 and Phi-4-mini: the Llama block with q, k and v stored as one qkv_proj tensor and
// gate and up as one gate_up_proj (each part read from its own rows), RoPE over the first
// partial_rotary_factor of each head, LongRoPE ("longrope", once "su"/"yarn") with short and long
// factors, and a sliding window over every layer when "sliding_window" is set.

#include <algorithm>
#include <cmath>
#include <optional>

#include "family.hpp"

namespace maskgen::families {

inline void configure_phi3(const detail::ConfigReader& r, ModelConfig& c, bool has_layer_types) {
  c.qkv_bias = c.o_bias = false;  // Phi-3's projections have no biases
  if (!has_layer_types && r.has("sliding_window")) std::fill(c.sliding_layers.begin(), c.sliding_layers.end(), 1);
}

inline constexpr Family phi3{"phi3", Architecture::Other, configure_phi3,
                             TensorNames{.qkv_proj = "self_attn.qkv_proj.weight", .gate_up_proj = "mlp.gate_up_proj.weight"},
                             Family::Defaults{.rms_norm_eps = 1e-5}, RopeRules{.legacy_longrope_names = true}};

}  // namespace maskgen::families

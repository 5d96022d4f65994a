#pragma once
// gpt-oss: biases on every attention projection, a learned sink logit per head that joins each
// query's softmax (models/decoder.hpp, ops/attention.hpp), sliding-window and full layers in turn
// (layer 0 slides), YaRN RoPE, and a mixture of experts in every layer: a router with a bias, the
// top "num_experts_per_tok" of "num_local_experts" weighted by the softmax over their logits, each
// expert a clamped SwiGLU with biases. Its experts are stored fused and transposed: gate_up_proj
// [experts, hidden, 2 intermediate] (gate and up alternating) and down_proj [experts,
// intermediate, hidden]. transformers fixes the SwiGLU's limit at 7 and alpha at 1.702.

#include <algorithm>
#include <cmath>

#include "family.hpp"
#include "moe.hpp"

namespace maskgen::families {

inline void configure_gpt_oss(const detail::ConfigReader& r, ModelConfig& c, bool has_layer_types) {
  using detail::cat;
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", true);
  c.attention_sinks = true;
  c.activation = ops::Activation::ClampedSwiglu;
  if (const double limit = r.number("swiglu_limit", ops::clamped_swiglu_limit); limit != ops::clamped_swiglu_limit) {
    r.fail("swiglu_limit", cat("is ", limit, "; transformers computes gpt-oss's experts with 7.0 whatever the config says"));
  }
  if (!has_layer_types) {
    for (std::size_t l = 0; l < c.sliding_layers.size(); ++l) c.sliding_layers[l] = l % 2 == 0;
  }
  if (!r.has("sliding_window")) c.sliding_window = 128;  // transformers' default
  if (!r.has("rope_parameters") && !r.has("rope_scaling")) {  // transformers' default: YaRN to 32 x 4096
    c.rope.type = RopeType::Yarn;
    c.rope.factor = 32.0;
    c.rope.beta_fast = 32.0;
    c.rope.beta_slow = 1.0;
    c.rope.truncate = false;
    c.rope.original_max_position_embeddings = 4096;
    c.rope.attention_factor = 0.1 * std::log(32.0) + 1.0;
  }
  if (read_moe(r, c, {"num_local_experts", 128, 4, "intermediate_size"}, true)) {
    c.moe->router_bias = c.moe->expert_bias = true;
  }
}

inline constexpr Family gpt_oss{"gpt_oss", Architecture::Other, configure_gpt_oss,
                                TensorNames{.router = "mlp.router.weight", .fused_transposed_interleaved = true},
                                Family::Defaults{.rms_norm_eps = 1e-5, .head_dim = 64}, RopeRules{.default_theta = 150000.0}};

}  // namespace maskgen::families

#pragma once
// OLMo 2: the Llama block with its norms moved after the blocks (x += norm(attention(x)),
// x += norm(mlp(x)): no norm before either) and RMSNorm of the whole query and key projections
// (one [heads * head_dim] and one [kv_heads * head_dim] weight) before RoPE.

#include "family.hpp"

namespace maskgen::families {

inline void configure_olmo2(const detail::ConfigReader& r, ModelConfig& c, bool) {
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  c.norms = NormPlacement::After;
  c.qk_norm = QkNorm::Projection;
}

inline constexpr Family olmo2{"olmo2", Architecture::Other, configure_olmo2, TensorNames{},
                              Family::Defaults{.rms_norm_eps = 1e-5}};

}  // namespace maskgen::families

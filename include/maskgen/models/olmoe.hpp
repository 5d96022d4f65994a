#pragma once
// OLMoE: the Llama block with RMSNorm of the whole query and key projections (as OLMo 2, but with
// the norms before the blocks) and a mixture of experts in every layer: "num_experts" of
// "intermediate_size", the router's softmax over every expert, the k weights divided by their sum
// only with "norm_topk_prob" (false by default, as OLMoE-1B-7B).

#include "family.hpp"
#include "moe.hpp"

namespace maskgen::families {

inline void configure_olmoe(const detail::ConfigReader& r, ModelConfig& c, bool) {
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  c.qk_norm = QkNorm::Projection;
  if (r.has("clip_qkv")) r.fail("clip_qkv", "is set; maskgen does not clamp queries, keys and values");
  read_moe(r, c, {"num_experts", 64, 8, "intermediate_size"}, r.boolean("norm_topk_prob", false));
}

inline constexpr Family olmoe{"olmoe", Architecture::Other, configure_olmoe, TensorNames{},
                              Family::Defaults{.rms_norm_eps = 1e-5}};

}  // namespace maskgen::families

#pragma once
// Qwen3-MoE: Qwen3's attention (per-head norms of queries and keys, Qwen's window rule) with a
// mixture of experts in the sparse layers: those not in "mlp_only_layers" whose index + 1 is a
// multiple of "decoder_sparse_step" (every layer by default). Its router's softmax is taken over
// every expert; "norm_topk_prob" divides the k weights by their sum. Dense layers' MLPs have
// "intermediate_size", experts "moe_intermediate_size".

#include <cstdint>

#include "llama.hpp"
#include "moe.hpp"

namespace maskgen::families {

inline void configure_qwen3_moe(const detail::ConfigReader& r, ModelConfig& c, bool has_layer_types) {
  using detail::cat;
  configure_qwen3(r, c, has_layer_types);
  if (!read_moe(r, c, {"num_experts", 128, 8, "moe_intermediate_size"}, r.boolean("norm_topk_prob", false))) return;
  const std::int64_t step = r.has("decoder_sparse_step") ? r.positive_int("decoder_sparse_step") : 1;
  for (std::int64_t l = 0; l < c.num_layers; ++l) c.sparse_layers[static_cast<std::size_t>(l)] = (l + 1) % step == 0;
  if (r.has("mlp_only_layers")) {
    const auto& dense = r.raw("mlp_only_layers");
    if (!dense.is_array()) r.fail("mlp_only_layers", "must be a list of layer indices");
    for (const auto& v : dense) {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() >= c.num_layers) {
        r.fail("mlp_only_layers", cat("holds ", v.dump(), "; each must be a layer index in [0, ", c.num_layers, ")"));
      }
      c.sparse_layers[static_cast<std::size_t>(v.get<std::int64_t>())] = 0;
    }
  }
}

inline constexpr Family qwen3_moe{"qwen3_moe", Architecture::Other, configure_qwen3_moe};

}  // namespace maskgen::families

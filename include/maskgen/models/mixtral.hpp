#pragma once
// Mixtral: Mistral's block (every layer slides when "sliding_window" is set) with a mixture of
// experts in every layer: "num_local_experts" experts of "intermediate_size", the top
// "num_experts_per_tok" weighted by the softmax over their logits. Published checkpoints keep them
// as block_sparse_moe.gate and block_sparse_moe.experts.{e}.w1 (gate), w3 (up) and w2 (down).

#include "llama.hpp"
#include "moe.hpp"

namespace maskgen::families {

inline void configure_mixtral(const detail::ConfigReader& r, ModelConfig& c, bool has_layer_types) {
  configure_mistral(r, c, has_layer_types);
  read_moe(r, c, {"num_local_experts", 8, 2, "intermediate_size"}, true);
}

inline constexpr Family mixtral{"mixtral", Architecture::Other, configure_mixtral,
                                TensorNames{.router = "block_sparse_moe.gate.weight",
                                            .fused_router = "mlp.gate.weight",
                                            .expert_prefix = "block_sparse_moe.experts.",
                                            .expert_gate = "w1.weight",
                                            .expert_up = "w3.weight",
                                            .expert_down = "w2.weight"},
                                Family::Defaults{.rms_norm_eps = 1e-5}};

}  // namespace maskgen::families

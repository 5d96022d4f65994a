#pragma once
// Family: what a model family supplies. Its model_type names, its config rules beyond the fields
// every family shares (config.hpp reads those), and its tensor names. Registering one is a line
// in models/registry.hpp; its header lives beside this one.

#include <cstdint>
#include <string>
#include <string_view>

#include "../model_config.hpp"

namespace maskgen {

// Where a checkpoint keeps each tensor. Layer tensors are named layer_prefix + index + "." + name;
// a projection's bias is its name with ".bias" for ".weight". The defaults are the names of
// transformers' Llama and of the families that copied it.
struct TensorNames {
  std::string_view embed = "model.embed_tokens.weight";
  std::string_view layer_prefix = "model.layers.";
  std::string_view input_norm = "input_layernorm.weight";           // before attention
  std::string_view attention_out_norm = "post_attention_layernorm.weight";  // of attention's output (Gemma, OLMo 2)
  std::string_view mlp_norm = "post_attention_layernorm.weight";   // before the MLP (Llama's name for it)
  std::string_view mlp_out_norm = "post_feedforward_layernorm.weight";  // of the MLP's output (Gemma, OLMo 2)
  std::string_view qkv_proj = "";          // set: q, k and v stored as one [q + 2 kv, hidden] tensor (Phi-3)
  std::string_view gate_up_proj = "";      // set: gate and up stored as one [2 intermediate, hidden] tensor (Phi-3)
  std::string_view q_proj = "self_attn.q_proj.weight";
  std::string_view k_proj = "self_attn.k_proj.weight";
  std::string_view v_proj = "self_attn.v_proj.weight";
  std::string_view o_proj = "self_attn.o_proj.weight";
  std::string_view q_norm = "self_attn.q_norm.weight";
  std::string_view k_norm = "self_attn.k_norm.weight";
  std::string_view gate_proj = "mlp.gate_proj.weight";
  std::string_view up_proj = "mlp.up_proj.weight";
  std::string_view down_proj = "mlp.down_proj.weight";
  std::string_view sinks = "self_attn.sinks";  // [heads] (gpt-oss)
  // The mixture of experts of a sparse layer. Experts are stored one tensor per expert and
  // projection (expert_prefix + e + "." + expert_gate ...), or fused: fused_gate_up [experts,
  // 2 intermediate, hidden] (gate rows, then up rows) and fused_down [experts, hidden,
  // intermediate], as transformers 5 holds them; whichever the checkpoint has is read.
  std::string_view router = "mlp.gate.weight";            // [experts, hidden]
  std::string_view fused_router = "";                     // set: the router's name beside fused experts
  std::string_view expert_prefix = "mlp.experts.";
  std::string_view expert_gate = "gate_proj.weight";      // [expert_intermediate, hidden]
  std::string_view expert_up = "up_proj.weight";          // [expert_intermediate, hidden]
  std::string_view expert_down = "down_proj.weight";      // [hidden, expert_intermediate]
  std::string_view fused_gate_up = "mlp.experts.gate_up_proj";
  std::string_view fused_down = "mlp.experts.down_proj";
  // Set: the fused tensors are stored transposed, [experts, hidden, 2 intermediate] with gate and
  // up alternating along the last dimension and [experts, intermediate, hidden], with biases
  // fused_gate_up + "_bias" [experts, 2 intermediate] and fused_down + "_bias" [experts, hidden]
  // (gpt-oss). No per-expert form is read then.
  bool fused_transposed_interleaved = false;
  std::string_view final_norm = "model.norm.weight";
  std::string_view lm_head = "lm_head.weight";

  std::string expert(std::int64_t layer_index, std::int64_t e, std::string_view name) const {
    return layer(layer_index, std::string(expert_prefix) + std::to_string(e) + "." + std::string(name));
  }
  std::string layer(std::int64_t index, std::string_view name) const {
    return std::string(layer_prefix) + std::to_string(index) + "." + std::string(name);
  }
  static std::string bias_of(std::string_view weight) {
    return std::string(weight.substr(0, weight.size() - std::string_view(".weight").size())) + ".bias";
  }
};

struct Family {
  std::string_view model_type;  // as config.json writes it
  Architecture architecture = Architecture::Other;
  // The family's rules, after the shared fields are read: biases, norms, and which layers slide
  // (where config.json has no "layer_types") or skip RoPE.
  void (*configure)(const detail::ConfigReader& config, ModelConfig& c, bool has_layer_types) = nullptr;
  TensorNames names{};
  // Defaults of transformers' config class where config.json leaves a field out.
  struct Defaults {
    double rms_norm_eps = 1e-6;
    bool tie_word_embeddings = false;
    std::int64_t head_dim = 0;                   // 0: hidden_size / num_attention_heads
    std::string_view activation_key = "hidden_act";  // Gemma: "hidden_activation"
    std::string_view activation = "silu";
  } defaults{};
  RopeRules rope{};
  // Set: config.json nests the text model's config under this key (Gemma 3's multimodal "gemma3":
  // "text_config"); the top level's special ids and tie_word_embeddings apply where it has none.
  std::string_view text_config = "";
};

}  // namespace maskgen

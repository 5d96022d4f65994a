#pragma once
// Writes a model folder of a Llama, Qwen3, Qwen3-MoE, Gemma 3 (text) or Phi-3 architecture with
// random weights (fixed seed): config.json and a model.safetensors in float32, bfloat16 or
// float16, written one tensor at a time (a folder of any size needs memory for its largest tensor
// only). For benchmarks at realistic sizes; the numbers mean nothing.

#include <maskgen/safetensors.hpp>

#include "safetensors_writer.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace maskgen::tools {

struct RandomModelShape {
  std::string model_type = "llama";  // "llama", "qwen3" (per-head q/k norms, head_dim apart),
                                     // "qwen3_moe" (qwen3's attention, every layer's MLP a mixture
                                     // of experts), "gemma3_text" (four (1 + w) norms, GeGLU, 5 local
                                     // : 1 global layers with a window of 512) or "phi3" (fused qkv
                                     // and gate_up)
  DType dtype = DType::F32;          // element type of every tensor in the file
  std::int64_t vocab_size = 32000;
  std::int64_t hidden_size = 768;
  std::int64_t intermediate_size = 2048;
  std::int64_t num_layers = 12;
  std::int64_t num_heads = 12;
  std::int64_t num_kv_heads = 12;
  std::int64_t max_position_embeddings = 2048;
  std::int64_t head_dim = 0;         // 0: hidden_size / num_heads
  bool tie_word_embeddings = false;
  std::uint32_t seed = 1;
  // qwen3_moe only: the experts of every layer's MLP (intermediate_size is then only written to
  // config.json, as the published checkpoints do: no layer has a dense MLP).
  std::int64_t num_experts = 0;             // num_experts
  std::int64_t experts_per_token = 0;       // num_experts_per_tok: the router's top-k
  std::int64_t moe_intermediate_size = 0;   // each expert's gated MLP width
  bool norm_topk_prob = true;               // the top-k weights renormalized to sum to 1

  std::int64_t head_size() const { return head_dim ? head_dim : hidden_size / num_heads; }
  bool moe() const { return model_type == "qwen3_moe"; }
};

// Qwen3-0.6B's shape: hidden 1024, 28 layers, 16 heads, 8 KV heads, head_dim 128, intermediate
// 3072, vocab 151,936, tied, in bfloat16 as published.
inline RandomModelShape qwen3_06b_shape() {
  RandomModelShape s;
  s.model_type = "qwen3";
  s.dtype = DType::BF16;
  s.vocab_size = 151936;
  s.hidden_size = 1024;
  s.intermediate_size = 3072;
  s.num_layers = 28;
  s.num_heads = 16;
  s.num_kv_heads = 8;
  s.head_dim = 128;
  s.max_position_embeddings = 40960;
  s.tie_word_embeddings = true;
  return s;
}

// Qwen3-1.7B's shape: hidden 2048, 28 layers, 16 heads, 8 KV heads, head_dim 128, intermediate
// 6144, vocab 151,936, tied, bfloat16.
inline RandomModelShape qwen3_17b_shape() {
  RandomModelShape s = qwen3_06b_shape();
  s.hidden_size = 2048;
  s.intermediate_size = 6144;
  return s;
}

// Qwen3-30B-A3B's shape (its published config.json): qwen3_moe, hidden 2048, 48 layers, 32 heads,
// 4 KV heads, head_dim 128, 128 experts of width 768 in every layer, top-8 with the weights
// renormalized, vocab 151,936, untied, bfloat16. About 1.25 GB a layer and 0.62 GB each for the
// embedding and the output head: benchmarks take a few layers (num_layers).
inline RandomModelShape qwen3_30b_a3b_shape() {
  RandomModelShape s = qwen3_06b_shape();
  s.model_type = "qwen3_moe";
  s.hidden_size = 2048;
  s.intermediate_size = 6144;
  s.num_layers = 48;
  s.num_heads = 32;
  s.num_kv_heads = 4;
  s.tie_word_embeddings = false;
  s.num_experts = 128;
  s.experts_per_token = 8;
  s.moe_intermediate_size = 768;
  s.norm_topk_prob = true;
  return s;
}

// TinyLlama-1.1B's shape: a Llama with hidden 2048, 22 layers, 32 heads, 4 KV heads (GQA 8:1),
// intermediate 5632, vocab 32,000, untied, bfloat16 (TinyLlama's published dtype).
inline RandomModelShape tinyllama_shape() {
  RandomModelShape s;
  s.dtype = DType::BF16;
  s.hidden_size = 2048;
  s.intermediate_size = 5632;
  s.num_layers = 22;
  s.num_heads = 32;
  s.num_kv_heads = 4;
  return s;
}

// Gemma 3 1B's shape: hidden 1152, 26 layers, 4 heads, 1 KV head, head_dim 256, intermediate
// 6912, vocab 262,144, tied, bfloat16.
inline RandomModelShape gemma3_1b_shape() {
  RandomModelShape s;
  s.model_type = "gemma3_text";
  s.dtype = DType::BF16;
  s.vocab_size = 262144;
  s.hidden_size = 1152;
  s.intermediate_size = 6912;
  s.num_layers = 26;
  s.num_heads = 4;
  s.num_kv_heads = 1;
  s.head_dim = 256;
  s.max_position_embeddings = 32768;
  s.tie_word_embeddings = true;
  return s;
}

// Phi-3-mini's shape (Phi-3.5-mini's widths): hidden 3072, 32 layers, 32 heads (no GQA),
// intermediate 8192, vocab 32,064, untied, bfloat16; LongRoPE as Phi-3.5-mini configures it.
inline RandomModelShape phi3_mini_shape() {
  RandomModelShape s;
  s.model_type = "phi3";
  s.dtype = DType::BF16;
  s.vocab_size = 32064;
  s.hidden_size = 3072;
  s.intermediate_size = 8192;
  s.num_layers = 32;
  s.num_heads = 32;
  s.num_kv_heads = 32;
  s.max_position_embeddings = 131072;
  return s;
}

// `x` in `dtype`, rounded to nearest even (the 16-bit types), as little-endian bytes appended to `out`.
inline void append_encoded(float x, DType dtype, std::vector<std::byte>& out) {
  auto put = [&](auto v) {
    const auto* b = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), b, b + sizeof v);
  };
  switch (dtype) {
    case DType::F32: put(x); break;
    case DType::F64: put(static_cast<double>(x)); break;
    case DType::F16: put(std::bit_cast<std::uint16_t>(static_cast<_Float16>(x))); break;
    case DType::BF16: {
      const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
      put(static_cast<std::uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16));  // finite inputs only
      break;
    }
    default: throw argument_error("append_encoded: values are written as F32, F64, F16 or BF16");
  }
}

// Parameters of a model of this shape (weights only).
inline std::int64_t parameter_count(const RandomModelShape& s) {
  const std::int64_t head_dim = s.head_size();
  const std::int64_t attention = s.hidden_size * head_dim * (2 * s.num_heads + 2 * s.num_kv_heads);
  const std::int64_t mlp = s.moe() ? s.num_experts * (3 * s.hidden_size * s.moe_intermediate_size + s.hidden_size)
                                   : 3 * s.hidden_size * s.intermediate_size;
  const bool gemma = s.model_type == "gemma3_text";
  const std::int64_t layer = attention + mlp + (gemma ? 4 : 2) * s.hidden_size +
                             (s.model_type == "qwen3" || s.moe() || gemma ? 2 * head_dim : 0);
  return s.vocab_size * s.hidden_size * (s.tie_word_embeddings ? 1 : 2) + s.num_layers * layer + s.hidden_size;
}

// config.json of a Qwen3-MoE model as the published Qwen/Qwen3-30B-A3B has it (transformers 4's
// spelling: rope_theta at the top level, rope_scaling null).
inline nlohmann::json qwen3_moe_config(const RandomModelShape& s) {
  return {{"architectures", {"Qwen3MoeForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"bos_token_id", s.vocab_size > 151643 ? 151643 : 1},  // Qwen's ids where the vocabulary has them
          {"decoder_sparse_step", 1},
          {"eos_token_id", s.vocab_size > 151645 ? 151645 : 2},
          {"head_dim", s.head_size()},
          {"hidden_act", "silu"},
          {"hidden_size", s.hidden_size},
          {"initializer_range", 0.02},
          {"intermediate_size", s.intermediate_size},
          {"max_position_embeddings", s.max_position_embeddings},
          {"max_window_layers", s.num_layers},
          {"mlp_only_layers", nlohmann::json::array()},
          {"model_type", "qwen3_moe"},
          {"moe_intermediate_size", s.moe_intermediate_size},
          {"norm_topk_prob", s.norm_topk_prob},
          {"num_attention_heads", s.num_heads},
          {"num_experts", s.num_experts},
          {"num_experts_per_tok", s.experts_per_token},
          {"num_hidden_layers", s.num_layers},
          {"num_key_value_heads", s.num_kv_heads},
          {"output_router_logits", false},
          {"rms_norm_eps", 1e-6},
          {"rope_scaling", nullptr},
          {"rope_theta", 1000000.0},
          {"router_aux_loss_coef", 0.001},
          {"sliding_window", nullptr},
          {"tie_word_embeddings", s.tie_word_embeddings},
          {"torch_dtype", s.dtype == DType::BF16 ? "bfloat16" : s.dtype == DType::F16 ? "float16" : "float32"},
          {"use_cache", true},
          {"use_sliding_window", false},
          {"vocab_size", s.vocab_size}};
}

inline void write_random_model(const std::filesystem::path& dir, const RandomModelShape& s) {
  std::filesystem::create_directories(dir);
  const bool qwen3 = s.model_type == "qwen3", gemma = s.model_type == "gemma3_text", phi3 = s.model_type == "phi3";
  const bool moe = s.moe();
  if (!qwen3 && !gemma && !phi3 && !moe && s.model_type != "llama") {
    throw argument_error("model_type must be llama, qwen3, qwen3_moe, gemma3_text or phi3, got " + s.model_type);
  }
  if (moe && !(s.num_experts > 0 && s.experts_per_token > 0 && s.experts_per_token <= s.num_experts &&
               s.moe_intermediate_size > 0)) {
    throw argument_error("qwen3_moe needs num_experts > 0, 0 < experts_per_token <= num_experts and "
                         "moe_intermediate_size > 0, got " + std::to_string(s.num_experts) + ", " +
                         std::to_string(s.experts_per_token) + ", " + std::to_string(s.moe_intermediate_size));
  }
  const char* architecture = qwen3 ? "Qwen3ForCausalLM" : gemma ? "Gemma3ForCausalLM" : phi3 ? "Phi3ForCausalLM"
                                                                                       : "LlamaForCausalLM";
  nlohmann::json config = {
      {"architectures", {architecture}}, {"model_type", s.model_type},
      {"vocab_size", s.vocab_size}, {"head_dim", s.head_size()},
      {"hidden_size", s.hidden_size}, {"intermediate_size", s.intermediate_size},
      {"num_hidden_layers", s.num_layers}, {"num_attention_heads", s.num_heads},
      {"num_key_value_heads", s.num_kv_heads}, {"max_position_embeddings", s.max_position_embeddings},
      {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", s.tie_word_embeddings}, {"hidden_act", "silu"},
      {"bos_token_id", 1}, {"eos_token_id", 2},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", qwen3 ? 1000000.0 : 10000.0}}}};
  if (moe) config = qwen3_moe_config(s);
  if (gemma) {  // as Gemma 3 1B's config
    config.erase("hidden_act");
    config["hidden_activation"] = "gelu_pytorch_tanh";
    config["query_pre_attn_scalar"] = s.head_size();
    config["sliding_window"] = 512;
    config["rms_norm_eps"] = 1e-6;
    nlohmann::json types = nlohmann::json::array();
    for (std::int64_t l = 0; l < s.num_layers; ++l) types.push_back((l + 1) % 6 ? "sliding_attention" : "full_attention");
    config["layer_types"] = types;
    config["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1000000.0}}},
                                 {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}};
  }
  if (phi3) {  // as Phi-3.5-mini's config: LongRoPE (unit factors here), every layer sliding
    const auto half = static_cast<std::size_t>(s.head_size() / 2);
    config["original_max_position_embeddings"] = 4096;
    config["sliding_window"] = 262144;
    config["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 10000.0},
                                 {"short_factor", std::vector<double>(half, 1.0)},
                                 {"long_factor", std::vector<double>(half, 1.0)}};
  }
  std::ofstream(dir / "config.json") << config.dump(2) << "\n";

  // Every tensor's name, shape and distribution first; the values are drawn, in this order from
  // one generator, as the writer reaches each tensor.
  struct Planned {
    float mean, stddev;
  };
  std::vector<TensorSpec> specs;
  std::vector<Planned> plans;
  auto add = [&](std::string name, std::vector<std::int64_t> shape, float mean, float stddev) {
    specs.push_back({std::move(name), s.dtype, std::move(shape)});
    plans.push_back({mean, stddev});
  };
  const std::int64_t head_dim = s.head_size(), h = s.hidden_size;
  const float in_h = 1.0f / std::sqrt(static_cast<float>(h)), in_i = 1.0f / std::sqrt(static_cast<float>(s.intermediate_size));
  const float norm_mean = gemma ? 0.0f : 1.0f;  // Gemma's norms scale by (1 + w)
  const std::int64_t q = s.num_heads * head_dim, kv = s.num_kv_heads * head_dim;
  add("model.embed_tokens.weight", {s.vocab_size, h}, 0.0f, 1.0f);
  for (std::int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {h}, norm_mean, 0.1f);
    if (phi3) {
      add(p + "self_attn.qkv_proj.weight", {q + 2 * kv, h}, 0.0f, in_h);
    } else {
      add(p + "self_attn.q_proj.weight", {q, h}, 0.0f, in_h);
      add(p + "self_attn.k_proj.weight", {kv, h}, 0.0f, in_h);
      add(p + "self_attn.v_proj.weight", {kv, h}, 0.0f, in_h);
    }
    add(p + "self_attn.o_proj.weight", {h, q}, 0.0f, in_h);
    if (qwen3 || moe || gemma) {
      add(p + "self_attn.q_norm.weight", {head_dim}, norm_mean, 0.1f);
      add(p + "self_attn.k_norm.weight", {head_dim}, norm_mean, 0.1f);
    }
    add(p + "post_attention_layernorm.weight", {h}, norm_mean, 0.1f);
    if (gemma) {
      add(p + "pre_feedforward_layernorm.weight", {h}, norm_mean, 0.1f);
      add(p + "post_feedforward_layernorm.weight", {h}, norm_mean, 0.1f);
    }
    if (moe) {  // the router, then each expert's gated MLP, named as the published checkpoints
      const std::int64_t width = s.moe_intermediate_size;
      const float in_e = 1.0f / std::sqrt(static_cast<float>(width));
      add(p + "mlp.gate.weight", {s.num_experts, h}, 0.0f, in_h);
      for (std::int64_t e = 0; e < s.num_experts; ++e) {
        const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
        add(x + "gate_proj.weight", {width, h}, 0.0f, in_h);
        add(x + "up_proj.weight", {width, h}, 0.0f, in_h);
        add(x + "down_proj.weight", {h, width}, 0.0f, in_e);
      }
    } else if (phi3) {
      add(p + "mlp.gate_up_proj.weight", {2 * s.intermediate_size, h}, 0.0f, in_h);
    } else {
      add(p + "mlp.gate_proj.weight", {s.intermediate_size, h}, 0.0f, in_h);
      add(p + "mlp.up_proj.weight", {s.intermediate_size, h}, 0.0f, in_h);
    }
    if (!moe) add(p + "mlp.down_proj.weight", {h, s.intermediate_size}, 0.0f, in_i);
  }
  add("model.norm.weight", {h}, norm_mean, 0.1f);
  if (!s.tie_word_embeddings) add("lm_head.weight", {s.vocab_size, h}, 0.0f, in_h);

  std::mt19937 rng(s.seed);
  write_safetensors_streamed(dir / "model.safetensors", specs, [&](std::size_t t, std::vector<std::byte>& data) {
    std::int64_t n = 1;
    for (auto d : specs[t].shape) n *= d;
    std::normal_distribution<float> normal(plans[t].mean, plans[t].stddev);
    data.reserve(static_cast<std::size_t>(n) * dtype_size(s.dtype));
    for (std::int64_t i = 0; i < n; ++i) append_encoded(normal(rng), s.dtype, data);
  });
}

// The benchmarks' random model of the 110M shape (the default RandomModelShape) in `dtype`, written
// to the temporary directory on first use and reused afterwards.
inline std::filesystem::path random_110m_folder(DType dtype = DType::F32) {
  const std::string suffix = dtype == DType::F32 ? "" : "-" + std::string(dtype_name(dtype));
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("maskgen-bench-random-110M" + suffix);
  RandomModelShape shape;
  shape.dtype = dtype;
  if (!std::filesystem::exists(dir / "model.safetensors")) write_random_model(dir, shape);
  return dir;
}

// A random model of `shape` named `name` in the temporary directory, written on first use.
inline std::filesystem::path random_model_folder(const std::string& name, const RandomModelShape& shape) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("maskgen-bench-random-" + name);
  if (!std::filesystem::exists(dir / "model.safetensors")) write_random_model(dir, shape);
  return dir;
}

// The same for Qwen3-0.6B's shape (bfloat16, 1.2 GB).
inline std::filesystem::path random_qwen3_06b_folder() {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "maskgen-bench-random-qwen3-0.6B";
  if (!std::filesystem::exists(dir / "model.safetensors")) write_random_model(dir, qwen3_06b_shape());
  return dir;
}

}  // namespace maskgen::tools

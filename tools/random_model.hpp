#pragma once
// Writes a Llama-architecture model folder with random weights (fixed seed): config.json and a
// float32 model.safetensors. For benchmarks at realistic sizes; the numbers mean nothing.

#include <maskgen/safetensors.hpp>

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
  std::int64_t vocab_size = 32000;
  std::int64_t hidden_size = 768;
  std::int64_t intermediate_size = 2048;
  std::int64_t num_layers = 12;
  std::int64_t num_heads = 12;
  std::int64_t num_kv_heads = 12;
  std::int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  std::uint32_t seed = 1;
};

// Parameters of a model of this shape (weights only).
inline std::int64_t parameter_count(const RandomModelShape& s) {
  const std::int64_t head_dim = s.hidden_size / s.num_heads;
  const std::int64_t attention = s.hidden_size * head_dim * (2 * s.num_heads + 2 * s.num_kv_heads);
  const std::int64_t mlp = 3 * s.hidden_size * s.intermediate_size;
  const std::int64_t layer = attention + mlp + 2 * s.hidden_size;
  return s.vocab_size * s.hidden_size * (s.tie_word_embeddings ? 1 : 2) + s.num_layers * layer + s.hidden_size;
}

inline void write_random_model(const std::filesystem::path& dir, const RandomModelShape& s) {
  std::filesystem::create_directories(dir);
  nlohmann::json config = {
      {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"vocab_size", s.vocab_size},
      {"hidden_size", s.hidden_size}, {"intermediate_size", s.intermediate_size},
      {"num_hidden_layers", s.num_layers}, {"num_attention_heads", s.num_heads},
      {"num_key_value_heads", s.num_kv_heads}, {"max_position_embeddings", s.max_position_embeddings},
      {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", s.tie_word_embeddings}, {"hidden_act", "silu"},
      {"bos_token_id", 1}, {"eos_token_id", 2},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}};
  std::ofstream(dir / "config.json") << config.dump(2) << "\n";

  std::mt19937 rng(s.seed);
  std::vector<std::vector<float>> storage;  // keeps the data alive until written
  std::vector<TensorData> tensors;
  auto add = [&](std::string name, std::vector<std::int64_t> shape, float mean, float stddev) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    std::normal_distribution<float> normal(mean, stddev);
    auto& data = storage.emplace_back(static_cast<std::size_t>(n));
    for (auto& x : data) x = normal(rng);
    tensors.push_back({std::move(name), DType::F32, std::move(shape), std::as_bytes(std::span<const float>(data))});
  };
  const std::int64_t head_dim = s.hidden_size / s.num_heads, h = s.hidden_size;
  const float in_h = 1.0f / std::sqrt(static_cast<float>(h)), in_i = 1.0f / std::sqrt(static_cast<float>(s.intermediate_size));
  add("model.embed_tokens.weight", {s.vocab_size, h}, 0.0f, 1.0f);
  for (std::int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {h}, 1.0f, 0.1f);
    add(p + "self_attn.q_proj.weight", {s.num_heads * head_dim, h}, 0.0f, in_h);
    add(p + "self_attn.k_proj.weight", {s.num_kv_heads * head_dim, h}, 0.0f, in_h);
    add(p + "self_attn.v_proj.weight", {s.num_kv_heads * head_dim, h}, 0.0f, in_h);
    add(p + "self_attn.o_proj.weight", {h, s.num_heads * head_dim}, 0.0f, in_h);
    add(p + "post_attention_layernorm.weight", {h}, 1.0f, 0.1f);
    add(p + "mlp.gate_proj.weight", {s.intermediate_size, h}, 0.0f, in_h);
    add(p + "mlp.up_proj.weight", {s.intermediate_size, h}, 0.0f, in_h);
    add(p + "mlp.down_proj.weight", {h, s.intermediate_size}, 0.0f, in_i);
  }
  add("model.norm.weight", {h}, 1.0f, 0.1f);
  if (!s.tie_word_embeddings) add("lm_head.weight", {s.vocab_size, h}, 0.0f, in_h);
  write_safetensors(dir / "model.safetensors", tensors);
}

// The benchmarks' random model of the 110M shape (the default RandomModelShape), written to the
// temporary directory on first use and reused afterwards.
inline std::filesystem::path random_110m_folder() {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "maskgen-bench-random-110M";
  if (!std::filesystem::exists(dir / "model.safetensors")) write_random_model(dir, {});
  return dir;
}

}  // namespace maskgen::tools

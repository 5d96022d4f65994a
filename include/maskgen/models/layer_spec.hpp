#pragma once
// LayerSpec: what one decoder layer does, as a family's config decides it. The decoder
// (models/decoder.hpp) is one skeleton; the spec says which of its options a layer takes.

#include <cstdint>
#include <optional>

#include "../ops/activation.hpp"

namespace maskgen {

// Normalization of queries and keys before RoPE.
enum class QkNorm {
  None,
  PerHead,     // RMSNorm of each head's vector, one [head_dim] weight shared by the heads (Qwen3, Gemma 3)
  Projection,  // RMSNorm of the whole projection, one [heads * head_dim] weight (OLMo 2)
};

// Where a block (attention, MLP) is normalized, around `x += block(...)`.
enum class NormPlacement {
  Before,         // x += block(norm(x))                   Llama and most families
  BeforeAndAfter, // x += norm_out(block(norm(x)))         Gemma 2 and 3 (four norms a layer)
  After,          // x += norm_out(block(x))               OLMo 2
};

struct LayerSpec {
  bool rope = true;                       // rotary embeddings on queries and keys (false: a NoPE layer)
  bool local_rope = false;                // the local RoPE (ModelConfig::local_rope: Gemma 3's sliding layers)
  std::optional<std::int64_t> window{};   // keys a query sees at most (itself included); unset: all
  QkNorm qk_norm = QkNorm::None;
  bool qkv_bias = false;                  // the query, key and value projections have biases
  bool o_bias = false;                    // the output projection has a bias
  NormPlacement norms = NormPlacement::Before;
  double attention_scale = 0.0;           // scores are q · k times this; 0: 1 / sqrt(head_dim)
  std::optional<double> attention_softcap{};  // scores become c · tanh(score / c) (Gemma 2)
  ops::Activation activation = ops::Activation::Silu;  // of the gated MLP
  double residual_scale = 1.0;            // x += block(...) * residual_scale (Granite's residual_multiplier)
  bool sparse_mlp = false;                // the MLP is the mixture of experts (ModelConfig::moe)
  bool attention_sinks = false;           // each head's learned logit joins its softmax's denominator (gpt-oss)
};

}  // namespace maskgen

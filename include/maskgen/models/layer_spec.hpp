#pragma once
// LayerSpec: what one decoder layer does, as a family's config decides it. The decoder
// (models/decoder.hpp) is one skeleton; the spec says which of its options a layer takes.

#include <cstdint>
#include <optional>

namespace maskgen {

// Normalization of queries and keys before RoPE.
enum class QkNorm {
  None,
  PerHead,  // RMSNorm of each head's vector, one [head_dim] weight shared by the heads (Qwen3)
};

struct LayerSpec {
  bool rope = true;                       // rotary embeddings on queries and keys (false: a NoPE layer)
  std::optional<std::int64_t> window{};   // keys a query sees at most (itself included); unset: all
  QkNorm qk_norm = QkNorm::None;
  bool qkv_bias = false;                  // the query, key and value projections have biases
  bool o_bias = false;                    // the output projection has a bias
};

}  // namespace maskgen

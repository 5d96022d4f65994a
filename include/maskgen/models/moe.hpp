#pragma once
// What the mixture-of-experts families share: reading the experts' sizes from config.json and
// marking the sparse layers (ModelConfig::moe, ModelConfig::sparse_layers).

#include <cstdint>

#include "family.hpp"

namespace maskgen::families {

// The config.json keys a family names its experts' sizes by.
struct MoeKeys {
  const char* experts;                   // "num_experts" or "num_local_experts"
  std::int64_t default_experts;          // the config class's default where config.json leaves it out
  std::int64_t default_per_token;        // num_experts_per_tok's default
  const char* intermediate;              // "moe_intermediate_size" or "intermediate_size"
};

// Reads the experts (num_experts_per_tok <= experts) into c.moe; every layer is sparse until the
// family says otherwise. Returns false, leaving the model dense, where the config has no experts
// (Qwen3-MoE's num_experts 0).
inline bool read_moe(const detail::ConfigReader& r, ModelConfig& c, const MoeKeys& keys, bool normalize_top_k) {
  using detail::cat;
  const std::int64_t experts = r.has(keys.experts) ? r.integer(keys.experts) : keys.default_experts;
  if (experts < 0 || experts > ConfigLimits::experts) {
    r.fail(keys.experts, cat("is ", experts, "; maskgen accepts 0 to ", ConfigLimits::experts));
  }
  if (experts == 0) return false;
  MoeConfig m;
  m.experts = experts;
  m.experts_per_token = r.has("num_experts_per_tok") ? r.integer("num_experts_per_tok") : keys.default_per_token;
  if (m.experts_per_token < 1 || m.experts_per_token > experts) {
    r.fail("num_experts_per_tok", cat("is ", m.experts_per_token, "; it must be in [1, ", experts, "] (", keys.experts, ")"));
  }
  m.expert_intermediate_size = r.positive_int(keys.intermediate, ConfigLimits::intermediate_size);
  m.normalize_top_k = normalize_top_k;
  c.moe = m;
  c.sparse_layers.assign(static_cast<std::size_t>(c.num_layers), 1);
  return true;
}

}  // namespace maskgen::families

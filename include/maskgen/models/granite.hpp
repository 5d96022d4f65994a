#pragma once
// Granite (3.x): the Llama block with four multipliers: embeddings times embedding_multiplier,
// each block's output times residual_multiplier before it joins the residual, scores scaled by
// attention_multiplier (instead of 1 / sqrt(head_dim)), and logits divided by logits_scaling.

#include <cmath>

#include "family.hpp"

namespace maskgen::families {

inline void configure_granite(const detail::ConfigReader& r, ModelConfig& c, bool) {
  using detail::cat;
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  auto positive = [&](const char* key) {
    const double v = r.number(key, 1.0);
    if (!(v > 0.0) || !std::isfinite(v)) r.fail(key, cat("must be a finite number > 0, got ", v));
    return v;
  };
  c.embedding_scale = positive("embedding_multiplier");
  c.residual_scale = positive("residual_multiplier");
  c.attention_scale = positive("attention_multiplier");
  c.logits_divisor = positive("logits_scaling");
}

inline constexpr Family granite{"granite", Architecture::Other, configure_granite};

}  // namespace maskgen::families

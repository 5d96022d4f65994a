#pragma once
// SmolLM3: a Llama block whose every no_rope_layer_interval-th layer skips RoPE (a NoPE layer:
// its queries and keys are not rotated). config.json lists the layers in "no_rope_layers" (1: the
// layer applies RoPE); without it, layer l applies RoPE unless (l + 1) is a multiple of
// "no_rope_layer_interval" (default 4). With "use_sliding_window", only NoPE layers slide.

#include "family.hpp"

namespace maskgen::families {

inline void configure_smollm3(const detail::ConfigReader& r, ModelConfig& c, bool has_layer_types) {
  using detail::cat;
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  if (r.has("no_rope_layers")) {
    const auto& list = r.raw("no_rope_layers");
    if (!list.is_array() || static_cast<std::int64_t>(list.size()) != c.num_layers) {
      r.fail("no_rope_layers", cat("must be a list of num_hidden_layers (", c.num_layers, ") values 0 or 1"));
    }
    for (std::size_t l = 0; l < list.size(); ++l) {
      if (list[l] != 0 && list[l] != 1) r.fail("no_rope_layers", cat("holds ", list[l].dump(), "; each value must be 0 or 1"));
      c.rope_layers[l] = list[l] == 1;
    }
  } else {
    const std::int64_t interval = r.has("no_rope_layer_interval") ? r.positive_int("no_rope_layer_interval") : 4;
    for (std::int64_t l = 0; l < c.num_layers; ++l) c.rope_layers[static_cast<std::size_t>(l)] = (l + 1) % interval != 0;
  }
  if (!has_layer_types && r.has("sliding_window") && r.boolean("use_sliding_window", false)) {
    for (std::size_t l = 0; l < c.rope_layers.size(); ++l) c.sliding_layers[l] = !c.rope_layers[l];
  }
}

inline constexpr Family smollm3{"smollm3", Architecture::Other, configure_smollm3};

}  // namespace maskgen::families

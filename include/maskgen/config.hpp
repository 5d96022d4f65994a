#pragma once
// ModelConfig::from_json and load: the fields every family shares (sizes, norms' epsilon, RoPE,
// special ids, "layer_types"), then the family's own rules, found by model_type in the registry.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "detail/json_file.hpp"
#include "error.hpp"
#include "model_config.hpp"
#include "models/registry.hpp"
#include "weights/quantization_config.hpp"

namespace maskgen {

namespace detail {

// Special ids that config.json or generation_config.json states must lie in the vocabulary.
inline void check_config_ids(const ConfigReader& r, const char* key, const std::vector<std::int32_t>& ids,
                             std::int64_t vocab_size) {
  for (const auto id : ids) {
    if (id >= vocab_size) r.fail(key, cat(id, " is outside the vocabulary [0, ", vocab_size, ")"));
  }
}

}  // namespace detail

namespace detail {

// The text model's config of a family that nests it (Gemma 3's "text_config"), with the top
// level's special ids and tie_word_embeddings where it has none.
inline nlohmann::json text_model_config(const nlohmann::json& j, std::string_view key, const std::string& source) {
  const std::string k(key);
  if (!j.contains(k) || !j[k].is_object()) {
    throw format_error(cat(source, ": \"", k, "\" must hold the text model's config (an object)"));
  }
  nlohmann::json text = j[k];
  for (const char* inherited : {"bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings"}) {
    if ((!text.contains(inherited) || text[inherited].is_null()) && j.contains(inherited)) text[inherited] = j[inherited];
  }
  return text;
}

}  // namespace detail

inline ModelConfig ModelConfig::from_json(const nlohmann::json& top, const std::string& source) {
  using detail::cat;
  if (!top.is_object()) throw format_error(cat(source, ": must hold a JSON object"));
  ModelConfig c;
  c.model_type = detail::ConfigReader(top, source).string("model_type", "");
  const Family* family = find_family(c.model_type);
  if (!family) {
    detail::ConfigReader(top, source).fail("model_type", cat("is \"", c.model_type, "\"; maskgen supports ", supported_model_types()));
  }
  c.architecture = family->architecture;
  c.quantization = weights::read_quantization_config(top, source);  // before any weight is touched
  nlohmann::json nested;
  if (!family->text_config.empty()) {
    nested = detail::text_model_config(top, family->text_config, source);
    const detail::ConfigReader t(top, source);
    const auto image = t.ids("image_token_index");  // Gemma3Config's default: 262144
    c.image_token_id = image.empty() ? 262144 : image.front();
  }
  const nlohmann::json& j = family->text_config.empty() ? top : nested;
  const std::string text_source = family->text_config.empty() ? source : source + " (" + std::string(family->text_config) + ")";
  const detail::ConfigReader r(j, text_source);
  using L = ConfigLimits;
  c.vocab_size = r.positive_int("vocab_size", L::vocab_size);
  c.hidden_size = r.positive_int("hidden_size", L::hidden_size);
  c.intermediate_size = r.positive_int("intermediate_size", L::intermediate_size);
  c.num_layers = r.positive_int("num_hidden_layers", L::num_layers);
  c.num_heads = r.positive_int("num_attention_heads", L::num_heads);
  c.num_kv_heads = r.has("num_key_value_heads") ? r.positive_int("num_key_value_heads", L::num_heads) : c.num_heads;
  if (c.num_heads % c.num_kv_heads != 0) {
    r.fail("num_key_value_heads", cat("(", c.num_kv_heads, ") must divide num_attention_heads (", c.num_heads, ")"));
  }
  if (r.has("head_dim")) {
    c.head_dim = r.positive_int("head_dim", L::head_dim);
  } else if (family->defaults.head_dim > 0) {
    c.head_dim = family->defaults.head_dim;
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      r.fail("hidden_size", cat("(", c.hidden_size, ") must be a multiple of num_attention_heads when head_dim is absent"));
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0) r.fail("head_dim", cat("must be even for rotary embeddings, got ", c.head_dim));
  c.rms_norm_eps = r.number("rms_norm_eps", family->defaults.rms_norm_eps);
  if (!(c.rms_norm_eps > 0.0)) r.fail("rms_norm_eps", "must be > 0");
  c.max_position_embeddings = r.positive_int("max_position_embeddings", L::max_position_embeddings);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", family->defaults.tie_word_embeddings);
  const std::string act_key(family->defaults.activation_key);
  if (const auto act = r.string(act_key.c_str(), std::string(family->defaults.activation)); act == "silu") {
    c.activation = ops::Activation::Silu;
  } else if (act == "gelu_pytorch_tanh") {
    c.activation = ops::Activation::GeluTanh;
  } else {
    r.fail(act_key.c_str(), cat("is \"", act, "\"; maskgen implements the gated MLP with \"silu\" and \"gelu_pytorch_tanh\""));
  }
  if (r.boolean("mlp_bias", false)) r.fail("mlp_bias", "true is not supported");
  // Which layers slide: "layer_types" when present (transformers 5 writes it for every family),
  // else the family's own rule.
  c.sliding_layers.assign(static_cast<std::size_t>(c.num_layers), 0);
  c.rope_layers.assign(static_cast<std::size_t>(c.num_layers), 1);
  const bool has_layer_types = r.has("layer_types");
  if (has_layer_types) {
    const auto& types = j["layer_types"];
    if (!types.is_array() || static_cast<std::int64_t>(types.size()) != c.num_layers) {
      r.fail("layer_types", cat("must be a list of num_hidden_layers (", c.num_layers, ") names"));
    }
    for (std::size_t l = 0; l < types.size(); ++l) {
      if (types[l] != "full_attention" && types[l] != "sliding_attention") {
        r.fail("layer_types", cat("holds ", types[l].dump(), "; maskgen supports full_attention and sliding_attention"));
      }
      c.sliding_layers[l] = types[l] == "sliding_attention";
    }
  }
  std::tie(c.rope, c.local_rope) = detail::parse_rope(j, text_source, family->rope, c.head_dim);
  family->configure(r, c, has_layer_types);  // biases, norms, the family's window and RoPE rules
  if (std::find(c.sliding_layers.begin(), c.sliding_layers.end(), 1) != c.sliding_layers.end()) {
    if (r.has("sliding_window")) {
      c.sliding_window = r.positive_int("sliding_window");
    } else if (!c.sliding_window) {  // a family's default (Gemma's 4096) may stand in
      r.fail("sliding_window", "is missing but layers use sliding-window attention");
    }
  }
  if (const auto bos = r.ids("bos_token_id"); !bos.empty()) c.bos_token_id = bos.front();
  c.eos_token_ids = r.ids("eos_token_id");
  if (const auto pad = r.ids("pad_token_id"); !pad.empty()) c.pad_token_id = pad.front();
  detail::check_config_ids(r, "eos_token_id", c.eos_token_ids, c.vocab_size);
  return c;
}

// Reads dir/config.json. When dir/generation_config.json exists, its eos_token_id and
// pad_token_id win over config.json's, as they do in transformers' generate().
inline ModelConfig ModelConfig::load(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  const nlohmann::json top = detail::read_json_file(path, "model config");
  ModelConfig c = from_json(top, path.string());
  // GPTQ checkpoints may keep their quantization in quantize_config.json instead.
  const auto beside = dir / "quantize_config.json";
  if (!c.quantization.packed() && std::filesystem::exists(beside)) {
    c.quantization = weights::read_quantization_config(top, path.string(),
                                                       detail::read_json_file(beside, "quantize config"));
  }
  const auto generation = dir / "generation_config.json";
  if (std::filesystem::exists(generation)) {
    const nlohmann::json g = detail::read_json_file(generation, "generation config");
    const detail::ConfigReader r(g, generation.string());
    if (r.has("eos_token_id")) {
      c.eos_token_ids = r.ids("eos_token_id");
      detail::check_config_ids(r, "eos_token_id", c.eos_token_ids, c.vocab_size);
    }
    if (const auto pad = r.ids("pad_token_id"); !pad.empty()) {
      detail::check_config_ids(r, "pad_token_id", {pad.front()}, c.vocab_size);
      c.pad_token_id = pad.front();
    }
  }
  return c;
}

}  // namespace maskgen

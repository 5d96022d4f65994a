#pragma once
// ModelConfig: what maskgen reads from a Hugging Face config.json, for the llama, mistral, qwen2 and
// qwen3 model types. Anything that would change the numbers and that maskgen does not implement is
// an error here, never a silent approximation.

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "detail/json_file.hpp"
#include "error.hpp"
#include "weights/quantization_config.hpp"

namespace maskgen {

enum class Architecture { Llama, Mistral, Qwen2, Qwen3 };

enum class RopeType { Default, Linear, Llama3 };

struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;                            // base of the frequencies
  double factor = 1.0;                               // linear and llama3 scaling factor
  double low_freq_factor = 1.0;                      // llama3
  double high_freq_factor = 4.0;                     // llama3
  std::int64_t original_max_position_embeddings = 8192;  // llama3

  // The rotation frequency of each pair of a head's dimensions, in double.  // [head_dim / 2]
  std::vector<double> inverse_frequencies(std::int64_t head_dim) const {
    const auto half = static_cast<std::size_t>(head_dim / 2);
    std::vector<double> inv(half);
    for (std::size_t i = 0; i < half; ++i) {
      inv[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
    }
    if (type == RopeType::Linear) {
      for (auto& f : inv) f /= factor;
    } else if (type == RopeType::Llama3) {
      // Long wavelengths are slowed down by `factor`, short ones kept, and the band between is
      // interpolated smoothly (Llama 3.1's scheme).
      const double old_context = static_cast<double>(original_max_position_embeddings);
      const double low_freq_wavelen = old_context / low_freq_factor;
      const double high_freq_wavelen = old_context / high_freq_factor;
      for (auto& f : inv) {
        const double wavelen = 2.0 * std::numbers::pi / f;
        if (wavelen > low_freq_wavelen) {
          f /= factor;
        } else if (wavelen >= high_freq_wavelen) {
          const double smooth = (old_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
          f = (1.0 - smooth) * f / factor + smooth * f;
        }
      }
    }
    return inv;
  }
};

// The largest values config.json may state. Each is far above any published model of these
// families (vocabularies of 256k, hidden sizes of 16k, 126 layers, 128k contexts), and each keeps
// what a config sizes directly (per-layer tables, the KV cache's per-row structure, the RoPE table)
// small, so a hostile file is refused before anything is allocated from it. Weights are sized by
// the safetensors header, which must match these numbers and the file's real length.
struct ConfigLimits {
  static constexpr std::int64_t vocab_size = std::int64_t{1} << 22;        // 4,194,304 ids
  static constexpr std::int64_t hidden_size = std::int64_t{1} << 16;       // 65,536
  static constexpr std::int64_t intermediate_size = std::int64_t{1} << 18;  // 262,144
  static constexpr std::int64_t num_layers = 1024;
  static constexpr std::int64_t num_heads = 1024;
  static constexpr std::int64_t head_dim = 4096;
  static constexpr std::int64_t max_position_embeddings = std::int64_t{1} << 24;  // 16,777,216 tokens
};

struct ModelConfig {
  Architecture architecture = Architecture::Llama;
  std::string model_type;                 // as written in config.json
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;          // GQA: divides num_heads; MQA: 1
  std::int64_t head_dim = 0;              // hidden_size / num_heads unless config.json says otherwise
  double rms_norm_eps = 1e-6;
  std::int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;       // no lm_head.weight: the embedding matrix is the output head
  bool qkv_bias = false;                  // q/k/v projections have biases (Qwen2; attention_bias)
  bool o_bias = false;                    // the output projection has a bias (attention_bias)
  bool qk_norm = false;                   // per-head RMSNorm of q and k before RoPE (Qwen3)
  std::optional<std::int64_t> sliding_window{};  // keys a query sees at most, in the layers that slide
  std::vector<char> sliding_layers{};     // [num_layers] 1 where the layer uses sliding_window
  RopeConfig rope{};
  std::optional<std::int32_t> bos_token_id{};
  std::vector<std::int32_t> eos_token_ids{};  // one or several
  std::optional<std::int32_t> pad_token_id{};

  std::int64_t q_dim() const { return num_heads * head_dim; }     // width of the query projection
  std::int64_t kv_dim() const { return num_kv_heads * head_dim; } // width of the key/value projections
  // The window of layer `l`: the most keys a query sees there (itself and those before it), or
  // unset where the layer attends to the whole context.
  std::optional<std::int64_t> layer_window(std::size_t l) const {
    return l < sliding_layers.size() && sliding_layers[l] ? sliding_window : std::nullopt;
  }

  static ModelConfig load(const std::filesystem::path& dir);
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source = "config.json");
};

namespace detail {

// Typed access to config.json fields, with errors that name the file and the field.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  std::int64_t positive_int(const char* key, std::int64_t max = std::numeric_limits<std::int64_t>::max()) const {
    const auto v = integer(key);
    if (v <= 0) fail(key, cat("must be > 0, got ", v));
    if (v > max) fail(key, cat("is ", v, "; maskgen accepts at most ", max, " (ConfigLimits)"));
    return v;
  }
  std::int64_t integer(const char* key) const {
    if (!has(key)) fail(key, "is missing");
    const auto& v = j_[key];
    if (!v.is_number_integer()) fail(key, cat("must be an integer, got ", v.dump()));
    return v.get<std::int64_t>();
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_number()) fail(key, cat("must be a number, got ", j_[key].dump()));
    return j_[key].get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_boolean()) fail(key, cat("must be true or false, got ", j_[key].dump()));
    return j_[key].get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_string()) fail(key, cat("must be a string, got ", j_[key].dump()));
    return j_[key].get<std::string>();
  }
  // An id, or a list of ids (eos_token_id may be either).
  std::vector<std::int32_t> ids(const char* key) const {
    std::vector<std::int32_t> out;
    if (!has(key)) return out;
    const auto& v = j_[key];
    auto one = [&](const nlohmann::json& x) {
      if (!x.is_number_integer() || x.get<std::int64_t>() < 0 || x.get<std::int64_t>() > INT32_MAX) {
        fail(key, cat("must be a non-negative token id or a list of them, got ", v.dump()));
      }
      out.push_back(x.get<std::int32_t>());
    };
    if (v.is_array()) {
      for (const auto& x : v) one(x);
    } else {
      one(v);
    }
    return out;
  }
  const nlohmann::json& raw(const char* key) const { return j_[key]; }

  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw format_error(cat(source_, ": \"", key, "\" ", what));
  }

 private:
  const nlohmann::json& j_;
  std::string source_;
};

// RoPE settings in either spelling: transformers 5's "rope_parameters" object, or transformers
// 4's top-level "rope_theta" plus an optional "rope_scaling" object.
inline RopeConfig parse_rope(const nlohmann::json& j, const std::string& source) {
  RopeConfig rope;
  const ConfigReader top(j, source);
  nlohmann::json params = nlohmann::json::object();
  if (top.has("rope_parameters")) {
    params = j["rope_parameters"];
    if (!params.is_object()) top.fail("rope_parameters", "must be an object");
    if (params.contains("full_attention") || params.contains("sliding_attention")) {
      top.fail("rope_parameters", "holds per-layer-type parameters, which maskgen does not support");
    }
  } else if (top.has("rope_scaling")) {
    params = j["rope_scaling"];
    if (!params.is_object()) top.fail("rope_scaling", "must be an object or null");
  }
  const ConfigReader p(params, source + " (rope)");
  rope.theta = p.number("rope_theta", top.number("rope_theta", 10000.0));
  if (!(rope.theta > 1.0)) p.fail("rope_theta", cat("must be > 1, got ", rope.theta));
  const std::string type = p.string("rope_type", p.string("type", "default"));
  if (type == "default") {
    rope.type = RopeType::Default;
  } else if (type == "linear") {
    rope.type = RopeType::Linear;
  } else if (type == "llama3") {
    rope.type = RopeType::Llama3;
  } else {
    p.fail("rope_type", cat("is \"", type, "\"; maskgen supports \"default\", \"linear\" and \"llama3\""));
  }
  if (rope.type != RopeType::Default) {
    rope.factor = p.number("factor", 0.0);
    if (!(rope.factor > 0.0)) p.fail("factor", cat("must be > 0 for rope type ", type));
  }
  if (rope.type == RopeType::Llama3) {
    rope.low_freq_factor = p.number("low_freq_factor", 1.0);
    rope.high_freq_factor = p.number("high_freq_factor", 4.0);
    rope.original_max_position_embeddings = p.positive_int("original_max_position_embeddings");
    if (!(rope.high_freq_factor > rope.low_freq_factor)) {
      p.fail("high_freq_factor", "must be greater than low_freq_factor");
    }
  }
  if (p.number("partial_rotary_factor", 1.0) != 1.0) {
    p.fail("partial_rotary_factor", "other than 1 is not supported");
  }
  return rope;
}

}  // namespace detail

inline ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& source) {
  using detail::cat;
  if (!j.is_object()) throw format_error(cat(source, ": must hold a JSON object"));
  const detail::ConfigReader r(j, source);
  ModelConfig c;
  c.model_type = r.string("model_type", "");
  if (c.model_type == "llama") {
    c.architecture = Architecture::Llama;
  } else if (c.model_type == "mistral") {
    c.architecture = Architecture::Mistral;
  } else if (c.model_type == "qwen2") {
    c.architecture = Architecture::Qwen2;
  } else if (c.model_type == "qwen3") {
    c.architecture = Architecture::Qwen3;
  } else {
    r.fail("model_type", cat("is \"", c.model_type, "\"; maskgen supports llama, mistral, qwen2 and qwen3"));
  }
  weights::check_quantization_config(j, source);  // tensors are read as stored
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
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      r.fail("hidden_size", cat("(", c.hidden_size, ") must be a multiple of num_attention_heads when head_dim is absent"));
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0) r.fail("head_dim", cat("must be even for rotary embeddings, got ", c.head_dim));
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps > 0.0)) r.fail("rms_norm_eps", "must be > 0");
  c.max_position_embeddings = r.positive_int("max_position_embeddings", L::max_position_embeddings);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  if (const auto act = r.string("hidden_act", "silu"); act != "silu") {
    r.fail("hidden_act", cat("is \"", act, "\"; maskgen implements the SwiGLU MLP with silu"));
  }
  if (r.boolean("mlp_bias", false)) r.fail("mlp_bias", "true is not supported");
  const bool attention_bias = r.boolean("attention_bias", false);
  switch (c.architecture) {
    case Architecture::Llama:
    case Architecture::Mistral:
    case Architecture::Qwen3:
      c.qkv_bias = c.o_bias = attention_bias;
      break;
    case Architecture::Qwen2:  // q/k/v always carry a bias; the output projection never does
      c.qkv_bias = true;
      c.o_bias = false;
      break;
  }
  c.qk_norm = c.architecture == Architecture::Qwen3;
  // Sliding-window attention, per layer as transformers decides it: "layer_types" when present;
  // else every layer of a Mistral with a "sliding_window"; else, for Qwen2/Qwen3 with
  // "use_sliding_window" on, the layers from "max_window_layers" (default 28) up.
  c.sliding_layers.assign(static_cast<std::size_t>(c.num_layers), 0);
  if (r.has("layer_types")) {
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
  } else if (r.has("sliding_window")) {
    if (c.architecture == Architecture::Mistral) {
      std::fill(c.sliding_layers.begin(), c.sliding_layers.end(), 1);
    } else if (r.boolean("use_sliding_window", false)) {
      const std::int64_t from = r.has("max_window_layers") ? r.integer("max_window_layers") : 28;
      for (std::int64_t l = std::max<std::int64_t>(0, from); l < c.num_layers; ++l) c.sliding_layers[static_cast<std::size_t>(l)] = 1;
    }
  }
  if (std::find(c.sliding_layers.begin(), c.sliding_layers.end(), 1) != c.sliding_layers.end()) {
    if (!r.has("sliding_window")) r.fail("sliding_window", "is missing but layers use sliding-window attention");
    c.sliding_window = r.positive_int("sliding_window");
  }
  c.rope = detail::parse_rope(j, source);
  if (const auto bos = r.ids("bos_token_id"); !bos.empty()) c.bos_token_id = bos.front();
  c.eos_token_ids = r.ids("eos_token_id");
  if (const auto pad = r.ids("pad_token_id"); !pad.empty()) c.pad_token_id = pad.front();
  for (const auto id : c.eos_token_ids) {
    if (id >= c.vocab_size) r.fail("eos_token_id", cat(id, " is outside the vocabulary [0, ", c.vocab_size, ")"));
  }
  return c;
}

// Reads dir/config.json. When dir/generation_config.json exists, its eos_token_id and
// pad_token_id win over config.json's, as they do in transformers' generate().
inline ModelConfig ModelConfig::load(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  ModelConfig c = from_json(detail::read_json_file(path, "model config"), path.string());
  const auto generation = dir / "generation_config.json";
  if (std::filesystem::exists(generation)) {
    const nlohmann::json g = detail::read_json_file(generation, "generation config");
    const detail::ConfigReader r(g, generation.string());
    if (r.has("eos_token_id")) {
      c.eos_token_ids = r.ids("eos_token_id");
      for (const auto id : c.eos_token_ids) {
        if (id >= c.vocab_size) r.fail("eos_token_id", detail::cat(id, " is outside the vocabulary [0, ", c.vocab_size, ")"));
      }
    }
    if (const auto pad = r.ids("pad_token_id"); !pad.empty()) {
      if (pad.front() >= c.vocab_size) {
        r.fail("pad_token_id", detail::cat(pad.front(), " is outside the vocabulary [0, ", c.vocab_size, ")"));
      }
      c.pad_token_id = pad.front();
    }
  }
  return c;
}

}  // namespace maskgen

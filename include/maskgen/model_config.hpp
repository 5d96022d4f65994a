#pragma once
// ModelConfig: what maskgen reads from a Hugging Face config.json, and the typed reader of its
// fields. The fields every family shares are read in config.hpp; what a family adds (its biases,
// norms, which layers slide or skip RoPE) its own header under models/ decides. Anything that
// would change the numbers and that maskgen does not implement is an error, never a silent
// approximation. Include config.hpp, which defines ModelConfig::from_json and load.

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
#include "models/layer_spec.hpp"

namespace maskgen {

// The first four families by name; a family registered later (models/registry.hpp) is Other and
// named by ModelConfig::model_type.
enum class Architecture { Llama, Mistral, Qwen2, Qwen3, Other };

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
  std::vector<char> rope_layers{};        // [num_layers] 1 where the layer applies RoPE (all but SmolLM3's NoPE layers)
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
  // What decoder layer `l` does (models/decoder.hpp).
  LayerSpec layer(std::size_t l) const {
    LayerSpec s;
    s.rope = l >= rope_layers.size() || rope_layers[l];
    s.window = layer_window(l);
    s.qk_norm = qk_norm ? QkNorm::PerHead : QkNorm::None;
    s.qkv_bias = qkv_bias;
    s.o_bias = o_bias;
    return s;
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


}  // namespace maskgen

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
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "detail/json_file.hpp"
#include "error.hpp"
#include "models/layer_spec.hpp"
#include "weights/quantization_config.hpp"

namespace maskgen {

// The first four families by name; a family registered later (models/registry.hpp) is Other and
// named by ModelConfig::model_type.
enum class Architecture { Llama, Mistral, Qwen2, Qwen3, Other };

enum class RopeType { Default, Linear, Llama3, LongRope, Yarn };

struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;                            // base of the frequencies
  double factor = 1.0;                               // linear, llama3 and longrope scaling factor
  double low_freq_factor = 1.0;                      // llama3
  double high_freq_factor = 4.0;                     // llama3
  std::int64_t original_max_position_embeddings = 8192;  // llama3, longrope, yarn
  double partial_rotary_factor = 1.0;                // the share of each head that rotates (Phi-3: 0.75)
  std::vector<double> short_factor{}, long_factor{}; // longrope: [rotary_dim / 2] divisors of the frequencies
  double attention_factor = 1.0;                     // longrope, yarn: cos and sin are scaled by it
  double beta_fast = 32.0, beta_slow = 1.0;          // yarn: the rotation counts bounding the ramp
  bool truncate = true;                              // yarn: the ramp's bounds rounded outwards to integers

  // The elements of a head that rotate: int(head_dim * partial_rotary_factor), as transformers.
  std::int64_t rotary_dim(std::int64_t head_dim) const {
    return static_cast<std::int64_t>(static_cast<double>(head_dim) * partial_rotary_factor);
  }

  // A LongRoPE forward uses long_factor for a row whose last position in it is at or past
  // original_max_position_embeddings (transformers decides per call: alone, per row).
  bool uses_long_factor(std::int64_t last_position) const {
    return type == RopeType::LongRope && last_position + 1 > original_max_position_embeddings;
  }

  // Whether a row holding `cached` tokens that grows to `total` must be fed whole again: its keys
  // and values were computed with the short factors and its context now needs the long ones.
  // transformers' Phi-3 generate() recomputes the whole context at that step (its cache is
  // dropped), and so do maskgen's generate(), beam search and engine.
  bool refeeds(std::size_t cached, std::size_t total) const {
    const auto original = static_cast<std::size_t>(original_max_position_embeddings);
    return type == RopeType::LongRope && cached <= original && total > original;
  }

  // The rotation frequency of each pair of a head's rotating dimensions, in double; LongRoPE's
  // with long_factor when `long_context`.  // [rotary_dim / 2]
  std::vector<double> inverse_frequencies(std::int64_t head_dim, bool long_context = false) const {
    const std::int64_t dim = rotary_dim(head_dim);
    const auto half = static_cast<std::size_t>(dim / 2);
    std::vector<double> inv(half);
    for (std::size_t i = 0; i < half; ++i) {
      inv[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim));
    }
    if (type == RopeType::LongRope) {
      const std::vector<double>& divisors = long_context ? long_factor : short_factor;
      for (std::size_t i = 0; i < half; ++i) inv[i] = 1.0 / (divisors[i] * std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim)));
    } else if (type == RopeType::Yarn) {
      // YaRN (transformers' _compute_yarn_parameters): dimensions that turn fewer than beta_slow
      // times over the original context are interpolated (frequency / factor), those that turn
      // more than beta_fast times kept, and a linear ramp over the pairs between blends the two.
      const double original = static_cast<double>(original_max_position_embeddings);
      auto correction = [&](double rotations) {
        return static_cast<double>(dim) * std::log(original / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(theta));
      };
      double low = correction(beta_fast), high = correction(beta_slow);
      if (truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim - 1));
      if (low == high) high += 0.001;
      for (std::size_t i = 0; i < half; ++i) {
        const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
        const double kept = 1.0 - ramp;  // the share of the original frequency
        inv[i] = inv[i] / factor * (1.0 - kept) + inv[i] * kept;
      }
    } else if (type == RopeType::Linear) {
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
  static constexpr std::int64_t experts = 4096;  // of a mixture-of-experts layer (published: up to 512)
};

// The mixture-of-experts MLP of a model's sparse layers: a router picks experts_per_token of the
// experts for each token, and the token's MLP output is their outputs' weighted sum.
struct MoeConfig {
  std::int64_t experts = 0;                   // num_experts (Mixtral, gpt-oss: num_local_experts)
  std::int64_t experts_per_token = 0;         // num_experts_per_tok: k, <= experts
  std::int64_t expert_intermediate_size = 0;  // each expert's gated MLP width (Qwen3-MoE: moe_intermediate_size)
  bool normalize_top_k = false;               // the k weights are divided by their sum (norm_topk_prob;
                                              // Mixtral and gpt-oss always)
  bool router_bias = false;                   // the router has a bias (gpt-oss)
  bool expert_bias = false;                   // the experts' projections have biases (gpt-oss)
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
  weights::CheckpointQuantization quantization{};  // how the checkpoint packed its linear layers (none: as stored)
  bool qkv_bias = false;                  // q/k/v projections have biases (Qwen2; attention_bias)
  bool o_bias = false;                    // the output projection has a bias (attention_bias)
  QkNorm qk_norm = QkNorm::None;          // RMSNorm of q and k before RoPE (Qwen3, Gemma 3: per head; OLMo 2: whole)
  NormPlacement norms = NormPlacement::Before;  // around each block (Gemma: before and after; OLMo 2: after)
  bool norm_plus_one = false;             // RMSNorm scales by (1 + weight), every norm of the model (Gemma)
  ops::Activation activation = ops::Activation::Silu;  // of the gated MLP ("hidden_act", Gemma's "hidden_activation")
  double embedding_scale = 1.0;           // embeddings times this (Gemma: sqrt(hidden_size); Granite: embedding_multiplier)
  double attention_scale = 0.0;           // scores' scale; 0: 1 / sqrt(head_dim) (Gemma: query_pre_attn_scalar^-1/2; Granite)
  std::optional<double> attention_softcap{};  // attn_logit_softcapping (Gemma 2)
  std::optional<double> final_softcap{};  // final_logit_softcapping: logits become c · tanh(logits / c)
  double residual_scale = 1.0;            // Granite's residual_multiplier
  double logits_divisor = 1.0;            // logits are divided by it (Granite's logits_scaling)
  std::optional<std::int64_t> sliding_window{};  // keys a query sees at most, in the layers that slide
  std::vector<char> sliding_layers{};     // [num_layers] 1 where the layer uses sliding_window
  std::vector<char> rope_layers{};        // [num_layers] 1 where the layer applies RoPE (all but SmolLM3's NoPE layers)
  RopeConfig rope{};
  std::optional<RopeConfig> local_rope{}; // the RoPE of sliding layers where it differs (Gemma 3's local layers)
  std::optional<MoeConfig> moe{};         // the experts of the sparse layers, where the model has any
  std::vector<char> sparse_layers{};      // [num_layers] 1 where the layer's MLP is the mixture of experts
  bool attention_sinks = false;           // each head's learned logit joins its softmax (gpt-oss)
  std::optional<std::int32_t> image_token_id{};  // Gemma 3 multimodal: the image placeholder, refused in prompts
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
    s.local_rope = local_rope.has_value() && l < sliding_layers.size() && sliding_layers[l];
    s.qk_norm = qk_norm;
    s.qkv_bias = qkv_bias;
    s.o_bias = o_bias;
    s.norms = norms;
    s.attention_scale = attention_scale;
    s.attention_softcap = attention_softcap;
    s.activation = activation;
    s.residual_scale = residual_scale;
    s.sparse_mlp = l < sparse_layers.size() && sparse_layers[l];
    s.attention_sinks = attention_sinks;
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
  const nlohmann::json& json() const { return j_; }

  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw format_error(cat(source_, ": \"", key, "\" ", what));
  }

 private:
  const nlohmann::json& j_;
  std::string source_;
};

}  // namespace detail

// How a family reads RoPE beyond the shared spelling (its Family::rope).
struct RopeRules {
  double default_theta = 10000.0;             // rope_theta when config.json has none
  std::optional<double> local_theta{};        // set: sliding layers have their own RoPE (Gemma 3), whose
                                              // rope_theta defaults to this ("rope_local_base_freq" in
                                              // transformers 4's spelling)
  bool legacy_longrope_names = false;         // rope type "su" and "yarn" mean "longrope" (Phi-3)
};

namespace detail {

// One RoPE parameter object (transformers 5's "rope_parameters", or 4's "rope_scaling" with the
// top-level fields). `theta`: rope_theta where the object has none.
//   head_dim: the heads' size (partial rotation and LongRoPE's factors are checked against it).
inline RopeConfig parse_rope_object(const nlohmann::json& params, const ConfigReader& top, const std::string& source,
                                    double theta, const RopeRules& rules, std::int64_t head_dim) {
  RopeConfig rope;
  const ConfigReader p(params, source);
  rope.theta = p.number("rope_theta", theta);
  if (!(rope.theta > 1.0)) p.fail("rope_theta", cat("must be > 1, got ", rope.theta));
  std::string type = p.string("rope_type", p.string("type", "default"));
  if (rules.legacy_longrope_names && (type == "su" || type == "yarn")) type = "longrope";
  if (type == "default") {
    rope.type = RopeType::Default;
  } else if (type == "linear") {
    rope.type = RopeType::Linear;
  } else if (type == "llama3") {
    rope.type = RopeType::Llama3;
  } else if (type == "longrope") {
    rope.type = RopeType::LongRope;
  } else if (type == "yarn") {
    rope.type = RopeType::Yarn;
  } else {
    p.fail("rope_type",
           cat("is \"", type, "\"; maskgen supports \"default\", \"linear\", \"llama3\", \"longrope\" and \"yarn\""));
  }
  rope.partial_rotary_factor = p.number("partial_rotary_factor", top.number("partial_rotary_factor", 1.0));
  if (!(rope.partial_rotary_factor > 0.0 && rope.partial_rotary_factor <= 1.0)) {
    p.fail("partial_rotary_factor", cat("must be in (0, 1], got ", rope.partial_rotary_factor));
  }
  const std::int64_t dim = rope.rotary_dim(head_dim);
  if (dim < 2 || dim % 2 != 0) {
    p.fail("partial_rotary_factor", cat("rotates ", dim, " of head_dim ", head_dim, " elements; that must be even and >= 2"));
  }
  if (rope.type == RopeType::Linear || rope.type == RopeType::Llama3) {
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
  if (rope.type == RopeType::LongRope) {
    // original_max_position_embeddings: the top-level field wins (Phi-3 keeps it there), then the
    // object's, then max_position_embeddings; factor defaults to their ratio, and the attention
    // factor to sqrt(1 + ln(factor) / ln(original)) (1 when factor <= 1), as transformers.
    const std::int64_t max_positions = top.positive_int("max_position_embeddings", ConfigLimits::max_position_embeddings);
    rope.original_max_position_embeddings =
        top.has("original_max_position_embeddings")
            ? top.positive_int("original_max_position_embeddings", ConfigLimits::max_position_embeddings)
            : (p.has("original_max_position_embeddings")
                   ? p.positive_int("original_max_position_embeddings", ConfigLimits::max_position_embeddings)
                   : max_positions);
    const auto original = static_cast<double>(rope.original_max_position_embeddings);
    rope.factor = p.number("factor", static_cast<double>(max_positions) / original);
    if (!(rope.factor > 0.0)) p.fail("factor", cat("must be > 0, got ", rope.factor));
    const double fallback = rope.factor <= 1.0 || original <= 1.0
                                ? 1.0
                                : std::sqrt(1.0 + std::log(rope.factor) / std::log(original));
    rope.attention_factor = p.number("attention_factor", fallback);
    if (!(rope.attention_factor > 0.0 && std::isfinite(rope.attention_factor))) {
      p.fail("attention_factor", cat("must be a finite number > 0, got ", rope.attention_factor));
    }
    auto factors = [&](const char* key) {
      if (!p.has(key) || !params[key].is_array()) p.fail(key, "must be a list of numbers for rope type longrope");
      const auto& list = params[key];
      if (static_cast<std::int64_t>(list.size()) != dim / 2) {
        p.fail(key, cat("has ", list.size(), " values; the rotary dimension ", dim, " needs ", dim / 2));
      }
      std::vector<double> out;
      for (const auto& v : list) {
        if (!v.is_number() || !(v.get<double>() > 0.0) || !std::isfinite(v.get<double>())) {
          p.fail(key, cat("holds ", v.dump(), "; each value must be a finite number > 0"));
        }
        out.push_back(v.get<double>());
      }
      return out;
    };
    rope.short_factor = factors("short_factor");
    rope.long_factor = factors("long_factor");
  }
  if (rope.type == RopeType::Yarn) {
    // As transformers 5: original_max_position_embeddings from the top level, then the object,
    // then max_position_embeddings; factor defaults to max / original; the attention factor to
    // 0.1 ln(factor) + 1 (or DeepSeek's ratio of two such with mscale and mscale_all_dim).
    const std::int64_t max_positions = top.positive_int("max_position_embeddings", ConfigLimits::max_position_embeddings);
    rope.original_max_position_embeddings =
        top.has("original_max_position_embeddings")
            ? top.positive_int("original_max_position_embeddings", ConfigLimits::max_position_embeddings)
            : (p.has("original_max_position_embeddings")
                   ? p.positive_int("original_max_position_embeddings", ConfigLimits::max_position_embeddings)
                   : max_positions);
    const auto original = static_cast<double>(rope.original_max_position_embeddings);
    rope.factor = p.number("factor", static_cast<double>(max_positions) / original);
    if (!(rope.factor > 0.0 && std::isfinite(rope.factor))) p.fail("factor", cat("must be a finite number > 0, got ", rope.factor));
    auto mscale_of = [&](double m) { return rope.factor <= 1.0 ? 1.0 : 0.1 * m * std::log(rope.factor) + 1.0; };
    const double mscale = p.number("mscale", 0.0), mscale_all_dim = p.number("mscale_all_dim", 0.0);
    const double fallback = mscale != 0.0 && mscale_all_dim != 0.0 ? mscale_of(mscale) / mscale_of(mscale_all_dim) : mscale_of(1.0);
    rope.attention_factor = p.number("attention_factor", fallback);
    if (!(rope.attention_factor > 0.0 && std::isfinite(rope.attention_factor))) {
      p.fail("attention_factor", cat("must be a finite number > 0, got ", rope.attention_factor));
    }
    // transformers reads `beta or default`: 0 means the default too.
    rope.beta_fast = p.number("beta_fast", 32.0);
    rope.beta_slow = p.number("beta_slow", 1.0);
    if (rope.beta_fast == 0.0) rope.beta_fast = 32.0;
    if (rope.beta_slow == 0.0) rope.beta_slow = 1.0;
    if (!(rope.beta_fast > 0.0 && rope.beta_slow > 0.0 && std::isfinite(rope.beta_fast) && std::isfinite(rope.beta_slow))) {
      p.fail("beta_fast", cat("and beta_slow must be finite numbers > 0, got ", rope.beta_fast, " and ", rope.beta_slow));
    }
    rope.truncate = p.boolean("truncate", true);
  }
  return rope;
}

// RoPE settings in either spelling: transformers 5's "rope_parameters" object, or transformers
// 4's top-level "rope_theta" plus an optional "rope_scaling" object. With rules.local_theta, the
// sliding layers' own RoPE too: transformers 5's per-layer-type object ("full_attention",
// "sliding_attention"), or 4's "rope_local_base_freq" (the scaling is the global layers' only).
//   Returns the RoPE of every layer (or of the full-attention layers) and that of sliding layers.
inline std::pair<RopeConfig, std::optional<RopeConfig>> parse_rope(const nlohmann::json& j, const std::string& source,
                                                                   const RopeRules& rules, std::int64_t head_dim) {
  const ConfigReader top(j, source);
  const double theta = top.number("rope_theta", rules.default_theta);
  const nlohmann::json none = nlohmann::json::object();
  const nlohmann::json* params = &none;
  if (top.has("rope_parameters")) {
    params = &j["rope_parameters"];
    if (!params->is_object()) top.fail("rope_parameters", "must be an object");
    if (params->contains("full_attention") || params->contains("sliding_attention")) {
      if (!rules.local_theta) {
        top.fail("rope_parameters", "holds per-layer-type parameters, which this family does not have");
      }
      auto part = [&](const char* key) -> const nlohmann::json& {
        const auto it = params->find(key);  // never operator[] on a key that may be missing
        if (it == params->end() || !it->is_object()) top.fail("rope_parameters", cat("must hold an object \"", key, "\""));
        return *it;
      };
      const double local = top.number("rope_local_base_freq", *rules.local_theta);
      return {parse_rope_object(part("full_attention"), top, source + " (rope_parameters.full_attention)", theta, rules,
                                head_dim),
              parse_rope_object(part("sliding_attention"), top, source + " (rope_parameters.sliding_attention)", local,
                                rules, head_dim)};
    }
  } else if (top.has("rope_scaling")) {
    params = &j["rope_scaling"];
    if (!params->is_object()) top.fail("rope_scaling", "must be an object or null");
  }
  RopeConfig rope = parse_rope_object(*params, top, source + " (rope)", theta, rules, head_dim);
  std::optional<RopeConfig> local;
  if (rules.local_theta) {
    local = parse_rope_object(none, top, source + " (rope_local_base_freq)",
                              top.number("rope_local_base_freq", *rules.local_theta), rules, head_dim);
  }
  return {rope, local};
}

}  // namespace detail


}  // namespace maskgen

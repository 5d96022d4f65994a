#pragma once
// A checkpoint's quantization, as config.json's "quantization_config" (or GPTQ's
// quantize_config.json beside it) says: which method packed its linear layers, at how many bits,
// in which groups, and which modules it left as stored. quantized_checkpoint.hpp reads each packed
// layer by it. A config without one (or with null) reads every tensor as stored; a method, bit
// width, group size or format maskgen does not read is refused here, by name, before any weight is
// touched.

#include <cctype>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../error.hpp"

namespace maskgen::weights {

// The packings maskgen reads.
enum class PackedMethod {
  None,               // every tensor as stored
  Gptq,               // quant_method "gptq": GPTQModel / AutoGPTQ
  Awq,                // quant_method "awq", version "gemm": AutoAWQ
  CompressedTensors,  // quant_method "compressed-tensors", format "pack-quantized": llm-compressor
  CompressedFloat,    // quant_method "compressed-tensors", format "float-quantized": FP8 (e4m3) weights
  Fp8,                // quant_method "fp8": fine-grained FP8 (e4m3) with a scale per block (weight_scale_inv)
  Mxfp4,              // quant_method "mxfp4": gpt-oss's experts in MXFP4 (e2m1 codes, E8M0 scale per 32)
};

struct CheckpointQuantization {
  PackedMethod method = PackedMethod::None;
  int bits = 0;                    // 4 or 8
  std::int64_t group_size = 0;     // k of a group; 0: one group over the whole of k (GPTQ's -1, a channel)
  std::int64_t scale_rows = 1;     // FP8: output rows that share a scale (a block's rows); 0: every row (a tensor's scale)
  bool symmetric = true;           // compressed-tensors: no zero points (codes offset by 2^(bits-1))
  bool zero_minus_one = false;     // GPTQ's first checkpoint format: qzeros hold zero - 1
  // The modules the config says it left as stored (modules_to_not_convert, ignore), as listed.
  // The loader does not need them: a layer is read packed where the file holds its packed tensors
  // and as stored where it holds its weight, so a list that is wrong or a pattern ("re:...")
  // cannot make it read a layer wrongly.
  std::vector<std::string> not_converted;
  std::string source;  // where it was read, for messages

  bool packed() const { return method != PackedMethod::None; }
};

namespace detail {

// A field of the quantization config, typed, or its default; refuses another type by name.
struct QuantFields {
  const nlohmann::json& j;
  const std::string& where;

  [[noreturn]] void fail(std::string_view key, const std::string& what) const {
    throw format_error(maskgen::detail::cat(where, ": \"", key, "\" ", what));
  }
  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_string()) fail(key, maskgen::detail::cat("is ", j[key].dump(), "; expected a string"));
    return j[key].get<std::string>();
  }
  std::int64_t integer(const char* key, std::int64_t fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_number_integer()) fail(key, maskgen::detail::cat("is ", j[key].dump(), "; expected an integer"));
    return j[key].get<std::int64_t>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_boolean()) fail(key, maskgen::detail::cat("is ", j[key].dump(), "; expected true or false"));
    return j[key].get<bool>();
  }
  std::vector<std::string> strings(const char* key) const {
    std::vector<std::string> out;
    if (!has(key)) return out;
    if (!j[key].is_array()) fail(key, maskgen::detail::cat("is ", j[key].dump(), "; expected a list of module names"));
    for (const auto& v : j[key]) {
      if (!v.is_string()) fail(key, maskgen::detail::cat("holds ", v.dump(), "; expected module names"));
      out.push_back(v.get<std::string>());
    }
    return out;
  }
};

inline void check_bits(const QuantFields& f, const char* key, std::int64_t bits, std::string_view method,
                       std::initializer_list<std::int64_t> allowed) {
  for (const auto b : allowed) {
    if (bits == b) return;
  }
  f.fail(key, maskgen::detail::cat("is ", bits, "; maskgen reads ", method, " at ",
                                   allowed.size() == 1 ? "4" : "4 or 8", " bits"));
}

inline void check_group(const QuantFields& f, const char* key, std::int64_t group, bool whole_allowed) {
  if (group > 0 && group <= (std::int64_t{1} << 20)) return;
  if (group == -1 && whole_allowed) return;
  f.fail(key, maskgen::detail::cat("is ", group, "; expected a positive group size",
                                   whole_allowed ? " or -1 (one group over all inputs)" : ""));
}

// The [rows, columns] of a scale's block (FP8's weight_block_size, compressed-tensors' block_structure).
inline std::pair<std::int64_t, std::int64_t> scale_block(const QuantFields& f, const char* key) {
  const nlohmann::json& block = f.has(key) ? f.j[key] : nlohmann::json();
  auto side = [&](std::size_t i) {
    return block[i].is_number_integer() && block[i].get<std::int64_t>() > 0 &&
           block[i].get<std::int64_t>() <= (std::int64_t{1} << 20);
  };
  if (!block.is_array() || block.size() != 2 || !side(0) || !side(1)) {
    f.fail(key, maskgen::detail::cat("is ", block.dump(), "; expected [rows, columns] of a scale's block"));
  }
  return {block[0].get<std::int64_t>(), block[1].get<std::int64_t>()};
}

inline CheckpointQuantization read_gptq(const QuantFields& f, CheckpointQuantization q) {
  q.method = PackedMethod::Gptq;
  q.bits = static_cast<int>(f.integer("bits", 4));
  check_bits(f, "bits", q.bits, "GPTQ", {4, 8});
  const std::int64_t group = f.integer("group_size", 128);
  check_group(f, "group_size", group, true);
  q.group_size = group == -1 ? 0 : group;
  // GPTQModel writes "checkpoint_format" (older: "format"); "gptq" stores zero - 1, "gptq_v2" the zero.
  const std::string format = f.string("checkpoint_format", f.string("format", "gptq"));
  if (format != "gptq" && format != "gptq_v2") {
    f.fail(f.has("checkpoint_format") ? "checkpoint_format" : "format",
           maskgen::detail::cat("is \"", format, "\"; maskgen reads GPTQ's \"gptq\" and \"gptq_v2\" formats"));
  }
  q.zero_minus_one = format == "gptq";
  (void)f.boolean("desc_act", false);  // act-order: g_idx says each input's group, read from the file
  (void)f.boolean("sym", true);        // the zeros are stored either way
  q.not_converted = f.strings("modules_to_not_convert");
  return q;
}

inline CheckpointQuantization read_awq(const QuantFields& f, CheckpointQuantization q) {
  q.method = PackedMethod::Awq;
  q.bits = static_cast<int>(f.integer("bits", f.integer("w_bit", 4)));
  check_bits(f, "bits", q.bits, "AWQ", {4});
  const std::string version = f.string("version", "gemm");
  if (version != "gemm" && version != "GEMM") {
    f.fail("version", maskgen::detail::cat("is \"", version, "\"; maskgen reads AWQ's \"gemm\" packing"));
  }
  if (!f.boolean("zero_point", true)) f.fail("zero_point", "is false; maskgen reads AWQ with zero points");
  const std::int64_t group = f.integer("group_size", f.integer("q_group_size", 128));
  check_group(f, "group_size", group, false);
  q.group_size = group;
  q.not_converted = f.strings("modules_to_not_convert");
  return q;
}

inline CheckpointQuantization read_compressed_tensors(const QuantFields& f, CheckpointQuantization q) {
  using maskgen::detail::cat;
  const std::string format = f.string("format", "");
  if (!f.has("config_groups") || !f.j["config_groups"].is_object() || f.j["config_groups"].empty()) {
    f.fail("config_groups", "is missing or empty; expected the quantization scheme of the Linear layers");
  }
  bool first = true;
  for (const auto& [name, group] : f.j["config_groups"].items()) {
    const std::string where = cat(f.where, " config_groups.", name);
    if (!group.is_object()) throw format_error(cat(where, " is ", group.dump(), "; expected an object"));
    const QuantFields g{group, where};
    const std::string group_format = g.string("format", format);
    if (group_format != "pack-quantized" && group_format != "float-quantized") {
      g.fail("format", cat("is \"", group_format, "\"; maskgen reads compressed-tensors' \"pack-quantized\" and ",
                           "\"float-quantized\" formats"));
    }
    const bool floats = group_format == "float-quantized";
    // FP8 weights are read whatever the activations' scheme (W8A8: activations stay float, which
    // is the dequantized model's own computation, not the quantized one's); integer ones must be
    // weight-only.
    if (g.has("input_activations") && !floats) {
      g.fail("input_activations", "are quantized; maskgen reads weight-only integer schemes (W4A16, W8A16)");
    }
    if (!g.has("weights") || !group["weights"].is_object()) g.fail("weights", "is missing; expected the weight scheme");
    const QuantFields w{group["weights"], where + " weights"};
    const std::string type = w.string("type", floats ? "float" : "int");
    if (type != (floats ? "float" : "int")) {
      w.fail("type", cat("is \"", type, "\"; ", group_format, " weights are ", floats ? "floats" : "integers"));
    }
    const int bits = static_cast<int>(w.integer("num_bits", 0));
    if (floats && bits != 8) w.fail("num_bits", cat("is ", bits, "; maskgen reads float-quantized weights of 8 bits (e4m3)"));
    if (!floats) check_bits(w, "num_bits", bits, "compressed-tensors", {4, 8});
    const std::string strategy = w.string("strategy", "");
    std::int64_t size = 0, rows = 1;
    if (strategy == "group") {
      size = w.integer("group_size", 0);
      check_group(w, "group_size", size, false);
    } else if (floats && strategy == "tensor") {
      rows = 0;
    } else if (floats && strategy == "block") {
      std::tie(rows, size) = scale_block(w, "block_structure");
    } else if (strategy != "channel") {
      w.fail("strategy", cat("is \"", strategy, "\"; maskgen reads the \"group\" and \"channel\" strategies",
                             floats ? " and, for float weights, \"tensor\" and \"block\"" : ""));
    }
    const bool symmetric = w.boolean("symmetric", true);
    if (floats && !symmetric) w.fail("symmetric", "is false; float-quantized weights have no zero points");
    const PackedMethod method = floats ? PackedMethod::CompressedFloat : PackedMethod::CompressedTensors;
    if (!first && (method != q.method || bits != q.bits || size != q.group_size || rows != q.scale_rows ||
                   symmetric != q.symmetric)) {
      throw format_error(cat(where, ": a second weight scheme; maskgen reads one scheme for every Linear layer"));
    }
    q.method = method;
    q.bits = bits;
    q.group_size = size;
    q.scale_rows = rows;
    q.symmetric = symmetric;
    first = false;
  }
  q.not_converted = f.strings("ignore");
  return q;
}

// quant_method "fp8" (transformers' FineGrainedFP8Config): e4m3 weights, one weight_scale_inv per
// block of weight_block_size [rows, columns] (default [128, 128]). Activations stay float.
inline CheckpointQuantization read_fp8(const QuantFields& f, CheckpointQuantization q) {
  using maskgen::detail::cat;
  q.method = PackedMethod::Fp8;
  q.bits = 8;
  const std::string fmt = f.string("fmt", "e4m3");
  if (fmt != "e4m3") f.fail("fmt", cat("is \"", fmt, "\"; maskgen reads FP8 weights in e4m3"));
  q.scale_rows = q.group_size = 128;
  if (f.has("weight_block_size")) std::tie(q.scale_rows, q.group_size) = scale_block(f, "weight_block_size");
  q.not_converted = f.strings("modules_to_not_convert");
  return q;
}

// quant_method "mxfp4" (gpt-oss): the experts' *_blocks and *_scales; everything else as stored.
inline CheckpointQuantization read_mxfp4(const QuantFields& f, CheckpointQuantization q) {
  q.method = PackedMethod::Mxfp4;
  q.bits = 4;
  q.group_size = 32;
  q.not_converted = f.strings("modules_to_not_convert");
  return q;
}

}  // namespace detail

// The quantization of the checkpoint whose config.json is the object `config` (named `source` in
// messages); `beside` is quantize_config.json's object where config.json has none (or null).
inline CheckpointQuantization read_quantization_config(const nlohmann::json& config, const std::string& source,
                                                       const nlohmann::json& beside = nullptr) {
  using maskgen::detail::cat;
  const bool in_config = config.is_object() && config.contains("quantization_config") &&
                         !config["quantization_config"].is_null();
  CheckpointQuantization q;
  if (!in_config && !beside.is_object()) return q;
  const nlohmann::json& j = in_config ? config["quantization_config"] : beside;
  q.source = in_config ? source + " \"quantization_config\"" : "quantize_config.json";
  if (!j.is_object()) throw format_error(cat(q.source, " is ", j.dump(), "; expected an object"));
  const detail::QuantFields f{j, q.source};
  // quantize_config.json of older GPTQ checkpoints has no quant_method: it is GPTQ's own file.
  std::string method = f.string("quant_method", in_config ? "" : "gptq");
  for (auto& ch : method) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (method == "gptq") return detail::read_gptq(f, q);
  if (method == "awq") return detail::read_awq(f, q);
  if (method == "compressed-tensors") return detail::read_compressed_tensors(f, q);
  if (method == "fp8") return detail::read_fp8(f, q);
  if (method == "mxfp4") return detail::read_mxfp4(f, q);
  throw format_error(cat(q.source, " asks for quant_method ", method.empty() ? "(none given)" : "\"" + method + "\"",
                         ", which maskgen does not read; it reads \"gptq\", \"awq\" (gemm), \"compressed-tensors\" "
                         "(pack-quantized, float-quantized), \"fp8\" and \"mxfp4\" checkpoints, and F32, F64, BF16 and F16 "
                         "tensors as stored"));
}

// Refuses a config.json whose quantization_config maskgen does not read (read_quantization_config).
inline void check_quantization_config(const nlohmann::json& config, const std::string& source) {
  (void)read_quantization_config(config, source);
}

}  // namespace maskgen::weights

#pragma once
// config.json's "quantization_config": the quantization a checkpoint says its tensors are in. None
// is read today: a config without one reads every tensor as stored, and one that names a method is
// refused before any weight is touched.

#include <string>

#include <nlohmann/json.hpp>

#include "../error.hpp"

namespace maskgen::weights {

// Refuses a config.json (the object `config`, named `source` in messages) whose
// "quantization_config" asks for a quantization method: its tensors would not be the values they
// hold as stored. A config without one (or with null) reads every tensor as stored.
inline void check_quantization_config(const nlohmann::json& config, const std::string& source) {
  using maskgen::detail::cat;
  if (!config.is_object() || !config.contains("quantization_config") || config["quantization_config"].is_null()) return;
  const nlohmann::json& q = config["quantization_config"];
  // As JSON: a string keeps its quotes.
  const std::string method = q.is_object() && q.contains("quant_method") ? q["quant_method"].dump() : "(none given)";
  throw format_error(cat(source, ": \"quantization_config\" asks for quant_method ", method,
                         ", which maskgen does not read; it reads F32, F64, BF16 and F16 tensors as stored "
                         "(and quantizes to int8 at load when asked)"));
}

}  // namespace maskgen::weights

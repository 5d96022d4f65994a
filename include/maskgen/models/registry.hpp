#pragma once
// The registry: every family maskgen implements, by model_type. A new family is its header and
// one line here.

#include <array>
#include <string>
#include <string_view>

#include "family.hpp"
#include "gemma.hpp"
#include "gpt_oss.hpp"
#include "granite.hpp"
#include "llama.hpp"
#include "mixtral.hpp"
#include "olmo2.hpp"
#include "olmoe.hpp"
#include "phi3.hpp"
#include "qwen3_moe.hpp"
#include "smollm3.hpp"

namespace maskgen {

inline constexpr std::array<const Family*, 15> registered_families = {
    &families::llama,     &families::mistral, &families::qwen2,       &families::qwen3,  &families::smollm3,
    &families::gemma2,    &families::gemma3_text, &families::gemma3,  &families::phi3,   &families::olmo2,
    &families::granite,   &families::qwen3_moe,   &families::mixtral, &families::olmoe,  &families::gpt_oss,
};

// The family of a config.json's model_type, or nullptr.
inline const Family* find_family(std::string_view model_type) {
  for (const Family* f : registered_families) {
    if (f->model_type == model_type) return f;
  }
  return nullptr;
}

// "llama, mistral, ... and smollm3", for error messages.
inline std::string supported_model_types() {
  std::string out;
  for (std::size_t i = 0; i < registered_families.size(); ++i) {
    if (i > 0) out += i + 1 == registered_families.size() ? " and " : ", ";
    out += registered_families[i]->model_type;
  }
  return out;
}

}  // namespace maskgen

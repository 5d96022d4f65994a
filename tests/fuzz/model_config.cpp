// libFuzzer harness: any bytes as a model folder's config.json, then optionally \x01 and a
// generation_config.json, loaded with ModelConfig::load as a model folder is. Loading succeeds or
// throws a maskgen::error; a loaded config's numbers are checked to be the consistent ones the
// forward pass relies on (heads divide into kv groups, positive sizes, EOS ids in the vocabulary).
// Anything else escaping, a sanitizer report, a leak or a hang is a finding. Built by
// tests/fuzz/run.sh.

#include <maskgen/config.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

namespace {

const std::filesystem::path& folder() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("maskgen-fuzz-config-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

void write(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::size_t cut = text.find('\x01');
  write(folder() / "config.json", text.substr(0, cut));
  std::error_code ec;
  if (cut == std::string_view::npos) std::filesystem::remove(folder() / "generation_config.json", ec);
  else write(folder() / "generation_config.json", text.substr(cut + 1));
  try {
    const auto c = maskgen::ModelConfig::load(folder());
    if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 || c.num_kv_heads <= 0 ||
        c.head_dim <= 0 || c.intermediate_size <= 0 || c.max_position_embeddings <= 0 || c.num_heads % c.num_kv_heads != 0) {
      __builtin_trap();
    }
    for (const auto id : c.eos_token_ids) {
      if (id < 0 || id >= c.vocab_size) __builtin_trap();
    }
    if (c.pad_token_id && (*c.pad_token_id < 0 || *c.pad_token_id >= c.vocab_size)) __builtin_trap();
  } catch (const maskgen::error&) {
  }
  return 0;
}

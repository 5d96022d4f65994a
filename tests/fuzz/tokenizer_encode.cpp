// libFuzzer harness: any bytes encoded by a real tokenizer of each backend (the first byte picks,
// modulo 3): Qwen3's and Llama 3's tokenizer.json, and Llama 2's SentencePiece tokenizer.model;
// then decoded whole and streamed. Checks, beyond "no crash": decoding never yields invalid UTF-8;
// the stream's pieces joined equal decode(); with Llama 3 (no normalizer) decode(encode(x)) equals
// x with its invalid UTF-8 repaired. Built by tests/fuzz/run.sh; the tokenizer folder is
// ../shared/tokenizers (MASKGEN_FUZZ_TOKENIZERS overrides it).

#include <maskgen/tokenizer.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string_view>

namespace {

enum class Which { Qwen3, Llama3, Llama2 };

const maskgen::AutoTokenizer& tokenizer(Which which) {
  static const std::filesystem::path root = std::getenv("MASKGEN_FUZZ_TOKENIZERS")
                                                ? std::getenv("MASKGEN_FUZZ_TOKENIZERS")
                                                : MASKGEN_FUZZ_TOKENIZERS_DEFAULT;
  static const auto qwen3 = maskgen::load_tokenizer(root / "qwen3");
  static const auto llama3 = maskgen::load_tokenizer(root / "llama3");
  static const auto llama2 = maskgen::load_tokenizer(root / "llama2");  // SentencePiece
  return which == Which::Qwen3 ? qwen3 : which == Which::Llama3 ? llama3 : llama2;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto which = static_cast<Which>(data[0] % 3);
  const bool llama3 = which == Which::Llama3;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto& tok = tokenizer(which);
  const auto ids = tok.encode(text, {.add_bos = false, .add_eos = false});
  const std::string decoded = tok.decode(ids, {.skip_special_tokens = false});
  if (!maskgen::unicode::is_valid_utf8(decoded)) std::abort();
  if (llama3 && decoded != maskgen::unicode::repaired(text)) std::abort();
  maskgen::DecodeStream stream(tok, {.skip_special_tokens = false});
  std::string joined;
  for (const auto id : ids) {
    const std::string piece = stream.put(id);
    if (!maskgen::unicode::is_valid_utf8(piece)) std::abort();
    joined += piece;
  }
  joined += stream.finish();
  if (joined != decoded) std::abort();
  return 0;
}

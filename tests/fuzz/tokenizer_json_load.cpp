// libFuzzer harness: any bytes as a tokenizer.json (and the same bytes as tokenizer_config.json).
// Loading either succeeds or throws a maskgen::error; a loaded tokenizer encodes and decodes a few
// texts without crashing. Anything else escaping (another exception type, a sanitizer report) is a
// finding. Built by tests/fuzz/run.sh.

#include <maskgen/tokenizer.hpp>

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::size_t cut = text.find('\x01');  // tokenizer.json, then optionally \x01 and a config
  const std::string_view json = text.substr(0, cut);
  const std::string_view config = cut == std::string_view::npos ? std::string_view() : text.substr(cut + 1);
  try {
    const maskgen::AutoTokenizer tok(maskgen::TokenizerJsonBackend::from_json(json, config));
    for (const std::string_view sample : {"", "Hello world", "ab abc <s> hi 123 患者 \xff", "  \n\t x"}) {
      const auto ids = tok.encode(sample, {.add_bos = false, .add_eos = false});
      (void)tok.decode(ids, {.skip_special_tokens = false});
      (void)tok.decode(ids, {.skip_special_tokens = true});
    }
    for (std::int32_t id = 0; id < tok.vocab_size() && id < 64; ++id) (void)tok.id_to_piece(id);
  } catch (const maskgen::error&) {
  }
  return 0;
}

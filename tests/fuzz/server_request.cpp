// libFuzzer harness: any bytes as the body of POST /v1/completions (first byte even) or
// /v1/chat/completions (odd), parsed by the server's OpenAIServer::parse (server/) on the bundled
// model (which has no chat template: chat bodies are refused after their fields are read). A body is accepted or refused with BadRequest (or a maskgen::error); an accepted one must have a
// prompt inside the vocabulary and the context and settings in range. Anything else escaping, a
// sanitizer report or a hang is a finding. Built by tests/fuzz/run.sh.

#include "openai_server.hpp"  // server/, on the include path (run.sh)

#include <cstdint>
#include <string>

namespace {

maskgen_server::OpenAIServer& server() {
  static maskgen_server::OpenAIServer s(MASKGEN_FUZZ_BUNDLED_MODEL, [] {
    maskgen_server::ServerOptions o;
    o.engine.num_threads = 1;
    return o;
  }());
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const auto r = server().parse(body, chat);
    if (r.prompt.empty() || r.prompt.size() >= 64) __builtin_trap();
    for (const auto id : r.prompt) {
      if (id < 0 || id >= 48) __builtin_trap();
    }
    if (r.n < 1 || r.n > 16 || r.gen.max_new_tokens < 0 || r.gen.max_new_tokens + static_cast<int>(r.prompt.size()) > 64) __builtin_trap();
    if (r.gen.do_sample && !(r.gen.temperature > 0)) __builtin_trap();
  } catch (const maskgen_server::BadRequest&) {
  } catch (const maskgen::error&) {
  }
  return 0;
}

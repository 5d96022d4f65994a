// libFuzzer harness: any bytes as a Jinja chat template, then optionally \x01 and the variables.
// The template is compiled with ChatTemplate; if the part after \x01 is a JSON object it is
// rendered with exactly those variables (render), if a JSON array it is applied as the messages
// (apply), else a fixed conversation (system, user, an assistant tool call, a tool reply, an
// assistant answer with <think>, non-ASCII text; tools; add_generation_prompt and enable_thinking
// picked by the length of that part) is applied. Compiling and rendering succeed or throw a
// maskgen::error; anything else escaping (another exception type, a sanitizer report, a leak, a
// hang) is a finding. Checked beyond "no crash": the output is valid UTF-8, whatever the bytes of the
// template (repaired on entry) and the variables. The limits are tight (steps, which also count
// the items that filters, `in` and repetitions work through; output; range()).
// Built by tests/fuzz/run.sh.

#include <maskgen/chat_template.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

const nlohmann::ordered_json& conversation() {
  static const auto messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "You are a helpful assistant. Ünïcødé ✓"},
    {"role": "user", "content": "What's the weather in Zürich? 天气如何 😀"},
    {"role": "assistant", "content": "", "tool_calls": [
      {"id": "call00001", "type": "function",
       "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}]},
    {"role": "tool", "name": "get_weather", "tool_call_id": "call00001", "content": "{\"temperature\": 21}"},
    {"role": "assistant", "content": "<think>\nThe tool said 21.\n</think>\n\nIt is 21 °C in Zürich."},
    {"role": "user", "content": "Thanks!\n  Bye\t"}
  ])");
  return messages;
}

const nlohmann::ordered_json& tools() {
  static const auto schema = nlohmann::ordered_json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather of a city.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "the city"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                    "required": ["city"]}}}
  ])");
  return schema;
}

const nlohmann::ordered_json& special_tokens() {
  static const auto tokens = nlohmann::ordered_json::parse(
      R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})");
  return tokens;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::size_t cut = text.find('\x01');  // the template, then optionally \x01 and the variables
  const std::string_view source = text.substr(0, cut);
  const std::string_view rest = cut == std::string_view::npos ? std::string_view() : text.substr(cut + 1);
  maskgen::ChatOptions options;
  options.limits.max_steps = 200'000;
  options.limits.max_output = std::size_t{1} << 20;
  options.limits.max_range = 100'000;
  options.now = std::chrono::system_clock::time_point(std::chrono::seconds(1'767'323'045));  // 2026-01-02
  options.add_generation_prompt = rest.size() & 1;
  options.variables["enable_thinking"] = (rest.size() & 2) != 0;
  options.tools = tools();
  try {
    const maskgen::ChatTemplate chat(source, special_tokens());
    const auto variables = nlohmann::ordered_json::parse(rest, nullptr, /*allow_exceptions=*/false);
    std::string out;
    if (variables.is_object()) out = chat.render(variables, options);
    else if (variables.is_array()) out = chat.apply(variables, options);
    else out = chat.apply(conversation(), options);
    if (out.size() > options.limits.max_output) std::abort();
    if (!maskgen::unicode::is_valid_utf8(out)) std::abort();  // the source is repaired on entry
  } catch (const maskgen::error&) {
  }
  return 0;
}

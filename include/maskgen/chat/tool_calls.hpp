#pragma once
// Tool calls as the chat-template families maskgen renders write them, turned back into OpenAI
// style calls {id, name, arguments}: all at once (parse_tool_calls) or while the text streams in
// (ToolCallParser).
//
//   const auto format = maskgen::detect_tool_call_format(chat.source());
//   maskgen::ToolCallParser parser(format);
//   for (...) { auto delta = parser.feed(piece); show(delta.content); send(delta.tool_calls); }
//   auto rest = parser.finish();
//
// Formats (what each template prints for an assistant message with tool_calls):
//
//   Hermes (Qwen2.5, Qwen3): `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`, one
//     block per call, blocks separated by "\n", after the message's content and a "\n". A block is
//     `<tool_call>`, one JSON object (whitespace around it allowed), `</tool_call>`. Text before,
//     between and after blocks is content.
//   Llama3Json (Llama 3.1, 3.2): the whole assistant turn is `{"name": ..., "parameters": {...}}`,
//     optionally after `<|python_tag|>`; several calls separated by ";" as vLLM's llama3_json
//     parser accepts (the templates themselves render one call only). "arguments" is taken where
//     "parameters" is absent. Calls are recognised only at the start of the output (after
//     whitespace): text first means the whole output is content. Text after the calls, other than
//     ";" and another call, is content. Llama 3.1's built-in tool syntax
//     (`<|python_tag|>brave_search.call(query="...")`) is not parsed: it stays content.
//   Mistral (Mistral Instruct v3 with tools): `[TOOL_CALLS] [{"name": ..., "arguments": {...},
//     "id": "..."}, ...]`, with or without the space after the marker; one array holds every call
//     and is taken as a whole. Text before the marker is content; an "id" in the array is ignored
//     (ids are generated, as vLLM does).
//
// A call is valid when its JSON parses (strict JSON, valid UTF-8) to an object with a non-empty
// string "name" and an object "arguments" ("parameters" for Llama 3). An invalid or unfinished
// call is not a call: its text, markers included, stays content, verbatim. For a valid call the
// markers, the JSON and the whitespace directly before and after it are not content, so the
// rendering of {"content": "Let me check.", "tool_calls": [...]} parses back to the content
// "Let me check." and the calls.
//
// ToolCall::arguments is the arguments object dumped as compact JSON (no spaces, keys in their
// order, non-ASCII kept), e.g. {"location":"Paris, France","unit":"celsius"}, which is how
// OpenAI's API carries function.arguments.
//
// Streaming: feed() returns the content that can be shown now and the calls completed so far;
// text that may still become part of a call is held back: the start of a marker split across
// chunks ("<tool" + "_call>"), the whitespace before it, and an opened call until it closes
// (`</tool_call>`, the array's `]`, the object's `}`). A call is delivered once, whole, with its
// index among the calls of this output. finish() returns what was held. For every way of cutting
// a text into chunks, the joined contents and the calls equal parse_tool_calls' (which is the
// same parser fed once).
//
// Call ids: each parser draws one id per call, in order, from a ToolCallIdGenerator.
// random_tool_call_ids() gives "call_" + 24 random letters and digits (as OpenAI's look);
// Mistral's template refuses any tool-call id that is not exactly 9 letters or digits, so
// mistral_tool_call_ids() gives those, and is the default for ToolCallFormat::Mistral.

#include <algorithm>
#include <cstddef>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../error.hpp"
#include "markers.hpp"

namespace maskgen {

enum class ToolCallFormat {
  None,        // no tool-call syntax: all text is content
  Hermes,      // <tool_call>{json}</tool_call> (Qwen2.5, Qwen3)
  Llama3Json,  // {"name": ..., "parameters": ...}; ... (Llama 3.1, 3.2)
  Mistral,     // [TOOL_CALLS] [{...}, ...] (Mistral Instruct v3)
};

inline std::string_view to_string(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::None: return "none";
    case ToolCallFormat::Hermes: return "hermes";
    case ToolCallFormat::Llama3Json: return "llama3_json";
    case ToolCallFormat::Mistral: return "mistral";
  }
  return "unknown";
}

// The format a chat template teaches, from its source text: `<tool_call>` -> Hermes,
// `[TOOL_CALLS]` -> Mistral, `<|python_tag|>` or both "ipython" and `"parameters"` (Llama 3.1 and
// 3.2) -> Llama3Json, else None (a template without tools: no tool parsing).
inline ToolCallFormat detect_tool_call_format(std::string_view template_source) {
  const auto has = [&](std::string_view s) { return template_source.find(s) != std::string_view::npos; };
  if (has("<tool_call>")) return ToolCallFormat::Hermes;
  if (has("[TOOL_CALLS]")) return ToolCallFormat::Mistral;
  if (has("<|python_tag|>") || (has("ipython") && has("\"parameters\""))) return ToolCallFormat::Llama3Json;
  return ToolCallFormat::None;
}

struct ToolCall {
  std::string id;         // from the parser's id generator
  std::string name;       // the function's name
  std::string arguments;  // the arguments object as compact JSON: {"location":"Paris"}
  bool operator==(const ToolCall&) const = default;
};

// Makes one call id per call.
using ToolCallIdGenerator = std::function<std::string()>;

namespace detail {
inline std::string random_alphanumerics(std::size_t n) {
  static constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 engine{std::random_device{}()};
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  std::string out(n, '\0');
  for (auto& c : out) c = alphabet[pick(engine)];
  return out;
}
}  // namespace detail

// "call_" + 24 random letters and digits. Thread-safe; every generator draws from a per-thread engine.
inline ToolCallIdGenerator random_tool_call_ids() {
  return [] { return "call_" + detail::random_alphanumerics(24); };
}

// 9 random letters and digits: the only ids Mistral's template accepts back in tool_calls and
// tool messages ("Tool call IDs should be alphanumeric strings with length 9!").
inline ToolCallIdGenerator mistral_tool_call_ids() {
  return [] { return detail::random_alphanumerics(9); };
}

// The text of one output split into content and calls.
struct ParsedToolCalls {
  std::string content;               // the text outside valid calls
  std::vector<ToolCall> tool_calls;  // in the order the model wrote them
};

// What one feed() or finish() adds.
struct ToolCallDelta {
  struct IndexedCall {
    std::size_t index = 0;  // position among this output's calls (OpenAI's tool_calls[].index)
    ToolCall call;
    bool operator==(const IndexedCall&) const = default;
  };
  std::string content;                  // content safe to show now
  std::vector<IndexedCall> tool_calls;  // calls completed by this piece of text
};

// The streaming parser: one per output (per choice). Not thread-safe; cheap to make.
class ToolCallParser {
 public:
  // `ids` empty: mistral_tool_call_ids() for Mistral, random_tool_call_ids() otherwise.
  explicit ToolCallParser(ToolCallFormat format, ToolCallIdGenerator ids = {})
      : format_(format), ids_(ids ? std::move(ids) : default_ids(format)) {}

  ToolCallFormat format() const { return format_; }

  // The next piece of the output text.
  ToolCallDelta feed(std::string_view text) {
    if (finished_) throw argument_error("ToolCallParser::feed: the output was already finished (finish() was called)");
    buffer_.append(text);
    ToolCallDelta out;
    run(false, out);
    return out;
  }

  // The end of the output: everything still held, as content or calls.
  ToolCallDelta finish() {
    if (finished_) throw argument_error("ToolCallParser::finish: called twice");
    finished_ = true;
    ToolCallDelta out;
    run(true, out);
    return out;
  }

 private:
  using json = nlohmann::ordered_json;
  // Hermes, Mistral: Text -> Block -> AfterCall -> Text ... Llama3Json: Start -> Call -> AfterCall
  // -> Call ... and Text (plain content from then on) once something else appears.
  enum class State { Start, Text, Block, Call, AfterCall };

  static constexpr std::string_view kHermesOpen = "<tool_call>";
  static constexpr std::string_view kHermesClose = "</tool_call>";
  static constexpr std::string_view kMistralOpen = "[TOOL_CALLS]";
  static constexpr std::string_view kPythonTag = "<|python_tag|>";

  ToolCallFormat format_;
  ToolCallIdGenerator ids_;
  State state_ = State::Start;
  std::string buffer_;            // text received and not yet given out or dropped
  std::size_t marker_at_ = 0;     // Block: where the marker starts in buffer_ (whitespace before it)
  std::size_t search_from_ = 0;   // Block (Hermes): where to look for the closing marker next
  std::size_t value_at_ = 0;      // where the JSON value being scanned starts in buffer_
  std::size_t held_ = 0;          // Call (Llama 3): buffer_'s prefix before the object (whitespace, tag, ';')
  bool scanning_ = false;         // extent_ follows a JSON value
  detail::JsonExtent extent_;
  std::size_t next_index_ = 0;
  bool finished_ = false;

  static ToolCallIdGenerator default_ids(ToolCallFormat format) {
    return format == ToolCallFormat::Mistral ? mistral_tool_call_ids() : random_tool_call_ids();
  }

  void give_content(ToolCallDelta& out, std::size_t n) {
    out.content.append(buffer_, 0, n);
    buffer_.erase(0, n);
  }

  // A valid call object gives its call; anything else gives nothing.
  static bool valid_call(const json& v, std::string_view arguments_key) {
    if (!v.is_object()) return false;
    const auto name = v.find("name");
    const auto args = v.find(std::string(arguments_key));
    return name != v.end() && name->is_string() && !name->get_ref<const std::string&>().empty() && args != v.end() &&
           args->is_object();
  }

  void give_call(ToolCallDelta& out, const json& v, std::string_view arguments_key) {
    ToolCall call;
    call.id = ids_();
    call.name = v["name"].get<std::string>();
    call.arguments = v[std::string(arguments_key)].dump(-1, ' ', false, json::error_handler_t::replace);
    out.tool_calls.push_back({next_index_++, std::move(call)});
  }

  void run(bool at_end, ToolCallDelta& out) {
    if (format_ == ToolCallFormat::None) {
      give_content(out, buffer_.size());
      return;
    }
    if (state_ == State::Start && format_ != ToolCallFormat::Llama3Json) state_ = State::Text;
    while (format_ == ToolCallFormat::Llama3Json ? step_llama(at_end, out) : step_marked(at_end, out)) {
    }
  }

  // Hermes and Mistral. Returns whether to step again.
  bool step_marked(bool at_end, ToolCallDelta& out) {
    const std::string_view open = format_ == ToolCallFormat::Hermes ? kHermesOpen : kMistralOpen;
    const std::string_view text = buffer_;
    switch (state_) {
      case State::AfterCall: {
        buffer_.erase(0, detail::skip_json_space(text, 0));
        if (buffer_.empty()) return false;
        state_ = State::Text;
        return true;
      }
      case State::Text: {
        const std::size_t p = text.find(open);
        if (p == std::string_view::npos) {
          give_content(out, at_end ? text.size() : detail::space_run_start(text, detail::partial_marker_start(text, open)));
          return false;
        }
        const std::size_t q = detail::space_run_start(text, p);
        give_content(out, q);
        marker_at_ = p - q;
        search_from_ = marker_at_ + open.size();
        scanning_ = false;
        state_ = State::Block;
        return true;
      }
      case State::Block: {
        const std::size_t body = marker_at_ + open.size();
        std::size_t end = std::string::npos;  // one past the block
        json value;
        if (format_ == ToolCallFormat::Hermes) {
          const std::size_t close = text.find(kHermesClose, search_from_);
          if (close != std::string_view::npos) {
            end = close + kHermesClose.size();
            value = json::parse(text.substr(body, close - body), nullptr, false);
          } else if (text.size() >= kHermesClose.size()) {
            search_from_ = std::max(body, text.size() - kHermesClose.size() + 1);
          }
        } else {
          if (!scanning_) {
            const std::size_t a = detail::skip_json_space(text, body);
            if (a < text.size() && text[a] != '[') {  // the marker without an array: plain text
              give_content(out, body);
              state_ = State::Text;
              return true;
            }
            if (a < text.size()) {
              scanning_ = true;
              value_at_ = a;
              extent_ = detail::JsonExtent(a);
            }
          }
          if (scanning_) {
            end = extent_.scan(text);
            if (end != std::string::npos) value = json::parse(text.substr(value_at_, end - value_at_), nullptr, false);
          }
        }
        if (end == std::string::npos) {  // the block is still open
          if (!at_end) return false;
          give_content(out, text.size());
          state_ = State::Text;
          return false;
        }
        scanning_ = false;
        bool valid = false;
        if (format_ == ToolCallFormat::Hermes) {
          valid = valid_call(value, "arguments");
        } else if (value.is_array() && !value.empty()) {
          valid = true;
          for (const auto& v : value) valid = valid && valid_call(v, "arguments");
        }
        if (!valid) {
          give_content(out, end);
          state_ = State::Text;
          return true;
        }
        buffer_.erase(0, end);
        if (format_ == ToolCallFormat::Hermes) give_call(out, value, "arguments");
        else for (const auto& v : value) give_call(out, v, "arguments");
        state_ = State::AfterCall;
        return true;
      }
      default: return false;
    }
  }

  // Llama 3 JSON. Returns whether to step again.
  bool step_llama(bool at_end, ToolCallDelta& out) {
    const std::string_view text = buffer_;
    switch (state_) {
      case State::Start: {
        const std::size_t i = detail::skip_json_space(text, 0);
        const std::string_view rest = text.substr(i);
        if (rest.starts_with(kPythonTag)) {
          held_ = i + kPythonTag.size();
        } else if (!rest.empty() && rest[0] == '{') {
          held_ = i;
        } else if (kPythonTag.starts_with(rest)) {  // empty, or the tag's start
          if (at_end) give_content(out, text.size());
          return false;
        } else {
          state_ = State::Text;
          return true;
        }
        scanning_ = false;
        state_ = State::Call;
        return true;
      }
      case State::Call: {
        if (!scanning_) {
          const std::size_t a = detail::skip_json_space(text, held_);
          if (a == text.size()) {
            if (at_end) give_content(out, text.size());
            return false;
          }
          if (text[a] != '{') {
            state_ = State::Text;
            return true;
          }
          scanning_ = true;
          value_at_ = a;
          extent_ = detail::JsonExtent(a);
        }
        const std::size_t end = extent_.scan(text);
        if (end == std::string::npos) {
          if (at_end) give_content(out, text.size());
          return false;
        }
        scanning_ = false;
        const json value = json::parse(text.substr(value_at_, end - value_at_), nullptr, false);
        const bool has_parameters = value.is_object() && value.contains("parameters");
        const std::string_view key = has_parameters ? "parameters" : "arguments";
        if (!valid_call(value, key)) {
          state_ = State::Text;
          return true;
        }
        buffer_.erase(0, end);
        give_call(out, value, key);
        state_ = State::AfterCall;
        return true;
      }
      case State::AfterCall: {
        buffer_.erase(0, detail::skip_json_space(text, 0));
        if (buffer_.empty()) return false;
        if (buffer_[0] == ';') {
          held_ = 1;
          state_ = State::Call;
        } else {
          state_ = State::Text;
        }
        return true;
      }
      case State::Text: give_content(out, text.size()); return false;
      default: return false;
    }
  }
};

// The whole output at once: the same parser, fed once and finished.
inline ParsedToolCalls parse_tool_calls(std::string_view text, ToolCallFormat format, ToolCallIdGenerator ids = {}) {
  ToolCallParser parser(format, std::move(ids));
  ParsedToolCalls result;
  auto take = [&](ToolCallDelta delta) {
    result.content += delta.content;
    for (auto& c : delta.tool_calls) result.tool_calls.push_back(std::move(c.call));
  };
  take(parser.feed(text));
  take(parser.finish());
  return result;
}

}  // namespace maskgen

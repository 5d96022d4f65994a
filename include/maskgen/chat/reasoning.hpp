#pragma once
// Qwen3's reasoning block, `<think>...</think>`, split off the output into OpenAI-style
// `reasoning_content` and `content`: all at once (split_reasoning) or while the text streams in
// (ReasoningParser).
//
//   maskgen::ReasoningParser parser({.starts_in_reasoning = maskgen::prompt_opens_reasoning(prompt)});
//   for (...) { auto d = parser.feed(piece); send(d.reasoning, d.content); }
//   auto rest = parser.finish();
//
// Rules (split = true, the default):
//   * The output opens reasoning when it starts with `<think>` (after whitespace), as Qwen3 does
//     under its original template, or when the prompt already ended inside it
//     (starts_in_reasoning: newer Qwen3 templates end the generation prompt with "<think>\n";
//     prompt_opens_reasoning() tells). With the flag, a `<think>` the model writes anyway at the
//     start is skipped too.
//   * Once opened, the text up to the first `</think>` is reasoning, the text after it is content
//     (later `<think>`/`</think>` are plain content). No `</think>` at all: everything is reasoning
//     (an output cut short while thinking).
//   * Not opened (no flag, no leading `<think>`): everything is content, verbatim, even a
//     `</think>` further on. (vLLM's qwen3 parser would call the text before such a `</think>`
//     reasoning; llama-server agrees with this rule.) So Qwen3 with enable_thinking=false, whose
//     prompt ends with "<think>\n\n</think>\n\n", is all content.
//   * Newlines: reasoning loses its leading and trailing "\n" and content its leading "\n" — the
//     inverse of what the Qwen3 template writes, `'<think>\n' + reasoning_content.strip('\n') +
//     '\n</think>\n\n' + content.lstrip('\n')`, and the same split the template itself makes of an
//     assistant message whose content holds `</think>`. Only "\n" is stripped, nothing else.
//     keep_newlines = true keeps both parts exactly as written, which is what vLLM's qwen3
//     reasoning parser returns (it partitions at `</think>` and strips nothing: vllm/reasoning/
//     qwen3_reasoning_parser.py); llama-server instead strips all whitespace around the reasoning
//     and before the content.
// split = false (the inline mode): nothing is split; all text is content, exactly as written.
//
// Streaming holds back what may still change meaning: the start of a marker split across chunks
// ("</thi" + "nk>"), and with newline stripping the newlines that may turn out to be the last ones
// before `</think>`. A marker is never given out as text. For every way of cutting a text into
// chunks, the joined reasoning and content equal split_reasoning's (the same parser fed once).
// The content can go on into a ToolCallParser (tool_calls.hpp), piece by piece.

#include <cstddef>
#include <string>
#include <string_view>

#include "../error.hpp"
#include "markers.hpp"

namespace maskgen {

struct ReasoningOptions {
  bool starts_in_reasoning = false;  // the prompt ends inside <think> (see prompt_opens_reasoning)
  bool split = true;                 // false: inline, all text is content, verbatim
  bool keep_newlines = false;        // true: no "\n" stripped around the reasoning and content (vLLM)
};

struct ReasoningSplit {
  std::string reasoning;  // reasoning_content
  std::string content;    // the reply
};

// Whether a rendered prompt leaves the model inside a reasoning block: it ends with `<think>`,
// optionally followed by newlines and spaces (newer Qwen3 templates end with "<think>\n").
inline bool prompt_opens_reasoning(std::string_view prompt) {
  std::size_t end = prompt.size();
  while (end > 0 && detail::is_json_space(prompt[end - 1])) --end;
  return prompt.substr(0, end).ends_with("<think>");
}

// The streaming parser: one per output (per choice). Not thread-safe; cheap to make.
class ReasoningParser {
 public:
  explicit ReasoningParser(ReasoningOptions options = {}) : options_(options) {}

  // The next piece of the output text.
  ReasoningSplit feed(std::string_view text) {
    if (finished_) throw argument_error("ReasoningParser::feed: the output was already finished (finish() was called)");
    buffer_.append(text);
    ReasoningSplit out;
    run(false, out);
    return out;
  }

  // The end of the output: everything still held.
  ReasoningSplit finish() {
    if (finished_) throw argument_error("ReasoningParser::finish: called twice");
    finished_ = true;
    ReasoningSplit out;
    run(true, out);
    return out;
  }

 private:
  static constexpr std::string_view kOpen = "<think>";
  static constexpr std::string_view kClose = "</think>";
  enum class State { Start, Reasoning, Content, Plain };  // Plain: never opened, verbatim

  ReasoningOptions options_;
  State state_ = State::Start;
  bool leading_ = true;   // no character of the current part given out yet
  std::string buffer_;    // text received and not yet given out or dropped
  bool finished_ = false;

  void give(std::string& to, std::size_t n) {
    to.append(buffer_, 0, n);
    buffer_.erase(0, n);
  }

  // Drops the newlines at the start of a part; false while nothing else has arrived.
  bool drop_leading_newlines() {
    if (!leading_ || options_.keep_newlines) return true;
    const std::size_t first = buffer_.find_first_not_of('\n');
    buffer_.erase(0, first == std::string::npos ? buffer_.size() : first);
    if (buffer_.empty()) return false;
    leading_ = false;
    return true;
  }

  std::size_t newline_run_start(std::size_t end) const {
    if (options_.keep_newlines) return end;
    while (end > 0 && buffer_[end - 1] == '\n') --end;
    return end;
  }

  void run(bool at_end, ReasoningSplit& out) {
    if (!options_.split) {
      give(out.content, buffer_.size());
      return;
    }
    while (step(at_end, out)) {
    }
  }

  bool step(bool at_end, ReasoningSplit& out) {
    switch (state_) {
      case State::Start: {
        const std::size_t i = detail::skip_json_space(buffer_, 0);
        const std::string_view rest = std::string_view(buffer_).substr(i);
        if (rest.starts_with(kOpen)) {
          buffer_.erase(0, i + kOpen.size());
          state_ = State::Reasoning;
        } else if (kOpen.starts_with(rest) && !at_end) {  // empty, or the marker's start
          return false;
        } else {
          state_ = options_.starts_in_reasoning ? State::Reasoning : State::Plain;
        }
        leading_ = true;
        return true;
      }
      case State::Reasoning: {
        if (!drop_leading_newlines()) return false;
        const std::size_t p = buffer_.find(kClose);
        if (p != std::string::npos) {
          give(out.reasoning, newline_run_start(p));
          buffer_.erase(0, buffer_.find(kClose) + kClose.size());  // the newlines before it, and the marker
          state_ = State::Content;
          leading_ = true;
          return true;
        }
        const std::size_t hold = at_end ? buffer_.size() : detail::partial_marker_start(buffer_, kClose);
        give(out.reasoning, newline_run_start(hold));
        if (at_end) buffer_.clear();  // the last newlines of reasoning that never closed
        return false;
      }
      case State::Content: {
        if (!drop_leading_newlines()) return false;
        give(out.content, buffer_.size());
        return false;
      }
      case State::Plain: give(out.content, buffer_.size()); return false;
    }
    return false;
  }
};

// The whole output at once: the same parser, fed once and finished.
inline ReasoningSplit split_reasoning(std::string_view text, const ReasoningOptions& options = {}) {
  ReasoningParser parser(options);
  ReasoningSplit result = parser.feed(text);
  const ReasoningSplit rest = parser.finish();
  result.reasoning += rest.reasoning;
  result.content += rest.content;
  return result;
}

}  // namespace maskgen

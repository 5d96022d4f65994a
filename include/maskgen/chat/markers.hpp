#pragma once
// Small text helpers shared by the streaming output parsers (tool_calls.hpp, reasoning.hpp): where
// a marker split across chunks may begin, whitespace runs, and the end of a JSON object or array
// that arrives piece by piece.

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace maskgen::detail {

// JSON's whitespace (RFC 8259): space, tab, line feed, carriage return.
inline bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Where the longest suffix of `text` that is a proper prefix of `marker` begins; text.size() when
// there is none. Text from there on may still turn into the marker once more text arrives.
inline std::size_t partial_marker_start(std::string_view text, std::string_view marker) {
  const std::size_t longest = std::min(text.size(), marker.size() - 1);
  for (std::size_t k = longest; k > 0; --k) {
    if (text.substr(text.size() - k) == marker.substr(0, k)) return text.size() - k;
  }
  return text.size();
}

// The start of the run of JSON whitespace that ends at `end` (end itself when text[end - 1] is not
// whitespace).
inline std::size_t space_run_start(std::string_view text, std::size_t end) {
  while (end > 0 && is_json_space(text[end - 1])) --end;
  return end;
}

// The first position at or after `from` that is not JSON whitespace (text.size() if none).
inline std::size_t skip_json_space(std::string_view text, std::size_t from) {
  while (from < text.size() && is_json_space(text[from])) ++from;
  return from;
}

// Finds where a JSON object or array ends, over text that grows between calls: brackets are
// counted outside strings (a string's escapes honoured), so `{"a": "}"}` ends at its last brace.
// Mismatched brackets are left for the JSON parser to refuse.
class JsonExtent {
 public:
  JsonExtent() = default;
  explicit JsonExtent(std::size_t start) : pos_(start) {}  // start: the position of '{' or '['

  // One past the closing bracket, or npos while the value is still open. `text` must be the same
  // text as before with more appended.
  std::size_t scan(std::string_view text) {
    for (; pos_ < text.size(); ++pos_) {
      const char c = text[pos_];
      if (in_string_) {
        if (escaped_) escaped_ = false;
        else if (c == '\\') escaped_ = true;
        else if (c == '"') in_string_ = false;
      } else if (c == '"') {
        in_string_ = true;
      } else if (c == '{' || c == '[') {
        ++depth_;
      } else if ((c == '}' || c == ']') && --depth_ == 0) {
        return ++pos_;
      }
    }
    return std::string::npos;
  }

 private:
  std::size_t pos_ = 0;
  std::size_t depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
};

}  // namespace maskgen::detail

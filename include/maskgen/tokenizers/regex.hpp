#pragma once
// A compiled pre-tokenizer regex (PCRE2, JIT-compiled), and the pattern rewrite that makes PCRE2
// read a Hugging Face pattern the way Oniguruma (the engine behind tokenizers) reads it.
//
// The one difference that matters for the byte-level families: with Unicode properties on, PCRE2's
// \s also matches U+180E (MONGOLIAN VOWEL SEPARATOR), which is not White_Space since Unicode 6.3,
// while Oniguruma's \s is exactly White_Space. The rewrite spells \s and \S out as White_Space
// classes, inside and outside brackets.

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <string_view>

#include "../error.hpp"

namespace maskgen::detail {

inline constexpr std::string_view white_space_members =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}"
    "\\x{3000}";

// `pattern` with \s and \S replaced by explicit White_Space classes. Escapes other than these
// are copied as they are; \Q...\E quoting is refused (no tokenizer uses it).
inline std::string rewrite_white_space(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      ++i;
      if (e == 'Q') throw format_error("pre-tokenizer regex: \\Q...\\E quoting is not supported");
      if (e == 's') {
        out += in_class ? std::string(white_space_members) : "[" + std::string(white_space_members) + "]";
      } else if (e == 'S') {
        if (in_class) {
          throw format_error("pre-tokenizer regex: \\S inside a character class is not supported");
        }
        out += "[^" + std::string(white_space_members) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

// A regex compiled once and shared (read-only) by every thread; each search gets its own match
// data. Subjects must be valid UTF-8 (the tokenizer repairs its input first).
class Regex {
 public:
  enum class Kind { Pattern, Literal };

  Regex(std::string_view pattern, Kind kind, std::string_view what) {
    const std::string source = kind == Kind::Pattern ? rewrite_white_space(pattern) : std::string(pattern);
    int code = 0;
    PCRE2_SIZE offset = 0;
    // PCRE2_LITERAL allows PCRE2_UTF but not PCRE2_UCP (which only matters to classes anyway).
    const std::uint32_t options = PCRE2_UTF | (kind == Kind::Literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), options, &code,
                                   &offset, nullptr);
    if (re == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(code, message, sizeof message);
      throw format_error(cat(what, ": the regex ", std::string(pattern), " does not compile (at offset ",
                             offset, "): ", reinterpret_cast<const char*>(message)));
    }
    code_ = std::shared_ptr<pcre2_code>(re, CodeFree{});
    jit_ = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
  }

  // Calls on_piece(begin, end, matched) for consecutive pieces that cover `text`: the matches
  // and the gaps between them (Hugging Face's Split with the Isolated behaviour). Empty matches
  // produce no piece.
  template <class OnPiece>
  void split(std::string_view text, OnPiece&& on_piece) const {
    Scratch& scratch = scratch_for_thread();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t start = 0, gap = 0;
    while (start <= text.size()) {
      const int rc = jit_ ? pcre2_jit_match(code_.get(), subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                                            scratch.data(code_.get()), scratch.context)
                          : pcre2_match(code_.get(), subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                                        scratch.data(code_.get()), scratch.context);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        throw error(cat("pre-tokenizer regex failed on a text of ", text.size(), " bytes: ",
                        reinterpret_cast<const char*>(message)));
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.match);
      const std::size_t begin = ovector[0], end = ovector[1];
      if (end == begin) {  // an empty match: step over one character
        if (begin >= text.size()) break;
        start = begin + 1;
        while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
        continue;
      }
      if (begin > gap) on_piece(gap, begin, false);
      on_piece(begin, end, true);
      gap = start = end;
    }
    if (gap < text.size()) on_piece(gap, text.size(), false);
  }

 private:
  struct CodeFree {
    void operator()(pcre2_code* c) const { pcre2_code_free(c); }
  };

  // One thread's match data and JIT stack (the default 32 KiB JIT stack is too small for long
  // runs of white space; this one grows to 16 MiB).
  struct Scratch {
    pcre2_match_context* context = nullptr;
    pcre2_jit_stack* stack = nullptr;
    pcre2_match_data* match = nullptr;
    std::uint32_t match_pairs = 0;

    Scratch() {
      context = pcre2_match_context_create(nullptr);
      stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
      if (context == nullptr || stack == nullptr) throw std::bad_alloc();
      pcre2_jit_stack_assign(context, nullptr, stack);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    ~Scratch() {
      pcre2_match_data_free(match);
      pcre2_jit_stack_free(stack);
      pcre2_match_context_free(context);
    }
    pcre2_match_data* data(const pcre2_code* code) {
      std::uint32_t pairs = 0;
      pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &pairs);
      pairs += 1;
      if (match == nullptr || match_pairs < pairs) {
        pcre2_match_data_free(match);
        match = pcre2_match_data_create(pairs, nullptr);
        if (match == nullptr) throw std::bad_alloc();
        match_pairs = pairs;
      }
      return match;
    }
  };

  static Scratch& scratch_for_thread() {
    thread_local Scratch scratch;
    return scratch;
  }

  std::shared_ptr<pcre2_code> code_{nullptr, CodeFree{}};
  bool jit_ = false;
};

}  // namespace maskgen::detail

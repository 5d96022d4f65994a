#pragma once
// The Unicode pieces the tokenizers need: repairing invalid UTF-8, NFC, and the character classes
// that Hugging Face tokenizers uses around added tokens (white space, word characters).
//
// Invalid UTF-8 is repaired the way Rust's String::from_utf8_lossy and Python's
// bytes.decode("utf-8", "replace") do it: every maximal subpart of an ill-formed sequence becomes
// one U+FFFD (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal Subparts").

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <utf8proc.h>

#include "../error.hpp"

namespace maskgen::unicode {

inline constexpr std::string_view replacement_character = "\xEF\xBF\xBD";  // U+FFFD

// The length of the well-formed UTF-8 sequence at the start of `s` (1 to 4), or the negated
// length of its maximal ill-formed subpart (-1 to -3): the bytes one U+FFFD replaces. `s` is
// not empty.
inline int sequence_length(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = b(0);
  if (lead < 0x80) return 1;
  int need;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return -1;  // a continuation byte, C0/C1 or F5..FF
  }
  for (int i = 1; i < need; ++i) {
    if (static_cast<std::size_t>(i) >= s.size()) return -i;
    const unsigned char c = b(static_cast<std::size_t>(i));
    if (i == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return -i;
  }
  return need;
}

// True when every byte of `s` belongs to a well-formed UTF-8 sequence.
inline bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    while (i + 8 <= s.size()) {  // eight ASCII bytes at a time
      std::uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if (word & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const int n = sequence_length(s.substr(i));
    if (n < 0) return false;
    i += static_cast<std::size_t>(n);
  }
  return true;
}

// Appends `s` to `out` with every maximal ill-formed subpart replaced by U+FFFD.
inline void append_repaired(std::string_view s, std::string& out) {
  std::size_t i = 0, clean = 0;  // s[clean, i) is well formed and not yet copied
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const int n = sequence_length(s.substr(i));
    if (n > 0) {
      i += static_cast<std::size_t>(n);
      continue;
    }
    out.append(s.substr(clean, i - clean));
    out.append(replacement_character);
    i += static_cast<std::size_t>(-n);
    clean = i;
  }
  out.append(s.substr(clean));
}

inline std::string repaired(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_repaired(s, out);
  return out;
}

// The number of bytes at the end of `s` that start a well-formed sequence but stop before its
// end (0 to 3): what a streaming decoder holds back until the next bytes arrive.
inline std::size_t incomplete_tail(std::string_view s) {
  for (std::size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const auto c = static_cast<unsigned char>(s[s.size() - back]);
    if (c < 0x80) return 0;
    if (c >= 0xC0) {  // a lead byte: incomplete if its sequence needs more than `back` bytes
      if (c < 0xC2 || c > 0xF4) return 0;  // never a lead byte of a well-formed sequence
      const int n = sequence_length(s.substr(s.size() - back));
      return n == -static_cast<int>(back) ? back : 0;
    }
  }
  return 0;
}

// Decodes the code point of the well-formed sequence at s[i] and advances i. Only for text
// that is known to be valid UTF-8.
inline char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto b = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[k])); };
  const char32_t lead = b(i);
  if (lead < 0x80) return ++i, lead;
  if (lead < 0xE0) return i += 2, ((lead & 0x1F) << 6) | (b(i - 1) & 0x3F);
  if (lead < 0xF0) return i += 3, ((lead & 0x0F) << 12) | ((b(i - 2) & 0x3F) << 6) | (b(i - 1) & 0x3F);
  i += 4;
  return ((lead & 0x07) << 18) | ((b(i - 3) & 0x3F) << 12) | ((b(i - 2) & 0x3F) << 6) | (b(i - 1) & 0x3F);
}

// The code point that ends just before s[end] (valid UTF-8 only); `end` > 0.
inline char32_t previous_code_point(std::string_view s, std::size_t end) {
  std::size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return next_code_point(s, start);
}

// Unicode's White_Space property (what Rust's regex and Oniguruma call \s).
inline bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// A word character as Rust's regex \w sees it: letters, marks, decimal digits, connector
// punctuation, letter numbers and the two join controls.
inline bool is_word_character(char32_t c) {
  if (c < 0x80) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  }
  if (c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

// `s` (valid UTF-8) in Normalization Form C. Text whose code points are all below U+0300 is
// already in NFC (nothing there decomposes or composes with what precedes it) and is returned
// as it is, without calling utf8proc.
inline void to_nfc(std::string_view s, std::string& out) {
  bool plain = true;
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0xCC) {  // lead bytes of U+0300 and above
      plain = false;
      break;
    }
  }
  if (plain) {
    out.assign(s);
    return;
  }
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                   &result, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(result, &std::free);
  if (n < 0) throw error(detail::cat("NFC normalization failed: ", utf8proc_errmsg(n)));
  out.assign(reinterpret_cast<const char*>(result), static_cast<std::size_t>(n));
}

}  // namespace maskgen::unicode

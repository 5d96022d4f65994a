#pragma once
// GPT-2's byte-level alphabet: every byte has a printable character that stands for it in the
// vocabulary (printable ASCII and most of Latin-1 stand for themselves; the other 68 bytes, space
// and control bytes among them, are U+0100 and up in byte order). A vocabulary entry is a string of
// such characters; maskgen keeps each entry as the raw bytes it stands for.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "unicode.hpp"

namespace maskgen::byte_level {

// The code point that stands for each byte.
inline const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

// The byte a code point stands for, or nullopt for a character outside the alphabet.
inline std::optional<unsigned char> char_to_byte(char32_t c) {
  static const std::array<std::int16_t, 324> table = [] {
    std::array<std::int16_t, 324> t;
    t.fill(-1);
    const auto& forward = byte_to_char();
    for (int b = 0; b < 256; ++b) t[forward[static_cast<std::size_t>(b)]] = static_cast<std::int16_t>(b);
    return t;
  }();
  if (c >= table.size() || table[c] < 0) return std::nullopt;
  return static_cast<unsigned char>(table[c]);
}

// The raw bytes a vocabulary string (valid UTF-8) stands for, or nullopt when one of its
// characters is outside the alphabet.
inline std::optional<std::string> to_bytes(std::string_view token) {
  std::string bytes;
  bytes.reserve(token.size());
  for (std::size_t i = 0; i < token.size();) {
    const auto b = char_to_byte(unicode::next_code_point(token, i));
    if (!b) return std::nullopt;
    bytes.push_back(static_cast<char>(*b));
  }
  return bytes;
}

// The vocabulary string that stands for `bytes` (the inverse of to_bytes).
inline std::string to_chars(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char byte : bytes) {
    const char32_t c = byte_to_char()[static_cast<unsigned char>(byte)];
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {  // every alphabet character is below U+0800: two bytes
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

}  // namespace maskgen::byte_level

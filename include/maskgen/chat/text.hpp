#pragma once
// Python's str methods over UTF-8, by code point, as the filters and string methods of the
// interpreter need them: character classes and case (from utf8proc), strip, split, replace.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <utf8proc.h>

#include "value.hpp"

namespace maskgen::jinja {

namespace text {

inline bool is_space(char32_t c) {  // Python's str.isspace()
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
inline std::vector<char32_t> decode(std::string_view s) {
  std::vector<char32_t> out;
  for (std::size_t i = 0; i < s.size();) out.push_back(decode_at(s, i));
  return out;
}
inline std::string encode(const std::vector<char32_t>& cps, std::size_t b = 0, std::size_t e = std::string::npos) {
  std::string out;
  e = std::min(e, cps.size());
  for (std::size_t i = b; i < e; ++i) append_utf8(out, cps[i]);
  return out;
}
inline bool is_cased_upper(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_LU; }
inline bool is_cased_lower(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_LL; }
inline bool is_alpha(char32_t c) {
  const auto k = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
inline bool is_digit(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ND; }
inline char32_t upper(char32_t c) { return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))); }
inline char32_t lower(char32_t c) { return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }
inline bool is_cased(char32_t c) { return upper(c) != c || lower(c) != c || is_cased_upper(c) || is_cased_lower(c); }

template <class F>
std::string map_chars(std::string_view s, F f) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) append_utf8(out, f(decode_at(s, i)));
  return out;
}
inline std::string to_upper(std::string_view s) { return map_chars(s, upper); }
inline std::string to_lower(std::string_view s) { return map_chars(s, lower); }
inline std::string title(std::string_view s) {  // Python's str.title()
  std::string out;
  bool previous_cased = false;
  for (std::size_t i = 0; i < s.size();) {
    const char32_t c = decode_at(s, i);
    append_utf8(out, previous_cased ? lower(c) : upper(c));
    previous_cased = is_cased(c);
  }
  return out;
}
inline std::string capitalize(std::string_view s) {
  std::string out;
  bool first = true;
  for (std::size_t i = 0; i < s.size();) {
    const char32_t c = decode_at(s, i);
    append_utf8(out, first ? upper(c) : lower(c));
    first = false;
  }
  return out;
}
// Python's strip family: chars unset strips Python's whitespace. Scans code points in from each
// end only as far as it strips (contents are long; what is stripped is short).
inline std::string strip(std::string_view s, bool left, bool right, const std::optional<std::string>& chars) {
  const auto set = chars ? decode(*chars) : std::vector<char32_t>{};
  auto strip_it = [&](char32_t c) {
    return chars ? std::find(set.begin(), set.end(), c) != set.end() : is_space(c);
  };
  std::size_t b = 0, e = s.size();
  if (left) {
    for (std::size_t next = b; b < e; b = next) {
      if (!strip_it(decode_at(s, next))) break;
    }
  }
  if (right) {
    while (e > b) {
      std::size_t start = e - 1;
      while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      std::size_t at = start;
      if (!strip_it(decode_at(s, at))) break;
      e = start;
    }
  }
  return std::string(s.substr(b, e - b));
}
// Python's str.split(sep, maxsplit) and rsplit.
inline std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, std::int64_t maxsplit,
                                      bool from_right) {
  std::vector<std::string> parts;
  if (sep) {
    if (sep->empty()) throw template_error("empty separator");
    if (!from_right) {
      std::size_t start = 0;
      while (maxsplit < 0 || static_cast<std::int64_t>(parts.size()) < maxsplit) {
        const auto at = s.find(*sep, start);
        if (at == std::string_view::npos) break;
        parts.emplace_back(s.substr(start, at - start));
        start = at + sep->size();
      }
      parts.emplace_back(s.substr(start));
    } else {
      std::size_t end = s.size();
      std::vector<std::string> rev;
      while (maxsplit < 0 || static_cast<std::int64_t>(rev.size()) < maxsplit) {
        if (end < sep->size()) break;
        const auto at = s.rfind(*sep, end - sep->size());
        if (at == std::string_view::npos) break;
        rev.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
        end = at;
      }
      rev.emplace_back(s.substr(0, end));
      parts.assign(rev.rbegin(), rev.rend());
    }
    return parts;
  }
  const auto cps = decode(s);
  if (!from_right) {
    std::size_t i = 0;
    while (true) {
      while (i < cps.size() && is_space(cps[i])) ++i;
      if (i >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<std::int64_t>(parts.size()) == maxsplit) {
        std::size_t e = cps.size();
        while (e > i && is_space(cps[e - 1])) --e;
        parts.push_back(encode(cps, i, e));
        break;
      }
      std::size_t j = i;
      while (j < cps.size() && !is_space(cps[j])) ++j;
      parts.push_back(encode(cps, i, j));
      i = j;
    }
    return parts;
  }
  std::size_t e = cps.size();
  std::vector<std::string> rev;
  while (true) {
    while (e > 0 && is_space(cps[e - 1])) --e;
    if (e == 0) break;
    if (maxsplit >= 0 && static_cast<std::int64_t>(rev.size()) == maxsplit) {
      std::size_t b = 0;
      while (b < e && is_space(cps[b])) ++b;
      rev.push_back(encode(cps, b, e));
      break;
    }
    std::size_t b = e;
    while (b > 0 && !is_space(cps[b - 1])) --b;
    rev.push_back(encode(cps, b, e));
    e = b;
  }
  parts.assign(rev.rbegin(), rev.rend());
  return parts;
}
// str.replace; a result longer than `max_size` bytes fails.
inline std::string replace(std::string_view s, std::string_view from, std::string_view to, std::int64_t count,
                           std::size_t max_size) {
  std::string out;
  auto check = [&] {
    if (out.size() > max_size) throw template_error(detail::cat("replace: a result of more than ", max_size, " bytes"));
  };
  if (from.empty()) {  // Python inserts `to` before every character and at the end
    std::int64_t done = 0;
    for (std::size_t i = 0; i < s.size();) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
        check();
      }
      const std::size_t b = i;
      decode_at(s, i);
      out += s.substr(b, i - b);
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  std::size_t start = 0;
  for (std::int64_t done = 0; count < 0 || done < count; ++done) {
    const auto at = s.find(from, start);
    if (at == std::string_view::npos) break;
    out += s.substr(start, at - start);
    out += to;
    check();
    start = at + from.size();
  }
  out += s.substr(start);
  return out;
}

}  // namespace text

}  // namespace maskgen::jinja

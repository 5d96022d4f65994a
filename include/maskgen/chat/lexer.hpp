#pragma once
// The Jinja lexer: template text into text pieces and the tokens of {{ expressions }} and
// {% statements %}, with whitespace control applied as jinja2 applies it under transformers'
// settings (trim_blocks, lstrip_blocks; keep_trailing_newline off; every line ending read as \n).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "value.hpp"

namespace maskgen::jinja {

struct Token {
  enum class Kind { Name, String, Integer, Float, Operator, End };
  Kind kind = Kind::End;
  std::string text;  // the name, the decoded string, the number's digits or the operator
  int line = 1;
};

// One piece of the template: text to output, or the tokens of an {{ expression }} or a
// {% statement %} (ending in an End token).
struct Piece {
  enum class Kind { Text, Expression, Statement };
  Kind kind = Kind::Text;
  std::string text;
  std::vector<Token> tokens;
  int line = 1;
};

[[noreturn]] inline void syntax_error(int line, std::string_view what) {
  throw template_error(detail::cat("template syntax error, line ", line, ": ", what));
}

namespace lexer_detail {

inline bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
inline bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A Python string literal's body after its opening quote; i ends past the closing quote.
inline std::string read_string(std::string_view s, std::size_t& i, int& line) {
  const char quote = s[i++];
  std::string out;
  while (true) {
    if (i >= s.size()) syntax_error(line, "unterminated string literal");
    const char c = s[i++];
    if (c == quote) return out;
    if (c == '\n') ++line;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i >= s.size()) syntax_error(line, "unterminated string literal");
    const char e = s[i++];
    auto hex = [&](int digits) {
      char32_t v = 0;
      for (int k = 0; k < digits; ++k) {
        if (i >= s.size()) syntax_error(line, "truncated escape in a string literal");
        const char h = s[i++];
        const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0) syntax_error(line, "bad hex digit in a string literal escape");
        v = v * 16 + static_cast<char32_t>(d);
      }
      if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) syntax_error(line, "escape names no Unicode scalar value");
      append_utf8(out, v);
    };
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '0': out += '\0'; break;
      case '\n': ++line; break;  // a line continuation
      case 'x': hex(2); break;
      case 'u': hex(4); break;
      case 'U': hex(8); break;
      default: out += '\\'; out += e;  // Python keeps unknown escapes as written
    }
  }
}

}  // namespace lexer_detail

// The tokens of one tag's inside, s[i, end): i is advanced to end.
inline std::vector<Token> tokenize_tag(std::string_view s, std::size_t i, std::size_t end, int& line) {
  using namespace lexer_detail;
  std::vector<Token> tokens;
  while (i < end) {
    const char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (c == '\n') ++line;
      ++i;
      continue;
    }
    Token t;
    t.line = line;
    if (is_name_start(c)) {
      const std::size_t b = i;
      while (i < end && is_name_char(s[i])) ++i;
      t.kind = Token::Kind::Name;
      t.text = std::string(s.substr(b, i - b));
    } else if (is_digit(c)) {
      const std::size_t b = i;
      bool is_float = false;
      while (i < end && (is_digit(s[i]) || s[i] == '_')) ++i;
      if (i + 1 < end && s[i] == '.' && is_digit(s[i + 1])) {
        is_float = true;
        ++i;
        while (i < end && (is_digit(s[i]) || s[i] == '_')) ++i;
      }
      if (i < end && (s[i] == 'e' || s[i] == 'E')) {
        std::size_t j = i + 1;
        if (j < end && (s[j] == '+' || s[j] == '-')) ++j;
        if (j < end && is_digit(s[j])) {
          is_float = true;
          i = j;
          while (i < end && is_digit(s[i])) ++i;
        }
      }
      t.kind = is_float ? Token::Kind::Float : Token::Kind::Integer;
      for (char d : s.substr(b, i - b)) {
        if (d != '_') t.text += d;
      }
    } else if (c == '\'' || c == '"') {
      t.kind = Token::Kind::String;
      t.text = read_string(s.substr(0, end), i, line);
    } else {
      static constexpr std::string_view two[] = {"//", "**", "==", "!=", "<=", ">="};
      t.kind = Token::Kind::Operator;
      for (auto op : two) {
        if (s.substr(i, 2) == op) t.text = std::string(op);
      }
      if (t.text.empty()) {
        if (std::string_view("+-*/%~<>=()[]{},.:|").find(c) == std::string_view::npos) {
          syntax_error(line, detail::cat("unexpected character '", c, "'"));
        }
        t.text = std::string(1, c);
      }
      i += t.text.size();
    }
    tokens.push_back(std::move(t));
  }
  tokens.push_back(Token{Token::Kind::End, "", line});
  return tokens;
}

// The whole template into pieces. Whitespace control: `{%-`/`{{-`/`{#-` strip the whitespace
// before the tag, `-%}`/`-}}`/`-#}` the whitespace after it; lstrip_blocks strips the spaces and
// tabs between a line's start and a {% or {# tag (not after `{%+`); trim_blocks drops the newline
// right after a %} or #} (not after `+%}`). A single trailing newline of the template is dropped.
inline std::vector<Piece> lex(std::string_view input) {
  std::string s;
  s.reserve(input.size());
  for (std::size_t i = 0; i < input.size(); ++i) {  // \r\n and \r read as \n, as jinja2 does
    if (input[i] == '\r') {
      s += '\n';
      if (i + 1 < input.size() && input[i + 1] == '\n') ++i;
    } else {
      s += input[i];
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();

  std::vector<Piece> pieces;
  int line = 1;
  std::size_t i = 0;
  bool line_starting = true;  // the previous tag's match ended a line (or nothing came before)
  // What a tag's end consumes after it: all whitespace after `-`, else (trim_blocks) one newline
  // after %} and #} without `+`.
  auto consume_after = [&](char right, bool block) {
    const std::size_t from = i;
    if (right == '-') {
      while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
    } else if (block && right != '+' && i < s.size() && s[i] == '\n') {
      ++i;
    }
    for (std::size_t k = from; k < i; ++k) line += s[k] == '\n';
    line_starting = i > from && s[i - 1] == '\n';
  };
  auto add_text = [&](std::string text, int text_line) {
    if (!text.empty()) pieces.push_back(Piece{Piece::Kind::Text, std::move(text), {}, text_line});
  };
  // The text before a tag, with the tag's left whitespace control applied.
  auto text_before = [&](std::size_t open, char kind, char modifier) {
    std::string text(s.substr(i, open - i));
    if (modifier == '-') {
      const auto e = text.find_last_not_of(" \t\n");
      text.erase(e == std::string::npos ? 0 : e + 1);
    } else if (kind != '{' && modifier != '+') {  // lstrip_blocks
      const auto nl = text.find_last_of('\n');
      const std::size_t line_start = nl == std::string::npos ? 0 : nl + 1;
      if ((line_start > 0 || line_starting) && text.find_first_not_of(" \t", line_start) == std::string::npos) {
        text.erase(line_start);
      }
    }
    return text;
  };
  while (i < s.size()) {
    std::size_t open = i;
    for (;; ++open) {
      open = s.find('{', open);
      if (open == std::string::npos || open + 1 >= s.size()) {
        open = std::string::npos;
        break;
      }
      const char k = s[open + 1];
      if (k == '{' || k == '%' || k == '#') break;
    }
    const int text_line = line;
    if (open == std::string::npos) {
      add_text(std::string(s.substr(i)), text_line);
      break;
    }
    const char kind = s[open + 1];
    const char modifier = open + 2 < s.size() ? s[open + 2] : '\0';
    for (std::size_t k = i; k < open; ++k) line += s[k] == '\n';
    add_text(text_before(open, kind, modifier), text_line);
    const std::size_t body = open + 2 + (modifier == '-' || modifier == '+' ? 1 : 0);
    const int tag_line = line;
    if (kind == '#') {
      const std::size_t close = s.find("#}", body);
      if (close == std::string::npos) syntax_error(tag_line, "unterminated comment");
      for (std::size_t k = body; k < close; ++k) line += s[k] == '\n';
      i = close + 2;
      consume_after(close > body ? s[close - 1] : '\0', true);
      continue;
    }
    const std::string_view closer = kind == '{' ? "}}" : "%}";
    std::size_t close = body;  // the first closer outside string literals
    for (char quote = 0; close < s.size(); ++close) {
      const char c = s[close];
      if (quote) {
        if (c == '\\') ++close;
        else if (c == quote) quote = 0;
      } else if (c == '\'' || c == '"') {
        quote = c;
      } else if (s.compare(close, 2, closer) == 0) {
        break;
      }
    }
    if (close >= s.size()) syntax_error(tag_line, kind == '{' ? "unterminated {{ expression" : "unterminated {% tag");
    char right = close > body ? s[close - 1] : '\0';
    std::size_t inner_end = close;
    if (right == '-' || right == '+') --inner_end;
    Piece piece;
    piece.kind = kind == '{' ? Piece::Kind::Expression : Piece::Kind::Statement;
    piece.line = tag_line;
    piece.tokens = tokenize_tag(s, body, inner_end, line);
    i = close + 2;
    consume_after(right, kind == '%');
    const bool raw = piece.kind == Piece::Kind::Statement && piece.tokens.size() == 2 &&
                     piece.tokens[0].kind == Token::Kind::Name && piece.tokens[0].text == "raw";
    if (!raw) {
      pieces.push_back(std::move(piece));
      continue;
    }
    // {% raw %}: everything up to {% endraw %} is text.
    for (std::size_t search = i;;) {
      const std::size_t tag = s.find("{%", search);
      if (tag == std::string::npos) syntax_error(tag_line, "{% raw %} without {% endraw %}");
      std::size_t k = tag + 2;
      const char left = k < s.size() ? s[k] : '\0';
      if (left == '-' || left == '+') ++k;
      while (k < s.size() && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n')) ++k;
      if (s.compare(k, 6, "endraw") != 0) {
        search = tag + 2;
        continue;
      }
      std::size_t e = k + 6;
      while (e < s.size() && (s[e] == ' ' || s[e] == '\t' || s[e] == '\n')) ++e;
      const char r = e < s.size() && (s[e] == '-' || s[e] == '+') ? s[e++] : '\0';
      if (s.compare(e, 2, "%}") != 0) syntax_error(line, "malformed {% endraw %}");
      const int raw_line = line;
      add_text(text_before(tag, '%', left), raw_line);
      for (std::size_t c = i; c < e + 2; ++c) line += s[c] == '\n';
      i = e + 2;
      consume_after(r, true);
      break;
    }
  }
  return pieces;
}

}  // namespace maskgen::jinja

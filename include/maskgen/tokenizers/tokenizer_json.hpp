#pragma once
// TokenizerJsonBackend: a Hugging Face tokenizer.json with a BPE model, encoding and decoding
// exactly as the tokenizers library does. Two families:
//   byte-level     (Qwen2, Qwen2.5, Qwen3, Llama 3, GPT-2, gpt-oss, DeepSeek V3): a ByteLevel
//                  pre-tokenizer and decoder; pieces are bytes written in the byte alphabet
//   SentencePiece  (Llama 2, Mistral up to v0.3, TinyLlama, Phi-3, Gemma 3): pieces are UTF-8 with
//   style          "▁" for a space, characters without a piece fall back to <0xHH> byte pieces
//
// What it reads, and everything else is refused at load with an unsupported_error naming the component:
//   model          BPE (vocab, merges as "a b" strings or [a, b] pairs, ignore_merges, unk_token,
//                  fuse_unk, byte_fallback (not with ByteLevel); no dropout, no subword prefix or
//                  word suffix)
//   normalizer     null, NFC, Prepend, Replace (a String pattern), or a Sequence of those
//   pre_tokenizer  null; ByteLevel (add_prefix_space, use_regex: GPT-2's own regex); Split (a regex
//                  or a string; behavior Isolated, MergedWithPrevious or MergedWithNext; invert);
//                  Metaspace (replacement, prepend_scheme always/first/never, split); or a Sequence
//                  of those, where ByteLevel can only come last
//   post_processor null, ByteLevel, TemplateProcessing (at most one special token before and one
//                  after the text; pair templates are not used), or a Sequence of those
//   decoder        ByteLevel (with a ByteLevel pre-tokenizer, and only then); else Replace (a String
//                  pattern), ByteFallback, Fuse, Strip, Metaspace, or a Sequence of those
//   added_tokens   special or not, lstrip, rstrip, single_word, normalized (a normalized token is
//                  matched in the normalized text, as its content normalized by the normalizer)
// tokenizer_config.json, when given, names the bos/eos/pad/unk tokens, as transformers reads it.
// Whether BOS/EOS are added by default is the post-processor's decision alone: transformers 5 adds
// what TemplateProcessing adds and ignores add_bos_token / add_eos_token for these tokenizers
// (tests/data/bpe/bpe_add_bos_rules.json records it).
//
// Encoding a text: invalid UTF-8 is first repaired (each maximal ill-formed subpart becomes
// U+FFFD, as Python's decode(errors="replace") does: the ids are those tokenizers gives for that
// repaired string); added tokens written in the text are cut out first (leftmost, longest) and
// never split; each piece between them is normalized on its own (so Llama 2's Prepend("▁") puts
// a "▁" after every special token, as tokenizers does), split by the pre-tokenizer, and merged by
// BPE. Byte-level decoding joins the bytes of every token and repairs the result the same way, so
// decode never returns invalid UTF-8; decode_bytes gives the raw bytes for streaming. The other
// family decodes through its decoder chain on the tokens' strings, as tokenizers does (a run of
// <0xHH> pieces that is not valid UTF-8 as a whole becomes one U+FFFD per piece), and has no raw
// bytes (decode_bytes gives nullopt; DecodeStream then decodes a window of ids).
//
// Loading: the vocabulary and merges, nearly all of a large file, are read by a scanner of their
// own (detail::read_model_tables); the rest of the document is parsed by nlohmann_json. A file
// the scanner does not follow is parsed whole, which gives the same tables or names the error.

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../detail/files.hpp"
#include "../error.hpp"
#include "bpe.hpp"
#include "byte_level.hpp"
#include "regex.hpp"
#include "unicode.hpp"

namespace maskgen {

// One entry of tokenizer.json's added_tokens.
struct AddedToken {
  std::int32_t id = 0;
  std::string content;       // matched in text as it is written
  bool special = false;      // dropped by skip_special_tokens
  bool lstrip = false;       // the match takes the white space before it
  bool rstrip = false;       // the match takes the white space after it
  bool single_word = false;  // matched only where no word character touches it
  bool normalized = false;   // matched in the normalized text instead of the raw text
};

namespace detail {

// Finds added tokens in text: the leftmost match, the longest one there, then on after it
// (the order of tokenizers' Aho-Corasick matcher with MatchKind::LeftmostLongest). A token is
// matched as its pattern: its content, or for a normalized token its content normalized.
class AddedTokenMatcher {
 public:
  void add(const AddedToken& token, std::string pattern) {
    if (pattern.empty()) return;
    entries_.push_back({std::move(pattern), &token});
  }

  // Builds the index; call once, after the last add().
  void finish() {
    by_pattern_.reserve(entries_.size());
    for (const Entry& e : entries_) {
      by_pattern_.emplace(e.pattern, e.token);  // a pattern given twice keeps its first token
      auto& lengths = lengths_[static_cast<unsigned char>(e.pattern[0])];
      if (std::find(lengths.begin(), lengths.end(), e.pattern.size()) == lengths.end()) lengths.push_back(e.pattern.size());
    }
    for (auto& lengths : lengths_) std::sort(lengths.begin(), lengths.end(), std::greater<>{});  // longest first
  }

  bool empty() const { return entries_.empty(); }

  // Calls on_piece(begin, end, token or nullptr) for consecutive pieces covering `text`.
  template <class OnPiece>
  void split(std::string_view text, OnPiece&& on_piece) const {
    if (entries_.empty()) {
      on_piece(std::size_t{0}, text.size(), nullptr);
      return;
    }
    std::size_t done = 0;  // text[0, done) has been handed out
    std::size_t pos = 0;   // where the search for the next match starts
    while (pos < text.size()) {
      const AddedToken* found = nullptr;
      std::size_t length = 0;
      for (const std::size_t n : lengths_[static_cast<unsigned char>(text[pos])]) {
        if (n > text.size() - pos) continue;
        if (const auto it = by_pattern_.find(text.substr(pos, n)); it != by_pattern_.end()) {
          found = it->second;
          length = n;
          break;
        }
      }
      if (found == nullptr) {
        ++pos;
        continue;
      }
      std::size_t begin = pos, end = pos + length;
      pos = end;  // the next search starts after this match, kept or not
      if (found->single_word && !is_single_word(text, begin, end)) continue;
      if (found->lstrip) begin = std::max(done, begin - white_space_before(text.substr(0, begin)));
      if (found->rstrip) end += white_space_after(text.substr(end));
      if (begin > done) on_piece(done, begin, nullptr);
      on_piece(begin, end, found);
      done = std::max(done, end);
      pos = std::max(pos, done);
    }
    if (done < text.size() || text.empty()) on_piece(done, text.size(), nullptr);
  }

 private:
  static bool is_single_word(std::string_view text, std::size_t begin, std::size_t end) {
    const bool before = begin == 0 || !unicode::is_word_character(unicode::previous_code_point(text, begin));
    std::size_t i = end;
    const bool after = end == text.size() || !unicode::is_word_character(unicode::next_code_point(text, i));
    return before && after;
  }
  static std::size_t white_space_before(std::string_view s) {
    std::size_t n = s.size();
    while (n > 0) {
      std::size_t start = n - 1;
      while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      std::size_t i = start;
      if (!unicode::is_white_space(unicode::next_code_point(s, i))) break;
      n = start;
    }
    return s.size() - n;
  }
  static std::size_t white_space_after(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
      std::size_t next = i;
      if (!unicode::is_white_space(unicode::next_code_point(s, next))) break;
      i = next;
    }
    return i;
  }

  struct Entry {
    std::string pattern;
    const AddedToken* token;
  };
  std::vector<Entry> entries_;                                            // in the file's order
  std::unordered_map<std::string_view, const AddedToken*> by_pattern_;    // views into entries_
  std::array<std::vector<std::size_t>, 256> lengths_;                     // pattern lengths by first byte, longest first
};

// One normalizer step.
struct NormalizerStep {
  enum class Kind { Nfc, Prepend, Replace } kind = Kind::Nfc;
  std::string from, to;  // Replace: every `from` becomes `to`; Prepend: `to` before a non-empty text
};

// One pre-tokenizer step.
struct PreTokenizerStep {
  enum class Kind { Split, ByteLevel, Metaspace } kind = Kind::Split;
  // Split: what a match becomes (Isolated: a piece of its own; MergedWithPrevious: the end of the
  // piece before it; MergedWithNext: the start of the piece after it).
  enum class Behavior { Isolated, MergedWithPrevious, MergedWithNext } behavior = Behavior::Isolated;
  enum class Prepend { Always, First, Never } prepend = Prepend::Always;  // Metaspace's prepend_scheme
  std::shared_ptr<const Regex> regex;  // Split's pattern, ByteLevel's GPT-2 regex (use_regex), Metaspace's replacement
  bool invert = false;                 // Split: the pattern marks the pieces, not the delimiters
  bool add_prefix_space = false;       // ByteLevel: a space before every piece that lacks one
  std::string replacement;             // Metaspace: what a space becomes ("▁")
  bool split = true;                   // Metaspace: split before every replacement
};

// One decoder step of the SentencePiece-style family; each works on the list of token strings.
struct DecoderStep {
  enum class Kind { Replace, ByteFallback, Fuse, Strip, Metaspace } kind = Kind::Fuse;
  std::string from, to;          // Replace; Strip's and Metaspace's character is `from`
  std::size_t start = 0, stop = 0;  // Strip: at most this many leading / trailing `from`s
  bool prepend_never = false;    // Metaspace: prepend_scheme never (else the first token loses its "▁"s)
};

// The byte an <0xHH> token stands for, as tokenizers' ByteFallback decoder reads it: six bytes,
// "<0x", two characters that Rust's u8::from_str_radix(_, 16) accepts, ">".
inline std::optional<unsigned char> byte_of_piece(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return std::nullopt;
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (t[3] == '+') {  // Rust accepts a leading plus sign
    const int d = digit(t[4]);
    return d < 0 ? std::nullopt : std::optional<unsigned char>(static_cast<unsigned char>(d));
  }
  const int hi = digit(t[3]), lo = digit(t[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

// Every `from` in `s` (left to right, not overlapping) replaced by `to`; `from` is not empty.
inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::size_t pos = s.find(from);
  if (pos == std::string::npos) return;
  std::string out;
  out.reserve(s.size() + to.size());
  std::size_t done = 0;
  for (; pos != std::string::npos; pos = s.find(from, done)) {
    out.append(s, done, pos - done).append(to);
    done = pos + from.size();
  }
  out.append(s, done, std::string::npos);
  s.swap(out);
}

// The length of the UTF-8 sequence that starts with `lead` (1 for a continuation byte).
inline std::size_t utf8_length(unsigned char lead) {
  return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// The two big tables of a BPE model, as the file writes them: (piece, id) in the file's order and
// (left, right) merges in rank order. Ids are in [0, 2^31 - 2].
struct ModelTables {
  std::vector<std::pair<std::string, std::int64_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
};

// Reads model.vocab and model.merges of a tokenizer.json straight from its text, without building
// a document of them (they are nearly all of a large file: Gemma 3's 33 MB are 262,144 pieces and
// 514,906 merges). Gives the tables and the text with those two values replaced by {} and [], for
// nlohmann_json to parse; or nullopt for anything it does not follow exactly (a BPE vocab that is
// not {string: integer in [0, max_id]}, merges that are not "a b" strings or [a, b] pairs, a key
// given twice, malformed JSON): the caller then parses the whole text, which names the error or
// gives the same tables. Strings are decoded and checked as JSON requires (escapes, surrogate
// pairs, UTF-8, no raw control characters).
class ModelTableScanner {
 public:
  struct Result {
    ModelTables tables;
    std::string rest;
  };

  static std::optional<Result> scan(std::string_view text, std::int64_t max_id) {
    ModelTableScanner s(text, max_id);
    Result r;
    if (!s.document(r.tables)) return std::nullopt;
    r.rest.reserve(text.size() - (s.vocab_.second - s.vocab_.first) - (s.merges_.second - s.merges_.first) + 4);
    // The two ranges, in the order they come, each replaced by an empty value.
    std::pair<std::size_t, std::size_t> first = s.vocab_, second = s.merges_;
    std::string_view first_value = "{}", second_value = "[]";
    if (s.merges_.first < s.vocab_.first) {
      std::swap(first, second);
      std::swap(first_value, second_value);
    }
    std::size_t done = 0;
    for (const auto& [range, value] : {std::pair{first, first_value}, std::pair{second, second_value}}) {
      if (range.first == range.second) continue;  // no merges
      r.rest.append(text.substr(done, range.first - done)).append(value);
      done = range.second;
    }
    r.rest.append(text.substr(done));
    return r;
  }

 private:
  ModelTableScanner(std::string_view text, std::int64_t max_id) : text_(text), max_id_(max_id) {}

  bool document(ModelTables& tables) {
    space();
    if (!take('{')) return false;
    bool seen_model = false;
    if (!object_members([&](std::string_view key) {
          if (key != "model") return skip_value();
          if (seen_model) return false;
          seen_model = true;
          return model(tables);
        })) {
      return false;
    }
    space();
    return seen_model && pos_ == text_.size() && vocab_.second > vocab_.first;
  }

  bool model(ModelTables& tables) {
    space();
    if (!take('{')) return false;
    bool seen_vocab = false, seen_merges = false;
    return object_members([&](std::string_view key) {
      if (key == "vocab") {
        if (seen_vocab) return false;
        seen_vocab = true;
        space();
        vocab_.first = pos_;
        if (!vocab(tables)) return false;
        vocab_.second = pos_;
        return true;
      }
      if (key == "merges") {
        if (seen_merges) return false;
        seen_merges = true;
        space();
        merges_.first = pos_;
        if (!merges(tables)) return false;
        merges_.second = pos_;
        return true;
      }
      return skip_value();
    });
  }

  bool vocab(ModelTables& tables) {
    if (!take('{')) return false;
    tables.vocab.reserve(text_.size() / 64);
    std::string piece;
    space();
    if (take('}')) return true;
    while (true) {
      space();
      if (!string(piece)) return false;
      space();
      if (!take(':')) return false;
      space();
      std::int64_t id = 0;
      if (!integer(id)) return false;
      tables.vocab.emplace_back(piece, id);
      space();
      if (take('}')) return true;
      if (!take(',')) return false;
    }
  }

  bool merges(ModelTables& tables) {
    if (!take('[')) return false;
    tables.merges.reserve(text_.size() / 32);
    std::string a, b;
    space();
    if (take(']')) return true;
    while (true) {
      space();
      if (peek() == '"') {  // "a b": exactly one space
        if (!string(a)) return false;
        const auto space_at = a.find(' ');
        if (space_at == std::string::npos || a.find(' ', space_at + 1) != std::string::npos) return false;
        tables.merges.emplace_back(a.substr(0, space_at), a.substr(space_at + 1));
      } else {  // [a, b]
        if (!take('[')) return false;
        space();
        if (!string(a)) return false;
        space();
        if (!take(',')) return false;
        space();
        if (!string(b)) return false;
        space();
        if (!take(']')) return false;
        tables.merges.emplace_back(a, b);
      }
      space();
      if (take(']')) return true;
      if (!take(',')) return false;
    }
  }

  // The members of an object whose '{' has been taken: on_key(key) reads the value.
  template <class OnKey>
  bool object_members(OnKey&& on_key) {
    std::string key;
    space();
    if (take('}')) return true;
    while (true) {
      space();
      if (!string(key)) return false;
      space();
      if (!take(':')) return false;
      if (!on_key(std::string_view(key))) return false;
      space();
      if (take('}')) return true;
      if (!take(',')) return false;
    }
  }

  // Steps over one value (checked by nlohmann_json later: it stays in the text it parses).
  bool skip_value() {
    space();
    int depth = 0;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '"') {
        if (!skip_string()) return false;
      } else if (c == '{' || c == '[') {
        ++depth;
        ++pos_;
      } else if (c == '}' || c == ']') {
        if (depth == 0) return true;  // the end of the enclosing object
        --depth;
        ++pos_;
      } else if (c == ',' && depth == 0) {
        return true;
      } else {
        ++pos_;
      }
      if (depth == 0 && (c == '"' || c == '}' || c == ']')) return true;
    }
    return false;
  }

  bool skip_string() {
    ++pos_;  // the opening quote
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return true;
      if (c == '\\') ++pos_;
    }
    return false;
  }

  // A JSON string, decoded into `out`.
  bool string(std::string& out) {
    out.clear();
    if (!take('"')) return false;
    while (pos_ < text_.size()) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (!escape(out)) return false;
      } else if (c < 0x80) {
        out.push_back(static_cast<char>(c));
        ++pos_;
      } else {
        const int n = unicode::sequence_length(text_.substr(pos_, 4));
        if (n < 0) return false;
        out.append(text_.substr(pos_, static_cast<std::size_t>(n)));
        pos_ += static_cast<std::size_t>(n);
      }
    }
    return false;
  }

  bool escape(std::string& out) {
    if (pos_ + 1 >= text_.size()) return false;
    const char e = text_[pos_ + 1];
    pos_ += 2;
    switch (e) {
      case '"': out.push_back('"'); return true;
      case '\\': out.push_back('\\'); return true;
      case '/': out.push_back('/'); return true;
      case 'b': out.push_back('\b'); return true;
      case 'f': out.push_back('\f'); return true;
      case 'n': out.push_back('\n'); return true;
      case 'r': out.push_back('\r'); return true;
      case 't': out.push_back('\t'); return true;
      case 'u': break;
      default: return false;
    }
    std::uint32_t cp = 0;
    if (!hex4(cp)) return false;
    if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate: a low one must follow
      std::uint32_t low = 0;
      if (pos_ + 1 >= text_.size() || text_[pos_] != '\\' || text_[pos_ + 1] != 'u') return false;
      pos_ += 2;
      if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return false;
    }
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return true;
  }

  bool hex4(std::uint32_t& value) {
    if (pos_ + 4 > text_.size()) return false;
    value = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text_[pos_++];
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      if (d < 0) return false;
      value = value * 16 + static_cast<std::uint32_t>(d);
    }
    return true;
  }

  // A non-negative integer in [0, max_id] written as JSON writes integers (no sign, no leading
  // zero, no fraction or exponent).
  bool integer(std::int64_t& value) {
    const std::size_t start = pos_;
    value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      value = value * 10 + (text_[pos_] - '0');
      if (value > max_id_) return false;
      ++pos_;
    }
    if (pos_ == start || (text_[start] == '0' && pos_ - start > 1)) return false;
    return pos_ == text_.size() || (text_[pos_] != '.' && text_[pos_] != 'e' && text_[pos_] != 'E');
  }

  void space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t')) ++pos_;
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool take(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }

  std::string_view text_;
  std::int64_t max_id_;
  std::size_t pos_ = 0;
  std::pair<std::size_t, std::size_t> vocab_{0, 0}, merges_{0, 0};  // where the two values are in text_
};

inline const nlohmann::json* member(const nlohmann::json& j, std::string_view key) {
  if (!j.is_object()) return nullptr;
  const auto it = j.find(std::string(key));
  return it == j.end() ? nullptr : &*it;
}

}  // namespace detail

class TokenizerJsonBackend {
 public:
  // Loads tokenizer.json and, when given and present, tokenizer_config.json beside it.
  static TokenizerJsonBackend from_file(const std::filesystem::path& tokenizer_json,
                                        std::optional<std::filesystem::path> tokenizer_config = std::nullopt) {
    const std::string text = detail::read_file(tokenizer_json, "tokenizer file");
    std::string config;
    std::string config_name;
    if (tokenizer_config) {
      std::error_code ec;
      if (std::filesystem::exists(*tokenizer_config, ec)) {
        config = detail::read_file(*tokenizer_config, "tokenizer config file");
        config_name = detail::cat(*tokenizer_config);
      }
    }
    return from_json(text, config, detail::cat(tokenizer_json), config_name);
  }

  // From the texts of tokenizer.json and tokenizer_config.json (empty: none). The names are
  // used in error messages.
  static TokenizerJsonBackend from_json(std::string_view tokenizer_json, std::string_view tokenizer_config = {},
                                        std::string_view name = "tokenizer.json",
                                        std::string_view config_name = "tokenizer_config.json") {
    auto state = std::make_shared<State>();
    State& s = *state;
    s.name = name;
    if (auto scanned = detail::ModelTableScanner::scan(tokenizer_json, max_id)) {
      s.load(parse_object(scanned->rest, name), &scanned->tables);
    } else {
      s.load(parse_object(tokenizer_json, name), nullptr);
    }
    if (!tokenizer_config.empty()) s.load_config(parse_object(tokenizer_config, config_name), config_name);
    s.finish();
    TokenizerJsonBackend b;
    b.state_ = std::move(state);
    return b;
  }

  // Replaces `out` with the ids of `text` (no BOS/EOS: the caller adds those).
  void encode(std::string_view text, std::vector<std::int32_t>& out) const {
    out.clear();
    const State& s = *state_;
    std::string repaired;
    if (!unicode::is_valid_utf8(text)) {
      repaired = unicode::repaired(text);
      text = repaired;
    }
    std::string normalized;
    s.raw_matcher.split(text, [&](std::size_t begin, std::size_t end, const AddedToken* token) {
      if (token) {
        out.push_back(token->id);
        return;
      }
      std::string_view piece = text.substr(begin, end - begin);
      if (!s.normalizers.empty()) {
        s.normalize(piece, normalized);
        piece = normalized;
      }
      s.normalized_matcher.split(piece, [&](std::size_t b, std::size_t e, const AddedToken* t) {
        if (t) {
          out.push_back(t->id);
        } else {
          s.pre_tokenize(0, piece.substr(b, e - b), begin == 0 && b == 0, out);
        }
      });
    });
  }

  // The text of `ids`. Special added tokens are dropped when `skip_special`; an id without a token
  // (outside [0, vocab_size())) decodes to nothing, as in Hugging Face tokenizers.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special) const {
    const State& s = *state_;
    if (s.byte_level) return unicode::repaired(s.joined_bytes(ids, skip_special));
    return s.decode_chain(ids, skip_special);
  }

  // Byte-level files: the raw bytes of `ids`, not repaired (a sequence may end inside a
  // character), for streaming. Other files: nullopt (their decoders are not a concatenation).
  std::optional<std::string> decode_bytes(std::span<const std::int32_t> ids, bool skip_special) const {
    if (!state_->byte_level) return std::nullopt;
    return state_->joined_bytes(ids, skip_special);
  }

  // True for the byte-level family (a ByteLevel pre-tokenizer and decoder).
  bool byte_level() const { return state_->byte_level; }

  std::int32_t vocab_size() const { return static_cast<std::int32_t>(state_->decoded.size()); }
  std::optional<std::int32_t> bos_id() const { return state_->bos; }
  std::optional<std::int32_t> eos_id() const { return state_->eos; }
  std::optional<std::int32_t> pad_id() const { return state_->pad; }
  std::optional<std::int32_t> unk_id() const { return state_->unk; }
  // What the post-processor adds (TemplateProcessing); tokenizer_config.json's add_bos_token
  // is not read, as transformers 5 does not read it for these tokenizers.
  bool adds_bos_by_default() const { return state_->template_bos.has_value(); }
  bool adds_eos_by_default() const { return state_->template_eos.has_value(); }

  // The token's string in tokenizer.json ("Ġthe" for " the", "▁the"; an added token's content).
  std::string id_to_piece(std::int32_t id) const {
    const State& s = *state_;
    if (id < 0 || static_cast<std::size_t>(id) >= s.decoded.size()) return {};  // no token has it
    if (const auto it = s.added_by_id.find(id); it != s.added_by_id.end()) return s.added[it->second].content;
    if (!s.byte_level) return s.decoded[static_cast<std::size_t>(id)];
    if (const auto it = s.literal_pieces.find(id); it != s.literal_pieces.end()) return it->second;
    return byte_level::to_chars(s.decoded[static_cast<std::size_t>(id)]);
  }
  std::optional<std::int32_t> piece_to_id(std::string_view piece) const {
    const State& s = *state_;
    for (const AddedToken& t : s.added) {
      if (t.content == piece) return t.id;
    }
    return s.find_piece(piece);
  }
  bool is_special(std::int32_t id) const {
    return id >= 0 && static_cast<std::size_t>(id) < state_->special.size() && state_->special[static_cast<std::size_t>(id)] != 0;
  }

  const std::vector<AddedToken>& added_tokens() const { return state_->added; }

 private:
  struct State {
    std::string name;
    std::unique_ptr<detail::BpeModel> model;
    bool byte_level = true;                         // the ByteLevel family (else SentencePiece-style)
    std::vector<std::string> decoded;               // [vocab] byte-level: the bytes of each id; else its string
    std::vector<char> special;                      // [vocab] 1 for special added tokens
    std::unordered_map<std::int32_t, std::string> literal_pieces;  // byte-level: vocab strings outside the alphabet
    std::vector<AddedToken> added;
    std::unordered_map<std::int32_t, std::size_t> added_by_id;
    detail::AddedTokenMatcher raw_matcher, normalized_matcher;
    std::vector<detail::NormalizerStep> normalizers;
    std::vector<detail::PreTokenizerStep> steps;
    std::vector<detail::DecoderStep> decoders;      // SentencePiece-style only
    std::optional<std::int32_t> template_bos, template_eos;  // from TemplateProcessing
    std::optional<std::int32_t> bos, eos, pad, unk;

    [[noreturn]] void refuse(std::string_view component, const nlohmann::json& value, std::string_view why) const {
      throw unsupported_error(detail::cat(name, ": ", component, " ", value.dump().substr(0, 200), " is not supported (",
                                     why, ")"));
    }

    std::string_view type_of(const nlohmann::json& j, std::string_view component) const {
      const auto* t = detail::member(j, "type");
      if (t == nullptr || !t->is_string()) {
        throw format_error(detail::cat(name, ": ", component, " has no \"type\" string"));
      }
      return t->get_ref<const std::string&>();
    }

    template <class T>
    T get(const nlohmann::json& j, std::string_view key, T fallback, std::string_view component) const {
      const auto* v = detail::member(j, key);
      if (v == nullptr || v->is_null()) return fallback;
      try {
        return v->get<T>();
      } catch (const nlohmann::json::exception&) {
        throw format_error(detail::cat(name, ": ", component, ".", key, " has the wrong type: ", v->dump()));
      }
    }

    void load(const nlohmann::json& j, detail::ModelTables* tables) {
      const auto* model_json = detail::member(j, "model");
      if (model_json == nullptr || !model_json->is_object()) throw format_error(detail::cat(name, " has no \"model\" object"));
      load_added_tokens(j);
      load_normalizer(detail::member(j, "normalizer"));
      const auto* pre_tokenizer = detail::member(j, "pre_tokenizer");
      load_pre_tokenizer(pre_tokenizer);
      load_decoder(detail::member(j, "decoder"), pre_tokenizer);
      if (tables) {
        load_model(*model_json, std::move(*tables));
      } else {
        load_model(*model_json, model_tables(*model_json));
      }
      load_post_processor(detail::member(j, "post_processor"));
    }

    void load_added_tokens(const nlohmann::json& j) {
      const auto* list = detail::member(j, "added_tokens");
      if (list == nullptr || list->is_null()) return;
      if (!list->is_array()) throw format_error(detail::cat(name, ": added_tokens is not a list"));
      for (const auto& entry : *list) {
        AddedToken t;
        const auto* id = detail::member(entry, "id");
        const auto* content = detail::member(entry, "content");
        if (id == nullptr || !id->is_number_integer() || content == nullptr || !content->is_string()) {
          throw format_error(detail::cat(name, ": an added token lacks an integer id or a content string: ",
                                         entry.dump().substr(0, 200)));
        }
        const auto value = id->get<std::int64_t>();
        if (value < 0 || value > max_id) {
          throw format_error(detail::cat(name, ": added token id ", value, " is outside [0, ", max_id, "]"));
        }
        t.id = static_cast<std::int32_t>(value);
        t.content = content->get<std::string>();
        if (!unicode::is_valid_utf8(t.content)) throw format_error(detail::cat(name, ": added token ", t.id, " is not UTF-8"));
        t.special = get<bool>(entry, "special", false, "added token");
        t.lstrip = get<bool>(entry, "lstrip", false, "added token");
        t.rstrip = get<bool>(entry, "rstrip", false, "added token");
        t.single_word = get<bool>(entry, "single_word", false, "added token");
        t.normalized = get<bool>(entry, "normalized", !t.special, "added token");
        if (added_by_id.count(t.id)) throw format_error(detail::cat(name, ": added token id ", t.id, " appears twice"));
        added_by_id.emplace(t.id, added.size());
        added.push_back(std::move(t));
      }
    }

    // The vocabulary and merges from the document (when the scanner did not read them), checked
    // as the scanner checks them.
    detail::ModelTables model_tables(const nlohmann::json& m) const {
      detail::ModelTables t;
      const auto* vocab = detail::member(m, "vocab");
      if (vocab == nullptr || !vocab->is_object()) throw format_error(detail::cat(name, ": model.vocab is not an object"));
      t.vocab.reserve(vocab->size());
      for (const auto& [piece, id] : vocab->items()) {
        if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() > max_id) {
          throw format_error(detail::cat(name, ": model.vocab gives ", piece, " the id ", id.dump(),
                                         "; ids must be integers in [0, ", max_id, "]"));
        }
        t.vocab.emplace_back(piece, id.get<std::int64_t>());
      }
      if (const auto* list = detail::member(m, "merges"); list != nullptr && !list->is_null()) {
        if (!list->is_array()) throw format_error(detail::cat(name, ": model.merges is not a list"));
        t.merges.reserve(list->size());
        for (std::size_t rank = 0; rank < list->size(); ++rank) {
          const auto& entry = (*list)[rank];
          if (entry.is_string()) {  // "a b": exactly one space (spaces inside tokens are written Ġ or ▁)
            const std::string& line = entry.get_ref<const std::string&>();
            const auto space = line.find(' ');
            if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
              throw format_error(detail::cat(name, ": merge ", rank, " \"", line, "\" is not two tokens"));
            }
            t.merges.emplace_back(line.substr(0, space), line.substr(space + 1));
          } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
            t.merges.emplace_back(entry[0].get<std::string>(), entry[1].get<std::string>());
          } else {
            throw format_error(detail::cat(name, ": merge ", rank, " is neither \"a b\" nor [a, b]: ",
                                           entry.dump().substr(0, 200)));
          }
        }
      }
      return t;
    }

    void load_model(const nlohmann::json& m, detail::ModelTables tables) {
      const std::string_view type = type_of(m, "model");
      if (type != "BPE") refuse("model", m, "only BPE models are supported");
      if (get<double>(m, "dropout", 0.0, "model") != 0.0) refuse("model", m, "BPE dropout");
      const bool byte_fallback = get<bool>(m, "byte_fallback", false, "model");
      if (byte_fallback && byte_level) refuse("model", m, "byte_fallback with a ByteLevel pre-tokenizer");
      if (!get<std::string>(m, "continuing_subword_prefix", "", "model").empty() ||
          !get<std::string>(m, "end_of_word_suffix", "", "model").empty()) {
        refuse("model", m, "continuing_subword_prefix or end_of_word_suffix");
      }
      // Ids: the vocabulary's and the added tokens'; together they must cover [0, n).
      std::int64_t n = 0;
      for (const auto& [piece, id] : tables.vocab) n = std::max(n, id + 1);
      for (const AddedToken& t : added) n = std::max<std::int64_t>(n, t.id + 1);
      // Checked before anything of size n is allocated: n entries need n distinct ids.
      if (n > static_cast<std::int64_t>(tables.vocab.size() + added.size())) {
        throw format_error(detail::cat(name, ": the largest id is ", n - 1, " but there are only ", tables.vocab.size(),
                                       " vocabulary entries and ", added.size(),
                                       " added tokens (ids must run from 0 without gaps)"));
      }
      decoded.assign(static_cast<std::size_t>(n), {});
      special.assign(static_cast<std::size_t>(n), 0);
      std::vector<char> seen(static_cast<std::size_t>(n), 0);
      std::vector<std::string> pieces(static_cast<std::size_t>(n));
      for (auto& [piece, id64] : tables.vocab) {
        const auto id = static_cast<std::size_t>(id64);
        if (seen[id]) throw format_error(detail::cat(name, ": model.vocab gives the id ", id, " twice"));
        seen[id] = 1;
        if (!byte_level) {
          if (byte_fallback) {
            // A piece the ByteFallback decoder reads as a byte must be the one byte fallback writes.
            if (const auto b = detail::byte_of_piece(piece); b && piece != detail::BpeModel::byte_piece(*b)) {
              throw format_error(detail::cat(name, ": model.vocab has the piece ", piece, " (id ", id,
                                             "), which decodes as the byte ", detail::BpeModel::byte_piece(*b),
                                             "; byte pieces must be written <0x00> to <0xFF>"));
            }
          }
          decoded[id] = piece;
          pieces[id] = std::move(piece);
        } else if (auto bytes = byte_level::to_bytes(piece)) {
          decoded[id] = *bytes;
          pieces[id] = std::move(*bytes);
        } else {  // outside the byte alphabet: never produced by merging; decodes as its UTF-8
          decoded[id] = piece;
          literal_pieces.emplace(static_cast<std::int32_t>(id), piece);
        }
      }
      for (const AddedToken& t : added) {
        const auto id = static_cast<std::size_t>(t.id);
        // An added token may repeat a vocabulary entry (same id); it decodes as its content.
        seen[id] = 1;
        special[id] = t.special ? 1 : 0;
        decoded[id] = byte_level ? byte_level::to_bytes(t.content).value_or(t.content) : t.content;
      }
      for (std::size_t id = 0; id < seen.size(); ++id) {
        if (!seen[id]) {
          throw format_error(detail::cat(name, ": no token has the id ", id, " (ids must run from 0 to ", n - 1,
                                         " without gaps)"));
        }
      }
      if (byte_level) {
        for (std::size_t rank = 0; rank < tables.merges.size(); ++rank) {
          auto& [a, b] = tables.merges[rank];
          auto ba = byte_level::to_bytes(a), bb = byte_level::to_bytes(b);
          if (!ba || !bb) {
            throw format_error(detail::cat(name, ": merge ", rank, " (", a, " ", b,
                                           ") has characters outside the byte-level alphabet"));
          }
          a = std::move(*ba);
          b = std::move(*bb);
        }
      }
      detail::BpeModel::Options options;
      if (const auto unk_token = get<std::string>(m, "unk_token", "", "model"); !unk_token.empty()) {
        options.unk_id = find_piece(unk_token, &pieces);
        if (!options.unk_id) throw format_error(detail::cat(name, ": model.unk_token ", unk_token, " is not in the vocabulary"));
      }
      options.fuse_unk = get<bool>(m, "fuse_unk", false, "model");
      options.ignore_merges = get<bool>(m, "ignore_merges", false, "model");
      options.characters = !byte_level;
      options.byte_fallback = byte_fallback;
      model = std::make_unique<detail::BpeModel>(std::move(pieces), tables.merges, options, name);
      // tokenizers does not take an added token's id from the file: a content in the vocabulary
      // gets its vocabulary id, any other the next id after the vocabulary, in the file's order.
      // A file that says otherwise is refused rather than read differently.
      auto next = static_cast<std::int64_t>(tables.vocab.size());
      for (const AddedToken& t : added) {
        const auto in_vocab = find_piece(t.content);
        const std::int64_t want = in_vocab ? *in_vocab : next++;
        if (t.id != want) {
          throw format_error(detail::cat(name, ": added_tokens gives \"", t.content.substr(0, 80), "\" the id ", t.id,
                                         ", but tokenizers gives it ", want,
                                         in_vocab ? " (its id in model.vocab)" : " (the next id after model.vocab)"));
        }
      }
    }

    // A String pattern ({"String": "..."}), not empty; a Regex pattern is refused.
    std::string string_pattern(const nlohmann::json& j, std::string_view component) const {
      const auto* pattern = detail::member(j, "pattern");
      const auto* str = pattern ? detail::member(*pattern, "String") : nullptr;
      if (str == nullptr || !str->is_string()) refuse(component, j, "only a {\"String\": ...} pattern is supported");
      if (str->get_ref<const std::string&>().empty()) refuse(component, j, "an empty pattern");
      return str->get<std::string>();
    }

    // A string that is one character (Metaspace's replacement, Strip's content).
    std::string one_character(const nlohmann::json& j, std::string_view key, std::string_view fallback,
                              std::string_view component) const {
      const auto value = get<std::string>(j, key, std::string(fallback), component);
      if (value.empty() || !unicode::is_valid_utf8(value) ||
          detail::utf8_length(static_cast<unsigned char>(value[0])) != value.size()) {
        throw format_error(detail::cat(name, ": ", component, ".", key, " is \"", value.substr(0, 40),
                                       "\"; expected one character"));
      }
      return value;
    }

    void load_normalizer(const nlohmann::json* n) {
      if (n == nullptr || n->is_null()) return;
      const std::string_view type = type_of(*n, "normalizer");
      detail::NormalizerStep step;
      if (type == "NFC") {
        step.kind = detail::NormalizerStep::Kind::Nfc;
      } else if (type == "Prepend") {
        step.kind = detail::NormalizerStep::Kind::Prepend;
        step.to = get<std::string>(*n, "prepend", "", "normalizer Prepend");
        if (step.to.empty()) return;  // prepends nothing
      } else if (type == "Replace") {
        step.kind = detail::NormalizerStep::Kind::Replace;
        step.from = string_pattern(*n, "normalizer Replace");
        step.to = get<std::string>(*n, "content", "", "normalizer Replace");
      } else if (type == "Sequence") {
        const auto* list = detail::member(*n, "normalizers");
        if (list == nullptr || !list->is_array()) throw format_error(detail::cat(name, ": normalizer Sequence has no list"));
        for (const auto& item : *list) load_normalizer(&item);
        return;
      } else {
        refuse("normalizer", *n, "only NFC, Prepend, Replace and Sequence are supported");
      }
      normalizers.push_back(std::move(step));
    }

    void load_pre_tokenizer(const nlohmann::json* p) {
      if (p == nullptr || p->is_null()) {
        byte_level = false;
        return;
      }
      add_pre_tokenizer(*p);
      byte_level = !steps.empty() && steps.back().kind == detail::PreTokenizerStep::Kind::ByteLevel;
    }

    void add_pre_tokenizer(const nlohmann::json& p) {
      const std::string_view type = type_of(p, "pre_tokenizer");
      if (!steps.empty() && steps.back().kind == detail::PreTokenizerStep::Kind::ByteLevel) {
        refuse("pre_tokenizer", p, "no step may follow ByteLevel");
      }
      detail::PreTokenizerStep step;
      if (type == "Sequence") {
        const auto* list = detail::member(p, "pretokenizers");
        if (list == nullptr || !list->is_array()) throw format_error(detail::cat(name, ": pre_tokenizer Sequence has no list"));
        for (const auto& item : *list) add_pre_tokenizer(item);
        return;
      }
      if (type == "Split") {
        const auto behavior = get<std::string>(p, "behavior", "", "pre_tokenizer Split");
        using B = detail::PreTokenizerStep::Behavior;
        if (behavior == "Isolated") {
          step.behavior = B::Isolated;  // matches and gaps are both pieces: invert changes nothing
        } else if (behavior == "MergedWithPrevious") {
          step.behavior = B::MergedWithPrevious;
        } else if (behavior == "MergedWithNext") {
          step.behavior = B::MergedWithNext;
        } else {
          refuse("pre_tokenizer Split", p, "only behaviors Isolated, MergedWithPrevious and MergedWithNext are supported");
        }
        step.invert = get<bool>(p, "invert", false, "pre_tokenizer Split");
        const auto* pattern = detail::member(p, "pattern");
        if (const auto* re = pattern ? detail::member(*pattern, "Regex") : nullptr; re && re->is_string()) {
          step.regex = std::make_shared<detail::Regex>(re->get<std::string>(), detail::Regex::Kind::Pattern,
                                                       detail::cat(name, ": pre_tokenizer Split"));
        } else if (const auto* str = pattern ? detail::member(*pattern, "String") : nullptr; str && str->is_string()) {
          if (str->get_ref<const std::string&>().empty()) refuse("pre_tokenizer Split", p, "an empty pattern");
          step.regex = std::make_shared<detail::Regex>(str->get<std::string>(), detail::Regex::Kind::Literal,
                                                       detail::cat(name, ": pre_tokenizer Split"));
        } else {
          refuse("pre_tokenizer Split", p, "its pattern is neither {\"Regex\": ...} nor {\"String\": ...}");
        }
        step.kind = detail::PreTokenizerStep::Kind::Split;
      } else if (type == "ByteLevel") {
        step.kind = detail::PreTokenizerStep::Kind::ByteLevel;
        step.add_prefix_space = get<bool>(p, "add_prefix_space", true, "pre_tokenizer ByteLevel");
        if (get<bool>(p, "use_regex", true, "pre_tokenizer ByteLevel")) {
          step.regex = std::make_shared<detail::Regex>(gpt2_pattern, detail::Regex::Kind::Pattern,
                                                       detail::cat(name, ": pre_tokenizer ByteLevel"));
        }
      } else if (type == "Metaspace") {
        step.kind = detail::PreTokenizerStep::Kind::Metaspace;
        step.replacement = one_character(p, "replacement", "\u2581", "pre_tokenizer Metaspace");
        step.prepend = prepend_scheme(p, "pre_tokenizer Metaspace");
        step.split = get<bool>(p, "split", true, "pre_tokenizer Metaspace");
        step.regex = std::make_shared<detail::Regex>(step.replacement, detail::Regex::Kind::Literal,
                                                     detail::cat(name, ": pre_tokenizer Metaspace"));
      } else {
        refuse("pre_tokenizer", p, "only Split, ByteLevel, Metaspace and Sequence are supported");
      }
      steps.push_back(std::move(step));
    }

    // Metaspace's prepend_scheme; files older than it say add_prefix_space (true: always).
    detail::PreTokenizerStep::Prepend prepend_scheme(const nlohmann::json& p, std::string_view component) const {
      using P = detail::PreTokenizerStep::Prepend;
      const auto* scheme = detail::member(p, "prepend_scheme");
      if (scheme == nullptr || scheme->is_null()) return get<bool>(p, "add_prefix_space", true, component) ? P::Always : P::Never;
      const auto value = get<std::string>(p, "prepend_scheme", "", component);
      if (value == "always") return P::Always;
      if (value == "first") return P::First;
      if (value == "never") return P::Never;
      throw format_error(detail::cat(name, ": ", component, ".prepend_scheme is \"", value.substr(0, 40),
                                     "\"; expected always, first or never"));
    }

    void load_post_processor(const nlohmann::json* p) {
      if (p == nullptr || p->is_null()) return;
      const std::string_view type = type_of(*p, "post_processor");
      if (type == "ByteLevel") return;  // offsets only: no effect on ids
      if (type == "Sequence") {
        const auto* list = detail::member(*p, "processors");
        if (list == nullptr || !list->is_array()) throw format_error(detail::cat(name, ": post_processor Sequence has no list"));
        for (const auto& item : *list) load_post_processor(&item);
        return;
      }
      if (type != "TemplateProcessing") refuse("post_processor", *p, "only ByteLevel and TemplateProcessing are supported");
      const auto* single = detail::member(*p, "single");
      if (single == nullptr || !single->is_array()) refuse("post_processor", *p, "TemplateProcessing without a single template");
      std::vector<std::int32_t> before, after;
      bool seen_sequence = false;
      for (const auto& piece : *single) {
        if (detail::member(piece, "Sequence")) {
          if (seen_sequence) refuse("post_processor", *p, "the single template names the sequence twice");
          seen_sequence = true;
        } else if (const auto* sp = detail::member(piece, "SpecialToken")) {
          const auto token = get<std::string>(*sp, "id", "", "post_processor SpecialToken");
          const auto* table = detail::member(*p, "special_tokens");
          const auto* entry = table ? detail::member(*table, token) : nullptr;
          const auto* ids = entry ? detail::member(*entry, "ids") : nullptr;
          if (ids == nullptr || !ids->is_array() || ids->size() != 1 || !(*ids)[0].is_number_integer()) {
            refuse("post_processor", *p, detail::cat("special token ", token, " needs exactly one id"));
          }
          const auto id = (*ids)[0].get<std::int64_t>();
          if (id < 0 || id >= static_cast<std::int64_t>(decoded.size())) {
            throw format_error(detail::cat(name, ": post_processor special token ", token, " has id ", id,
                                           ", outside the vocabulary"));
          }
          (seen_sequence ? after : before).push_back(static_cast<std::int32_t>(id));
        } else {
          refuse("post_processor", *p, "a template piece that is neither Sequence nor SpecialToken");
        }
      }
      if (!seen_sequence || before.size() > 1 || after.size() > 1) {
        refuse("post_processor", *p, "only templates of the form [special] $A [special] are supported");
      }
      if (!before.empty()) template_bos = before[0];
      if (!after.empty()) template_eos = after[0];
    }

    void load_decoder(const nlohmann::json* d, const nlohmann::json* pre_tokenizer) {
      const bool is_byte_level = d != nullptr && d->is_object() && type_of(*d, "decoder") == "ByteLevel";
      if (byte_level && !is_byte_level) {
        refuse("decoder", d ? *d : nlohmann::json(nullptr), "a byte-level BPE needs the ByteLevel decoder");
      }
      if (is_byte_level) {
        if (!byte_level) {
          refuse("pre_tokenizer", pre_tokenizer ? *pre_tokenizer : nlohmann::json(nullptr),
                 "the ByteLevel decoder needs a ByteLevel pre-tokenizer as its last step");
        }
        return;
      }
      if (d == nullptr || d->is_null()) refuse("decoder", nlohmann::json(nullptr), "no decoder (tokens joined by spaces)");
      add_decoder(*d);
    }

    void add_decoder(const nlohmann::json& d) {
      const std::string_view type = type_of(d, "decoder");
      detail::DecoderStep step;
      using K = detail::DecoderStep::Kind;
      if (type == "Sequence") {
        const auto* list = detail::member(d, "decoders");
        if (list == nullptr || !list->is_array()) throw format_error(detail::cat(name, ": decoder Sequence has no list"));
        for (const auto& item : *list) add_decoder(item);
        return;
      }
      if (type == "Replace") {
        step.kind = K::Replace;
        step.from = string_pattern(d, "decoder Replace");
        step.to = get<std::string>(d, "content", "", "decoder Replace");
      } else if (type == "ByteFallback") {
        step.kind = K::ByteFallback;
      } else if (type == "Fuse") {
        step.kind = K::Fuse;
      } else if (type == "Strip") {
        step.kind = K::Strip;
        step.from = one_character(d, "content", " ", "decoder Strip");
        step.start = count(d, "start");
        step.stop = count(d, "stop");
      } else if (type == "Metaspace") {
        step.kind = K::Metaspace;
        step.from = one_character(d, "replacement", "\u2581", "decoder Metaspace");
        step.prepend_never = prepend_scheme(d, "decoder Metaspace") == detail::PreTokenizerStep::Prepend::Never;
      } else {
        refuse("decoder", d, "only ByteLevel, or Replace, ByteFallback, Fuse, Strip, Metaspace and Sequence are supported");
      }
      decoders.push_back(std::move(step));
    }

    // Strip's start or stop: a count of characters (any size: it only bounds a loop).
    std::size_t count(const nlohmann::json& d, std::string_view key) const {
      const auto* v = detail::member(d, key);
      if (v == nullptr || v->is_null()) return 0;
      if (!v->is_number_unsigned()) {
        throw format_error(detail::cat(name, ": decoder Strip.", key, " is ", v->dump().substr(0, 40),
                                       "; expected an integer >= 0"));
      }
      return static_cast<std::size_t>(v->get<std::uint64_t>());
    }

    // A token named in tokenizer_config.json: a string, {"content": ...} or null.
    std::optional<std::int32_t> config_token(const nlohmann::json& c, std::string_view key, std::string_view config_name) const {
      const auto* v = detail::member(c, key);
      if (v == nullptr || v->is_null()) return std::nullopt;
      const nlohmann::json* content = v->is_object() ? detail::member(*v, "content") : v;
      if (content == nullptr || !content->is_string()) {
        throw format_error(detail::cat(config_name, ": ", key, " is neither a string nor {\"content\": string}: ",
                                       v->dump().substr(0, 200)));
      }
      const std::string& text = content->get_ref<const std::string&>();
      for (const AddedToken& t : added) {
        if (t.content == text) return t.id;
      }
      if (auto id = find_piece(text)) return id;
      throw format_error(detail::cat(config_name, ": ", key, " \"", text, "\" is not a token of ", name));
    }

    void load_config(const nlohmann::json& c, std::string_view config_name) {
      bos = config_token(c, "bos_token", config_name);
      eos = config_token(c, "eos_token", config_name);
      pad = config_token(c, "pad_token", config_name);
      unk = config_token(c, "unk_token", config_name);
    }

    void finish() {
      std::string pattern;
      for (const AddedToken& t : added) {
        if (t.normalized) {  // matched in the normalized text, as its content normalized
          normalize(t.content, pattern);
          normalized_matcher.add(t, pattern);
        } else {
          raw_matcher.add(t, t.content);
        }
      }
      raw_matcher.finish();
      normalized_matcher.finish();
      if (!bos) bos = template_bos;
      if (!eos) eos = template_eos;
    }

    std::optional<std::int32_t> find_piece(std::string_view piece, const std::vector<std::string>* pieces = nullptr) const {
      if (!byte_level) {
        if (model) return model->find(piece);
        for (std::size_t id = 0; id < pieces->size(); ++id) {
          if ((*pieces)[id] == piece && !piece.empty()) return static_cast<std::int32_t>(id);
        }
        return std::nullopt;
      }
      if (auto bytes = byte_level::to_bytes(piece)) {
        if (model) return model->find(*bytes);
        for (std::size_t id = 0; id < pieces->size(); ++id) {
          if ((*pieces)[id] == *bytes && !bytes->empty()) return static_cast<std::int32_t>(id);
        }
        return std::nullopt;
      }
      for (const auto& [id, literal] : literal_pieces) {
        if (literal == piece) return id;
      }
      return std::nullopt;
    }

    // The normalizers applied in turn to `in`.
    void normalize(std::string_view in, std::string& out) const {
      out.assign(in);
      std::string scratch;
      for (const detail::NormalizerStep& n : normalizers) {
        switch (n.kind) {
          case detail::NormalizerStep::Kind::Nfc:
            unicode::to_nfc(out, scratch);
            out.swap(scratch);
            break;
          case detail::NormalizerStep::Kind::Prepend:
            if (!out.empty()) out.insert(0, n.to);
            break;
          case detail::NormalizerStep::Kind::Replace:
            detail::replace_all(out, n.from, n.to);
            break;
        }
      }
    }

    // Runs pre-tokenizer steps [step, end) on `piece` and the model on what comes out. `at_start`:
    // the piece begins where the text does (Metaspace's prepend_scheme first).
    void pre_tokenize(std::size_t step, std::string_view piece, bool at_start, std::vector<std::int32_t>& out) const {
      if (piece.empty()) return;
      if (step == steps.size()) {
        model->encode_word(piece, out);
        return;
      }
      const detail::PreTokenizerStep& s = steps[step];
      using K = detail::PreTokenizerStep::Kind;
      if (s.kind == K::ByteLevel) {
        if (s.add_prefix_space && piece[0] != ' ') {
          const std::string spaced = " " + std::string(piece);
          split_step(step, spaced, at_start, s.behavior, false, out);
        } else {
          split_step(step, piece, at_start, s.behavior, false, out);
        }
        return;
      }
      if (s.kind == K::Metaspace) {
        std::string text(piece);
        detail::replace_all(text, " ", s.replacement);
        const bool prepend = s.prepend == detail::PreTokenizerStep::Prepend::Always ||
                             (s.prepend == detail::PreTokenizerStep::Prepend::First && at_start);
        if (prepend && !text.starts_with(s.replacement)) text.insert(0, s.replacement);
        if (s.split) {
          split_step(step, text, at_start, detail::PreTokenizerStep::Behavior::MergedWithNext, false, out);
        } else {
          pre_tokenize(step + 1, text, at_start, out);
        }
        return;
      }
      split_step(step, piece, at_start, s.behavior, s.invert, out);
    }

    // Splits `piece` at the matches of step's regex (none: the whole piece), puts the matches
    // where `behavior` says, and runs the next steps on each piece.
    void split_step(std::size_t step, std::string_view piece, bool at_start, detail::PreTokenizerStep::Behavior behavior,
                    bool invert, std::vector<std::int32_t>& out) const {
      const detail::PreTokenizerStep& s = steps[step];
      if (!s.regex) {
        pre_tokenize(step + 1, piece, at_start, out);
        return;
      }
      using B = detail::PreTokenizerStep::Behavior;
      if (behavior == B::Isolated) {
        s.regex->split(piece, [&](std::size_t begin, std::size_t end, bool) {
          pre_tokenize(step + 1, piece.substr(begin, end - begin), at_start && begin == 0, out);
        });
        return;
      }
      struct Segment {
        std::size_t begin, end;
        bool match;
      };
      std::vector<Segment> segments;
      s.regex->split(piece, [&](std::size_t begin, std::size_t end, bool match) { segments.push_back({begin, end, match != invert}); });
      // tokenizers' folds: a match joins the piece before it (after it) unless that is a match too.
      std::vector<Segment> merged;
      if (behavior == B::MergedWithPrevious) {
        bool previous_match = false;
        for (const Segment& g : segments) {
          if (g.match && !previous_match && !merged.empty()) {
            merged.back().end = g.end;
          } else {
            merged.push_back(g);
          }
          previous_match = g.match;
        }
      } else {
        bool previous_match = false;
        for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
          if (it->match && !previous_match && !merged.empty()) {
            merged.back().begin = it->begin;
          } else {
            merged.push_back(*it);
          }
          previous_match = it->match;
        }
        std::reverse(merged.begin(), merged.end());
      }
      for (const Segment& g : merged) pre_tokenize(step + 1, piece.substr(g.begin, g.end - g.begin), at_start && g.begin == 0, out);
    }

    // Byte-level: the bytes of every id, joined.
    std::string joined_bytes(std::span<const std::int32_t> ids, bool skip_special) const {
      std::string bytes;
      for (const std::int32_t id : ids) {
        const auto i = static_cast<std::size_t>(id);
        if (id < 0 || i >= decoded.size() || (skip_special && special[i])) continue;
        bytes += decoded[i];
      }
      return bytes;
    }

    // SentencePiece-style: the decoder steps on the tokens' strings, as tokenizers' decode_chain.
    std::string decode_chain(std::span<const std::int32_t> ids, bool skip_special) const {
      std::vector<std::string> tokens;
      tokens.reserve(ids.size());
      for (const std::int32_t id : ids) {
        const auto i = static_cast<std::size_t>(id);
        if (id < 0 || i >= decoded.size() || (skip_special && special[i])) continue;
        tokens.push_back(decoded[i]);
      }
      for (const detail::DecoderStep& d : decoders) apply(d, tokens);
      std::string text;
      for (const std::string& t : tokens) text += t;
      return text;
    }

    static void apply(const detail::DecoderStep& d, std::vector<std::string>& tokens) {
      using K = detail::DecoderStep::Kind;
      switch (d.kind) {
        case K::Replace:
          for (std::string& t : tokens) detail::replace_all(t, d.from, d.to);
          return;
        case K::Fuse: {
          std::string all;
          for (const std::string& t : tokens) all += t;
          tokens.assign(1, std::move(all));
          return;
        }
        case K::ByteFallback: {
          // A run of byte tokens becomes its text when that is valid UTF-8, else one U+FFFD per byte.
          std::vector<std::string> result;
          std::string run;
          std::size_t run_tokens = 0;
          const auto flush = [&] {
            if (run_tokens == 0) return;
            if (unicode::is_valid_utf8(run)) {
              result.push_back(run);
            } else {
              for (std::size_t k = 0; k < run_tokens; ++k) result.emplace_back(unicode::replacement_character);
            }
            run.clear();
            run_tokens = 0;
          };
          for (std::string& t : tokens) {
            if (const auto b = detail::byte_of_piece(t)) {
              run.push_back(static_cast<char>(*b));
              ++run_tokens;
            } else {
              flush();
              result.push_back(std::move(t));
            }
          }
          flush();
          tokens.swap(result);
          return;
        }
        case K::Strip:
          for (std::string& t : tokens) {
            std::size_t begin = 0, end = t.size();
            for (std::size_t k = 0; k < d.start && t.compare(begin, d.from.size(), d.from) == 0; ++k) begin += d.from.size();
            for (std::size_t k = 0; k < d.stop && end >= begin + d.from.size() &&
                                    t.compare(end - d.from.size(), d.from.size(), d.from) == 0; ++k) {
              end -= d.from.size();
            }
            t = t.substr(begin, end - begin);
          }
          return;
        case K::Metaspace:
          for (std::size_t i = 0; i < tokens.size(); ++i) {
            detail::replace_all(tokens[i], d.from, i == 0 && !d.prepend_never ? "" : " ");
          }
          return;
      }
    }
  };

  static nlohmann::json parse_object(std::string_view text, std::string_view name) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw format_error(detail::cat(name, " is not valid JSON: ", e.what()));
    }
    if (!j.is_object()) throw format_error(detail::cat(name, " is not a JSON object"));
    return j;
  }

  static constexpr std::int64_t max_id = (std::int64_t{1} << 31) - 2;
  static constexpr std::string_view gpt2_pattern =
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

  std::shared_ptr<const State> state_;  // immutable after loading, shared by copies
};

}  // namespace maskgen

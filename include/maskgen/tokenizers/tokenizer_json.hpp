#pragma once
// TokenizerJsonBackend: a Hugging Face tokenizer.json with a byte-level BPE (Qwen2, Qwen2.5, Qwen3,
// Llama 3, GPT-2 style), encoding and decoding exactly as the tokenizers library does.
//
// What it reads, and everything else is refused at load with an unsupported_error naming the component:
//   model          BPE (vocab, merges as "a b" strings or [a, b] pairs, ignore_merges, unk_token,
//                  fuse_unk; no dropout, no byte_fallback, no subword prefix or word suffix)
//   normalizer     null, NFC, or a Sequence of those
//   pre_tokenizer  ByteLevel (add_prefix_space, use_regex: GPT-2's own regex), or a Sequence of
//                  Split (a regex or a string, behavior Isolated) steps ending in ByteLevel
//   post_processor null, ByteLevel, TemplateProcessing (at most one special token before and one
//                  after the text), or a Sequence of those
//   decoder        ByteLevel
//   added_tokens   special or not, lstrip, rstrip, single_word, normalized
// tokenizer_config.json, when given, names the bos/eos/pad/unk tokens, as transformers reads it.
// Whether BOS/EOS are added by default is the post-processor's decision alone: transformers 5 adds
// what TemplateProcessing adds and ignores add_bos_token / add_eos_token for these tokenizers
// (tests/data/bpe/bpe_add_bos_rules.json records it).
//
// Encoding a text: invalid UTF-8 is first repaired (each maximal ill-formed subpart becomes
// U+FFFD, as Python's decode(errors="replace") does: the ids are those tokenizers gives for that
// repaired string); added tokens written in the text are cut out first (leftmost, longest) and
// never split; the rest is normalized, split by the pre-tokenizer regexes, and merged by BPE.
// Decoding joins the bytes of every token and repairs the result the same way, so decode never
// returns invalid UTF-8; decode_bytes gives the raw bytes for streaming.

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
// (the order of tokenizers' Aho-Corasick matcher with MatchKind::LeftmostLongest).
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() { starts_.fill(false); }

  void add(const AddedToken& token) {
    if (token.content.empty()) return;
    tokens_.push_back(&token);
    starts_[static_cast<unsigned char>(token.content[0])] = true;
    // Longest first, so the first token that matches at a position is the longest there.
    std::stable_sort(tokens_.begin(), tokens_.end(),
                     [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); });
  }

  bool empty() const { return tokens_.empty(); }

  // Calls on_piece(begin, end, token or nullptr) for consecutive pieces covering `text`.
  template <class OnPiece>
  void split(std::string_view text, OnPiece&& on_piece) const {
    if (tokens_.empty()) {
      on_piece(std::size_t{0}, text.size(), nullptr);
      return;
    }
    std::size_t done = 0;  // text[0, done) has been handed out
    std::size_t pos = 0;   // where the search for the next match starts
    while (pos < text.size()) {
      if (!starts_[static_cast<unsigned char>(text[pos])]) {
        ++pos;
        continue;
      }
      const AddedToken* found = nullptr;
      for (const AddedToken* t : tokens_) {
        if (text.substr(pos, t->content.size()) == t->content) {
          found = t;
          break;
        }
      }
      if (found == nullptr) {
        ++pos;
        continue;
      }
      std::size_t begin = pos, end = pos + found->content.size();
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

  std::vector<const AddedToken*> tokens_;  // longest first
  std::array<bool, 256> starts_{};         // bytes that begin some token
};

// One pre-tokenizer step.
struct PreTokenizerStep {
  enum class Kind { Split, ByteLevel } kind = Kind::Split;
  std::shared_ptr<const Regex> regex;  // Split's pattern, or ByteLevel's GPT-2 regex (use_regex)
  bool add_prefix_space = false;       // ByteLevel: a space before every piece that lacks one
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
    s.load(parse_object(tokenizer_json, name));
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
      if (s.nfc) {
        unicode::to_nfc(piece, normalized);
        piece = normalized;
      }
      s.normalized_matcher.split(piece, [&](std::size_t b, std::size_t e, const AddedToken* t) {
        if (t) {
          out.push_back(t->id);
        } else {
          s.pre_tokenize(0, piece.substr(b, e - b), out);
        }
      });
    });
  }

  // The text of `ids`. Special added tokens are dropped when `skip_special`; an id without a token
  // (outside [0, vocab_size())) decodes to nothing, as in Hugging Face tokenizers.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special) const {
    return unicode::repaired(decode_bytes(ids, skip_special));
  }

  // The raw bytes of `ids`, not repaired: a sequence may end inside a character.
  std::string decode_bytes(std::span<const std::int32_t> ids, bool skip_special) const {
    const State& s = *state_;
    std::string bytes;
    for (const std::int32_t id : ids) {
      const auto i = static_cast<std::size_t>(id);
      if (id < 0 || i >= s.decoded.size() || (skip_special && s.special[i])) continue;
      bytes += s.decoded[i];
    }
    return bytes;
  }

  std::int32_t vocab_size() const { return static_cast<std::int32_t>(state_->decoded.size()); }
  std::optional<std::int32_t> bos_id() const { return state_->bos; }
  std::optional<std::int32_t> eos_id() const { return state_->eos; }
  std::optional<std::int32_t> pad_id() const { return state_->pad; }
  std::optional<std::int32_t> unk_id() const { return state_->unk; }
  // What the post-processor adds (TemplateProcessing); tokenizer_config.json's add_bos_token
  // is not read, as transformers 5 does not read it for these tokenizers.
  bool adds_bos_by_default() const { return state_->template_bos.has_value(); }
  bool adds_eos_by_default() const { return state_->template_eos.has_value(); }

  // The token's string in tokenizer.json ("Ġthe" for " the"; an added token's content).
  std::string id_to_piece(std::int32_t id) const {
    const State& s = *state_;
    if (id < 0 || static_cast<std::size_t>(id) >= s.decoded.size()) return {};  // no token has it
    if (const auto it = s.added_by_id.find(id); it != s.added_by_id.end()) return s.added[it->second].content;
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
    std::vector<std::string> decoded;               // [vocab] bytes each id decodes to
    std::vector<char> special;                      // [vocab] 1 for special added tokens
    std::unordered_map<std::int32_t, std::string> literal_pieces;  // vocab strings outside the alphabet
    std::vector<AddedToken> added;
    std::unordered_map<std::int32_t, std::size_t> added_by_id;
    detail::AddedTokenMatcher raw_matcher, normalized_matcher;
    bool nfc = false;
    std::vector<detail::PreTokenizerStep> steps;
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

    void load(const nlohmann::json& j) {
      const auto* model_json = detail::member(j, "model");
      if (model_json == nullptr || !model_json->is_object()) throw format_error(detail::cat(name, " has no \"model\" object"));
      load_added_tokens(j);
      load_model(*model_json);
      load_normalizer(detail::member(j, "normalizer"));
      load_pre_tokenizer(detail::member(j, "pre_tokenizer"));
      load_post_processor(detail::member(j, "post_processor"));
      load_decoder(detail::member(j, "decoder"));
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

    void load_model(const nlohmann::json& m) {
      const std::string_view type = type_of(m, "model");
      if (type != "BPE") refuse("model", m, "only BPE models are supported");
      if (get<double>(m, "dropout", 0.0, "model") != 0.0) refuse("model", m, "BPE dropout");
      if (get<bool>(m, "byte_fallback", false, "model")) refuse("model", m, "byte_fallback: not a byte-level BPE");
      if (!get<std::string>(m, "continuing_subword_prefix", "", "model").empty() ||
          !get<std::string>(m, "end_of_word_suffix", "", "model").empty()) {
        refuse("model", m, "continuing_subword_prefix or end_of_word_suffix");
      }
      const auto* vocab = detail::member(m, "vocab");
      if (vocab == nullptr || !vocab->is_object()) throw format_error(detail::cat(name, ": model.vocab is not an object"));
      // Ids: the vocabulary's and the added tokens'; together they must cover [0, n).
      std::int64_t n = 0;
      for (const auto& [piece, id] : vocab->items()) {
        if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() > max_id) {
          throw format_error(detail::cat(name, ": model.vocab gives ", piece, " the id ", id.dump(),
                                         "; ids must be integers in [0, ", max_id, "]"));
        }
        n = std::max(n, id.get<std::int64_t>() + 1);
      }
      for (const AddedToken& t : added) n = std::max<std::int64_t>(n, t.id + 1);
      // Checked before anything of size n is allocated: n entries need n distinct ids.
      if (n > static_cast<std::int64_t>(vocab->size() + added.size())) {
        throw format_error(detail::cat(name, ": the largest id is ", n - 1, " but there are only ", vocab->size(),
                                       " vocabulary entries and ", added.size(),
                                       " added tokens (ids must run from 0 without gaps)"));
      }
      decoded.assign(static_cast<std::size_t>(n), {});
      special.assign(static_cast<std::size_t>(n), 0);
      std::vector<char> seen(static_cast<std::size_t>(n), 0);
      std::vector<std::string> pieces(static_cast<std::size_t>(n));
      for (const auto& [piece, id_json] : vocab->items()) {
        const auto id = static_cast<std::size_t>(id_json.get<std::int64_t>());
        if (seen[id]) throw format_error(detail::cat(name, ": model.vocab gives the id ", id, " twice"));
        seen[id] = 1;
        if (auto bytes = byte_level::to_bytes(piece)) {
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
        decoded[id] = byte_level::to_bytes(t.content).value_or(t.content);
      }
      for (std::size_t id = 0; id < seen.size(); ++id) {
        if (!seen[id]) {
          throw format_error(detail::cat(name, ": no token has the id ", id, " (ids must run from 0 to ", n - 1,
                                         " without gaps)"));
        }
      }
      std::vector<std::pair<std::string, std::string>> merges;
      if (const auto* list = detail::member(m, "merges"); list != nullptr && !list->is_null()) {
        if (!list->is_array()) throw format_error(detail::cat(name, ": model.merges is not a list"));
        merges.reserve(list->size());
        for (std::size_t rank = 0; rank < list->size(); ++rank) {
          const auto& entry = (*list)[rank];
          std::string a, b;
          if (entry.is_string()) {  // "a b": exactly one space (spaces inside tokens are written Ġ)
            const std::string& line = entry.get_ref<const std::string&>();
            const auto space = line.find(' ');
            if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
              throw format_error(detail::cat(name, ": merge ", rank, " \"", line, "\" is not two tokens"));
            }
            a = line.substr(0, space);
            b = line.substr(space + 1);
          } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
            a = entry[0].get<std::string>();
            b = entry[1].get<std::string>();
          } else {
            throw format_error(detail::cat(name, ": merge ", rank, " is neither \"a b\" nor [a, b]: ",
                                           entry.dump().substr(0, 200)));
          }
          auto ba = byte_level::to_bytes(a), bb = byte_level::to_bytes(b);
          if (!ba || !bb) {
            throw format_error(detail::cat(name, ": merge ", rank, " (", a, " ", b,
                                           ") has characters outside the byte-level alphabet"));
          }
          merges.emplace_back(std::move(*ba), std::move(*bb));
        }
      }
      std::optional<std::int32_t> unk_model;
      if (const auto unk_token = get<std::string>(m, "unk_token", "", "model"); !unk_token.empty()) {
        unk_model = find_piece(unk_token, &pieces);
        if (!unk_model) throw format_error(detail::cat(name, ": model.unk_token ", unk_token, " is not in the vocabulary"));
      }
      model = std::make_unique<detail::BpeModel>(std::move(pieces), merges, unk_model,
                                                 get<bool>(m, "fuse_unk", false, "model"),
                                                 get<bool>(m, "ignore_merges", false, "model"), name);
    }

    void load_normalizer(const nlohmann::json* n) {
      if (n == nullptr || n->is_null()) return;
      const std::string_view type = type_of(*n, "normalizer");
      if (type == "NFC") {
        nfc = true;
      } else if (type == "Sequence") {
        const auto* list = detail::member(*n, "normalizers");
        if (list == nullptr || !list->is_array()) throw format_error(detail::cat(name, ": normalizer Sequence has no list"));
        for (const auto& item : *list) load_normalizer(&item);
      } else {
        refuse("normalizer", *n, "only NFC is supported");
      }
    }

    void load_pre_tokenizer(const nlohmann::json* p) {
      if (p == nullptr || p->is_null()) refuse("pre_tokenizer", nlohmann::json(nullptr), "a byte-level BPE needs ByteLevel");
      add_pre_tokenizer(*p);
      if (steps.empty() || steps.back().kind != detail::PreTokenizerStep::Kind::ByteLevel) {
        refuse("pre_tokenizer", *p, "a byte-level BPE needs ByteLevel as its last step");
      }
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
        if (behavior != "Isolated") refuse("pre_tokenizer Split", p, "only behavior Isolated is supported");
        // With Isolated, inverting the pattern changes nothing: matches and gaps are both pieces.
        const auto* pattern = detail::member(p, "pattern");
        if (const auto* re = pattern ? detail::member(*pattern, "Regex") : nullptr; re && re->is_string()) {
          step.regex = std::make_shared<detail::Regex>(re->get<std::string>(), detail::Regex::Kind::Pattern,
                                                       detail::cat(name, ": pre_tokenizer Split"));
        } else if (const auto* str = pattern ? detail::member(*pattern, "String") : nullptr; str && str->is_string()) {
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
      } else {
        refuse("pre_tokenizer", p, "only Split, ByteLevel and Sequence are supported");
      }
      steps.push_back(std::move(step));
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

    void load_decoder(const nlohmann::json* d) {
      if (d == nullptr || d->is_null()) refuse("decoder", nlohmann::json(nullptr), "a byte-level BPE needs the ByteLevel decoder");
      const std::string_view type = type_of(*d, "decoder");
      if (type != "ByteLevel") refuse("decoder", *d, "only ByteLevel is supported");
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
      for (const AddedToken& t : added) (t.normalized ? normalized_matcher : raw_matcher).add(t);
      if (!bos) bos = template_bos;
      if (!eos) eos = template_eos;
    }

    std::optional<std::int32_t> find_piece(std::string_view piece, const std::vector<std::string>* pieces = nullptr) const {
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

    // Runs pre-tokenizer steps [step, end) on `piece` and the model on what comes out.
    void pre_tokenize(std::size_t step, std::string_view piece, std::vector<std::int32_t>& out) const {
      if (piece.empty()) return;
      if (step == steps.size()) {
        model->encode_word(piece, out);
        return;
      }
      const detail::PreTokenizerStep& s = steps[step];
      if (s.kind == detail::PreTokenizerStep::Kind::ByteLevel && s.add_prefix_space && piece[0] != ' ') {
        const std::string spaced = " " + std::string(piece);
        run_step(step, spaced, out);
      } else {
        run_step(step, piece, out);
      }
    }

    void run_step(std::size_t step, std::string_view piece, std::vector<std::int32_t>& out) const {
      const detail::PreTokenizerStep& s = steps[step];
      if (!s.regex) {
        pre_tokenize(step + 1, piece, out);
        return;
      }
      s.regex->split(piece, [&](std::size_t begin, std::size_t end, bool) {
        pre_tokenize(step + 1, piece.substr(begin, end - begin), out);
      });
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

#pragma once
// Tokenizer<Backend>: text to padded batches and back, over a backend that turns one text into ids.
// Backends: SentencePieceBackend (tokenizer.model; the default) and TokenizerJsonBackend
// (tokenizer.json with a BPE model: byte-level as Qwen2/2.5/3, Llama 3, gpt-oss, DeepSeek V3, or
// SentencePiece-style as Llama 2, Mistral, Gemma 3). load_tokenizer(dir) picks the tokenizer.json
// of a model folder when it has one that maskgen implements, else its tokenizer.model, and
// returns an AutoTokenizer. DecodeStream turns generated ids into text one
// token at a time without ever cutting a character in two, in the context of the ids before them.
//
// Ids without a piece: a model's vocab_size is often larger than its tokenizer (Qwen2/2.5/3:
// 151,936 rows of logits, 151,669 tokens), and a sampled id in between has no text. Such an id
// (>= the tokenizer's size) decodes to nothing, as Hugging Face tokenizers' decode skips ids it
// has no token for, and the tokenizer says so once (once per Tokenizer object and its copies)
// through maskgen::log as a warning. A negative id is an argument_error: no model produces one.
//
// Invalid UTF-8 never fails and never produces invalid UTF-8: SentencePiece replaces each bad byte
// with U+FFFD; the tokenizer.json backend replaces each maximal ill-formed subpart with U+FFFD (as
// Python's decode(errors="replace") and Hugging Face tokenizers do). See each backend's header.

#include <algorithm>
#include <atomic>
#include <charconv>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <variant>

#include "detail/parallel.hpp"
#include "error.hpp"
#include "log.hpp"
#include "padding.hpp"
#include "tokenizers/sentencepiece.hpp"
#include "tokenizers/tokenizer_json.hpp"
#include "tokenizers/unicode.hpp"

namespace maskgen {

// What a tokenizer backend provides. Ids are int32; "none" ids are std::nullopt.
template <class B>
concept TokenizerBackend = requires(const B& b, std::string_view text, std::int32_t id,
                                    std::span<const std::int32_t> ids,
                                    std::vector<std::int32_t>& out) {
  { b.encode(text, out) } -> std::same_as<void>;  // replaces `out` with the ids of `text`
  // ids outside [0, vocab_size()) decode to nothing; true skips special ids
  { b.decode(ids, true) } -> std::convertible_to<std::string>;
  { b.vocab_size() } -> std::convertible_to<std::int32_t>;
  { b.bos_id() } -> std::same_as<std::optional<std::int32_t>>;
  { b.eos_id() } -> std::same_as<std::optional<std::int32_t>>;
  { b.pad_id() } -> std::same_as<std::optional<std::int32_t>>;
  { b.unk_id() } -> std::same_as<std::optional<std::int32_t>>;
  { b.id_to_piece(id) } -> std::convertible_to<std::string>;  // "" for an id outside the vocabulary
  { b.piece_to_id(text) } -> std::same_as<std::optional<std::int32_t>>;
  { b.is_special(id) } -> std::same_as<bool>;  // control or unknown: dropped by skip_special_tokens
  { b.adds_bos_by_default() } -> std::same_as<bool>;  // what an unset add_bos means
  { b.adds_eos_by_default() } -> std::same_as<bool>;  // what an unset add_eos means
};

struct EncodeOptions {
  std::optional<bool> add_bos{};  // prepend the BOS id; unset: as the tokenizer does by default
  std::optional<bool> add_eos{};  // append the EOS id; unset: as the tokenizer does by default
};

struct DecodeOptions {
  bool skip_special_tokens = true;  // drop special ids (BOS, EOS, pad, unk, control tokens)
  int num_threads = 0;              // threads for decode_batch; 0 uses every core
};

template <TokenizerBackend Backend = SentencePieceBackend>
class Tokenizer {
 public:
  explicit Tokenizer(Backend backend)
      : backend_(std::move(backend)),
        warned_pad_fallback_(std::make_shared<std::atomic<bool>>(false)),
        warned_pieceless_(std::make_shared<std::atomic<bool>>(false)) {}

  static Tokenizer from_file(const std::filesystem::path& path)
    requires requires { Backend::from_file(path); }
  {
    return Tokenizer(Backend::from_file(path));
  }

  static Tokenizer from_serialized(std::string_view bytes)
    requires requires { Backend::from_serialized(bytes); }
  {
    return Tokenizer(Backend::from_serialized(bytes));
  }

  // The ids of one text, with BOS/EOS as asked.
  std::vector<std::int32_t> encode(std::string_view text, EncodeOptions options = {}) const {
    std::vector<std::int32_t> content;
    backend_.encode(text, content);
    PaddingOptions layout;
    layout.add_bos = options.add_bos;
    layout.add_eos = options.add_eos;
    return add_special_tokens(content, layout, special_ids(layout));
  }

  // Encodes every text and lays the rows out as one padded batch. Rows are encoded on
  // options.num_threads threads; the result is identical for any thread count.
  template <std::ranges::random_access_range Texts>
    requires std::convertible_to<std::ranges::range_reference_t<Texts>, std::string_view>
  BatchEncoding encode_batch(const Texts& texts, const PaddingOptions& options = {}) const {
    validate(options);
    const SpecialIds special = special_ids(options);
    const std::optional<std::int32_t> pad_id = resolve_pad_id(options.pad_token_id);
    const auto n = static_cast<std::size_t>(std::ranges::size(texts));
    std::vector<std::vector<std::int32_t>> rows(n);
    const int threads = detail::resolve_thread_count(options.num_threads, "PaddingOptions::num_threads");
    detail::parallel_for_dynamic(n, threads, encode_grain, [&](std::size_t begin, std::size_t end) {
      std::vector<std::int32_t> content;
      for (std::size_t i = begin; i < end; ++i) {
        backend_.encode(std::string_view(std::ranges::begin(texts)[static_cast<std::ptrdiff_t>(i)]), content);
        rows[i] = add_special_tokens(content, options, special);
      }
    });
    return pad_rows(rows, options, pad_id);
  }

  BatchEncoding encode_batch(std::initializer_list<std::string_view> texts,
                             const PaddingOptions& options = {}) const {
    return encode_batch(std::span<const std::string_view>(texts.begin(), texts.size()), options);
  }

  // Whether BOS/EOS are added when PaddingOptions/EncodeOptions leave add_bos/add_eos unset:
  // SentencePiece adds BOS; a tokenizer.json does what its post-processor and
  // tokenizer_config.json's add_bos_token/add_eos_token say (Qwen3: nothing).
  bool adds_bos_by_default() const { return backend_.adds_bos_by_default(); }
  bool adds_eos_by_default() const { return backend_.adds_eos_by_default(); }

  // The text of `ids`. An id >= vocab_size() has no piece and decodes to nothing (logged once, see
  // the top of this file); a negative id throws argument_error.
  std::string decode(std::span<const std::int32_t> ids, DecodeOptions options = {}) const {
    return decode_row(ids, options, "ids");
  }

  // One text per row of `ids`: every position is decoded (use skip_special_tokens to drop pads
  // that are EOS or control ids, or pass the mask). Ids without a piece decode to nothing, as in
  // decode(), so one such id never costs the other rows (nor the rest of its own row) their text.
  std::vector<std::string> decode_batch(const TokenMatrix& ids, DecodeOptions options = {}) const {
    return decode_rows(ids, nullptr, options);
  }

  // One text per row of `ids`, keeping only the positions where `mask` is 1.
  std::vector<std::string> decode_batch(const TokenMatrix& ids, const TokenMatrix& mask,
                                        DecodeOptions options = {}) const {
    if (mask.rows() != ids.rows() || mask.cols() != ids.cols()) {
      throw argument_error(detail::cat("decode_batch: mask has shape [", mask.rows(), ", ", mask.cols(),
                                       "] but ids have shape [", ids.rows(), ", ", ids.cols(), "]"));
    }
    return decode_rows(ids, &mask, options);
  }

  // The pad id PaddingOptions would use: `explicit_id` if set, else the tokenizer's pad piece,
  // else EOS (logged once per tokenizer), else none. Throws if `explicit_id` is out of range.
  std::optional<std::int32_t> resolve_pad_id(std::optional<std::int32_t> explicit_id) const {
    if (explicit_id) {
      check_id(*explicit_id, "PaddingOptions::pad_token_id");
      return explicit_id;
    }
    if (auto pad = backend_.pad_id()) return pad;
    if (auto eos = backend_.eos_id()) {
      if (!warned_pad_fallback_->exchange(true)) {
        log(LogLevel::Warning,
            detail::cat("the tokenizer has no pad piece and pad_token_id is unset: setting pad_token_id "
                        "to eos_token_id ", *eos, ". Padding is decided by the attention mask only."));
      }
      return eos;
    }
    return std::nullopt;
  }

  std::int32_t vocab_size() const { return backend_.vocab_size(); }
  std::optional<std::int32_t> bos_id() const { return backend_.bos_id(); }
  std::optional<std::int32_t> eos_id() const { return backend_.eos_id(); }
  std::optional<std::int32_t> pad_id() const { return backend_.pad_id(); }  // the tokenizer's own
  std::optional<std::int32_t> unk_id() const { return backend_.unk_id(); }
  std::string id_to_piece(std::int32_t id) const {
    check_id(id, "id_to_piece: id");
    return backend_.id_to_piece(id);
  }
  std::optional<std::int32_t> piece_to_id(std::string_view piece) const { return backend_.piece_to_id(piece); }

  const Backend& backend() const { return backend_; }

 private:
  SpecialIds special_ids(const PaddingOptions& options) const {
    SpecialIds special;
    if (options.add_bos.value_or(backend_.adds_bos_by_default())) {
      special.bos = backend_.bos_id();
      if (!special.bos) throw argument_error("add_bos is set but the tokenizer has no BOS piece");
    }
    if (options.add_eos.value_or(backend_.adds_eos_by_default())) {
      special.eos = backend_.eos_id();
      if (!special.eos) throw argument_error("add_eos is set but the tokenizer has no EOS piece");
    }
    return special;
  }

  void check_id(std::int32_t id, std::string_view what) const { detail::check_vocabulary_id(id, vocab_size(), what); }

  template <TokenizerBackend> friend class DecodeStream;

  // Refuses a negative id; says once that ids without a piece decode to nothing. True when `id`
  // has a piece. `what` names the id in the error message.
  template <class... What>
  bool check_decodable(std::int32_t id, const What&... what) const {
    if (id < 0) {
      throw argument_error(detail::cat(what..., " is ", id, "; token ids must be >= 0"));
    }
    if (id < vocab_size()) return true;
    if (!warned_pieceless_->exchange(true)) {
      log(LogLevel::Warning,
          detail::cat("decode: the id ", id, " has no piece (the tokenizer's ids are [0, ", vocab_size(),
                      "); the model's vocab_size may be larger): ids without a piece decode to nothing, as in "
                      "Hugging Face tokenizers (said once per tokenizer)"));
    }
    return false;
  }

  // Checks every id, then lets the backend decode (it skips ids without a piece). `where` names
  // the ids in error messages.
  template <class Ids>
  std::string decode_row(const Ids& ids, const DecodeOptions& options, std::string_view where) const {
    for (std::size_t i = 0; i < static_cast<std::size_t>(ids.size()); ++i) {
      (void)check_decodable(ids[static_cast<decltype(ids.size())>(i)], where, "[", i, "]");
    }
    return backend_.decode(std::span<const std::int32_t>(ids.data(), static_cast<std::size_t>(ids.size())),
                           options.skip_special_tokens);
  }

  std::vector<std::string> decode_rows(const TokenMatrix& ids, const TokenMatrix* mask,
                                       const DecodeOptions& options) const {
    const auto n = static_cast<std::size_t>(ids.rows());
    std::vector<std::string> texts(n);
    const int threads = detail::resolve_thread_count(options.num_threads, "DecodeOptions::num_threads");
    detail::parallel_for_dynamic(n, threads, encode_grain, [&](std::size_t begin, std::size_t end) {
      std::vector<std::int32_t> row;
      for (std::size_t r = begin; r < end; ++r) {
        const auto i = static_cast<Eigen::Index>(r);
        row.clear();
        for (Eigen::Index j = 0; j < ids.cols(); ++j) {
          const std::int32_t m = mask ? (*mask)(i, j) : 1;
          if (m != 0 && m != 1) {
            throw argument_error(detail::cat("decode_batch: mask[", r, ", ", j, "] is ", m,
                                             "; mask values must be 0 or 1"));
          }
          if (m == 1) {
            (void)check_decodable(ids(i, j), "decode_batch: ids[", r, ", ", j, "]");
            row.push_back(ids(i, j));
          }
        }
        texts[r] = backend_.decode(row, options.skip_special_tokens);
      }
    });
    return texts;
  }

  static constexpr std::size_t encode_grain = 4;  // texts per block handed to a thread

  Backend backend_;
  std::shared_ptr<std::atomic<bool>> warned_pad_fallback_;  // the EOS fallback is logged once
  std::shared_ptr<std::atomic<bool>> warned_pieceless_;     // an id without a piece is logged once
};

}  // namespace maskgen

namespace maskgen {

// Either backend, chosen at run time: what load_tokenizer returns.
class AnyTokenizerBackend {
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit(std::forward<F>(f), backend_);
  }

 public:
  AnyTokenizerBackend(SentencePieceBackend b) : backend_(std::move(b)) {}
  AnyTokenizerBackend(TokenizerJsonBackend b) : backend_(std::move(b)) {}

  void encode(std::string_view text, std::vector<std::int32_t>& out) const {
    std::visit([&](const auto& b) { b.encode(text, out); }, backend_);
  }
  std::string decode(std::span<const std::int32_t> ids, bool skip_special) const {
    return visit([&](const auto& b) { return b.decode(ids, skip_special); });
  }
  // The raw bytes of `ids` where the backend has them (a byte-level tokenizer.json), else nullopt.
  std::optional<std::string> decode_bytes(std::span<const std::int32_t> ids, bool skip_special) const {
    if (const auto* json = std::get_if<TokenizerJsonBackend>(&backend_)) return json->decode_bytes(ids, skip_special);
    return std::nullopt;
  }

  std::int32_t vocab_size() const { return visit([](const auto& b) { return b.vocab_size(); }); }
  std::optional<std::int32_t> bos_id() const { return visit([](const auto& b) { return b.bos_id(); }); }
  std::optional<std::int32_t> eos_id() const { return visit([](const auto& b) { return b.eos_id(); }); }
  std::optional<std::int32_t> pad_id() const { return visit([](const auto& b) { return b.pad_id(); }); }
  std::optional<std::int32_t> unk_id() const { return visit([](const auto& b) { return b.unk_id(); }); }
  std::string id_to_piece(std::int32_t id) const { return visit([&](const auto& b) { return b.id_to_piece(id); }); }
  std::optional<std::int32_t> piece_to_id(std::string_view piece) const {
    return visit([&](const auto& b) { return b.piece_to_id(piece); });
  }
  bool is_special(std::int32_t id) const { return visit([&](const auto& b) { return b.is_special(id); }); }
  bool adds_bos_by_default() const { return visit([](const auto& b) { return b.adds_bos_by_default(); }); }
  bool adds_eos_by_default() const { return visit([](const auto& b) { return b.adds_eos_by_default(); }); }

  // "tokenizer.json" or "tokenizer.model": which kind of file this came from.
  std::string_view kind() const {
    return std::holds_alternative<TokenizerJsonBackend>(backend_) ? "tokenizer.json" : "tokenizer.model";
  }
  const SentencePieceBackend* sentencepiece() const { return std::get_if<SentencePieceBackend>(&backend_); }
  const TokenizerJsonBackend* tokenizer_json() const { return std::get_if<TokenizerJsonBackend>(&backend_); }

 private:
  std::variant<SentencePieceBackend, TokenizerJsonBackend> backend_;
};

using AutoTokenizer = Tokenizer<AnyTokenizerBackend>;

// The tokenizer of a model folder: tokenizer.json (with tokenizer_config.json beside it) when
// present, else tokenizer.model. So a folder with both (Llama 2, TinyLlama, Mistral) uses its
// tokenizer.json, as transformers' fast tokenizers do. A tokenizer.json that uses a component
// maskgen does not implement falls back to tokenizer.model when the folder has one (logged as a
// warning), and is refused with unsupported_error when it does not.
inline AutoTokenizer load_tokenizer(const std::filesystem::path& dir) {
  std::error_code ec;
  const auto json = dir / "tokenizer.json", model = dir / "tokenizer.model";
  const bool has_json = std::filesystem::is_regular_file(json, ec);
  const bool has_model = std::filesystem::is_regular_file(model, ec);
  if (has_json) {
    try {
      return AutoTokenizer(TokenizerJsonBackend::from_file(json, dir / "tokenizer_config.json"));
    } catch (const unsupported_error& e) {
      if (!has_model) throw;
      log(LogLevel::Warning, detail::cat(e.what(), "; using ", model, " instead"));
    }
  }
  if (has_model) return AutoTokenizer(SentencePieceBackend::from_file(model));
  throw io_error(detail::cat("the folder ", dir, " holds neither tokenizer.json nor tokenizer.model"));
}

// Turns generated ids into text one token at a time, for streaming: put() returns the text that
// the new id completes, and never part of a character. Bytes of a character that a token leaves
// unfinished are held back until a later token completes it; finish() returns what is still held,
// an unfinished character as U+FFFD.
//
// In context: given the ids before the stream (a prompt, as Hugging Face's
// DecodeStream(ids=prefill) and vLLM's prefix offset), the text returned for the new ids is
// exactly decode(prefix + new ids) minus decode(prefix). That matters to SentencePiece, which
// drops the leading space of a text's first piece: after the prompt "The dog", the id of "▁was"
// gives " was", where decoded alone it gives "was". Without a prefix, the concatenation of every
// put() and finish() equals decode() of all the ids; with one,
//   decode(prefix) + put()s + finish() == decode(prefix + ids).
// (One exception: a prefix that ends inside a character, whose bytes decode(prefix) shows as
// U+FFFD. Those bytes are held as if the stream had them, so the character comes out whole with
// the id that completes it, and the equality holds with decode(prefix) cut before them. Another:
// with a SentencePiece-style tokenizer.json, ids whose run of byte pieces is not valid UTF-8 as a
// whole, which decode() shows as one U+FFFD per piece even where the run held whole characters
// before the bad byte; the stream has shown those characters by then. Encoded text never gives
// such a run: only generated ids can.)
//
// Ids without a piece decode to nothing (see the top of this file); a negative id throws.
//
// How: with a byte-level tokenizer.json, decoding is the concatenation of each id's bytes, so the
// stream keeps the bytes of an unfinished character only. With SentencePiece (tokenizer.model or a
// SentencePiece-style tokenizer.json, whose decoders strip a leading space and join byte pieces
// the same way) it decodes a short window, the
// new ids after the last ids already shown (enough of them that their own text is not empty, so
// the first new piece keeps its leading space), and returns what the window's text adds; text is
// held back while the last pieces are the byte-fallback pieces of a character not yet complete.
template <TokenizerBackend Backend>
class DecodeStream {
 public:
  // `tokenizer` must outlive the stream.
  explicit DecodeStream(const Tokenizer<Backend>& tokenizer, DecodeOptions options = {})
      : DecodeStream(tokenizer, std::span<const std::int32_t>(), options) {}

  // A stream that continues `prefix` (the ids already shown, e.g. the prompt).
  DecodeStream(const Tokenizer<Backend>& tokenizer, std::span<const std::int32_t> prefix, DecodeOptions options = {})
      : tokenizer_(&tokenizer), options_(options), byte_level_(raw_bytes({}).has_value()) {
    for (std::size_t i = 0; i < prefix.size(); ++i) (void)tokenizer_->check_decodable(prefix[i], "DecodeStream: prefix[", i, "]");
    if (byte_level_) {
      // Only an unfinished character at the end matters: it is held in pending_.
      std::string tail;
      for (std::size_t n = prefix.size(); n > 0 && tail.size() < 4; --n) tail.insert(0, *raw_bytes(prefix.subspan(n - 1, 1)));
      pending_ = tail.substr(tail.size() - unicode::incomplete_tail(tail));
      return;
    }
    for (const std::int32_t id : prefix) {
      if (!invisible(id)) window_.push_back(id);
    }
    // The window: the ids of an unfinished character at the end, and enough shown ids before them.
    const std::size_t held = unfinished_ids();
    const std::size_t shown = window_.size() - held;
    const std::size_t context = context_length(std::span<const std::int32_t>(window_).first(shown));
    window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(shown - context));
  }

  std::string put(std::int32_t id) {
    if (!tokenizer_->check_decodable(id, "DecodeStream::put: the id")) return {};
    const std::span<const std::int32_t> one(&id, 1);
    if (byte_level_) {
      pending_ += *raw_bytes(one);
      const std::size_t keep = unicode::incomplete_tail(pending_);
      std::string out = unicode::repaired(std::string_view(pending_).substr(0, pending_.size() - keep));
      pending_.erase(0, pending_.size() - keep);
      return out;
    }
    if (invisible(id)) return {};  // a special id skipped: as if it were not there
    window_.push_back(id);
    if (unfinished_ids() > 0) return {};  // the last pieces are bytes of a character not yet complete
    const std::string text = decode(window_);
    std::string out = after_context(text);
    const std::size_t context = context_length(window_);
    window_.erase(window_.begin(), window_.end() - static_cast<std::ptrdiff_t>(context));
    return out;
  }

  // What is still held back (an unfinished character becomes U+FFFD); the stream starts afresh,
  // without a prefix.
  std::string finish() {
    std::string out;
    if (!pending_.empty()) {
      out = unicode::repaired(pending_);
    } else if (!window_.empty()) {
      const std::string text = decode(window_);
      out = after_context(text);
    }
    pending_.clear();
    window_.clear();
    context_text_.clear();
    context_ids_ = 0;
    return out;
  }

 private:
  std::optional<std::string> raw_bytes(std::span<const std::int32_t> ids) const {
    const Backend& b = tokenizer_->backend();
    if constexpr (requires { { b.decode_bytes(ids, true) } -> std::same_as<std::string>; }) {
      return b.decode_bytes(ids, options_.skip_special_tokens);
    } else if constexpr (requires { { b.decode_bytes(ids, true) } -> std::same_as<std::optional<std::string>>; }) {
      return b.decode_bytes(ids, options_.skip_special_tokens);
    } else {
      return std::nullopt;
    }
  }

  std::string decode(std::span<const std::int32_t> ids) const {
    return tokenizer_->backend().decode(ids, options_.skip_special_tokens);
  }

  // An id that adds nothing wherever it stands: no piece, or a special id that is skipped.
  bool invisible(std::int32_t id) const {
    return id >= tokenizer_->vocab_size() || (options_.skip_special_tokens && tokenizer_->backend().is_special(id));
  }

  // SentencePiece: how many ids at the end of `ids` shown so far are a context for what follows,
  // and sets context_text_ to their text and context_ids_ to their number. A piece's text depends on what comes before it
  // in two ways only: the first piece of a text loses its leading space, and byte-fallback pieces
  // are decoded together. So ids whose own text is not empty are enough (they end on a whole
  // character: put() and the constructor never cut one). Lengths 1, 2, 4, ... are tried; all of
  // `ids` when none has text (they are all there is, so nothing is left out).
  //
  // The context never starts inside a character spelled in byte pieces (on a piece of a
  // continuation byte): tokenizer.json's ByteFallback decoder turns a run of byte pieces that is
  // not valid UTF-8 as a whole into one U+FFFD per piece, so the run in the window must begin
  // where a character does.
  std::size_t context_length(std::span<const std::int32_t> ids) {
    std::size_t length = 0;
    context_text_.clear();
    while (length < ids.size()) {
      length = std::min(ids.size(), std::max<std::size_t>(1, 2 * length));
      for (int k = 0; k < 3 && length < ids.size(); ++k) {
        const auto byte = byte_of(ids[ids.size() - length]);
        if (!byte || (*byte & 0xC0) != 0x80) break;
        ++length;
      }
      context_text_ = decode(ids.last(length));
      if (!context_text_.empty()) break;
    }
    context_ids_ = length;
    return length;
  }

  // What the window's text adds to its context's. Only where the context's text changes when
  // more ids follow (a run of byte pieces that is invalid UTF-8 as a whole, which tokenizer.json's
  // ByteFallback decoder turns into U+FFFDs entirely) the new ids are decoded without it.
  std::string after_context(const std::string& text) const {
    if (text.compare(0, context_text_.size(), context_text_) == 0) return text.substr(context_text_.size());
    return decode(std::span<const std::int32_t>(window_).subspan(std::min(context_ids_, window_.size())));
  }

  // The byte of a byte-fallback piece (<0x41>), else nullopt.
  std::optional<unsigned char> byte_of(std::int32_t id) const {
    const std::string piece = tokenizer_->backend().id_to_piece(id);
    if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return std::nullopt;
    unsigned value = 0;
    if (std::from_chars(piece.data() + 3, piece.data() + 5, value, 16).ec != std::errc()) return std::nullopt;
    return static_cast<unsigned char>(value);
  }

  // SentencePiece: how many ids at the end of the window are byte-fallback pieces (<0xF0><0x9F>...)
  // that start a character whose remaining bytes have not come yet. (Held back on this, not on the
  // decoded text ending in U+FFFD: the text itself may hold a U+FFFD, and it must not delay what
  // follows.)
  std::size_t unfinished_ids() const {
    std::string bytes;
    for (auto it = window_.rbegin(); it != window_.rend() && bytes.size() < 4; ++it) {
      const auto byte = byte_of(*it);
      if (!byte) break;
      bytes.insert(bytes.begin(), static_cast<char>(*byte));
    }
    return unicode::incomplete_tail(bytes);
  }

  const Tokenizer<Backend>* tokenizer_;
  DecodeOptions options_;
  bool byte_level_ = false;           // the backend gives raw bytes (byte-level tokenizer.json)
  std::string pending_;               // raw bytes not yet returned (byte-level tokenizer.json)
  std::vector<std::int32_t> window_;  // the ids decoded together (SentencePiece)
  std::string context_text_;          // the text of the window's first context_ids_ ids, already returned
  std::size_t context_ids_ = 0;       // (SentencePiece)
};

}  // namespace maskgen

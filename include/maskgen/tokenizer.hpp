#pragma once
// Tokenizer<Backend>: text to padded batches and back. The default backend is SentencePiece; ids
// are exactly SentencePiece's own EncodeAsIds, plus BOS/EOS as asked.
//
// Invalid UTF-8: SentencePiece's normalizer replaces every byte that is not part of a valid UTF-8
// sequence by U+FFFD (one replacement character per bad byte) before tokenizing, so such input is
// never an error and decoding never produces invalid UTF-8. maskgen keeps that behaviour.

#include <atomic>
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

#include <sentencepiece_processor.h>

#include "detail/parallel.hpp"
#include "error.hpp"
#include "log.hpp"
#include "padding.hpp"

namespace maskgen {

// What a tokenizer backend provides. Ids are int32; "none" ids are std::nullopt.
template <class B>
concept TokenizerBackend = requires(const B& b, std::string_view text, std::int32_t id,
                                    std::span<const std::int32_t> ids,
                                    std::vector<std::int32_t>& out) {
  { b.encode(text, out) } -> std::same_as<void>;  // replaces `out` with the ids of `text`
  { b.decode(ids) } -> std::convertible_to<std::string>;  // ids are all in range, none special
  { b.vocab_size() } -> std::convertible_to<std::int32_t>;
  { b.bos_id() } -> std::same_as<std::optional<std::int32_t>>;
  { b.eos_id() } -> std::same_as<std::optional<std::int32_t>>;
  { b.pad_id() } -> std::same_as<std::optional<std::int32_t>>;
  { b.unk_id() } -> std::same_as<std::optional<std::int32_t>>;
  { b.id_to_piece(id) } -> std::convertible_to<std::string>;
  { b.piece_to_id(text) } -> std::same_as<std::optional<std::int32_t>>;
  { b.is_special(id) } -> std::same_as<bool>;  // control or unknown: dropped by skip_special_tokens
};

// SentencePiece behind the TokenizerBackend concept. The processor is immutable after loading and
// shared by copies; SentencePiece's encoding and decoding are safe to call from several threads.
class SentencePieceBackend {
 public:
  static SentencePieceBackend from_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      throw io_error(detail::cat("tokenizer model file ", path, " does not exist or is not a file"));
    }
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      throw io_error(detail::cat("tokenizer model file ", path, " could not be read"));
    }
    return from_serialized(bytes, detail::cat("tokenizer model file ", path));
  }

  // `what` names the source in error messages.
  static SentencePieceBackend from_serialized(std::string_view bytes,
                                              std::string_view what = "serialized tokenizer model") {
    if (bytes.empty()) throw format_error(detail::cat(what, " is empty"));
    auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
    if (const auto status = sp->LoadFromSerializedProto(bytes); !status.ok()) {
      throw format_error(detail::cat(what, " is not a valid SentencePiece model: ", status.ToString()));
    }
    if (sp->GetPieceSize() <= 0) throw format_error(detail::cat(what, " has no pieces"));
    return SentencePieceBackend(std::move(sp));
  }

  void encode(std::string_view text, std::vector<std::int32_t>& out) const {
    static_assert(sizeof(int) == sizeof(std::int32_t));
    std::vector<int>& ids = out;  // same type on every platform maskgen builds for
    if (const auto status = sp_->Encode(text, &ids); !status.ok()) {
      throw error(detail::cat("SentencePiece failed to encode a text: ", status.ToString()));
    }
  }

  std::string decode(std::span<const std::int32_t> ids) const {
    std::string text;
    if (const auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text); !status.ok()) {
      throw error(detail::cat("SentencePiece failed to decode ids: ", status.ToString()));
    }
    return text;
  }

  std::int32_t vocab_size() const { return sp_->GetPieceSize(); }
  std::optional<std::int32_t> bos_id() const { return valid(sp_->bos_id()); }
  std::optional<std::int32_t> eos_id() const { return valid(sp_->eos_id()); }
  std::optional<std::int32_t> pad_id() const { return valid(sp_->pad_id()); }
  std::optional<std::int32_t> unk_id() const { return valid(sp_->unk_id()); }
  std::string id_to_piece(std::int32_t id) const { return sp_->IdToPiece(id); }
  std::optional<std::int32_t> piece_to_id(std::string_view piece) const {
    // SentencePiece answers the unknown id for a piece it does not have; tell the two apart.
    const std::int32_t id = sp_->PieceToId(piece);
    if (id < 0 || id >= vocab_size() || sp_->IdToPiece(id) != piece) return std::nullopt;
    return id;
  }
  bool is_special(std::int32_t id) const { return sp_->IsControl(id) || sp_->IsUnknown(id); }

  const sentencepiece::SentencePieceProcessor& processor() const { return *sp_; }

 private:
  explicit SentencePieceBackend(std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp)
      : sp_(std::move(sp)) {}
  std::optional<std::int32_t> valid(int id) const {
    return id >= 0 && id < vocab_size() ? std::optional<std::int32_t>(id) : std::nullopt;
  }
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
};

struct EncodeOptions {
  bool add_bos = true;   // prepend the BOS id
  bool add_eos = false;  // append the EOS id
};

struct DecodeOptions {
  bool skip_special_tokens = true;  // drop control and unknown ids (BOS, EOS, pad, unk)
  int num_threads = 0;              // threads for decode_batch; 0 uses every core
};

template <TokenizerBackend Backend = SentencePieceBackend>
class Tokenizer {
 public:
  explicit Tokenizer(Backend backend)
      : backend_(std::move(backend)), warned_pad_fallback_(std::make_shared<std::atomic<bool>>(false)) {}

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

  // The text of `ids`. Throws argument_error for an id outside [0, vocab_size()).
  std::string decode(std::span<const std::int32_t> ids, DecodeOptions options = {}) const {
    return decode_row(ids, options, "ids");
  }

  // One text per row of `ids`: every position is decoded (use skip_special_tokens to drop pads
  // that are EOS or control ids, or pass the mask).
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
    if (options.add_bos) {
      special.bos = backend_.bos_id();
      if (!special.bos) throw argument_error("add_bos is set but the tokenizer has no BOS piece");
    }
    if (options.add_eos) {
      special.eos = backend_.eos_id();
      if (!special.eos) throw argument_error("add_eos is set but the tokenizer has no EOS piece");
    }
    return special;
  }

  void check_id(std::int32_t id, std::string_view what) const {
    if (id < 0 || id >= vocab_size()) {
      throw argument_error(detail::cat(what, " is ", id, ", outside the vocabulary [0, ", vocab_size(), ")"));
    }
  }

  // Decodes runs of ordinary ids with the backend and renders special ids as their pieces (or
  // drops them). `where` names the ids in error messages.
  template <class Ids>
  std::string decode_row(const Ids& ids, const DecodeOptions& options, std::string_view where) const {
    std::string text;
    std::vector<std::int32_t> run;
    auto flush = [&] {
      if (!run.empty()) text += backend_.decode(run);
      run.clear();
    };
    for (std::size_t i = 0; i < static_cast<std::size_t>(ids.size()); ++i) {
      const std::int32_t id = ids[static_cast<decltype(ids.size())>(i)];
      if (id < 0 || id >= vocab_size()) {
        throw argument_error(detail::cat(where, "[", i, "] is ", id, ", outside the vocabulary [0, ",
                                         vocab_size(), ")"));
      }
      if (!backend_.is_special(id)) {
        run.push_back(id);
      } else if (!options.skip_special_tokens) {
        flush();
        text += backend_.id_to_piece(id);
      }
    }
    flush();
    return text;
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
            check_id(ids(i, j), detail::cat("decode_batch: ids[", r, ", ", j, "]"));
            row.push_back(ids(i, j));
          }
        }
        texts[r] = decode_row(row, options, "decode_batch: ids");
      }
    });
    return texts;
  }

  static constexpr std::size_t encode_grain = 4;  // texts per block handed to a thread

  Backend backend_;
  std::shared_ptr<std::atomic<bool>> warned_pad_fallback_;  // the EOS fallback is logged once
};

}  // namespace maskgen

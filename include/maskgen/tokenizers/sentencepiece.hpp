#pragma once
// SentencePieceBackend: a SentencePiece model (tokenizer.model) behind the TokenizerBackend concept.
// Ids are exactly SentencePiece's own EncodeAsIds.
//
// Invalid UTF-8: SentencePiece's normalizer replaces every byte that is not part of a valid UTF-8
// sequence by U+FFFD (one replacement character per bad byte) before tokenizing, so such input is
// never an error and decoding never produces invalid UTF-8. maskgen keeps that behaviour.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sentencepiece_processor.h>

#include "../detail/files.hpp"
#include "../error.hpp"

namespace maskgen {

// SentencePiece behind the TokenizerBackend concept. The processor is immutable after loading and
// shared by copies; SentencePiece's encoding and decoding are safe to call from several threads.
class SentencePieceBackend {
 public:
  static SentencePieceBackend from_file(const std::filesystem::path& path) {
    return from_serialized(detail::read_file(path, "tokenizer model file"), detail::cat("tokenizer model file ", path));
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

  // The text of `ids`: runs of ordinary ids are decoded by SentencePiece, control and unknown ids
  // are dropped when `skip_special`, else written as their pieces. An id without a piece (outside
  // [0, vocab_size())) decodes to nothing, as if it were not there (as Hugging Face tokenizers).
  std::string decode(std::span<const std::int32_t> ids, bool skip_special) const {
    std::string text;
    std::vector<int> run;
    auto flush = [&] {
      if (run.empty()) return;
      std::string piece;
      if (const auto status = sp_->Decode(run, &piece); !status.ok()) {
        throw error(detail::cat("SentencePiece failed to decode ids: ", status.ToString()));
      }
      text += piece;
      run.clear();
    };
    for (const std::int32_t id : ids) {
      if (!has_piece(id)) continue;
      if (!is_special(id)) {
        run.push_back(id);
      } else if (!skip_special) {
        flush();
        text += sp_->IdToPiece(id);
      }
    }
    flush();
    return text;
  }

  std::int32_t vocab_size() const { return sp_->GetPieceSize(); }
  std::optional<std::int32_t> bos_id() const { return valid(sp_->bos_id()); }
  std::optional<std::int32_t> eos_id() const { return valid(sp_->eos_id()); }
  std::optional<std::int32_t> pad_id() const { return valid(sp_->pad_id()); }
  std::optional<std::int32_t> unk_id() const { return valid(sp_->unk_id()); }
  std::string id_to_piece(std::int32_t id) const { return has_piece(id) ? sp_->IdToPiece(id) : std::string(); }
  std::optional<std::int32_t> piece_to_id(std::string_view piece) const {
    // SentencePiece answers the unknown id for a piece it does not have; tell the two apart.
    const std::int32_t id = sp_->PieceToId(piece);
    if (id < 0 || id >= vocab_size() || sp_->IdToPiece(id) != piece) return std::nullopt;
    return id;
  }
  bool is_special(std::int32_t id) const { return has_piece(id) && (sp_->IsControl(id) || sp_->IsUnknown(id)); }
  bool adds_bos_by_default() const { return true; }   // as transformers' LlamaTokenizer
  bool adds_eos_by_default() const { return false; }

  const sentencepiece::SentencePieceProcessor& processor() const { return *sp_; }

 private:
  explicit SentencePieceBackend(std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp)
      : sp_(std::move(sp)) {}
  bool has_piece(std::int32_t id) const { return id >= 0 && id < vocab_size(); }
  std::optional<std::int32_t> valid(int id) const {
    return id >= 0 && id < vocab_size() ? std::optional<std::int32_t>(id) : std::nullopt;
  }
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace maskgen

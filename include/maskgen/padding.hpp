#pragma once
// Turning rows of token ids into one padded batch: truncation, special tokens, padding. The layout
// equals Hugging Face tokenizers' for the same ids (truncation counts the special tokens and keeps
// them; pad_to_multiple_of rounds the padded length up). Where transformers would quietly return
// rows of different lengths (padding off, or a row longer than max_length without truncation),
// maskgen throws: a batch is a matrix.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "error.hpp"

namespace maskgen {

// Row-major int32 matrix of token ids or mask values.  // [batch, seq]
using TokenMatrix = Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

enum class Side { Left, Right };

// How long the padded rows are.
enum class PadTo {
  Longest,    // the longest row of the batch
  MaxLength,  // PaddingOptions::max_length
  None,       // no padding: every row must already have the same length
};

struct PaddingOptions {
  Side padding_side = Side::Left;              // where pads go; left is what generation expects
  std::optional<std::int32_t> max_length{};    // target of PadTo::MaxLength and cap of truncation
  PadTo padding = PadTo::Longest;              // how long the padded rows are
  std::optional<std::int32_t> pad_to_multiple_of{};  // round the padded length up to a multiple (> 0)
  bool truncation = false;                     // cut rows longer than max_length (specials kept)
  Side truncation_side = Side::Right;          // which end of the text truncation removes
  std::optional<bool> add_bos{};               // prepend BOS; unset: the tokenizer's default
  std::optional<bool> add_eos{};               // append EOS; unset: the tokenizer's default
  std::optional<std::int32_t> pad_token_id{};  // unset: the tokenizer's pad id, else EOS (logged)
  int num_threads = 0;                         // threads for encoding; 0 uses every core
};

// A padded batch. 1 in the mask marks a real token, 0 a pad; only the mask says what is padding.
struct BatchEncoding {
  TokenMatrix input_ids;       // [batch, seq]
  TokenMatrix attention_mask;  // [batch, seq], values 0 or 1
};

// The special ids a row gets: unset means "do not add".
struct SpecialIds {
  std::optional<std::int32_t> bos{};
  std::optional<std::int32_t> eos{};
};

// Checks the options that do not depend on the data; throws argument_error naming the field.
inline void validate(const PaddingOptions& options) {
  using detail::cat;
  if (options.max_length && *options.max_length < 0) {
    throw argument_error(cat("PaddingOptions::max_length must be >= 0, got ", *options.max_length));
  }
  if (options.pad_to_multiple_of && *options.pad_to_multiple_of <= 0) {
    throw argument_error(cat("PaddingOptions::pad_to_multiple_of must be > 0 when set, got ",
                             *options.pad_to_multiple_of));
  }
  if (options.padding == PadTo::None && options.pad_to_multiple_of) {
    throw argument_error(
        "PaddingOptions::pad_to_multiple_of is set but padding is PadTo::None; unset one of them");
  }
  if (options.padding == PadTo::MaxLength && !options.max_length) {
    throw argument_error("PaddingOptions::max_length must be set when padding is PadTo::MaxLength");
  }
  if (options.truncation && !options.max_length) {
    throw argument_error("PaddingOptions::max_length must be set when truncation is on");
  }
  if (options.truncation && options.padding != PadTo::None && options.pad_to_multiple_of &&
      *options.max_length % *options.pad_to_multiple_of != 0) {
    // Padding up to the multiple would make rows longer than the truncation length.
    throw argument_error(cat("PaddingOptions::max_length (", *options.max_length,
                             ") must be a multiple of pad_to_multiple_of (", *options.pad_to_multiple_of,
                             ") when truncation and padding are both on"));
  }
  if (options.num_threads < 0) {
    throw argument_error(
        cat("PaddingOptions::num_threads must be >= 0 (0 uses every core), got ", options.num_threads));
  }
}

// Truncates `content` (ids of one text, no special tokens) as `options` asks, then adds the
// special ids. With truncation, the result has at most max_length ids and always keeps the
// special ids: the text is cut, never BOS or EOS.
inline std::vector<std::int32_t> add_special_tokens(std::span<const std::int32_t> content,
                                                    const PaddingOptions& options,
                                                    const SpecialIds& special) {
  const std::size_t n_special = (special.bos ? 1 : 0) + (special.eos ? 1 : 0);
  std::size_t keep = content.size();
  if (options.truncation) {
    const auto max_length = static_cast<std::size_t>(options.max_length.value_or(0));
    if (max_length < n_special) {
      throw argument_error(detail::cat("PaddingOptions::max_length (", max_length,
                                       ") is too small to hold the ", n_special,
                                       " special token(s) added to every row"));
    }
    keep = std::min(keep, max_length - n_special);
  }
  const auto kept = options.truncation_side == Side::Right
                        ? content.first(keep)
                        : content.last(keep);
  std::vector<std::int32_t> row;
  row.reserve(kept.size() + n_special);
  if (special.bos) row.push_back(*special.bos);
  row.insert(row.end(), kept.begin(), kept.end());
  if (special.eos) row.push_back(*special.eos);
  return row;
}

// The padded length of a batch of rows (already truncated). Throws if a row cannot fit.
inline std::size_t padded_length(std::span<const std::vector<std::int32_t>> rows,
                                 const PaddingOptions& options) {
  using detail::cat;
  std::size_t longest = 0, longest_row = 0;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() > longest) longest = rows[r].size(), longest_row = r;
  }
  if (options.max_length && longest > static_cast<std::size_t>(*options.max_length)) {
    throw argument_error(cat("row ", longest_row, " has ", longest,
                             " tokens but PaddingOptions::max_length is ", *options.max_length,
                             "; turn truncation on or raise max_length"));
  }
  std::size_t length = longest;
  switch (options.padding) {
    case PadTo::Longest: break;
    case PadTo::MaxLength: length = static_cast<std::size_t>(*options.max_length); break;
    case PadTo::None:
      for (std::size_t r = 0; r < rows.size(); ++r) {
        if (rows[r].size() != longest) {
          throw argument_error(cat("row ", r, " has ", rows[r].size(), " tokens and row ",
                                   longest_row, " has ", longest,
                                   ": the batch needs padding but padding is PadTo::None"));
        }
      }
      break;
  }
  if (options.pad_to_multiple_of) {
    const auto m = static_cast<std::size_t>(*options.pad_to_multiple_of);
    length = (length + m - 1) / m * m;
  }
  return length;
}

// Lays rows out as one padded batch. `pad_id` is only needed when some position is padding; if
// it is then unset, this throws.
inline BatchEncoding pad_rows(std::span<const std::vector<std::int32_t>> rows,
                              const PaddingOptions& options, std::optional<std::int32_t> pad_id) {
  validate(options);
  const std::size_t length = padded_length(rows, options);
  BatchEncoding batch;
  batch.input_ids.resize(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(length));
  batch.attention_mask.resize(batch.input_ids.rows(), batch.input_ids.cols());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    const std::size_t pads = length - row.size();
    if (pads > 0 && !pad_id) {
      throw argument_error(detail::cat(
          "row ", r, " needs padding but no pad id is known: set PaddingOptions::pad_token_id"));
    }
    const std::size_t first_real = options.padding_side == Side::Left ? pads : 0;
    auto ids = batch.input_ids.row(static_cast<Eigen::Index>(r));
    auto mask = batch.attention_mask.row(static_cast<Eigen::Index>(r));
    ids.setConstant(pad_id.value_or(0));
    mask.setZero();
    for (std::size_t j = 0; j < row.size(); ++j) {
      ids(static_cast<Eigen::Index>(first_real + j)) = row[j];
      mask(static_cast<Eigen::Index>(first_real + j)) = 1;
    }
  }
  return batch;
}

}  // namespace maskgen

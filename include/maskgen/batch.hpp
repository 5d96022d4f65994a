#pragma once
// The one border between the padded batches users hold (input_ids + attention_mask, as tokenizers
// return them) and the padding-free batches the forward pass runs: validate_batch checks a padded
// batch, pack keeps each row's real tokens, scatter_to_padded puts per-token results back in the
// padded layout. Everything inside the library builds its batches with PackedBatch::add_row.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "error.hpp"
#include "padding.hpp"

namespace maskgen {

// A batch without padding: each row's real tokens, one row after another.
struct PackedBatch {
  std::vector<std::int32_t> tokens;      // [tokens] real token ids, row after row
  std::vector<std::size_t> row_offsets;  // [rows + 1] row r owns tokens [row_offsets[r], row_offsets[r + 1])
  std::vector<std::size_t> cache_rows;   // [rows] the cache row that row r extends
  // [rows], or empty: where row r's tokens are a chunk of a longer prompt, that prompt's length
  // (0 otherwise). LongRoPE chooses its factors by how far a forward reaches (Phi-3: a prompt
  // past original_max_position_embeddings rotates with the long factors), so a prompt fed in
  // chunks turns as it would fed whole.
  std::vector<std::size_t> prefill_ends;

  std::size_t rows() const { return cache_rows.size(); }
  std::size_t row_length(std::size_t r) const { return row_offsets[r + 1] - row_offsets[r]; }

  // Appends a row whose tokens `ids` extend cache row `cache_row`.
  void add_row(std::size_t cache_row, std::span<const std::int32_t> ids) {
    if (row_offsets.empty()) row_offsets.push_back(0);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
    row_offsets.push_back(tokens.size());
    cache_rows.push_back(cache_row);
  }
  // Appends a row of one token (a decode step).
  void add_row(std::size_t cache_row, std::int32_t id) { add_row(cache_row, std::span<const std::int32_t>(&id, 1)); }
};

// Checks a padded batch (DESIGN 2.9): equal shapes, mask values 0/1, at least one real token per
// row, real ids inside the vocabulary. Pad positions may hold any id.
inline void validate_batch(const TokenMatrix& input_ids, const TokenMatrix& attention_mask, std::int64_t vocab_size) {
  using detail::cat;
  if (input_ids.rows() != attention_mask.rows() || input_ids.cols() != attention_mask.cols()) {
    throw argument_error(cat("input_ids has shape [", input_ids.rows(), ", ", input_ids.cols(),
                             "] but attention_mask has shape [", attention_mask.rows(), ", ",
                             attention_mask.cols(), "]; they must be equal"));
  }
  for (Eigen::Index r = 0; r < input_ids.rows(); ++r) {
    Eigen::Index real = 0;
    for (Eigen::Index c = 0; c < input_ids.cols(); ++c) {
      const std::int32_t m = attention_mask(r, c), id = input_ids(r, c);
      if (m != 0 && m != 1) {
        throw argument_error(cat("attention_mask[", r, ", ", c, "] is ", m, "; mask values must be 0 or 1"));
      }
      if (m == 1) detail::check_vocabulary_id(id, vocab_size, "input_ids[", r, ", ", c, "]");
      real += m;
    }
    if (real == 0) throw argument_error(cat("attention_mask row ", r, " has no real token (all zeros)"));
  }
}

// The real tokens of a validated padded batch; row r extends cache row r.
inline PackedBatch pack(const TokenMatrix& input_ids, const TokenMatrix& attention_mask) {
  PackedBatch batch;
  std::vector<std::int32_t> row;
  for (Eigen::Index r = 0; r < input_ids.rows(); ++r) {
    row.clear();
    for (Eigen::Index c = 0; c < input_ids.cols(); ++c) {
      if (attention_mask(r, c) == 1) row.push_back(input_ids(r, c));
    }
    batch.add_row(static_cast<std::size_t>(r), row);
  }
  return batch;
}

// The rows of `packed` (one per real token of the padded batch, in pack's order) at their places
// in the padded layout: row r * seq + c of the result holds the token at [r, c]; pad places are 0.
template <class Matrix>
Matrix scatter_to_padded(const Matrix& packed, const TokenMatrix& attention_mask) {
  Matrix all = Matrix::Zero(attention_mask.rows() * attention_mask.cols(), packed.cols());
  Eigen::Index t = 0;
  for (Eigen::Index r = 0; r < attention_mask.rows(); ++r)
    for (Eigen::Index c = 0; c < attention_mask.cols(); ++c)
      if (attention_mask(r, c) == 1) all.row(r * attention_mask.cols() + c) = packed.row(t++);
  return all;
}

}  // namespace maskgen

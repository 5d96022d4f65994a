#pragma once
// What generate() is asked and what it returns: GenerationConfig (transformers' generation
// settings), GenerationResult, the finish reasons, and the streamer's view of a step.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../error.hpp"
#include "../ops/matrix.hpp"
#include "../padding.hpp"

namespace maskgen {

// One token id or several: `= 2` or `= {2, 32000}`; `{}` is none.
struct TokenIds {
  std::vector<std::int32_t> ids;

  TokenIds() = default;
  TokenIds(std::int32_t id) : ids{id} {}  // NOLINT: implicit on purpose
  TokenIds(std::initializer_list<std::int32_t> list) : ids(list) {}
  TokenIds(std::vector<std::int32_t> list) : ids(std::move(list)) {}  // NOLINT
};

// When beam search stops looking for better hypotheses (transformers' `early_stopping`).
enum class EarlyStopping {
  Heuristic,  // false: stop when the best running beam, at its current length, cannot beat the worst kept one
  WhenFull,   // true: stop as soon as num_beams hypotheses are finished
  Never,      // "never": as Heuristic, but with a positive length penalty assume the longest possible length
};

// Why a sequence ended.
enum class FinishReason {
  Eos,      // it emitted an end-of-sequence id (kept as its last token)
  Stop,     // the streamer stopped it
  Length,   // it reached max_new_tokens
  Context,  // it filled the model's context (max_position_embeddings)
  Cancel,   // Engine: its request was cancelled
};

struct GenerationConfig {
  int max_new_tokens = 20;  // tokens to generate per row at most, >= 0
  int min_new_tokens = 0;   // end-of-sequence ids are suppressed until a row has this many

  TokenIds eos_token_id{};                   // empty: the model config's eos_token_id (none there: rows end by length)
  std::optional<std::int32_t> pad_token_id{};  // fills finished rows; unset: the model's, else the first EOS id (logged)

  bool do_sample = false;       // false: greedy (num_beams 1) or beam search; true: sample
  double temperature = 1.0;     // sampling: scores are divided by it, > 0
  int top_k = 50;               // sampling: keep the k best tokens; 0 disables (50 is transformers' default)
  double top_p = 1.0;           // sampling: nucleus mass in (0, 1]; 1 disables
  double min_p = 0.0;           // sampling: drop tokens below min_p x the best one's probability; 0 disables

  double repetition_penalty = 1.0;  // > 0; above 1 discourages tokens already in the row; 1 disables
  int no_repeat_ngram_size = 0;     // > 0: no n-gram of this size occurs twice in a row; 0 disables

  // OpenAI's penalties, in [-2, 2] (0 disables): before sampling, token j's score loses
  // count_j * frequency_penalty + (count_j > 0) * presence_penalty, where count_j counts j among
  // the tokens this row has generated so far (not its prompt). Positive values discourage repeats.
  // Applied right after repetition_penalty (which divides, and counts the prompt too), as vLLM does.
  double frequency_penalty = 0.0;
  double presence_penalty = 0.0;
  // OpenAI's logit_bias: token id -> a bias in [-100, 100] added to its score before any other
  // processor (+100 all but forces the token, -100 all but bans it). Ids in [0, vocab_size).
  std::map<std::int32_t, double> logit_bias{};

  int num_beams = 1;                                      // > 1: beam search
  double length_penalty = 1.0;                            // beam scores are sum(log p) / length^length_penalty
  EarlyStopping early_stopping = EarlyStopping::Heuristic;  // when beam search stops
  int num_return_sequences = 1;                           // sequences per prompt; <= num_beams with beams; 1 when greedy

  std::uint64_t seed = 0;               // sampling: row b draws from a stream seeded by mix_seed(seed, b)
  std::vector<std::uint64_t> row_seeds{};  // sampling: one seed per prompt, overriding `seed` (empty: derive)

  bool output_scores = false;  // greedy/sampling: keep each step's processed scores per row
  int num_threads = 0;         // threads for the forward pass and token choice; 0 uses every core
};

template <class Scalar>
struct GenerationResult {
  // [batch * num_return_sequences, longest] new tokens only; sequence j of prompt b is row
  // b * num_return_sequences + j. A row's tokens after its end hold pad_token_id.
  TokenMatrix sequences;
  std::vector<std::size_t> lengths;           // [rows] tokens each row generated (an ending EOS included)
  std::vector<FinishReason> finish_reasons;   // [rows]
  std::vector<double> sequence_scores;        // [rows] beam search: sum(log p) / length^length_penalty; else empty
  std::vector<ops::Matrix<Scalar>> scores;    // [rows] output_scores: [lengths[r], vocab] processed scores per step
  std::int32_t pad_token_id = 0;              // the pad id used
  std::vector<std::int32_t> eos_token_ids;    // the end-of-sequence ids used

  // 1 where `sequences` holds a generated token, 0 where it holds padding: decode with
  // Tokenizer::decode_batch(sequences, sequences_mask()) whatever the pad id is.
  TokenMatrix sequences_mask() const {
    TokenMatrix mask = TokenMatrix::Zero(sequences.rows(), sequences.cols());
    for (Eigen::Index r = 0; r < mask.rows(); ++r) mask.row(r).head(static_cast<Eigen::Index>(lengths[static_cast<std::size_t>(r)])).setOnes();
    return mask;
  }
};

// What a streamer sees after each step: the rows that produced a token in this step and those
// tokens. It may stop rows (they end after this token, FinishReason::Stop) or all of them.
class StreamStep {
 public:
  StreamStep(std::size_t step, std::span<const std::size_t> rows, std::span<const std::int32_t> tokens,
             std::span<const char> finished, std::vector<bool>& stop)
      : step_(step), rows_(rows), tokens_(tokens), finished_(finished), stop_(stop) {}

  std::size_t step() const { return step_; }                        // 0 for each row's first new token
  std::span<const std::size_t> rows() const { return rows_; }        // output rows, increasing
  std::span<const std::int32_t> tokens() const { return tokens_; }   // tokens()[i] is rows()[i]'s new token
  bool finished(std::size_t i) const { return finished_[i] != 0; }  // rows()[i] ends with this token

  void stop(std::size_t row) {  // ends `row` (an output row index) after this token
    if (row >= stop_.size()) throw argument_error(detail::cat("StreamStep::stop: row ", row, " of ", stop_.size()));
    stop_[row] = true;
  }
  void stop_all() { std::fill(stop_.begin(), stop_.end(), true); }

 private:
  std::size_t step_;
  std::span<const std::size_t> rows_;
  std::span<const std::int32_t> tokens_;
  std::span<const char> finished_;
  std::vector<bool>& stop_;
};

using Streamer = std::function<void(StreamStep& step)>;

namespace detail {

// Rows of new tokens, padded with `pad` to the longest.
template <class Scalar>
void fill_sequences(GenerationResult<Scalar>& result, const std::vector<std::vector<std::int32_t>>& rows) {
  std::size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.size());
  result.sequences.setConstant(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(width),
                               result.pad_token_id);
  result.lengths.resize(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    result.lengths[r] = rows[r].size();
    for (std::size_t t = 0; t < rows[r].size(); ++t) {
      result.sequences(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(t)) = rows[r][t];
    }
  }
}

}  // namespace detail

}  // namespace maskgen

#pragma once
// generate(): masked batch generation with transformers' semantics (greedy, sampling, beam
// search), where every row comes out exactly as if it had been generated alone.
//
// The mask is required: each row is reduced to its real tokens, so the padding side and amount
// change nothing. Each row keeps its own cache of real tokens, the live rows' new tokens are
// packed into one batch per step, and a row that finishes leaves the batch at once. Choosing a
// row's token reads only that row's logits and history, and each row samples from its own random
// stream, so a row's tokens and scores do not depend on what else is in the batch.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "config.hpp"
#include "detail/parallel.hpp"
#include "error.hpp"
#include "log.hpp"
#include "model.hpp"
#include "padding.hpp"
#include "sampling.hpp"

namespace maskgen {

// What generate() needs of a model: its config, a cache with one row per sequence, and the
// padding-free forward pass (one logits row per packed row, from its last token).
template <class M>
concept CausalLM = requires(const M& model, const PackedBatch& batch, typename M::cache_type& cache,
                            const ForwardOptions& options, std::size_t row) {
  typename M::scalar_type;
  { model.config() } -> std::convertible_to<const ModelConfig&>;
  { model.make_cache(row) } -> std::same_as<typename M::cache_type>;
  { model.forward_packed(batch, cache, options) } -> std::convertible_to<ops::Matrix<typename M::scalar_type>>;
  { cache.length(row) } -> std::convertible_to<std::size_t>;
  cache.copy_row(row, row);
  cache.release(row);
};

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

// The ids generation ends rows with and fills finished rows with.
struct GenerationIds {
  std::vector<std::int32_t> eos;
  std::int32_t pad = 0;
};

// The ids that end a row: the config's own, else the model's; each checked against the vocabulary.
inline std::vector<std::int32_t> resolve_eos(const GenerationConfig& gen, const ModelConfig& config) {
  std::vector<std::int32_t> eos = gen.eos_token_id.ids.empty() ? config.eos_token_ids : gen.eos_token_id.ids;
  for (std::size_t i = 0; i < eos.size(); ++i) check_vocabulary_id(eos[i], config.vocab_size, "eos_token_id[", i, "]");
  return eos;
}

inline GenerationIds resolve_special_ids(const GenerationConfig& gen, const ModelConfig& config) {
  GenerationIds ids;
  ids.eos = resolve_eos(gen, config);
  const std::int64_t vocab = config.vocab_size;
  if (gen.pad_token_id) {
    ids.pad = *gen.pad_token_id;
    check_vocabulary_id(ids.pad, vocab, "pad_token_id");
  } else if (config.pad_token_id) {
    ids.pad = *config.pad_token_id;
  } else if (!ids.eos.empty()) {
    ids.pad = ids.eos.front();
    log(LogLevel::Warning, cat("GenerationConfig::pad_token_id is unset; setting pad_token_id to eos_token_id ",
                               ids.pad, " for finished rows"));
  } else {
    throw argument_error("GenerationConfig::pad_token_id is unset and there is no eos_token_id to fall back on");
  }
  return ids;
}

inline void validate_generation(const GenerationConfig& gen, std::size_t prompts, bool streaming) {
  if (gen.max_new_tokens < 0) throw argument_error(cat("max_new_tokens must be >= 0, got ", gen.max_new_tokens));
  if (gen.min_new_tokens < 0) throw argument_error(cat("min_new_tokens must be >= 0, got ", gen.min_new_tokens));
  if (gen.num_beams < 1) throw argument_error(cat("num_beams must be >= 1, got ", gen.num_beams));
  if (gen.num_return_sequences < 1) {
    throw argument_error(cat("num_return_sequences must be >= 1, got ", gen.num_return_sequences));
  }
  if (!(gen.repetition_penalty > 0) || !std::isfinite(gen.repetition_penalty)) {
    throw argument_error(cat("repetition_penalty must be a finite number > 0, got ", gen.repetition_penalty));
  }
  if (gen.no_repeat_ngram_size < 0) {
    throw argument_error(cat("no_repeat_ngram_size must be >= 0, got ", gen.no_repeat_ngram_size));
  }
  if (gen.num_beams > 1) {
    if (gen.do_sample) throw argument_error("do_sample with num_beams > 1 (beam sampling) is not supported");
    if (gen.num_return_sequences > gen.num_beams) {
      throw argument_error(cat("num_return_sequences (", gen.num_return_sequences, ") must be <= num_beams (",
                               gen.num_beams, ") in beam search"));
    }
    if (!std::isfinite(gen.length_penalty)) throw argument_error(cat("length_penalty must be finite, got ", gen.length_penalty));
    if (streaming) throw argument_error("a streamer cannot follow beam search: its tokens change until the end");
    if (gen.output_scores) {
      throw argument_error("output_scores is for greedy search and sampling; beam search reports sequence_scores");
    }
  } else if (!gen.do_sample && gen.num_return_sequences > 1) {
    throw argument_error(cat("greedy search returns one sequence per prompt; num_return_sequences is ",
                             gen.num_return_sequences, " (use do_sample or num_beams)"));
  }
  if (gen.do_sample) {
    if (!(gen.temperature > 0) || !std::isfinite(gen.temperature)) {
      throw argument_error(cat("temperature must be a finite number > 0 when sampling, got ", gen.temperature));
    }
    if (gen.top_k < 0) throw argument_error(cat("top_k must be >= 0 (0 disables), got ", gen.top_k));
    if (!(gen.top_p > 0 && gen.top_p <= 1)) throw argument_error(cat("top_p must be in (0, 1], got ", gen.top_p));
    if (!(gen.min_p >= 0 && gen.min_p <= 1)) throw argument_error(cat("min_p must be in [0, 1], got ", gen.min_p));
    if (!gen.row_seeds.empty() && gen.row_seeds.size() != prompts) {
      throw argument_error(cat("row_seeds has ", gen.row_seeds.size(), " seeds for ", prompts,
                               " prompts; give one per prompt or none"));
    }
  }
}

// One row's next token: `logits` [vocab] copied into `scores`, the processors run over them with
// the row's history, then a sample or the argmax. generate() and the engine both choose with it.
template <class Scalar, class Logits>
std::int32_t choose_token(const Logits& logits, std::vector<Scalar>& scores, const LogitsProcessorChain<Scalar>& processors,
                          RowHistory history, bool do_sample, RowRandom& random) {
  std::copy(logits.data(), logits.data() + scores.size(), scores.begin());
  processors(history, scores);
  return do_sample ? sample_token<Scalar>(scores, random) : argmax_token<Scalar>(scores);
}

// The processors transformers would run for `gen`, in its order.
template <class Scalar>
LogitsProcessorChain<Scalar> make_processors(const GenerationConfig& gen, const std::vector<std::int32_t>& eos) {
  LogitsProcessorChain<Scalar> chain;
  if (gen.repetition_penalty != 1.0) chain.add(processors::RepetitionPenalty{gen.repetition_penalty});
  if (gen.no_repeat_ngram_size > 0) {
    chain.add(processors::NoRepeatNGram{static_cast<std::size_t>(gen.no_repeat_ngram_size)});
  }
  if (gen.min_new_tokens > 0 && !eos.empty()) {
    chain.add(processors::MinNewTokens{static_cast<std::size_t>(gen.min_new_tokens), eos});
  }
  if (gen.do_sample) {
    if (gen.temperature != 1.0) chain.add(processors::Temperature{gen.temperature});
    if (gen.top_k > 0) chain.add(processors::TopK{static_cast<std::size_t>(gen.top_k)});
    if (gen.top_p < 1.0) chain.add(processors::TopP{gen.top_p});
    if (gen.min_p > 0.0) chain.add(processors::MinP{gen.min_p});
  }
  return chain;
}

inline bool is_eos(std::int32_t token, const std::vector<std::int32_t>& eos) {
  return std::find(eos.begin(), eos.end(), token) != eos.end();
}

// Why a row that has just appended `token` ends, if it does, checked in this order:
// an end-of-sequence id, then max_new_tokens reached, then a full context (the token could not be
// fed back).
inline std::optional<FinishReason> finish_reason(std::int32_t token, const std::vector<std::int32_t>& eos,
                                                 std::size_t generated, std::size_t max_new, std::size_t history,
                                                 std::size_t context) {
  if (is_eos(token, eos)) return FinishReason::Eos;
  if (generated >= max_new) return FinishReason::Length;
  if (history > context) return FinishReason::Context;
  return std::nullopt;
}

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

// Greedy search and sampling over prompts of real tokens. Output row r = b * n + j is sequence
// j of prompt b; the prompt is run once and its cache copied to its other sequences.
template <CausalLM M>
GenerationResult<typename M::scalar_type> search(const M& model, const std::vector<std::vector<std::int32_t>>& prompts,
                                                 const GenerationConfig& gen, const GenerationIds& ids,
                                                 const Streamer& streamer) {
  using Scalar = typename M::scalar_type;
  const ModelConfig& config = model.config();
  const std::size_t n = static_cast<std::size_t>(gen.num_return_sequences), rows = prompts.size() * n;
  const auto vocab = static_cast<Eigen::Index>(config.vocab_size);
  const auto context = static_cast<std::size_t>(config.max_position_embeddings);
  const auto max_new = static_cast<std::size_t>(gen.max_new_tokens);
  const int threads = resolve_thread_count(gen.num_threads, "GenerationConfig::num_threads");
  const ForwardOptions forward_options{LogitsFor::Last, threads};
  const LogitsProcessorChain<Scalar> processors = make_processors<Scalar>(gen, ids.eos);

  GenerationResult<Scalar> result;
  result.pad_token_id = ids.pad;
  result.eos_token_ids = ids.eos;
  result.finish_reasons.assign(rows, FinishReason::Length);
  std::vector<std::vector<std::int32_t>> history(rows), generated(rows);  // [rows][real tokens], [rows][new tokens]
  std::vector<std::vector<Scalar>> step_scores(gen.output_scores ? rows : 0);  // [rows][steps * vocab]
  std::vector<RowRandom> random;
  for (std::size_t r = 0; r < rows; ++r) {
    const std::size_t b = r / n;
    history[r] = prompts[b];
    if (gen.do_sample) {
      const std::uint64_t base = gen.row_seeds.empty() ? mix_seed(gen.seed, b) : gen.row_seeds[b];
      random.emplace_back(n == 1 ? base : mix_seed(base, r % n));
    }
  }
  if (max_new == 0) {
    fill_sequences(result, generated);
    return result;
  }

  auto cache = model.make_cache(rows);
  PackedBatch batch;  // the prompts, each once
  for (std::size_t b = 0; b < prompts.size(); ++b) batch.add_row(b * n, prompts[b]);
  ops::Matrix<Scalar> logits = model.forward_packed(batch, cache, forward_options);  // [prompts, vocab]
  for (std::size_t r = 0; r < rows; ++r) {
    if (r % n != 0) cache.copy_row(r - r % n, r);
  }
  std::vector<std::size_t> live(rows);  // output rows still generating
  for (std::size_t r = 0; r < rows; ++r) live[r] = r;

  std::vector<bool> stop(rows, false);
  for (std::size_t step = 0; !live.empty(); ++step) {
    // Each live row's token, from its own logits and history only.
    std::vector<std::int32_t> tokens(live.size());
    const int choice_threads = live.size() * static_cast<std::size_t>(vocab) < 65536 ? 1 : threads;
    parallel_for_dynamic(live.size(), choice_threads, 1, [&](std::size_t begin, std::size_t end) {
      std::vector<Scalar> scores(static_cast<std::size_t>(vocab));
      for (std::size_t i = begin; i < end; ++i) {
        const std::size_t r = live[i];
        // The prefill's logits have a row per prompt; each later step's a row per live row.
        const auto row = logits.row(static_cast<Eigen::Index>(step == 0 ? r / n : i));
        tokens[i] = choose_token(row, scores, processors, RowHistory{history[r], prompts[r / n].size()}, gen.do_sample,
                                 random[r]);
        if (gen.output_scores) step_scores[r].insert(step_scores[r].end(), scores.begin(), scores.end());
      }
    });

    std::vector<char> finished(live.size(), 0);
    for (std::size_t i = 0; i < live.size(); ++i) {
      const std::size_t r = live[i];
      generated[r].push_back(tokens[i]);
      history[r].push_back(tokens[i]);
      const auto reason = finish_reason(tokens[i], ids.eos, generated[r].size(), max_new, history[r].size(), context);
      if (!reason) continue;
      result.finish_reasons[r] = *reason;
      finished[i] = 1;
    }
    if (streamer) {
      StreamStep event(step, live, tokens, finished, stop);
      streamer(event);
      for (std::size_t i = 0; i < live.size(); ++i) {
        if (stop[live[i]] && !finished[i]) {
          finished[i] = 1;
          result.finish_reasons[live[i]] = FinishReason::Stop;
        }
      }
    }

    // Finished rows leave the batch and give back their cache; the others feed their new token.
    PackedBatch next;
    std::vector<std::size_t> still_live;
    for (std::size_t i = 0; i < live.size(); ++i) {
      if (finished[i]) {
        cache.release(live[i]);
        continue;
      }
      still_live.push_back(live[i]);
      next.add_row(live[i], tokens[i]);
    }
    live = std::move(still_live);
    if (live.empty()) break;
    logits = model.forward_packed(next, cache, forward_options);  // [live, vocab]
  }

  fill_sequences(result, generated);
  if (gen.output_scores) {
    result.scores.resize(rows);
    for (std::size_t r = 0; r < rows; ++r) {
      result.scores[r] = Eigen::Map<const ops::Matrix<Scalar>>(step_scores[r].data(),
                                                               static_cast<Eigen::Index>(generated[r].size()), vocab);
    }
  }
  return result;
}

// Beam search with transformers' rules. Each prompt's beams evolve on their own: the prompt's
// `num_beams` cache rows are shared by its beams, a beam that forks copies its parent's row, and
// a prompt whose search is over leaves the batch.
template <CausalLM M>
GenerationResult<typename M::scalar_type> beam_search(const M& model,
                                                      const std::vector<std::vector<std::int32_t>>& prompts,
                                                      const GenerationConfig& gen, const GenerationIds& ids) {
  using Scalar = typename M::scalar_type;
  const ModelConfig& config = model.config();
  const auto beams = static_cast<std::size_t>(gen.num_beams);
  const auto returned = static_cast<std::size_t>(gen.num_return_sequences);
  const auto vocab = static_cast<std::size_t>(config.vocab_size);
  const auto context = static_cast<std::size_t>(config.max_position_embeddings);
  const auto max_new = static_cast<std::size_t>(gen.max_new_tokens);
  // Candidates kept per step: enough that num_beams of them do not end in EOS.
  const std::size_t keep = std::max<std::size_t>(2, 1 + ids.eos.size()) * beams;
  if (keep > vocab) {
    throw argument_error(cat("num_beams ", beams, " needs ", keep, " candidates per step but the vocabulary has ", vocab));
  }
  const int threads = resolve_thread_count(gen.num_threads, "GenerationConfig::num_threads");
  const ForwardOptions forward_options{LogitsFor::Last, threads};
  const LogitsProcessorChain<Scalar> processors = make_processors<Scalar>(gen, ids.eos);
  constexpr Scalar out_of_play = Scalar(-1.0e9);  // transformers' mark for beams that may not be chosen

  struct Beam {
    std::vector<std::int32_t> tokens;  // new tokens
    Scalar score = 0;                  // sum of log-probabilities
    std::size_t cache_row = 0;
  };
  struct Hypothesis {
    std::vector<std::int32_t> tokens;
    Scalar score = 0;  // sum(log p) / length^length_penalty
    FinishReason reason = FinishReason::Length;
  };
  struct Prompt {
    std::vector<Beam> running;
    std::vector<Hypothesis> finished;  // best first, at most num_beams
    std::vector<std::size_t> spare_rows;
    bool improvable = true;
    bool done = false;
  };

  GenerationResult<Scalar> result;
  result.pad_token_id = ids.pad;
  result.eos_token_ids = ids.eos;
  std::vector<Prompt> state(prompts.size());
  auto cache = model.make_cache(prompts.size() * beams);
  PackedBatch batch;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    state[b].running.push_back(Beam{{}, Scalar(0), b * beams});
    for (std::size_t k = 1; k < beams; ++k) state[b].spare_rows.push_back(b * beams + k);
    batch.add_row(b * beams, prompts[b]);
    state[b].done = max_new == 0;
  }

  std::vector<std::size_t> live;  // prompts still searching
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    if (!state[b].done) live.push_back(b);
  }
  ops::Matrix<Scalar> logits;
  if (!live.empty()) logits = model.forward_packed(batch, cache, forward_options);  // [prompts, vocab]
  for (std::size_t g = 0; !live.empty(); ++g) {  // g: tokens generated before this step
    // Row of `logits` where each live prompt's beams start.
    std::vector<std::size_t> first_row(live.size());
    for (std::size_t i = 0, row = 0; i < live.size(); ++i) {
      first_row[i] = g == 0 ? live[i] : row;
      row += state[live[i]].running.size();
    }
    const int choice_threads = live.size() * beams * vocab < 65536 ? 1 : threads;
    parallel_for_dynamic(live.size(), choice_threads, 1, [&](std::size_t begin, std::size_t end) {
      std::vector<Scalar> scores(vocab);
      for (std::size_t i = begin; i < end; ++i) {
        const std::size_t b = live[i];
        Prompt& p = state[b];
        struct Candidate {
          Scalar score;
          std::size_t beam;
          std::int32_t token;
        };
        // Candidates ordered by score, then by (beam, token) as transformers' flat top-k.
        auto better = [](const Candidate& x, const Candidate& y) {
          if (x.score != y.score) return x.score > y.score;
          return x.beam != y.beam ? x.beam < y.beam : x.token < y.token;
        };
        std::vector<Candidate> candidates;
        std::vector<std::int32_t> history(prompts[b]);
        for (std::size_t k = 0; k < p.running.size(); ++k) {
          const Beam& beam = p.running[k];
          const auto row = logits.row(static_cast<Eigen::Index>(first_row[i] + k));
          std::copy(row.data(), row.data() + vocab, scores.begin());
          log_softmax<Scalar>(scores);
          history.resize(prompts[b].size());
          history.insert(history.end(), beam.tokens.begin(), beam.tokens.end());
          processors(RowHistory{history, prompts[b].size()}, scores);
          std::vector<Candidate> mine(vocab);
          for (std::size_t t = 0; t < vocab; ++t) mine[t] = {scores[t] + beam.score, k, static_cast<std::int32_t>(t)};
          std::partial_sort(mine.begin(), mine.begin() + static_cast<std::ptrdiff_t>(keep), mine.end(), better);
          candidates.insert(candidates.end(), mine.begin(), mine.begin() + static_cast<std::ptrdiff_t>(keep));
        }
        std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(keep), candidates.end(),
                          better);
        candidates.resize(keep);

        // A candidate ends its hypothesis when it is an EOS or when the row can grow no further.
        const std::size_t length = g + 1;
        auto reason_of = [&](std::int32_t token) {
          return finish_reason(token, ids.eos, length, max_new, prompts[b].size() + length, context);
        };
        bool all_end = true;
        std::vector<std::pair<Scalar, std::size_t>> next;  // (score for continuing, candidate)
        for (std::size_t c = 0; c < keep; ++c) {
          const bool ends = reason_of(candidates[c].token).has_value();
          all_end = all_end && ends;
          next.push_back({ends ? candidates[c].score + out_of_play : candidates[c].score, c});
        }
        std::stable_sort(next.begin(), next.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
        next.resize(beams);

        // Only the best num_beams candidates may become finished hypotheses.
        const bool full = p.finished.size() == beams;
        if (p.improvable && !(full && gen.early_stopping == EarlyStopping::WhenFull)) {
          const Scalar norm = static_cast<Scalar>(std::pow(static_cast<double>(length), gen.length_penalty));
          std::vector<Hypothesis> merged = p.finished;
          for (std::size_t c = 0; c < beams; ++c) {
            if (const auto reason = reason_of(candidates[c].token)) {
              Hypothesis h{p.running[candidates[c].beam].tokens, candidates[c].score / norm, *reason};
              h.tokens.push_back(candidates[c].token);
              merged.push_back(std::move(h));
            }
          }
          std::stable_sort(merged.begin(), merged.end(), [](const auto& x, const auto& y) { return x.score > y.score; });
          if (merged.size() > beams) merged.resize(beams);
          p.finished = std::move(merged);
        }

        // Can a running beam still beat the worst finished hypothesis?
        const double best_length = gen.early_stopping == EarlyStopping::Never && gen.length_penalty > 0
                                       ? static_cast<double>(max_new) : static_cast<double>(length);
        const Scalar best_possible = next.front().first /
                                     static_cast<Scalar>(std::pow(best_length, gen.length_penalty));
        const Scalar worst = p.finished.size() == beams ? p.finished.back().score : out_of_play;
        p.improvable = p.improvable && best_possible > worst;
        p.done = !p.improvable || all_end ||
                 (gen.early_stopping == EarlyStopping::WhenFull && p.finished.size() == beams);

        // The next running beams; a parent's cache row goes to its first child, other children copy it.
        std::vector<Beam> children;
        std::vector<char> taken(p.running.size(), 0);
        if (!p.done) {
          for (const auto& [score, c] : next) {
            const Beam& parent = p.running[candidates[c].beam];
            Beam child{parent.tokens, score, parent.cache_row};
            child.tokens.push_back(candidates[c].token);
            if (!taken[candidates[c].beam]) taken[candidates[c].beam] = 1;
            else child.cache_row = std::numeric_limits<std::size_t>::max();  // gets a copy below
            children.push_back(std::move(child));
          }
        }
        for (std::size_t k = 0; k < p.running.size(); ++k) {
          if (!taken[k]) p.spare_rows.push_back(p.running[k].cache_row);
        }
        for (std::size_t j = 0; j < children.size(); ++j) {
          if (children[j].cache_row != std::numeric_limits<std::size_t>::max()) continue;
          const std::size_t from = p.running[candidates[next[j].second].beam].cache_row;
          children[j].cache_row = p.spare_rows.back();
          p.spare_rows.pop_back();
          cache.copy_row(from, children[j].cache_row);
        }
        if (p.done) {
          for (const std::size_t row : p.spare_rows) cache.release(row);
        }
        p.running = std::move(children);
      }
    });

    PackedBatch step;
    std::vector<std::size_t> still_live;
    for (const std::size_t b : live) {
      if (state[b].done) continue;
      still_live.push_back(b);
      for (const Beam& beam : state[b].running) step.add_row(beam.cache_row, beam.tokens.back());
    }
    live = std::move(still_live);
    if (live.empty()) break;
    logits = model.forward_packed(step, cache, forward_options);  // [live beams, vocab]
  }

  std::vector<std::vector<std::int32_t>> rows;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    for (std::size_t j = 0; j < returned; ++j) {
      if (j < state[b].finished.size()) {
        rows.push_back(state[b].finished[j].tokens);
        result.finish_reasons.push_back(state[b].finished[j].reason);
        result.sequence_scores.push_back(static_cast<double>(state[b].finished[j].score));
      } else {  // only when max_new_tokens is 0
        rows.emplace_back();
        result.finish_reasons.push_back(FinishReason::Length);
        result.sequence_scores.push_back(0.0);
      }
    }
  }
  fill_sequences(result, rows);
  return result;
}

// Checks the prompts against the model's context and dispatches.
template <CausalLM M>
GenerationResult<typename M::scalar_type> run(const M& model, const std::vector<std::vector<std::int32_t>>& prompts,
                                              const GenerationConfig& gen, const Streamer& streamer) {
  const ModelConfig& config = model.config();
  validate_generation(gen, prompts.size(), static_cast<bool>(streamer));
  const GenerationIds ids = resolve_special_ids(gen, config);
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    if (prompts[b].size() > static_cast<std::size_t>(config.max_position_embeddings)) {
      throw argument_error(cat("row ", b, " has ", prompts[b].size(), " real tokens, more than the model's context of ",
                               config.max_position_embeddings, " (max_position_embeddings)"));
    }
  }
  if (prompts.empty()) {  // an empty batch: nothing to run
    GenerationResult<typename M::scalar_type> empty;
    empty.pad_token_id = ids.pad;
    empty.eos_token_ids = ids.eos;
    return empty;
  }
  if (gen.num_beams > 1) return beam_search(model, prompts, gen, ids);
  return search(model, prompts, gen, ids, streamer);
}

}  // namespace detail

// Generates new tokens for a padded batch. The mask decides what is real: each row is generated
// exactly as it would be alone, whatever the padding side or amount (DESIGN section 2).
//   input_ids, attention_mask: [batch, seq], 1 marks a real token.
template <CausalLM M>
GenerationResult<typename M::scalar_type> generate(const M& model, const TokenMatrix& input_ids,
                                                   const TokenMatrix& attention_mask, const GenerationConfig& gen = {},
                                                   const Streamer& streamer = {}) {
  validate_batch(input_ids, attention_mask, model.config().vocab_size);
  std::vector<std::vector<std::int32_t>> prompts(static_cast<std::size_t>(input_ids.rows()));
  for (Eigen::Index r = 0; r < input_ids.rows(); ++r) {
    for (Eigen::Index c = 0; c < input_ids.cols(); ++c) {
      if (attention_mask(r, c) == 1) prompts[static_cast<std::size_t>(r)].push_back(input_ids(r, c));
    }
  }
  return detail::run(model, prompts, gen, streamer);
}

}  // namespace maskgen

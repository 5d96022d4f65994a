#pragma once
// Beam search with transformers' rules.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "causal_lm.hpp"
#include "config.hpp"
#include "step.hpp"

namespace maskgen {

namespace detail {

// One prompt's beam search: its running beams, its finished hypotheses and the cache rows it
// owns (num_beams of them).
template <class Scalar>
struct BeamPrompt {
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
  std::vector<Beam> running;
  std::vector<Hypothesis> finished;  // best first, at most num_beams
  std::vector<std::size_t> spare_rows;
  bool improvable = true;
  bool done = false;
};

// The scoring rules of beam search, one prompt and one step at a time: the best candidates over
// all its beams, which of them finish a hypothesis, whether the search can still improve, and the
// beams that go on (a parent's cache row goes to its first child; other children copy it).
template <class Scalar>
class BeamScorer {
 public:
  using Prompt = BeamPrompt<Scalar>;

  BeamScorer(const GenerationConfig& gen, const step::GenerationIds& ids, const ModelConfig& config)
      : gen_(gen), eos_(ids.eos), beams_(static_cast<std::size_t>(gen.num_beams)),
        vocab_(static_cast<std::size_t>(config.vocab_size)),
        context_(static_cast<std::size_t>(config.max_position_embeddings)),
        max_new_(static_cast<std::size_t>(gen.max_new_tokens)),
        // Candidates kept per step: enough that num_beams of them do not end in EOS.
        keep_(std::max<std::size_t>(2, 1 + ids.eos.size()) * beams_),
        processors_(step::make_processors<Scalar>(gen, ids.eos)) {
    if (keep_ > vocab_) {
      throw argument_error(cat("num_beams ", beams_, " needs ", keep_, " candidates per step but the vocabulary has ", vocab_));
    }
  }

  // Step g (tokens generated before it) of prompt `p`: its beams' logits are rows first_row.. of
  // `logits`. `scores` is scratch [vocab].
  template <class Cache>
  void step(Prompt& p, std::span<const std::int32_t> prompt, const ops::Matrix<Scalar>& logits, std::size_t first_row,
            std::size_t g, std::vector<Scalar>& scores, Cache& cache) const {
    const std::vector<Candidate> candidates = best_candidates(p, prompt, logits, first_row, scores);
    // A candidate ends its hypothesis when it is an EOS or when the row can grow no further.
    const std::size_t length = g + 1;
    auto reason_of = [&](std::int32_t token) {
      return step::finish_reason(token, eos_, length, max_new_, prompt.size() + length, context_);
    };
    bool all_end = true;
    std::vector<std::pair<Scalar, std::size_t>> next;  // (score for continuing, candidate)
    for (std::size_t c = 0; c < keep_; ++c) {
      const bool ends = reason_of(candidates[c].token).has_value();
      all_end = all_end && ends;
      next.push_back({ends ? candidates[c].score + out_of_play : candidates[c].score, c});
    }
    std::stable_sort(next.begin(), next.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    next.resize(beams_);
    add_finished(p, candidates, length, reason_of);
    update_done(p, next.front().first, length, all_end);
    next_beams(p, candidates, next, cache);
  }

 private:
  static constexpr Scalar out_of_play = Scalar(-1.0e9);  // transformers' mark for beams that may not be chosen

  struct Candidate {
    Scalar score;
    std::size_t beam;
    std::int32_t token;
  };

  // The `keep` best (beam, token) continuations over all beams, ordered by score, then by
  // (beam, token) as transformers' flat top-k.
  std::vector<Candidate> best_candidates(const Prompt& p, std::span<const std::int32_t> prompt,
                                         const ops::Matrix<Scalar>& logits, std::size_t first_row,
                                         std::vector<Scalar>& scores) const {
    auto better = [](const Candidate& x, const Candidate& y) {
      if (x.score != y.score) return x.score > y.score;
      return x.beam != y.beam ? x.beam < y.beam : x.token < y.token;
    };
    std::vector<Candidate> candidates;
    std::vector<std::int32_t> history(prompt.begin(), prompt.end());
    for (std::size_t k = 0; k < p.running.size(); ++k) {
      const auto& beam = p.running[k];
      const auto row = logits.row(static_cast<Eigen::Index>(first_row + k));
      std::copy(row.data(), row.data() + vocab_, scores.begin());
      log_softmax<Scalar>(scores);
      history.resize(prompt.size());
      history.insert(history.end(), beam.tokens.begin(), beam.tokens.end());
      processors_(RowHistory{history, prompt.size()}, scores);
      std::vector<Candidate> mine(vocab_);
      for (std::size_t t = 0; t < vocab_; ++t) mine[t] = {scores[t] + beam.score, k, static_cast<std::int32_t>(t)};
      std::partial_sort(mine.begin(), mine.begin() + static_cast<std::ptrdiff_t>(keep_), mine.end(), better);
      candidates.insert(candidates.end(), mine.begin(), mine.begin() + static_cast<std::ptrdiff_t>(keep_));
    }
    std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(keep_), candidates.end(),
                      better);
    candidates.resize(keep_);
    return candidates;
  }

  // Only the best num_beams candidates may become finished hypotheses.
  template <class ReasonOf>
  void add_finished(Prompt& p, const std::vector<Candidate>& candidates, std::size_t length, ReasonOf reason_of) const {
    const bool full = p.finished.size() == beams_;
    if (!p.improvable || (full && gen_.early_stopping == EarlyStopping::WhenFull)) return;
    const Scalar norm = static_cast<Scalar>(std::pow(static_cast<double>(length), gen_.length_penalty));
    auto merged = p.finished;
    for (std::size_t c = 0; c < beams_; ++c) {
      if (const auto reason = reason_of(candidates[c].token)) {
        typename Prompt::Hypothesis h{p.running[candidates[c].beam].tokens, candidates[c].score / norm, *reason};
        h.tokens.push_back(candidates[c].token);
        merged.push_back(std::move(h));
      }
    }
    std::stable_sort(merged.begin(), merged.end(), [](const auto& x, const auto& y) { return x.score > y.score; });
    if (merged.size() > beams_) merged.resize(beams_);
    p.finished = std::move(merged);
  }

  // Can a running beam still beat the worst finished hypothesis? `best_next`: the best score of a
  // beam that goes on.
  void update_done(Prompt& p, Scalar best_next, std::size_t length, bool all_end) const {
    const double best_length = gen_.early_stopping == EarlyStopping::Never && gen_.length_penalty > 0
                                   ? static_cast<double>(max_new_) : static_cast<double>(length);
    const Scalar best_possible = best_next / static_cast<Scalar>(std::pow(best_length, gen_.length_penalty));
    const Scalar worst = p.finished.size() == beams_ ? p.finished.back().score : out_of_play;
    p.improvable = p.improvable && best_possible > worst;
    p.done = !p.improvable || all_end || (gen_.early_stopping == EarlyStopping::WhenFull && p.finished.size() == beams_);
  }

  // The next running beams; a parent's cache row goes to its first child, other children copy
  // it. A prompt that is done gives its rows back.
  template <class Cache>
  void next_beams(Prompt& p, const std::vector<Candidate>& candidates,
                  const std::vector<std::pair<Scalar, std::size_t>>& next, Cache& cache) const {
    constexpr std::size_t unset = std::numeric_limits<std::size_t>::max();
    std::vector<typename Prompt::Beam> children;
    std::vector<char> taken(p.running.size(), 0);
    if (!p.done) {
      for (const auto& [score, c] : next) {
        const auto& parent = p.running[candidates[c].beam];
        typename Prompt::Beam child{parent.tokens, score, parent.cache_row};
        child.tokens.push_back(candidates[c].token);
        if (!taken[candidates[c].beam]) taken[candidates[c].beam] = 1;
        else child.cache_row = unset;  // gets a copy below
        children.push_back(std::move(child));
      }
    }
    for (std::size_t k = 0; k < p.running.size(); ++k) {
      if (!taken[k]) p.spare_rows.push_back(p.running[k].cache_row);
    }
    for (std::size_t j = 0; j < children.size(); ++j) {
      if (children[j].cache_row != unset) continue;
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

  const GenerationConfig& gen_;
  std::vector<std::int32_t> eos_;
  std::size_t beams_, vocab_, context_, max_new_, keep_;
  LogitsProcessorChain<Scalar> processors_;
};

// Beam search with transformers' rules. Each prompt's beams evolve on their own: the prompt's
// `num_beams` cache rows are shared by its beams, a beam that forks copies its parent's row, and
// a prompt whose search is over leaves the batch.
template <CausalLM M>
  requires ForkableCache<typename M::cache_type>
GenerationResult<typename M::scalar_type> beam_search(const M& model,
                                                      const std::vector<std::vector<std::int32_t>>& prompts,
                                                      const GenerationConfig& gen, const step::GenerationIds& ids) {
  using Scalar = typename M::scalar_type;
  const BeamScorer<Scalar> scorer(gen, ids, model.config());
  const auto beams = static_cast<std::size_t>(gen.num_beams);
  const auto returned = static_cast<std::size_t>(gen.num_return_sequences);
  const auto vocab = static_cast<std::size_t>(model.config().vocab_size);
  const int threads = resolve_thread_count(gen.num_threads, "GenerationConfig::num_threads");
  const ForwardOptions forward_options{LogitsFor::Last, threads};

  GenerationResult<Scalar> result;
  result.pad_token_id = ids.pad;
  result.eos_token_ids = ids.eos;
  std::vector<BeamPrompt<Scalar>> state(prompts.size());
  auto cache = model.make_cache(prompts.size() * beams);
  PackedBatch batch;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    state[b].running.push_back({{}, Scalar(0), b * beams});
    for (std::size_t k = 1; k < beams; ++k) state[b].spare_rows.push_back(b * beams + k);
    batch.add_row(b * beams, prompts[b]);
    state[b].done = gen.max_new_tokens == 0;
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
        scorer.step(state[live[i]], prompts[live[i]], logits, first_row[i], g, scores, cache);
      }
    });

    PackedBatch step;
    std::vector<std::size_t> still_live;
    for (const std::size_t b : live) {
      if (state[b].done) continue;
      still_live.push_back(b);
      for (const auto& beam : state[b].running) {
        const std::size_t total = prompts[b].size() + beam.tokens.size();
        if (model.config().rope.refeeds(total - 1, total)) {  // LongRoPE: the whole context again
          std::vector<std::int32_t> all(prompts[b]);
          all.insert(all.end(), beam.tokens.begin(), beam.tokens.end());
          cache.release(beam.cache_row);
          step.add_row(beam.cache_row, all);
        } else {
          step.add_row(beam.cache_row, beam.tokens.back());
        }
      }
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

}  // namespace detail

}  // namespace maskgen

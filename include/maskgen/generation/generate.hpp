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

#include "../config.hpp"
#include "../detail/parallel.hpp"
#include "../error.hpp"
#include "../padding.hpp"
#include "beam_search.hpp"
#include "causal_lm.hpp"
#include "config.hpp"
#include "step.hpp"

namespace maskgen {

namespace detail {

// Greedy search and sampling over prompts of real tokens. Output row r = b * n + j is sequence
// j of prompt b; the prompt is run once and its cache copied to its other sequences.
template <CausalLM M>
  requires ForkableCache<typename M::cache_type>
GenerationResult<typename M::scalar_type> search(const M& model, const std::vector<std::vector<std::int32_t>>& prompts,
                                                 const GenerationConfig& gen, const step::GenerationIds& ids,
                                                 const Streamer& streamer) {
  using Scalar = typename M::scalar_type;
  const ModelConfig& config = model.config();
  const std::size_t n = static_cast<std::size_t>(gen.num_return_sequences), rows = prompts.size() * n;
  const auto vocab = static_cast<Eigen::Index>(config.vocab_size);
  const auto context = static_cast<std::size_t>(config.max_position_embeddings);
  const auto max_new = static_cast<std::size_t>(gen.max_new_tokens);
  const int threads = resolve_thread_count(gen.num_threads, "GenerationConfig::num_threads");
  const ForwardOptions forward_options{LogitsFor::Last, threads};
  const LogitsProcessorChain<Scalar> processors = step::make_processors<Scalar>(gen, ids.eos);

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
        tokens[i] = step::choose_token(row, scores, processors, RowHistory{history[r], prompts[r / n].size()},
                                 gen.do_sample ? &random[r] : nullptr);
        if (gen.output_scores) step_scores[r].insert(step_scores[r].end(), scores.begin(), scores.end());
      }
    });

    std::vector<char> finished(live.size(), 0);
    for (std::size_t i = 0; i < live.size(); ++i) {
      const std::size_t r = live[i];
      generated[r].push_back(tokens[i]);
      history[r].push_back(tokens[i]);
      const auto reason =
          step::finish_reason(tokens[i], ids.eos, generated[r].size(), max_new, history[r].size(), context);
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
      if (config.rope.refeeds(history[live[i]].size() - 1, history[live[i]].size())) {  // LongRoPE
        cache.release(live[i]);
        next.add_row(live[i], history[live[i]]);
      } else {
        next.add_row(live[i], tokens[i]);
      }
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

// Checks the prompts against the model's context and dispatches.
template <CausalLM M>
  requires ForkableCache<typename M::cache_type>
GenerationResult<typename M::scalar_type> run(const M& model, const std::vector<std::vector<std::int32_t>>& prompts,
                                              const GenerationConfig& gen, const Streamer& streamer) {
  const ModelConfig& config = model.config();
  step::validate_generation(gen, prompts.size(), static_cast<bool>(streamer));
  step::check_logit_bias(gen, config.vocab_size);
  const step::GenerationIds ids = step::resolve_special_ids(gen, config);
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
  requires ForkableCache<typename M::cache_type>
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


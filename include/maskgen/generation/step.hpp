#pragma once
// The one step that turns a row's logits into its next token and tells whether the row ends
// there, shared by generate(), beam search and the engine; and the settings it is built from (the
// special ids, the processors, the checks of a GenerationConfig). Namespace step is the interface
// between generation/ and engine/: a loop of one's own over forward_packed can use it too.

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
#include "../error.hpp"
#include "../log.hpp"
#include "config.hpp"
#include "sampling.hpp"

namespace maskgen {

namespace step {

// The ids generation ends rows with and fills finished rows with.
struct GenerationIds {
  std::vector<std::int32_t> eos;
  std::int32_t pad = 0;
};

// The ids that end a row: the config's own, else the model's; each checked against the vocabulary.
inline std::vector<std::int32_t> resolve_eos(const GenerationConfig& gen, const ModelConfig& config) {
  std::vector<std::int32_t> eos = gen.eos_token_id.ids.empty() ? config.eos_token_ids : gen.eos_token_id.ids;
  for (std::size_t i = 0; i < eos.size(); ++i) {
    detail::check_vocabulary_id(eos[i], config.vocab_size, "eos_token_id[", i, "]");
  }
  return eos;
}

// logit_bias names tokens of the vocabulary only.
inline void check_logit_bias(const GenerationConfig& gen, std::int64_t vocab_size) {
  for (const auto& entry : gen.logit_bias) detail::check_vocabulary_id(entry.first, vocab_size, "logit_bias: token id");
}

inline GenerationIds resolve_special_ids(const GenerationConfig& gen, const ModelConfig& config) {
  GenerationIds ids;
  ids.eos = resolve_eos(gen, config);
  const std::int64_t vocab = config.vocab_size;
  if (gen.pad_token_id) {
    ids.pad = *gen.pad_token_id;
    detail::check_vocabulary_id(ids.pad, vocab, "pad_token_id");
  } else if (config.pad_token_id) {
    ids.pad = *config.pad_token_id;
  } else if (!ids.eos.empty()) {
    ids.pad = ids.eos.front();
    log(LogLevel::Warning, detail::cat("GenerationConfig::pad_token_id is unset; setting pad_token_id to eos_token_id ",
                               ids.pad, " for finished rows"));
  } else {
    throw argument_error("GenerationConfig::pad_token_id is unset and there is no eos_token_id to fall back on");
  }
  return ids;
}

inline void validate_generation(const GenerationConfig& gen, std::size_t prompts, bool streaming) {
  if (gen.max_new_tokens < 0) throw argument_error(detail::cat("max_new_tokens must be >= 0, got ", gen.max_new_tokens));
  if (gen.min_new_tokens < 0) throw argument_error(detail::cat("min_new_tokens must be >= 0, got ", gen.min_new_tokens));
  if (gen.num_beams < 1) throw argument_error(detail::cat("num_beams must be >= 1, got ", gen.num_beams));
  if (gen.num_return_sequences < 1) {
    throw argument_error(detail::cat("num_return_sequences must be >= 1, got ", gen.num_return_sequences));
  }
  if (!(gen.repetition_penalty > 0) || !std::isfinite(gen.repetition_penalty)) {
    throw argument_error(detail::cat("repetition_penalty must be a finite number > 0, got ", gen.repetition_penalty));
  }
  if (gen.no_repeat_ngram_size < 0) {
    throw argument_error(detail::cat("no_repeat_ngram_size must be >= 0, got ", gen.no_repeat_ngram_size));
  }
  if (!(gen.frequency_penalty >= -2 && gen.frequency_penalty <= 2)) {
    throw argument_error(detail::cat("frequency_penalty must be in [-2, 2], got ", gen.frequency_penalty));
  }
  if (!(gen.presence_penalty >= -2 && gen.presence_penalty <= 2)) {
    throw argument_error(detail::cat("presence_penalty must be in [-2, 2], got ", gen.presence_penalty));
  }
  for (const auto& [id, bias] : gen.logit_bias) {
    if (!(bias >= -100 && bias <= 100)) {
      throw argument_error(detail::cat("logit_bias[", id, "] must be in [-100, 100], got ", bias));
    }
  }
  if (gen.num_beams > 1) {
    if (gen.do_sample) throw argument_error("do_sample with num_beams > 1 (beam sampling) is not supported");
    if (gen.num_return_sequences > gen.num_beams) {
      throw argument_error(detail::cat("num_return_sequences (", gen.num_return_sequences, ") must be <= num_beams (",
                               gen.num_beams, ") in beam search"));
    }
    if (!std::isfinite(gen.length_penalty)) {
      throw argument_error(detail::cat("length_penalty must be finite, got ", gen.length_penalty));
    }
    if (streaming) throw argument_error("a streamer cannot follow beam search: its tokens change until the end");
    if (gen.output_scores) {
      throw argument_error("output_scores is for greedy search and sampling; beam search reports sequence_scores");
    }
  } else if (!gen.do_sample && gen.num_return_sequences > 1) {
    throw argument_error(detail::cat("greedy search returns one sequence per prompt; num_return_sequences is ",
                             gen.num_return_sequences, " (use do_sample or num_beams)"));
  }
  if (gen.do_sample) {
    if (!(gen.temperature > 0) || !std::isfinite(gen.temperature)) {
      throw argument_error(detail::cat("temperature must be a finite number > 0 when sampling, got ", gen.temperature));
    }
    if (gen.top_k < 0) throw argument_error(detail::cat("top_k must be >= 0 (0 disables), got ", gen.top_k));
    if (!(gen.top_p > 0 && gen.top_p <= 1)) {
      throw argument_error(detail::cat("top_p must be in (0, 1], got ", gen.top_p));
    }
    if (!(gen.min_p >= 0 && gen.min_p <= 1)) {
      throw argument_error(detail::cat("min_p must be in [0, 1], got ", gen.min_p));
    }
    if (!gen.row_seeds.empty() && gen.row_seeds.size() != prompts) {
      throw argument_error(detail::cat("row_seeds has ", gen.row_seeds.size(), " seeds for ", prompts,
                               " prompts; give one per prompt or none"));
    }
  }
}

// One row's next token: `logits` [vocab] copied into `scores`, the processors run over them with
// the row's history, then a sample from the row's `random` stream, or the argmax where it has none
// (greedy). generate() and the engine both choose with it.
template <class Scalar, class Logits>
std::int32_t choose_token(const Logits& logits, std::vector<Scalar>& scores, const LogitsProcessorChain<Scalar>& processors,
                          RowHistory history, RowRandom* random) {
  std::copy(logits.data(), logits.data() + scores.size(), scores.begin());
  processors(history, scores);
  return random ? sample_token<Scalar>(scores, *random) : argmax_token<Scalar>(scores);
}

// The processors for `gen`: transformers' in its order, with OpenAI's logit_bias and penalties
// where vLLM applies them (the bias first, the frequency and presence penalties right after the
// repetition penalty), all before temperature, top-k, top-p and min-p. Where the bias and the
// penalties are off, the chain is transformers' own.
template <class Scalar>
LogitsProcessorChain<Scalar> make_processors(const GenerationConfig& gen, const std::vector<std::int32_t>& eos) {
  LogitsProcessorChain<Scalar> chain;
  if (!gen.logit_bias.empty()) {
    processors::LogitBias bias;
    for (const auto& [id, b] : gen.logit_bias) {
      if (b != 0.0) bias.bias.emplace_back(id, b);
    }
    if (!bias.bias.empty()) chain.add(std::move(bias));
  }
  if (gen.repetition_penalty != 1.0) chain.add(processors::RepetitionPenalty{gen.repetition_penalty});
  if (gen.frequency_penalty != 0.0 || gen.presence_penalty != 0.0) {
    chain.add(processors::FrequencyPresencePenalty{gen.frequency_penalty, gen.presence_penalty});
  }
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

}  // namespace step

}  // namespace maskgen

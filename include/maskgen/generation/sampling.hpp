#pragma once
// Choosing the next token: logits processors (small pieces that rewrite one row's scores, composed
// in a chain), greedy choice, and reproducible sampling.
//
// A processor sees one row at a time: that row's real tokens so far (never a pad; transformers
// passes the padded input_ids, so its repetition penalty and n-gram ban also count pad ids) and
// the row's scores over the vocabulary, which it rewrites in place. Every processor follows the
// arithmetic of its transformers namesake, and OpenAI's logit_bias and frequency and presence
// penalties follow vLLM's; removed tokens get -infinity.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "../error.hpp"

namespace maskgen {

// One row's real tokens so far: the prompt's, then the generated ones.
struct RowHistory {
  std::span<const std::int32_t> tokens;  // [prompt + generated]
  std::size_t prompt_length = 0;         // how many of `tokens` are the prompt

  std::size_t generated() const { return tokens.size() - prompt_length; }
};

// A processor rewrites one row's scores ([vocab]) given its history.
template <class Scalar>
using LogitsProcessor = std::function<void(const RowHistory& row, std::span<Scalar> scores)>;

// Processors applied one after another, in the order they were added.
template <class Scalar>
class LogitsProcessorChain {
 public:
  LogitsProcessorChain& add(LogitsProcessor<Scalar> processor) {
    steps_.push_back(std::move(processor));
    return *this;
  }
  void operator()(const RowHistory& row, std::span<Scalar> scores) const {
    for (const auto& step : steps_) step(row, scores);
  }
  std::size_t size() const { return steps_.size(); }
  bool empty() const { return steps_.empty(); }

 private:
  std::vector<LogitsProcessor<Scalar>> steps_;
};

namespace processors {

template <class Scalar>
inline constexpr Scalar removed = -std::numeric_limits<Scalar>::infinity();

// Every token already in the row (prompt or generated) is made less likely: a positive score is
// divided by `penalty`, a negative one multiplied by it (transformers' RepetitionPenaltyLogitsProcessor).
struct RepetitionPenalty {
  double penalty = 1.0;  // > 0; 1 changes nothing

  template <class Scalar>
  void operator()(const RowHistory& row, std::span<Scalar> scores) const {
    const Scalar p = static_cast<Scalar>(penalty);
    std::vector<bool> seen(scores.size(), false);
    for (const std::int32_t id : row.tokens) {
      const auto i = static_cast<std::size_t>(id);
      if (i >= scores.size() || seen[i]) continue;
      seen[i] = true;
      scores[i] = scores[i] < 0 ? scores[i] * p : scores[i] / p;
    }
  }
};

// OpenAI's frequency and presence penalties (vLLM's arithmetic): token j's score loses
// count_j * frequency + (count_j > 0) * presence, where count_j counts j among the row's generated
// tokens only (the prompt does not count). Computed in double, rounded once to Scalar.
struct FrequencyPresencePenalty {
  double frequency = 0.0;  // per occurrence
  double presence = 0.0;   // once for any occurrence

  template <class Scalar>
  void operator()(const RowHistory& row, std::span<Scalar> scores) const {
    std::vector<std::int32_t> generated(row.tokens.begin() + static_cast<std::ptrdiff_t>(row.prompt_length),
                                        row.tokens.end());
    std::sort(generated.begin(), generated.end());
    for (std::size_t begin = 0; begin < generated.size();) {
      std::size_t end = begin + 1;
      while (end < generated.size() && generated[end] == generated[begin]) ++end;
      const auto i = static_cast<std::size_t>(generated[begin]);  // a negative id wraps past the end
      if (i < scores.size()) {
        const double count = static_cast<double>(end - begin);
        scores[i] = static_cast<Scalar>(static_cast<double>(scores[i]) - (count * frequency + presence));
      }
      begin = end;
    }
  }
};

// OpenAI's logit_bias: each listed token's score gains its bias (computed in double, rounded once
// to Scalar); a removed token stays removed.
struct LogitBias {
  std::vector<std::pair<std::int32_t, double>> bias;  // (token id, bias)

  template <class Scalar>
  void operator()(const RowHistory&, std::span<Scalar> scores) const {
    for (const auto& [id, b] : bias) {
      const auto i = static_cast<std::size_t>(id);
      if (i < scores.size()) scores[i] = static_cast<Scalar>(static_cast<double>(scores[i]) + b);
    }
  }
};

// No n-gram of `size` tokens may occur twice in the row: every token that would complete an
// n-gram already present is removed (transformers' NoRepeatNGramLogitsProcessor).
struct NoRepeatNGram {
  std::size_t size = 0;  // 0 disables

  template <class Scalar>
  void operator()(const RowHistory& row, std::span<Scalar> scores) const {
    const std::size_t n = size, len = row.tokens.size();
    if (n == 0 || len + 1 < n) return;
    const auto& t = row.tokens;
    const std::size_t prefix = len + 1 - n;  // the last n - 1 tokens start here
    for (std::size_t start = 0; start + n <= len; ++start) {
      if (std::equal(t.begin() + static_cast<std::ptrdiff_t>(start),
                     t.begin() + static_cast<std::ptrdiff_t>(start + n - 1),
                     t.begin() + static_cast<std::ptrdiff_t>(prefix))) {
        const auto banned = static_cast<std::size_t>(t[start + n - 1]);
        if (banned < scores.size()) scores[banned] = removed<Scalar>;
      }
    }
  }
};

// End-of-sequence ids are removed until the row has generated `min_new_tokens`
// (transformers' MinNewTokensLengthLogitsProcessor).
struct MinNewTokens {
  std::size_t min_new_tokens = 0;
  std::vector<std::int32_t> eos_token_ids;

  template <class Scalar>
  void operator()(const RowHistory& row, std::span<Scalar> scores) const {
    if (row.generated() >= min_new_tokens) return;
    for (const std::int32_t id : eos_token_ids) {
      if (static_cast<std::size_t>(id) < scores.size()) scores[static_cast<std::size_t>(id)] = removed<Scalar>;
    }
  }
};

// Scores divided by `temperature` (transformers' TemperatureLogitsWarper).
struct Temperature {
  double temperature = 1.0;  // > 0

  template <class Scalar>
  void operator()(const RowHistory&, std::span<Scalar> scores) const {
    const Scalar t = static_cast<Scalar>(temperature);
    for (Scalar& s : scores) s = s / t;
  }
};

// Keeps the `k` highest scores (and every score tied with the k-th); removes the rest
// (transformers' TopKLogitsWarper).
struct TopK {
  std::size_t k = 0;         // 0 disables
  std::size_t min_keep = 1;  // never keep fewer than this

  template <class Scalar>
  void operator()(const RowHistory&, std::span<Scalar> scores) const {
    const std::size_t keep = std::min(std::max(k, min_keep), scores.size());
    if (k == 0 || keep == scores.size()) return;
    std::vector<Scalar> sorted(scores.begin(), scores.end());
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(keep - 1), sorted.end(),
                     std::greater<Scalar>());
    const Scalar threshold = sorted[keep - 1];
    for (Scalar& s : scores) {
      if (s < threshold) s = removed<Scalar>;
    }
  }
};

namespace detail {
// Indices of `scores` from the lowest score to the highest; ties in index order.
template <class Scalar>
std::vector<std::size_t> ascending_order(std::span<const Scalar> scores) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  return order;
}

// softmax(scores) in double, in index order.
template <class Scalar>
std::vector<double> probabilities(std::span<const Scalar> scores) {
  double top = -std::numeric_limits<double>::infinity();
  for (const Scalar s : scores) top = std::max(top, static_cast<double>(s));
  std::vector<double> p(scores.size(), 0.0);
  if (top == -std::numeric_limits<double>::infinity()) return p;  // everything removed
  double total = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) total += p[i] = std::exp(static_cast<double>(scores[i]) - top);
  for (double& v : p) v /= total;
  return p;
}
}  // namespace detail

// Nucleus: keeps the smallest set of highest-probability tokens whose probabilities sum to more
// than `p`; going up from the least likely token, removes tokens while the running sum stays at or
// below 1 - p (transformers' TopPLogitsWarper).
struct TopP {
  double p = 1.0;            // in (0, 1]; 1 disables
  std::size_t min_keep = 1;  // never keep fewer than this

  template <class Scalar>
  void operator()(const RowHistory&, std::span<Scalar> scores) const {
    if (p >= 1.0) return;
    const std::vector<std::size_t> order = detail::ascending_order<Scalar>(scores);
    const std::vector<double> probs = detail::probabilities<Scalar>(scores);
    const std::size_t removable = scores.size() > min_keep ? scores.size() - min_keep : 0;
    double cumulative = 0;
    for (std::size_t i = 0; i < removable; ++i) {
      cumulative += probs[order[i]];
      if (cumulative > 1.0 - p) break;
      scores[order[i]] = removed<Scalar>;
    }
  }
};

// Removes tokens whose probability is below `p` times the most likely token's
// (transformers' MinPLogitsWarper).
struct MinP {
  double p = 0.0;            // in [0, 1]; 0 disables
  std::size_t min_keep = 1;  // the `min_keep` highest scores always stay

  template <class Scalar>
  void operator()(const RowHistory&, std::span<Scalar> scores) const {
    if (p <= 0.0) return;
    const std::vector<double> probs = detail::probabilities<Scalar>(scores);
    const double floor = p * *std::max_element(probs.begin(), probs.end());
    std::vector<std::size_t> order = detail::ascending_order<Scalar>(scores);
    const std::size_t removable = scores.size() > min_keep ? scores.size() - min_keep : 0;
    for (std::size_t i = 0; i < removable; ++i) {
      if (probs[order[i]] < floor) scores[order[i]] = removed<Scalar>;
    }
  }
};

}  // namespace processors

// The highest score; the lowest index among equal ones. Throws when every token was removed.
template <class Scalar>
std::int32_t argmax_token(std::span<const Scalar> scores) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < scores.size(); ++i) {
    if (scores[i] > scores[best]) best = i;
  }
  if (scores.empty() || scores[best] == -std::numeric_limits<Scalar>::infinity()) {
    throw argument_error("every token was removed by the logits processors; no token can be chosen");
  }
  return static_cast<std::int32_t>(best);
}

// A row's random stream: 64-bit Mersenne Twister (its output is fixed by the C++ standard, so a
// seed gives the same tokens on every platform), turned into uniform doubles by hand for the same
// reason (std::uniform_real_distribution is implementation-defined).
class RowRandom {
 public:
  explicit RowRandom(std::uint64_t seed) : engine_(seed) {}

  // Uniform in [0, 1), 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

 private:
  std::mt19937_64 engine_;
};

// SplitMix64's finalizer: spreads a seed and an index into well-separated stream seeds.
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t index) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Draws a token from softmax(scores): one uniform number, then the cumulative probabilities in
// index order. Throws when every token was removed.
template <class Scalar>
std::int32_t sample_token(std::span<const Scalar> scores, RowRandom& random) {
  const std::vector<double> probs = processors::detail::probabilities<Scalar>(scores);
  std::size_t last = probs.size();  // the last token that can be drawn
  for (std::size_t i = probs.size(); i-- > 0;) {
    if (probs[i] > 0) {
      last = i;
      break;
    }
  }
  if (last == probs.size()) {
    throw argument_error("every token was removed by the logits processors; no token can be sampled");
  }
  const double u = random.uniform();
  double cumulative = 0;
  for (std::size_t i = 0; i < last; ++i) {
    cumulative += probs[i];
    if (u < cumulative) return static_cast<std::int32_t>(i);
  }
  return static_cast<std::int32_t>(last);
}

// log softmax(scores), the running log-probabilities of beam search.
template <class Scalar>
void log_softmax(std::span<Scalar> scores) {
  double top = -std::numeric_limits<double>::infinity();
  for (const Scalar s : scores) top = std::max(top, static_cast<double>(s));
  double total = 0;
  for (const Scalar s : scores) total += std::exp(static_cast<double>(s) - top);
  const double log_total = top + std::log(total);
  for (Scalar& s : scores) s = static_cast<Scalar>(static_cast<double>(s) - log_total);
}

}  // namespace maskgen

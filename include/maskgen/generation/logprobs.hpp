#pragma once
// Log-probabilities of chosen tokens, as OpenAI's `logprobs` and `top_logprobs` report them.
//
// They are raw log-probabilities, as vLLM reports by default: log_softmax of the model's logits
// for the row, before any processor (logit_bias, penalties, temperature, top-k, top-p, min-p). So
// a token the processors made likely can have a low logprob here, and the values do not depend on
// how the token was chosen. The normalizer is a log-sum-exp in double over the vocabulary in index
// order, so a row's values are a function of its logits alone: as its logits are the same whatever
// else runs in the batch (DESIGN 2.7), so are its logprobs, bit for bit.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "../error.hpp"

namespace maskgen {

// One token and its log-probability.
struct TokenLogprob {
  std::int32_t token = 0;
  double logprob = 0;  // log p, <= 0

  bool operator==(const TokenLogprob&) const = default;
};

// What one generated token reports.
struct TokenLogprobs {
  std::int32_t token = 0;         // the token chosen
  double logprob = 0;             // its log-probability
  std::vector<TokenLogprob> top;  // [k] the k most likely tokens, logprob descending, ties by id ascending

  bool operator==(const TokenLogprobs&) const = default;
};

// The log-probability of `token` under softmax(logits) ([vocab]) and the `top` most likely
// tokens (all of them when `top` exceeds the vocabulary).
template <class Scalar>
TokenLogprobs token_logprobs(std::span<const Scalar> logits, std::int32_t token, std::size_t top) {
  if (logits.empty()) throw argument_error("token_logprobs: logits is empty (expected [vocab] scores)");
  detail::check_vocabulary_id(token, static_cast<std::int64_t>(logits.size()), "token_logprobs: token");
  // log p_i = (l_i - max) - log(sum_j exp(l_j - max)): subtracting the largest logit first keeps
  // the values exact to double rounding even where the logits are large.
  double largest = -std::numeric_limits<double>::infinity();
  for (const Scalar l : logits) largest = std::max(largest, static_cast<double>(l));
  double total = 0;
  for (const Scalar l : logits) total += std::exp(static_cast<double>(l) - largest);
  const double log_total = std::log(total);
  const auto logprob = [&](std::size_t i) { return (static_cast<double>(logits[i]) - largest) - log_total; };
  TokenLogprobs out;
  out.token = token;
  out.logprob = logprob(static_cast<std::size_t>(token));
  const std::size_t k = std::min(top, logits.size());
  if (k == 0) return out;
  std::vector<double> all(logits.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = logprob(i);
  std::vector<std::size_t> order(all.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](std::size_t a, std::size_t b) { return all[a] > all[b] || (all[a] == all[b] && a < b); });
  out.top.reserve(k);
  for (std::size_t j = 0; j < k; ++j) out.top.push_back({static_cast<std::int32_t>(order[j]), all[order[j]]});
  return out;
}

}  // namespace maskgen

#pragma once
// The mixture-of-experts MLP: a router scores every expert for each token, the token goes to its
// k best, and its output is the weighted sum of those experts' gated MLPs.
//
//   logits = h · routerᵀ (+ bias)                       [tokens, experts]
//   top k experts by logit: the larger first, ties to the lower expert index
//   weights: softmax over all experts, taken at the k (normalize_top_k: divided by their sum,
//            which is the softmax over the k's logits: Mixtral, gpt-oss, Qwen3-MoE's norm_topk_prob)
//   out[t] = Σ over t's experts e, in increasing index:  weight(t, e) * expert_e(h[t])
//
// Batch invariance by construction: a token's experts, weights and sum depend only on its own row.
// The tokens routed to an expert are gathered into one product per expert (the matmul kernel's
// chain for a row does not depend on the other rows), and each token's k outputs are added in
// increasing expert index, one fused multiply-add per element, whichever tokens shared the experts.
// Only the routed experts' weights are read.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "activation.hpp"
#include "matmul.hpp"
#include "matrix.hpp"
#include "weights.hpp"

namespace maskgen::ops {

// One expert's gated MLP: down(act(gate x + gate_bias) * (up x + up_bias)) + down_bias.
template <class Scalar>
struct ExpertWeights {
  WeightMatrix gate, up;         // [expert_intermediate, hidden]
  WeightMatrix down;             // [hidden, expert_intermediate]
  Vector<Scalar> gate_bias, up_bias, down_bias;  // empty where the experts have none
};

// Each token's experts, best first, and their weights.
template <class Scalar>
struct Routing {
  std::size_t k = 0;
  std::vector<std::int32_t> expert;  // [tokens * k] token t's experts at t * k ..., by rank
  std::vector<Scalar> weight;        // [tokens * k] their weights
};

// The top k experts of each token and their weights.  logits: [tokens, experts]
template <class Scalar>
Routing<Scalar> route(const Matrix<Scalar>& logits, std::size_t k, bool normalize_top_k) {
  const auto tokens = static_cast<std::size_t>(logits.rows()), experts = static_cast<std::size_t>(logits.cols());
  Routing<Scalar> r{k, std::vector<std::int32_t>(tokens * k), std::vector<Scalar>(tokens * k)};
  constexpr Scalar lowest = std::numeric_limits<Scalar>::lowest();
  for (std::size_t t = 0; t < tokens; ++t) {
    const Scalar* l = logits.row(static_cast<Eigen::Index>(t)).data();
    auto score = [&](std::size_t e) { return std::isnan(l[e]) ? lowest : l[e]; };
    std::int32_t* best = r.expert.data() + t * k;
    Scalar* w = r.weight.data() + t * k;
    // Insertion into the sorted best k, experts in increasing index: an equal score never passes
    // an earlier expert, so ties go to the lower index.
    std::size_t held = 0;
    for (std::size_t e = 0; e < experts; ++e) {
      const Scalar s = score(e);
      if (held == k && !(s > score(static_cast<std::size_t>(best[k - 1])))) continue;
      std::size_t i = held < k ? held++ : k - 1;
      while (i > 0 && s > score(static_cast<std::size_t>(best[i - 1]))) {
        best[i] = best[i - 1];
        --i;
      }
      best[i] = static_cast<std::int32_t>(e);
    }
    const Scalar top = score(static_cast<std::size_t>(best[0]));
    Scalar sum = 0;  // of exp(logit - top): over the k, or over every expert in increasing index
    for (std::size_t i = 0; i < k; ++i) w[i] = std::exp(score(static_cast<std::size_t>(best[i])) - top);
    if (normalize_top_k) {
      for (std::size_t i = 0; i < k; ++i) sum += w[i];
    } else {
      for (std::size_t e = 0; e < experts; ++e) sum += std::exp(score(e) - top);
    }
    for (std::size_t i = 0; i < k; ++i) w[i] /= sum;
  }
  return r;
}

// What a mixture-of-experts step reuses between layers.
template <class Scalar>
struct MoeScratch {
  Matrix<Scalar> outputs;  // [tokens * k, hidden] each routed pair's expert output, grouped by expert
};

namespace detail {

// Rows [first, first + n) of `outputs` := expert w's MLP of the tokens' rows of h.
template <class Scalar>
void run_expert(const Matrix<Scalar>& h, const std::size_t* tokens, std::size_t n, const ExpertWeights<Scalar>& w,
                Activation act, int threads, Matrix<Scalar>& outputs, std::size_t first) {
  thread_local Matrix<Scalar> x, gate, up, down;
  x.resize(static_cast<Eigen::Index>(n), h.cols());  // [n, hidden] the expert's tokens
  for (std::size_t i = 0; i < n; ++i) x.row(static_cast<Eigen::Index>(i)) = h.row(static_cast<Eigen::Index>(tokens[i]));
  matmul_transposed(x, w.gate, gate, threads);  // [n, intermediate]
  matmul_transposed(x, w.up, up, threads);      // [n, intermediate]
  if (w.gate_bias.size() > 0) gate.rowwise() += w.gate_bias.transpose();
  if (w.up_bias.size() > 0) up.rowwise() += w.up_bias.transpose();
  gated_activation(gate, up, act, threads);
  matmul_transposed(gate, w.down, down, threads);  // [n, hidden]
  if (w.down_bias.size() > 0) down.rowwise() += w.down_bias.transpose();
  outputs.middleRows(static_cast<Eigen::Index>(first), static_cast<Eigen::Index>(n)) = down;
}

}  // namespace detail

// out = the mixture of the routed experts' gated MLPs.  h: [tokens, hidden] -> out [tokens, hidden]
// Where many experts are routed to (prefill, batched decode), threads take whole experts; where few
// are, each expert's products are split over the threads. Either way each product is the kernel's
// chain for each row, so the bits are the same.
template <class Scalar>
void mixture_of_experts(const Matrix<Scalar>& h, const Routing<Scalar>& routing,
                        std::span<const ExpertWeights<Scalar>> experts, Activation act, Matrix<Scalar>& out,
                        int threads, MoeScratch<Scalar>& s) {
  const auto tokens = static_cast<std::size_t>(h.rows());
  const auto hidden = h.cols();
  // The (token, weight) pairs of each expert, tokens in increasing order.
  std::vector<std::size_t> count(experts.size() + 1, 0);
  for (const std::int32_t e : routing.expert) ++count[static_cast<std::size_t>(e) + 1];
  for (std::size_t e = 0; e < experts.size(); ++e) count[e + 1] += count[e];
  std::vector<std::size_t> token(routing.expert.size()), next(count.begin(), count.end() - 1);
  std::vector<Scalar> weight(routing.expert.size());
  for (std::size_t t = 0; t < tokens; ++t) {
    for (std::size_t i = 0; i < routing.k; ++i) {
      const auto e = static_cast<std::size_t>(routing.expert[t * routing.k + i]);
      token[next[e]] = t;
      weight[next[e]++] = routing.weight[t * routing.k + i];
    }
  }
  std::vector<std::size_t> routed;  // the experts some token chose; the others are never read
  for (std::size_t e = 0; e < experts.size(); ++e) {
    if (count[e + 1] > count[e]) routed.push_back(e);
  }
  s.outputs.resize(static_cast<Eigen::Index>(routing.expert.size()), hidden);
  auto run = [&](std::size_t e, int product_threads) {
    detail::run_expert(h, token.data() + count[e], count[e + 1] - count[e], experts[e], act, product_threads,
                       s.outputs, count[e]);
  };
  if (threads > 1 && routed.size() >= 4 * static_cast<std::size_t>(threads)) {
    maskgen::detail::parallel_for_dynamic(routed.size(), threads, 1, [&](std::size_t b, std::size_t end) {
      for (std::size_t i = b; i < end; ++i) run(routed[i], 1);
    });
  } else {
    for (const std::size_t e : routed) run(e, threads);
  }
  // out[t] += weight * expert(h[t]), experts in increasing index, one rounding an element.
  out.setZero(h.rows(), hidden);
  for (const std::size_t e : routed) {
    for (std::size_t p = count[e]; p < count[e + 1]; ++p) {
      Scalar* o = out.row(static_cast<Eigen::Index>(token[p])).data();
      const Scalar* d = s.outputs.row(static_cast<Eigen::Index>(p)).data();
      const Scalar g = weight[p];
      for (Eigen::Index c = 0; c < hidden; ++c) o[c] = std::fma(g, d[c], o[c]);
    }
  }
}

}  // namespace maskgen::ops

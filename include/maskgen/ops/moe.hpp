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
  Matrix<Scalar> x, gate, up, down;  // [routed, hidden], [routed, intermediate] twice, [routed, hidden]
};

// out = the mixture of the routed experts' gated MLPs.  h: [tokens, hidden] -> out [tokens, hidden]
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
  out.setZero(h.rows(), hidden);
  for (std::size_t e = 0; e < experts.size(); ++e) {
    const std::size_t first = count[e], n = count[e + 1] - first;
    if (n == 0) continue;  // an expert no token chose is never read
    const ExpertWeights<Scalar>& w = experts[e];
    s.x.resize(static_cast<Eigen::Index>(n), hidden);  // [n, hidden] the expert's tokens
    for (std::size_t i = 0; i < n; ++i) s.x.row(static_cast<Eigen::Index>(i)) = h.row(static_cast<Eigen::Index>(token[first + i]));
    matmul_transposed(s.x, w.gate, s.gate, threads);  // [n, intermediate]
    matmul_transposed(s.x, w.up, s.up, threads);      // [n, intermediate]
    if (w.gate_bias.size() > 0) s.gate.rowwise() += w.gate_bias.transpose();
    if (w.up_bias.size() > 0) s.up.rowwise() += w.up_bias.transpose();
    gated_activation(s.gate, s.up, act, threads);
    matmul_transposed(s.gate, w.down, s.down, threads);  // [n, hidden]
    if (w.down_bias.size() > 0) s.down.rowwise() += w.down_bias.transpose();
    for (std::size_t i = 0; i < n; ++i) {  // out[t] += weight * expert(h[t]), one rounding an element
      Scalar* o = out.row(static_cast<Eigen::Index>(token[first + i])).data();
      const Scalar* d = s.down.row(static_cast<Eigen::Index>(i)).data();
      const Scalar g = weight[first + i];
      for (Eigen::Index c = 0; c < hidden; ++c) o[c] = std::fma(g, d[c], o[c]);
    }
  }
}

}  // namespace maskgen::ops

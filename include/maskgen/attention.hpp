#pragma once
// Masked causal attention over per-row caches of real tokens, with grouped-query heads.
//
// A query at position p of a row sees exactly the keys 0..p of that row's cache: its own real
// tokens before it and itself; in a sliding-window layer of window W, only the last W of them
// (keys p - W + 1..p, as transformers' sliding window counts them). Pads are never in the cache, so they are skipped rather than
// multiplied by zero, and every query sees at least one key: no output can be NaN. Each output is
// reduced over keys in increasing order, independently of every other query, so it is the same
// whatever else is in the batch or however many threads run.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "detail/parallel.hpp"
#include "kv_cache.hpp"
#include "ops/matrix.hpp"
#include "ops/simd.hpp"

namespace maskgen {

// Which cache a query token reads and how many of its keys it sees (its position + 1).
struct QuerySpan {
  std::size_t cache_row = 0;
  std::size_t keys = 0;
};

namespace ops {

// A score that overflowed (±inf, or NaN from inf - inf) would turn the softmax into NaN: clamp it
// to the largest finite values instead, so every output stays finite.
template <class Scalar>
inline Scalar finite_score(Scalar s) {
  constexpr Scalar top = std::numeric_limits<Scalar>::max();
  if (std::isnan(s)) return -top;
  return std::clamp(s, -top, top);
}

// out[t, h] = Σ_j softmax_j(q[t, h] · k_j / √head_dim) v_j over the keys the query sees.
//   q: [tokens, heads * head_dim]; keys and values of head h come from kv head h / (heads / kv_heads).
//   out: resized to [tokens, heads * head_dim]. `window`: see above; unset sees every key.
template <class Scalar>
void attend(const Matrix<Scalar>& q,
            std::span<const QuerySpan> spans, const KVCache<Scalar>& cache, std::size_t layer,
            std::size_t heads, std::size_t kv_heads, std::size_t head_dim,
            Matrix<Scalar>& out, int threads, std::optional<std::size_t> window = std::nullopt) {
  eigen_assert(static_cast<std::size_t>(q.rows()) == spans.size());
  eigen_assert(static_cast<std::size_t>(q.cols()) == heads * head_dim);
  out.resize(q.rows(), q.cols());
  const std::size_t group = heads / kv_heads;
  const Scalar scale = Scalar(1) / std::sqrt(static_cast<Scalar>(head_dim));
  const std::size_t items = spans.size() * heads;
  // Waking a second thread costs more than a few thousand multiply-adds: small steps run on one.
  std::size_t work = 0;  // multiply-adds, about
  for (const QuerySpan& s : spans) work += std::min(s.keys, window.value_or(s.keys)) * heads * head_dim * 2;
  if (work < 65536) threads = 1;
  maskgen::detail::parallel_for_dynamic(items, threads, 8, [&](std::size_t begin, std::size_t end) {
    std::vector<Scalar> scores;
    for (std::size_t item = begin; item < end; ++item) {
      const std::size_t t = item / heads, h = item % heads, g = h / group;
      const QuerySpan span = spans[t];
      const std::size_t first = window && span.keys > *window ? span.keys - *window : 0;  // oldest key seen
      const std::size_t seen = span.keys - first;
      const Scalar* qv = q.row(static_cast<Eigen::Index>(t)).data() + h * head_dim;
      const Scalar* k = cache.keys(layer, span.cache_row, g) + first * head_dim;    // [seen, head_dim]
      const Scalar* v = cache.values(layer, span.cache_row, g) + first * head_dim;  // [seen, head_dim]
      scores.resize(seen);
      Scalar max_score = -std::numeric_limits<Scalar>::infinity();
      for (std::size_t j = 0; j < seen; ++j) {
        scores[j] = finite_score(detail::dot(qv, k + j * head_dim, head_dim) * scale);
        max_score = std::max(max_score, scores[j]);
      }
      Scalar* o = out.row(static_cast<Eigen::Index>(t)).data() + h * head_dim;
      std::fill(o, o + head_dim, Scalar(0));
      Scalar sum = 0;
      for (std::size_t j = 0; j < seen; ++j) {
        const Scalar e = std::exp(scores[j] - max_score);
        sum += e;
        detail::axpy(e, v + j * head_dim, o, head_dim);
      }
      const Scalar inv_sum = Scalar(1) / sum;  // sum >= 1: the largest score contributes exp(0)
      for (std::size_t d = 0; d < head_dim; ++d) o[d] *= inv_sum;
    }
  });
}

}  // namespace ops
}  // namespace maskgen

#pragma once
// Masked causal attention over per-row caches of real tokens, with grouped-query heads.
//
// A query at position p of a row sees exactly the keys 0..p of that row's cache: its own real
// tokens before it and itself; in a sliding-window layer of window W, only the last W of them
// (keys p - W + 1..p, as transformers' sliding window counts them). Pads are never in the cache, so
// they are skipped rather than multiplied by zero, and every query sees at least one key: no output
// can be NaN.
//
// Each query is computed in one fixed order that depends only on its own vector and the keys it
// sees: a score is a dot product over head_dim (vector lanes, their fixed tree, then the tail), the
// softmax takes the largest score, exponentiates each (ops/exp.hpp) and sums them in lanes over
// the keys counted from the query's first key, and each output element is one chain of fused
// multiply-adds over the keys in increasing order, then scaled by 1 / sum. So a query's result is
// the same whatever else is in the batch, however its row's tokens were chunked, and on any number
// of threads.
//
// For speed, the queries of a work item share every block of keys and values while it is in L1:
// the item is up to `query_run` consecutive tokens of one row times the query heads of one KV head
// (a GQA group), so each key block is read once for all of them.

#include <algorithm>
#include <concepts>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "../kv/cache.hpp"
#include "activation.hpp"
#include "exp.hpp"
#include "matrix.hpp"
#include "simd.hpp"

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

namespace detail {

// The lane sums of `lanes` vectors at once: out[i] = sum_lanes(acc[i]) exactly (the same fixed
// tree: the upper half of the lanes added to the lower half, again and again), computed as a
// transpose so that one vector instruction serves several vectors. Float with AVX or AVX-512;
// elsewhere vector by vector.
template <class Scalar>
inline void sum_lanes_of_each(const typename Simd<Scalar>::type* acc, Scalar* out) {
  using S = Simd<Scalar>;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<Scalar, float> && S::lanes == 16) {
    __m512 a[16], b[8], c[4], d[2];
    for (int i = 0; i < 16; ++i) a[i] = acc[i];  // the same vector type (no copy through memory)
    for (int i = 0; i < 8; ++i) {  // lane l + lane l + 8: [acc 2i | acc 2i+1], 8 lanes each
      b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                           _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    }
    for (int i = 0; i < 4; ++i) {  // + 4: [acc 4i | 4i+1 | 4i+2 | 4i+3], 4 lanes each
      c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                           _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
    }
    for (int i = 0; i < 2; ++i) {  // + 2: in 128-bit lane q: [acc 8i+q (2 lanes), acc 8i+q+4 (2 lanes)]
      d[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44),
                           _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE));
    }
    // + 1: in 128-bit lane q: acc q, q + 4, q + 8, q + 12.
    const __m512 e = _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xDD));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(order, e));
    return;
  }
#endif
#if defined(__AVX__)
  if constexpr (std::is_same_v<Scalar, float> && S::lanes == 8) {
    __m256 a[8], b[4], c[2];
    for (int i = 0; i < 8; ++i) a[i] = acc[i];  // the same vector type (no copy through memory)
    for (int i = 0; i < 4; ++i) {  // lane l + lane l + 4: [acc 2i | acc 2i+1], 4 lanes each
      b[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x20),
                           _mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x31));
    }
    for (int i = 0; i < 2; ++i) {  // + 2: in 128-bit lane h: [acc 4i+h (2 lanes), acc 4i+h+2 (2 lanes)]
      c[i] = _mm256_add_ps(_mm256_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                           _mm256_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
    }
    // + 1: in 128-bit lane h: acc h, h + 2, h + 4, h + 6.
    const __m256 e = _mm256_add_ps(_mm256_shuffle_ps(c[0], c[1], 0x88), _mm256_shuffle_ps(c[0], c[1], 0xDD));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(e, order));
    return;
  }
#endif
  for (std::size_t i = 0; i < S::lanes; ++i) out[i] = sum_lanes<Scalar>(acc[i]);
}

// Scores of one query against `lanes` keys: scores[i] = finite_score((q · k_i) * scale), the dot
// product in the kernels' order (lanes over d, their tree, then the d % lanes tail); with a
// soft-cap (cap > 0, Gemma 2), cap * tanh(score / cap) before the clamp.
//   q: [head_dim]; key i at keys + offset(i), [head_dim] each. HD: head_dim when known at compile
//   time (the common sizes, so that the keys' offsets are constants), else 0.
template <class Scalar, std::size_t HD, class Offset>
inline void score_block(const Scalar* q, const Scalar* keys, Offset offset, std::size_t head_dim, Scalar scale,
                        Scalar cap, Scalar* scores) {
  using S = Simd<Scalar>;
  using V = typename S::type;
  constexpr std::size_t L = S::lanes;
  if constexpr (HD != 0) head_dim = HD;
  V acc[L];
#pragma GCC unroll 16
  for (std::size_t i = 0; i < L; ++i) acc[i] = V{};
  const std::size_t d_vec = head_dim - head_dim % L;
#pragma GCC unroll 4
  for (std::size_t d = 0; d < d_vec; d += L) {
    V qv, kv;
    S::load(qv, q + d);
#pragma GCC unroll 16
    for (std::size_t i = 0; i < L; ++i) {
      S::load(kv, keys + offset(i) + d);
      madd(acc[i], qv, kv);
    }
  }
  sum_lanes_of_each<Scalar>(acc, scores);
  if (d_vec < head_dim) {
    for (std::size_t i = 0; i < L; ++i) {
      for (std::size_t d = d_vec; d < head_dim; ++d) scores[i] += rounded_product(q[d], keys[offset(i) + d]);
    }
  }
  // finite_score(s * scale), a vector at a time.
  constexpr Scalar top = std::numeric_limits<Scalar>::max();
  V sv;
  S::load(sv, scores);
  sv = sv * scale;
  if (cap > 0) softcap_lanes<Scalar>(sv, cap);
  sv = sv == sv ? sv : V{} - top;
  sv = sv > top ? V{} + top : sv;
  sv = sv < -top ? V{} - top : sv;
  std::memcpy(scores, &sv, sizeof sv);
}

// The scores of one query against keys [j0, j0 + lanes) of a head's [keys, head_dim] block `k`;
// keys at or past `end` repeat key end - 1 (their scores are not used).
template <class Scalar>
inline void score_keys(const Scalar* q, const Scalar* k, std::size_t j0, std::size_t end, std::size_t head_dim,
                       Scalar scale, Scalar cap, Scalar* scores) {
  constexpr std::size_t L = Simd<Scalar>::lanes;
  const Scalar* base = k + j0 * head_dim;
  if (j0 + L <= end) {  // consecutive rows: constant offsets where head_dim is a common size
    if (head_dim == 64) return score_block<Scalar, 64>(q, base, [](std::size_t i) { return i * 64; }, 64, scale, cap, scores);
    if (head_dim == 128) return score_block<Scalar, 128>(q, base, [](std::size_t i) { return i * 128; }, 128, scale, cap, scores);
    if (head_dim == 256) return score_block<Scalar, 256>(q, base, [](std::size_t i) { return i * 256; }, 256, scale, cap, scores);
  }
  const std::size_t last = end - 1 - j0;
  score_block<Scalar, 0>(q, base, [&](std::size_t i) { return std::min(i, last) * head_dim; }, head_dim, scale, cap,
                         scores);
}

// o[d] += Σ_j e[j] v[j][d] for C vectors of o (from d0) held in registers, j in [0, count).
template <class Scalar, int C>
inline void add_weighted_vectors(const Scalar* e, const Scalar* v, std::size_t count, std::size_t head_dim,
                                 Scalar* o) {
  using S = Simd<Scalar>;
  using V = typename S::type;
  V acc[C], ev, vv;
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) S::load(acc[c], o + c * S::lanes);
  for (std::size_t j = 0; j < count; ++j) {
    splat(ev, e[j]);
    const Scalar* row = v + j * head_dim;
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      S::load(vv, row + c * S::lanes);
      madd(acc[c], ev, vv);
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) std::memcpy(o + c * S::lanes, &acc[c], sizeof(V));
}

// o[d] += Σ_j e[j] v[j][d] for j in [0, count), for every d < head_dim: each element's chain of
// fused multiply-adds over the keys in order.  e: [count] weights; v: [count, head_dim]; o: [head_dim].
template <class Scalar>
inline void add_weighted(const Scalar* e, const Scalar* v, std::size_t count, std::size_t head_dim, Scalar* o) {
  using S = Simd<Scalar>;
  constexpr int chunk = simd_bytes == 64 ? 16 : 8;  // vectors of o at once (of 32 or 16 registers)
  const std::size_t vectors = head_dim / S::lanes;
  std::size_t c0 = 0;
  for (; c0 + chunk <= vectors; c0 += chunk) {
    add_weighted_vectors<Scalar, chunk>(e, v + c0 * S::lanes, count, head_dim, o + c0 * S::lanes);
  }
  for (; c0 + 4 <= vectors; c0 += 4) add_weighted_vectors<Scalar, 4>(e, v + c0 * S::lanes, count, head_dim, o + c0 * S::lanes);
  for (; c0 < vectors; ++c0) add_weighted_vectors<Scalar, 1>(e, v + c0 * S::lanes, count, head_dim, o + c0 * S::lanes);
  for (std::size_t d = vectors * S::lanes; d < head_dim; ++d) {
    for (std::size_t j = 0; j < count; ++j) o[d] = fused(e[j], v[j * head_dim + d], o[d]);
  }
}

// The softmax weights of one query in place: e[j] := exp(e[j] - max), e[seen, seen + lanes) := 0;
// returns their sum in lanes over j (counted from e[0]) and the lanes' tree. With a sink (gpt-oss),
// the max is taken over the scores and the sink, and exp(sink - max) is added to the sum last: a
// logit that joins the denominator but has no value.
template <class Scalar>
inline Scalar softmax_weights(Scalar* e, std::size_t seen, const Scalar* sink = nullptr) {
  using S = Simd<Scalar>;
  using V = typename S::type;
  constexpr std::size_t L = S::lanes;
  std::fill(e + seen, e + seen + L, -std::numeric_limits<Scalar>::infinity());
  V top, x;
  S::load(top, e);
  for (std::size_t j = L; j < seen; j += L) {
    S::load(x, e + j);
    top = x > top ? x : top;
  }
  Scalar m = top[0];
  for (std::size_t i = 1; i < L; ++i) m = std::max(m, top[i]);
  if (sink) m = std::max(m, *sink);
  V lanes{}, mv;
  splat(mv, m);
  for (std::size_t j = 0; j < seen; j += L) {  // the padding is -inf: its weight is exactly 0
    S::load(x, e + j);
    x = x - mv;
    exp_lanes<Scalar>(x);
    std::memcpy(e + j, &x, sizeof x);
    lanes += x;
  }
  Scalar sum = sum_lanes<Scalar>(lanes);  // >= 1: the largest score's (or the sink's) weight is exp(0)
  if (sink) {
    V s{};
    s[0] = *sink - m;
    exp_lanes<Scalar>(s);
    sum += s[0];
  }
  return sum;
}

}  // namespace detail

// Tokens of one row that share each block of keys (a work item, with a KV head's query heads).
inline constexpr std::size_t query_run = 8;

// out[t, h] = Σ_j softmax_j(q[t, h] · k_j · scale) v_j over the keys the query sees.
//   q: [tokens, heads * head_dim]; keys and values of head h come from kv head h / (heads / kv_heads).
//   out: resized to [tokens, heads * head_dim]. `window`: see above; unset sees every key. `scale`:
//   1 / √head_dim where 0 (Gemma and Granite set their own). `softcap`: scores become
//   softcap · tanh(score / softcap) before the softmax (Gemma 2). `sinks`: [heads] logits that join
//   each query's softmax denominator (gpt-oss), or null.
template <class Scalar, KeyValueCache Cache>
  requires std::same_as<typename Cache::scalar_type, Scalar>
void attend(const Matrix<Scalar>& q,
            std::span<const QuerySpan> spans, const Cache& cache, std::size_t layer,
            std::size_t heads, std::size_t kv_heads, std::size_t head_dim,
            Matrix<Scalar>& out, int threads, std::optional<std::size_t> window = std::nullopt, double scale = 0.0,
            std::optional<double> softcap = std::nullopt, const Scalar* sinks = nullptr) {
  using S = ops::detail::Simd<Scalar>;
  constexpr std::size_t L = S::lanes;
  eigen_assert(static_cast<std::size_t>(q.rows()) == spans.size());
  eigen_assert(static_cast<std::size_t>(q.cols()) == heads * head_dim);
  out.resize(q.rows(), q.cols());
  const std::size_t group = heads / kv_heads;
  const Scalar score_scale = scale > 0 ? static_cast<Scalar>(scale) : Scalar(1) / std::sqrt(static_cast<Scalar>(head_dim));
  const Scalar cap = softcap ? static_cast<Scalar>(*softcap) : Scalar(0);
  auto first_key = [&](const QuerySpan& s) { return window && s.keys > *window ? s.keys - *window : 0; };

  // Runs of up to query_run consecutive tokens of the same cache row.
  std::vector<std::size_t> runs{0};
  for (std::size_t t = 1; t <= spans.size(); ++t) {
    if (t == spans.size() || spans[t].cache_row != spans[runs.back()].cache_row || t - runs.back() == query_run) {
      runs.push_back(t);
    }
  }
  const std::size_t run_count = runs.size() - 1, items = run_count * kv_heads;
  // Waking a second thread costs more than a few thousand multiply-adds: small steps run on one.
  std::size_t work = 0;  // multiply-adds, about
  for (const QuerySpan& s : spans) work += (s.keys - first_key(s)) * heads * head_dim * 2;
  if (work < 65536) threads = 1;

  maskgen::detail::parallel_for_dynamic(items, threads, 1, [&](std::size_t begin, std::size_t end) {
    thread_local std::vector<Scalar> scores, sums;
    thread_local std::vector<KeyValueRun<Scalar>> runs_of_keys;
    for (std::size_t item = begin; item < end; ++item) {
      const std::size_t run = item / kv_heads, g = item % kv_heads;
      const std::size_t t0 = runs[run], t1 = runs[run + 1], tokens = t1 - t0;
      const std::size_t row = spans[t0].cache_row;
      std::size_t lo = first_key(spans[t0]), hi = spans[t0].keys;  // keys any query of the run sees
      for (std::size_t t = t0; t < t1; ++t) {
        lo = std::min(lo, first_key(spans[t]));
        hi = std::max(hi, spans[t].keys);
      }
      runs_of_keys.clear();
      cache.runs(layer, row, g, lo, hi, runs_of_keys);  // keys and values [lo, hi), [keys, head_dim] each
      const std::size_t width = hi - lo + 2 * L;      // a query's scores, with room to pad
      const std::size_t queries = tokens * group;     // query (t - t0) * group + h % group
      scores.resize(queries * width);
      sums.resize(queries);
      auto query_scores = [&](std::size_t t, std::size_t hg) { return scores.data() + ((t - t0) * group + hg) * width; };

      // Scores, a block of L keys of a run at a time (a block that passes the run's end writes
      // scores there that the next run, or the softmax's padding, overwrites).
      for (const KeyValueRun<Scalar>& run : runs_of_keys) {
        for (std::size_t j0 = run.first; j0 < run.first + run.count; j0 += L) {
          for (std::size_t t = t0; t < t1; ++t) {
            if (j0 >= spans[t].keys || j0 + L <= first_key(spans[t])) continue;
            for (std::size_t hg = 0; hg < group; ++hg) {
              const Scalar* qv = q.row(static_cast<Eigen::Index>(t)).data() + (g * group + hg) * head_dim;
              detail::score_keys(qv, run.keys, j0 - run.first, run.count, head_dim, score_scale, cap,
                                 query_scores(t, hg) + (j0 - lo));
            }
          }
        }
      }
      // Softmax weights, in place, and their sums.
      for (std::size_t t = t0; t < t1; ++t) {
        const std::size_t first = first_key(spans[t]), seen = spans[t].keys - first;
        for (std::size_t hg = 0; hg < group; ++hg) {
          sums[(t - t0) * group + hg] = detail::softmax_weights(query_scores(t, hg) + (first - lo), seen,
                                                                sinks ? sinks + g * group + hg : nullptr);
        }
      }
      // Outputs: each element's chain over the keys in order, a block of keys at a time for all
      // queries (so the block's values are read from L1), then scaled by 1 / sum.
      for (std::size_t t = t0; t < t1; ++t) {
        for (std::size_t hg = 0; hg < group; ++hg) {
          Scalar* o = out.row(static_cast<Eigen::Index>(t)).data() + (g * group + hg) * head_dim;
          std::fill(o, o + head_dim, Scalar(0));
        }
      }
      constexpr std::size_t value_block = 32;
      for (const KeyValueRun<Scalar>& run : runs_of_keys) {
        const std::size_t run_end = run.first + run.count;
        for (std::size_t j0 = run.first; j0 < run_end; j0 += value_block) {
          for (std::size_t t = t0; t < t1; ++t) {
            const std::size_t a = std::max(j0, first_key(spans[t]));
            const std::size_t b = std::min({j0 + value_block, run_end, spans[t].keys});
            for (std::size_t hg = 0; hg < group && a < b; ++hg) {
              Scalar* o = out.row(static_cast<Eigen::Index>(t)).data() + (g * group + hg) * head_dim;
              detail::add_weighted(query_scores(t, hg) + (a - lo), run.values + (a - run.first) * head_dim, b - a,
                                   head_dim, o);
            }
          }
        }
      }
      for (std::size_t t = t0; t < t1; ++t) {
        for (std::size_t hg = 0; hg < group; ++hg) {
          Scalar* o = out.row(static_cast<Eigen::Index>(t)).data() + (g * group + hg) * head_dim;
          const Scalar inv_sum = Scalar(1) / sums[(t - t0) * group + hg];
          for (std::size_t d = 0; d < head_dim; ++d) o[d] *= inv_sum;
        }
      }
    }
  });
}

}  // namespace ops
}  // namespace maskgen

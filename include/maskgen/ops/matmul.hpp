#pragma once
// Y = X · Wᵀ, the projection of every layer: X [m, k] activations, W [n, k] weights (row-major, as
// stored in checkpoints, in their stored element type: see weights.hpp), Y [m, n].
//
// Batch invariance by construction: every element Y[i, j] is the dot product of X row i and W row
// j, accumulated in one fixed order (k in steps of one SIMD vector into one vector accumulator,
// then the lanes summed in a fixed order, then the k % lanes tail). That order does not depend on
// m, on which other rows are in X, on how the work is tiled or on how many threads run: threads
// split the output columns (rows of W), never k.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "matrix.hpp"
#include "simd.hpp"
#include "weights.hpp"

namespace maskgen::ops {

namespace detail {

// Rows of X per tile: R x 4 accumulators must fit the vector registers (32 with AVX-512, else 16).
inline constexpr int row_tile = simd_bytes == 64 ? 4 : 2;

// R rows of X times C rows of W: R*C dot products of length k, each accumulated exactly as a
// lone dot product would be: vector lanes over k, the lanes' fixed tree sum, then the k % lanes
// tail, then (int8 only) the row's scale.  x: [R, ldx], w: [C, ldw] elements of Codec,
// y: [R, ldy] (C columns written). If `next_w` is set, the C rows there (the next tile's weights)
// are prefetched into cache a line at a time as this tile runs, so streaming weights from memory
// overlaps the arithmetic. (Into every cache level: a non-temporal prefetch measured 2x slower.)
template <class Scalar, class Codec, int R, int C>
inline void dot_tile(const Scalar* x, std::size_t ldx, const typename Codec::storage* w, std::size_t ldw,
                     std::size_t k, Scalar* y, std::size_t ldy, const float* scales,
                     const typename Codec::storage* next_w = nullptr) {
  using S = Simd<Scalar>;
  using storage = typename Codec::storage;
  typename S::type acc[R][C] = {};
  const std::size_t k_vec = k - k % S::lanes;
  for (std::size_t t = 0; t < k_vec; t += S::lanes) {
    if (next_w && t * sizeof(storage) % 64 == 0) {
      for (int c = 0; c < C; ++c) __builtin_prefetch(next_w + c * ldw + t, 0, 3);
    }
    typename S::type wv[C];
    for (int c = 0; c < C; ++c) load_widened<Scalar, Codec>(wv[c], w + c * ldw + t);
    for (int r = 0; r < R; ++r) {
      typename S::type xv;
      S::load(xv, x + r * ldx + t);
      for (int c = 0; c < C; ++c) acc[r][c] += xv * wv[c];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      Scalar s = sum_lanes<Scalar>(acc[r][c]);
      for (std::size_t t = k_vec; t < k; ++t) {
        s += rounded_product(x[r * ldx + t], static_cast<Scalar>(Codec::scalar(w[c * ldw + t])));
      }
      if (scales) s = rounded_product(s, static_cast<Scalar>(scales[c]));
      y[r * ldy + c] = s;
    }
  }
}

// `rows` rows of k stored elements at w, widened into out [rows, k].
template <class Scalar, class Codec>
void widen_rows(const typename Codec::storage* w, std::size_t rows, std::size_t k, Scalar* out) {
  using S = Simd<Scalar>;
  const std::size_t k_vec = k - k % S::lanes;
  for (std::size_t r = 0; r < rows; ++r) {
    const auto* row = w + r * k;
    Scalar* dst = out + r * k;
    for (std::size_t t = 0; t < k_vec; t += S::lanes) {
      typename S::type v;
      load_widened<Scalar, Codec>(v, row + t);
      std::memcpy(dst + t, &v, sizeof v);
    }
    for (std::size_t t = k_vec; t < k; ++t) dst[t] = static_cast<Scalar>(Codec::scalar(row[t]));
  }
}

// Columns [j0, j1) of Y for R rows of X (R at most one row tile: decode, bound by reading W):
// tiles of 4 rows of W (four dot products in flight hide the latency of each one's additions),
// each prefetching the next 4 rows of W.
template <class Scalar, class Codec, int R>
void decode_columns(const Scalar* x, std::size_t k, const typename Codec::storage* w, const float* scales,
                    std::size_t j0, std::size_t j1, Scalar* y, std::size_t n) {
  auto row_scales = [&](std::size_t j) { return scales ? scales + j : nullptr; };
  std::size_t j = j0;
  for (; j + 4 <= j1; j += 4) {
    dot_tile<Scalar, Codec, R, 4>(x, k, w + j * k, k, k, y + j, n, row_scales(j), j + 8 <= j1 ? w + (j + 4) * k : nullptr);
  }
  for (; j < j1; ++j) dot_tile<Scalar, Codec, R, 1>(x, k, w + j * k, k, k, y + j, n, row_scales(j));
}

// The cache lines of [p, p + bytes), prefetched into every cache level.
inline void prefetch_lines(const void* p, std::size_t bytes) {
  for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(static_cast<const char*>(p) + b, 0, 3);
}

// Columns [j0, j1) of Y for all m rows.
template <class Scalar, class Codec>
void matmul_columns(const Scalar* x, std::size_t m, std::size_t k, const typename Codec::storage* w,
                    const float* scales, std::size_t j0, std::size_t j1, Scalar* y, std::size_t n) {
  if (m <= static_cast<std::size_t>(row_tile)) {
    switch (m) {
      case 1: return decode_columns<Scalar, Codec, 1>(x, k, w, scales, j0, j1, y, n);
      case 2: return decode_columns<Scalar, Codec, 2>(x, k, w, scales, j0, j1, y, n);
      case 3: return decode_columns<Scalar, Codec, 3>(x, k, w, scales, j0, j1, y, n);
      default: return decode_columns<Scalar, Codec, row_tile>(x, k, w, scales, j0, j1, y, n);
    }
  }
  constexpr std::size_t row_block = 64;  // rows of X kept hot in cache while W streams by
  auto row_scales = [&](std::size_t j) { return scales ? scales + j : nullptr; };
  // Stored weights that are not Scalar are widened once per 4 rows of W and row block into this
  // panel, then used by every row tile of X, instead of being widened again for each tile (the
  // widening is exact, so the panel holds the very values the tiles would have widened).
  constexpr bool widen_panel = !std::is_same_v<Codec, Plain<Scalar>>;
  std::vector<Scalar> panel(widen_panel ? 4 * k : 0);
  for (std::size_t i0 = 0; i0 < m; i0 += row_block) {
    const std::size_t i1 = std::min(m, i0 + row_block);
    std::size_t j = j0;
    for (; j + 4 <= j1; j += 4) {
      std::size_t i = i0;
      const auto* next_w = j + 8 <= j1 ? w + (j + 4) * k : nullptr;
      if constexpr (widen_panel) {
        if (next_w) prefetch_lines(next_w, 4 * k * sizeof(*w));
        widen_rows<Scalar, Codec>(w + j * k, 4, k, panel.data());
        for (; i + row_tile <= i1; i += row_tile) {
          dot_tile<Scalar, Plain<Scalar>, row_tile, 4>(x + i * k, k, panel.data(), k, k, y + i * n + j, n,
                                                       row_scales(j));
        }
      } else {
        for (; i + row_tile <= i1; i += row_tile) {
          dot_tile<Scalar, Codec, row_tile, 4>(x + i * k, k, w + j * k, k, k, y + i * n + j, n, row_scales(j),
                                               i == i0 ? next_w : nullptr);
        }
      }
      for (; i < i1; ++i) {
        dot_tile<Scalar, Codec, 1, 4>(x + i * k, k, w + j * k, k, k, y + i * n + j, n, row_scales(j));
      }
    }
    for (; j < j1; ++j) {
      for (std::size_t i = i0; i < i1; ++i) {
        dot_tile<Scalar, Codec, 1, 1>(x + i * k, k, w + j * k, k, k, y + i * n + j, n, row_scales(j));
      }
    }
  }
}

}  // namespace detail

// y = x · wᵀ.  x: [m, k], w: [n, k] in its stored type, y: resized to [m, n]. Threads split the n
// output columns in blocks of 16; the result is bitwise the same for any thread count and any m.
template <class Scalar>
void matmul_transposed(const Matrix<Scalar>& x, const WeightMatrix& w, Matrix<Scalar>& y, int threads) {
  eigen_assert(static_cast<std::size_t>(x.cols()) == w.cols);
  const auto m = static_cast<std::size_t>(x.rows()), k = static_cast<std::size_t>(x.cols()), n = w.rows;
  y.resize(x.rows(), static_cast<Eigen::Index>(n));
  constexpr std::size_t column_block = 16;
  const std::size_t blocks = (n + column_block - 1) / column_block;
  // Below this much work (about 5 µs) waking a second thread costs more than it saves.
  if (m * n * k < 262144) threads = 1;
  auto run = [&]<class Codec>(Codec) {
    const auto* data = reinterpret_cast<const typename Codec::storage*>(w.data);
    maskgen::detail::parallel_for(blocks, threads, [&](std::size_t b0, std::size_t b1) {
      detail::matmul_columns<Scalar, Codec>(x.data(), m, k, data, w.scales, b0 * column_block,
                                            std::min(n, b1 * column_block), y.data(), n);
    });
  };
  switch (w.type) {
    case WeightType::F32: run(detail::Plain<float>{}); break;
    case WeightType::F64:
      if constexpr (std::is_same_v<Scalar, double>) {
        run(detail::Plain<double>{});
        break;
      } else {
        throw std::logic_error("matmul_transposed: float64 weights need float64 activations");
      }
    case WeightType::BF16: run(detail::Bf16{}); break;
    case WeightType::F16: run(detail::F16{}); break;
    case WeightType::I8: run(detail::I8{}); break;
  }
}

// y = x · wᵀ for a weight matrix held as Scalar.
template <class Scalar>
void matmul_transposed(const Matrix<Scalar>& x, const Matrix<Scalar>& w, Matrix<Scalar>& y, int threads) {
  matmul_transposed(x, view_weights(w.data(), static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols())),
                    y, threads);
}

}  // namespace maskgen::ops

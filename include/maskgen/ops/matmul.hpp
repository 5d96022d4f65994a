#pragma once
// Y = X · Wᵀ, the projection of every layer: X [m, k] activations, W [n, k] weights (in their stored
// element type, see weights.hpp), Y [m, n].
//
// The kernel is an outer product over packed panels (the form of BLIS and of every fast GEMM): a
// register tile of M rows of X by one or more panels of W's rows (each panel_cols output columns)
// is held in accumulators while k streams by, each step multiplying one element of each of the M
// rows (broadcast) by one widened panel row of W.
//
// Batch invariance by construction: every element Y[i, j] is one chain of fused multiply-adds over
// k, in order, starting from zero:  y = fma(x[k-1], w[k-1], ... fma(x[1], w[1], fma(x[0], w[0], 0))),
// then (int8 only) times the row's scale. Nothing about that chain depends on m, on the other rows,
// on the tile a row falls in, on the blocking of k (a block's partial sums are stored and reloaded
// exactly), or on the thread count (threads split the output columns, never k). A decode step of
// one row runs the same chain as a row of a 2048-token prefill, so its bits are the same.
// (Where the target has no fused multiply-add, each step is a rounded product and a sum instead;
// the order is the same.)

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

// ---- Tile shapes -----------------------------------------------------------------------------

// The register tile: at most max_rows rows of X, and panels(M) panels of W for a tile of M rows,
// so that M * panels * (panel_cols / lanes) accumulators fit the vector registers (32 with
// AVX-512, 16 with AVX2) with the widened panel rows beside them, and at least 8 independent
// chains are in flight where rows are few (two FMA units, 4 cycles each). Only speed depends on
// these: every shape computes every element's same chain.
template <class Scalar>
struct TileShape {
  static constexpr bool wide = simd_bytes == 64;
#if defined(__AVX__)
  static constexpr bool avx = true;
#else
  static constexpr bool avx = false;
#endif
  static constexpr int vectors = static_cast<int>(panel_cols / Simd<Scalar>::lanes);  // per panel row
  static constexpr int max_rows = std::is_same_v<Scalar, float> ? (wide ? 14 : avx ? 6 : 3) : (wide ? 6 : avx ? 3 : 1);
  static constexpr int panels(int rows) {
    if constexpr (std::is_same_v<Scalar, float>) {
      if (rows == 1) return avx || wide ? 4 : 2;
      return rows <= (wide ? 7 : avx ? 3 : 1) ? 2 : 1;
    } else {
      return rows == 1 && (avx || wide) ? 2 : 1;
    }
  }
};

// Panels of W a tile visits before the next tile of rows takes them (the lcm of every panels(M)).
inline constexpr std::size_t panel_group = 4;

// ---- Widening one panel row -----------------------------------------------------------------

// Row t of a panel (panel_cols stored elements at p) as `TileShape::vectors` vectors of Scalar.
template <class Scalar, class Codec>
inline void widen_panel_row(const typename Codec::storage* p, typename Simd<Scalar>::type* out) {
  using S = Simd<Scalar>;
  constexpr std::size_t vectors = panel_cols / S::lanes;
  if constexpr (std::is_same_v<Codec, Bf16>) {
    // Each 32-bit word holds column i (low half) and column i + panel_cols / 2 (high half): the
    // low float vector is the words shifted up, the high one the words with the low half cleared.
    using Words = typename Vector<std::uint32_t, Simd<float>::lanes>::type;
    using Floats = typename Simd<float>::type;
    Words words;
    std::memcpy(&words, p, sizeof words);
    const Words low = words << 16, high = words & 0xFFFF0000u;
    if constexpr (std::is_same_v<Scalar, float>) {
      std::memcpy(&out[0], &low, sizeof low);
      std::memcpy(&out[1], &high, sizeof high);
    } else {
      Floats halves[2];
      std::memcpy(&halves[0], &low, sizeof low);
      std::memcpy(&halves[1], &high, sizeof high);
      using Wide = typename Vector<Scalar, Simd<float>::lanes>::type;  // two vectors of Scalar
      for (int h = 0; h < 2; ++h) {
        const Wide wide = __builtin_convertvector(halves[h], Wide);
        std::memcpy(&out[2 * h], &wide, sizeof wide);
      }
    }
  } else {
    for (std::size_t v = 0; v < vectors; ++v) load_widened<Scalar, Codec>(out[v], p + v * S::lanes);
  }
}

// ---- Grouped codes ---------------------------------------------------------------------------

// Storage units (Codec::storage) of one panel row: panel_cols elements, or fewer bytes of codes.
template <class Codec>
inline constexpr std::size_t row_units = [] {
  if constexpr (requires { Codec::row_units; }) return Codec::row_units;
  else return panel_cols;
}();

template <class Codec>
inline constexpr bool grouped_codec = requires { Codec::bits; };

// For a grouped codec: the zeros and scales of a tile's NP panels in the group of the current k.
template <class Codec, int NP>
struct GroupedPanels {
  using Floats = typename Simd<float>::type;
  Floats zero[NP][2]{}, scale[NP][2]{};  // set by at() before any use (zeroed: GCC cannot tell)
  std::size_t group = static_cast<std::size_t>(-1);
  std::size_t next = 0;  // the first k whose group may differ from `group`

  void at(const Groups& g, std::size_t panel, std::size_t k) {
    if (k < next) return;
    const std::size_t gi = g.group(k);
    next = g.group_of ? k + 1 : (gi + 1) * g.size;
    if (gi == group) return;
    group = gi;
    for (int q = 0; q < NP; ++q) Codec::load_group(g, panel + static_cast<std::size_t>(q), gi, zero[q], scale[q]);
  }
};

// Panel q's row of codes at p, widened with its group's zeros and scales into NV vectors of Scalar:
// the code's exact value times the scale, the product rounded to Scalar (so exact in double).
template <class Scalar, class Codec, int NP>
inline void widen_grouped_row(const typename Codec::storage* p, const GroupedPanels<Codec, NP>& groups, int q,
                              typename Simd<Scalar>::type* out) {
  typename Simd<float>::type values[2];
  Codec::unscaled(p, groups.zero[q], values);
  if constexpr (std::is_same_v<Scalar, float>) {
    out[0] = values[0] * groups.scale[q][0];
    out[1] = values[1] * groups.scale[q][1];
  } else {
    using Wide = typename Vector<Scalar, Simd<float>::lanes>::type;  // two vectors of Scalar
    for (int h = 0; h < 2; ++h) {
      const Wide wide = __builtin_convertvector(values[h], Wide) * __builtin_convertvector(groups.scale[q][h], Wide);
      std::memcpy(&out[2 * h], &wide, sizeof wide);
    }
  }
}

// ---- The micro-kernel ------------------------------------------------------------------------

// C[M, NP * panel_cols] (+)= X_tile · W_panelsᵀ over kc steps of k.
//   xp: [kc, M] the tile's rows of X, k-major (one element of each row per step);
//   w: the first panel's row at this k, the next panels panel_stride elements apart;
//   c: [M, ldc]; accumulate: continue the chains stored in c (a later block of k) or start at 0;
//   scales: multiply the finished chains by these (int8, the last block of k), or null;
//   ahead: if set, panels laid out as w's (same strides and count) that are prefetched into L2
//   at the pace w is read (the next panels the first tile of a block will read from memory);
//   groups, panel, k0: a grouped codec's groups, the index of the first panel and the k of step 0.
template <class Scalar, class Codec, int M, int NP>
inline void panel_tile(const Scalar* xp, std::size_t kc, const typename Codec::storage* w, std::size_t panel_stride,
                       Scalar* c, std::size_t ldc, bool accumulate, const float* scales,
                       const typename Codec::storage* ahead, const Groups* groups, std::size_t panel,
                       std::size_t k0) {
  constexpr std::size_t units = row_units<Codec>;
  constexpr std::size_t step_bytes = units * sizeof(typename Codec::storage);  // one panel row
  using S = Simd<Scalar>;
  using V = typename S::type;
  constexpr int NV = TileShape<Scalar>::vectors;
  constexpr int A = NP * NV;  // accumulators per row
  V acc[M][A];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 16
    for (int a = 0; a < A; ++a) {
      if (accumulate) {
        S::load(acc[r][a], c + r * ldc + a * S::lanes);
      } else {
        acc[r][a] = V{};
      }
    }
  }
  [[maybe_unused]] GroupedPanels<Codec, NP> group;
  for (std::size_t t = 0; t < kc; ++t) {
    if (ahead && (t * step_bytes) % 64 == 0) {
#pragma GCC unroll 8
      for (int q = 0; q < NP; ++q) {
        for (std::size_t b = 0; b < step_bytes; b += 64)
          __builtin_prefetch(reinterpret_cast<const char*>(ahead + q * panel_stride + t * units) + b, 0, 2);
      }
    }
    V wv[A];
    if constexpr (grouped_codec<Codec>) {
      group.at(*groups, panel, k0 + t);
#pragma GCC unroll 8
      for (int q = 0; q < NP; ++q) widen_grouped_row<Scalar>(w + q * panel_stride + t * units, group, q, wv + q * NV);
    } else {
#pragma GCC unroll 8
      for (int q = 0; q < NP; ++q) widen_panel_row<Scalar, Codec>(w + q * panel_stride + t * units, wv + q * NV);
    }
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      V xb;
      splat(xb, xp[t * M + r]);
#pragma GCC unroll 16
      for (int a = 0; a < A; ++a) madd(acc[r][a], xb, wv[a]);
    }
  }
  if (scales) {
    V sv[A];
#pragma GCC unroll 16
    for (int a = 0; a < A; ++a) load_widened<Scalar, Plain<float>>(sv[a], scales + a * S::lanes);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
#pragma GCC unroll 16
      for (int a = 0; a < A; ++a) acc[r][a] = acc[r][a] * sv[a];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 16
    for (int a = 0; a < A; ++a) std::memcpy(c + r * ldc + a * S::lanes, &acc[r][a], sizeof(V));
  }
}

// A tile of M rows over `count` consecutive panels, TileShape::panels(M) at a time.
// (`ahead`: see panel_tile.)
template <class Scalar, class Codec, int M>
inline void tile_panels(const Scalar* xp, std::size_t kc, const typename Codec::storage* w, std::size_t panel_stride,
                        std::size_t count, Scalar* c, std::size_t ldc, bool accumulate, const float* scales,
                        const typename Codec::storage* ahead, const Groups* groups, std::size_t panel,
                        std::size_t k0) {
  constexpr auto NP = static_cast<std::size_t>(TileShape<Scalar>::panels(M));
  auto at = [](const auto* p, std::size_t offset) { return p ? p + offset : nullptr; };
  std::size_t q = 0;
  for (; q + NP <= count; q += NP) {
    panel_tile<Scalar, Codec, M, static_cast<int>(NP)>(xp, kc, w + q * panel_stride, panel_stride, c + q * panel_cols,
                                                       ldc, accumulate, at(scales, q * panel_cols),
                                                       at(ahead, q * panel_stride), groups, panel + q, k0);
  }
  for (; q < count; ++q) {
    panel_tile<Scalar, Codec, M, 1>(xp, kc, w + q * panel_stride, panel_stride, c + q * panel_cols, ldc, accumulate,
                                    at(scales, q * panel_cols), at(ahead, q * panel_stride), groups, panel + q, k0);
  }
}

// The same for a tile size known only at run time (1 <= rows <= max_rows).
template <class Scalar, class Codec, int M = 1>
inline void tile_panels_dispatch(int rows, const Scalar* xp, std::size_t kc, const typename Codec::storage* w,
                                 std::size_t panel_stride, std::size_t count, Scalar* c, std::size_t ldc,
                                 bool accumulate, const float* scales, const typename Codec::storage* ahead,
                                 const Groups* groups, std::size_t panel, std::size_t k0) {
  if constexpr (M <= TileShape<Scalar>::max_rows) {
    if (rows == M) {
      return tile_panels<Scalar, Codec, M>(xp, kc, w, panel_stride, count, c, ldc, accumulate, scales, ahead, groups,
                                           panel, k0);
    }
    tile_panels_dispatch<Scalar, Codec, M + 1>(rows, xp, kc, w, panel_stride, count, c, ldc, accumulate, scales, ahead,
                                               groups, panel, k0);
  }
}

// ---- Blocking ------------------------------------------------------------------------------

// Where several tiles of rows share panels, k is cut into blocks so that the panels of one block
// (kc rows of panel_cols stored elements, times the panels a tile takes at once) stay in L1 while
// every tile of a block of rows runs over them; the tiles' rows of X for that block of k
// (rows x kc) stay in L2.
inline constexpr std::size_t l1_panel_bytes = 16384;  // half of a 32 KiB L1 (48 KiB on recent Intel cores)
inline constexpr std::size_t row_block = 96;
// Where the block's rows of X for the whole of k fit in this much (the L2 holds them and a panel
// group or two), k is not cut at all.
inline constexpr std::size_t l2_rows_bytes = 196608;

// Panels [p0, p1) of W for all m rows: y[i, p * panel_cols ...] for every row i.
//   x: [m, k]; w: the packed panels; y: [m, ldy] with room for whole panels.
template <class Scalar, class Codec>
void matmul_panels(const Scalar* x, std::size_t m, std::size_t k, const typename Codec::storage* w,
                   const float* scales, const Groups* groups, std::size_t p0, std::size_t p1, Scalar* y,
                   std::size_t ldy) {
  using Shape = TileShape<Scalar>;
  constexpr auto max_rows = static_cast<std::size_t>(Shape::max_rows);
  constexpr std::size_t units = row_units<Codec>;
  const std::size_t panel_stride = k * units;
  // Tiles of balanced sizes (16 rows: 6 + 5 + 5 with AVX2, not 6 + 6 + 4): tile i starts at first(i).
  const std::size_t tiles = (m + max_rows - 1) / max_rows, base = m / tiles, extra = m % tiles;
  auto first = [&](std::size_t i) { return i * base + std::min(i, extra); };
  // Panels a tile takes at once: the most any tile size here takes (1, 2 or 4 divide each other).
  const auto group = static_cast<std::size_t>(
      std::max(Shape::panels(static_cast<int>(base)), Shape::panels(static_cast<int>(base + (extra > 0)))));
  const std::size_t tiles_per_block = std::max<std::size_t>(1, row_block / max_rows);
  const std::size_t kc_shared =
      std::max<std::size_t>(16, l1_panel_bytes / (units * sizeof(typename Codec::storage) * group));
  thread_local std::vector<Scalar> packed;  // the block's tiles of X for one block of k
  for (std::size_t b0 = 0; b0 < tiles; b0 += tiles_per_block) {
    const std::size_t b1 = std::min(tiles, b0 + tiles_per_block);
    const std::size_t row0 = first(b0), rows = first(b1) - row0;
    // One tile: nothing to share. A few rows whose whole k fits in L2: the panels stream once,
    // in order, and each is read again from L2 by the block's next tiles.
    const std::size_t kc = b1 - b0 == 1 || rows * k * sizeof(Scalar) <= l2_rows_bytes ? k : std::min(k, kc_shared);
    if (rows > 1) packed.resize(rows * kc);
    // Where k is cut, each tile's accumulators are stored and reloaded once per block of k: into
    // a buffer whose rows are a cache line longer than a whole number of panels, not into y,
    // whose rows are often a power of two apart (n = 2048: 8 KiB), so that a tile's rows would
    // all fall in the same few L1 sets and evict each other and the panels. y gets the result
    // after the last block.
    const bool staged = kc < k;
    const std::size_t cols = (p1 - p0) * panel_cols, ldc = staged ? cols + 64 / sizeof(Scalar) : ldy;
    thread_local std::vector<Scalar> staging;
    if (staged) staging.resize(rows * ldc);
    auto c_at = [&](std::size_t r, std::size_t col) {  // where row r, column col accumulates
      return staged ? staging.data() + (r - row0) * ldc + (col - p0 * panel_cols) : y + r * ldy + col;
    };
    for (std::size_t k0 = 0; k0 < k; k0 += kc) {
      const std::size_t kn = std::min(kc, k - k0);
      const bool last = k0 + kn == k;
      // Pack: tile i's rows as [kn, M_i] at packed + (first(i) - row0) * kn. A one-row tile reads x.
      if (rows > 1) {
        for (std::size_t i = b0; i < b1; ++i) {
          const std::size_t r0 = first(i), mi = first(i + 1) - r0;
          Scalar* dst = packed.data() + (r0 - row0) * kn;
          for (std::size_t r = 0; r < mi; ++r) {
            const Scalar* src = x + (r0 + r) * k + k0;
            for (std::size_t t = 0; t < kn; ++t) dst[t * mi + r] = src[t];
          }
        }
      }
      for (std::size_t p = p0; p < p1; p += group) {
        const std::size_t count = std::min(group, p1 - p);
        const auto* panels = w + p * panel_stride + k0 * units;
        // The block's first tile reads these panels from memory, the others from cache; the
        // second prefetches what the first will read next, the same block of the next group (a
        // lone tile prefetches it itself: two streams from memory instead of one).
        const auto* next = p + group + count <= p1 ? panels + group * panel_stride : nullptr;
        const std::size_t prefetcher = b1 - b0 > 1 ? b0 + 1 : b0;
        for (std::size_t i = b0; i < b1; ++i) {
          const std::size_t r0 = first(i), mi = first(i + 1) - r0;
          const Scalar* xp = rows > 1 ? packed.data() + (r0 - row0) * kn : x + r0 * k + k0;
          tile_panels_dispatch<Scalar, Codec>(static_cast<int>(mi), xp, kn, panels, panel_stride, count,
                                              c_at(r0, p * panel_cols), ldc, k0 > 0,
                                              last && scales ? scales + p * panel_cols : nullptr,
                                              i == prefetcher ? next : nullptr, groups, p, k0);
        }
      }
    }
    if (staged) {
      for (std::size_t r = row0; r < row0 + rows; ++r) {
        std::memcpy(y + r * ldy + p0 * panel_cols, c_at(r, p0 * panel_cols), cols * sizeof(Scalar));
      }
    }
  }
}

}  // namespace detail

// y = x · wᵀ.  x: [m, k], w: [n, k] in its stored type, y: resized to [m, n]. Threads split the
// output columns in groups of panels; the result is bitwise the same for any thread count, any m
// and whichever thread computes which columns. Weights not yet in the kernel's panels
// (pack_panels) are packed for this call.
template <class Scalar>
void matmul_transposed(const Matrix<Scalar>& x, const WeightMatrix& w, Matrix<Scalar>& y, int threads) {
  eigen_assert(static_cast<std::size_t>(x.cols()) == w.cols);
  if (!w.panels) return matmul_transposed(x, pack_panels(w), y, threads);
  const auto m = static_cast<std::size_t>(x.rows()), k = static_cast<std::size_t>(x.cols()), n = w.rows;
  y.resize(x.rows(), static_cast<Eigen::Index>(n));
  if (m == 0 || n == 0) return;
  if (k == 0) {
    y.setZero();
    return;
  }
  const std::size_t panels = w.panel_count(), padded = panels * panel_cols;
  // Whole panels are written: into y itself when n fills them, else into a wider matrix first.
  Matrix<Scalar> wide;
  if (padded != n) wide.resize(x.rows(), static_cast<Eigen::Index>(padded));
  Scalar* out = padded == n ? y.data() : wide.data();
  const std::size_t groups = (panels + detail::panel_group - 1) / detail::panel_group;
  // Below this much work (about 5 µs) waking a second thread costs more than it saves.
  if (m * n * k < 262144) threads = 1;
  auto run = [&]<class Codec>(Codec) {
    const auto* data = reinterpret_cast<const typename Codec::storage*>(w.data);
    // Blocks of panel groups handed to threads as they come free (cores of a shared machine do
    // not run at one speed): about four a thread, each a contiguous run of panels.
    const std::size_t grain = std::max<std::size_t>(1, groups / (4 * static_cast<std::size_t>(threads)));
    maskgen::detail::parallel_for_dynamic(groups, threads, grain, [&](std::size_t g0, std::size_t g1) {
      detail::matmul_panels<Scalar, Codec>(x.data(), m, k, data, w.scales, &w.groups, g0 * detail::panel_group,
                                           std::min(panels, g1 * detail::panel_group), out, padded);
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
    case WeightType::Q4: run(weights::GroupedCodes<WeightType::Q4>{}); break;
    case WeightType::Q8: run(weights::GroupedCodes<WeightType::Q8>{}); break;
    case WeightType::FP8: run(weights::GroupedCodes<WeightType::FP8>{}); break;
    case WeightType::FP4: run(weights::GroupedCodes<WeightType::FP4>{}); break;
    case WeightType::E8M0: throw std::logic_error("matmul_transposed: E8M0 is a type of scales, not of weights");
  }
  if (padded != n) y = wide.leftCols(static_cast<Eigen::Index>(n));
}

// y = x · wᵀ for a weight matrix held as Scalar.
template <class Scalar>
void matmul_transposed(const Matrix<Scalar>& x, const Matrix<Scalar>& w, Matrix<Scalar>& y, int threads) {
  matmul_transposed(x, view_weights(w.data(), static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols())),
                    y, threads);
}

}  // namespace maskgen::ops

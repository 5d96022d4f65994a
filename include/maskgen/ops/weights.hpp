#pragma once
// Weight matrices in the element type the checkpoint stores: float32, float64, bfloat16 or float16,
// or int8 with one float scale per row when quantized at load; row-major as stored (read in place
// from the memory-mapped safetensors file), or permuted once into the matmul kernel's panels
// (pack_panels), still in the stored type. Kernels widen each element to the activations' type in
// registers; nothing is rounded, so a 16-bit checkpoint computes exactly as its float32 widening
// would.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../detail/parallel.hpp"
#include "simd.hpp"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__) || defined(__F16C__)
#define MASKGEN_HAS_F16C true
#else
#define MASKGEN_HAS_F16C false
#endif

namespace maskgen::ops {

enum class WeightType { F32, F64, BF16, F16, I8 };

inline std::string_view weight_type_name(WeightType t) {
  switch (t) {
    case WeightType::F32: return "F32";
    case WeightType::F64: return "F64";
    case WeightType::BF16: return "BF16";
    case WeightType::F16: return "F16";
    case WeightType::I8: return "I8";
  }
  return "?";
}

// Columns of one panel of the matmul kernel's weight layout (see pack_panels): two SIMD vectors of
// float, so 32 with AVX-512 and 16 otherwise. Fixed for a build.
inline constexpr std::size_t panel_cols = 2 * detail::Simd<float>::lanes;

// A read-only [rows, cols] weight matrix in `type`: row-major, or in the matmul kernel's panels
// (`panels`, see pack_panels). `keep` owns the storage (the mapped file or a buffer); copies share it.
struct WeightMatrix {
  WeightType type = WeightType::F32;
  const std::byte* data = nullptr;     // [rows, cols] elements of `type`, row-major or in panels
  std::size_t rows = 0, cols = 0;
  const float* scales = nullptr;       // I8 only: [rows] (panels: padded with zeros to whole panels),
                                       // row r's values are q * scales[r]
  bool panels = false;                 // data is in the kernel's panel layout
  std::shared_ptr<const void> keep;    // keeps data (and scales) alive

  std::size_t element_bytes() const {
    switch (type) {
      case WeightType::F64: return 8;
      case WeightType::F32: return 4;
      case WeightType::BF16:
      case WeightType::F16: return 2;
      case WeightType::I8: return 1;
    }
    return 0;
  }
  // Panels of the kernel's layout (the last one padded with zero rows).
  std::size_t panel_count() const { return (rows + panel_cols - 1) / panel_cols; }
  // Bytes of data: rows * cols elements, or whole panels.
  std::size_t bytes() const { return (panels ? panel_count() * panel_cols : rows) * cols * element_bytes(); }
};

namespace detail {

// Element codecs: how one stored element, and one SIMD vector of them, become Scalar. Exact for
// every finite value (the loader refuses non-finite weights).
struct Bf16 {
  using storage = std::uint16_t;
  static float scalar(storage h) { return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16); }
};
struct F16 {
  using storage = std::uint16_t;
  // Magnitude bits moved into a float's exponent and mantissa, then scaled by 2^112 (the bias
  // difference): exact for normal and subnormal halves alike.
  static float scalar(storage h) {
    const float magnitude = std::bit_cast<float>(static_cast<std::uint32_t>(h & 0x7FFF) << 13) * 0x1p112f;
    return (h & 0x8000) ? -magnitude : magnitude;
  }
};
struct I8 {
  using storage = std::int8_t;
  static float scalar(storage q) { return static_cast<float>(q); }
};
template <class T>
struct Plain {  // float or double stored as they are
  using storage = T;
  static T scalar(storage v) { return v; }
};

// `lanes` elements of Codec at p, widened into a SIMD vector of Scalar.
template <class Scalar, class Codec>
inline void load_widened(typename Simd<Scalar>::type& out, const typename Codec::storage* p) {
  using S = Simd<Scalar>;
  constexpr std::size_t n = S::lanes;
  if constexpr (std::is_same_v<Codec, Plain<Scalar>>) {
    S::load(out, p);
  } else if constexpr (std::is_same_v<Codec, Plain<float>>) {  // float weights, double activations
    typename Vector<float, n>::type f;
    std::memcpy(&f, p, sizeof f);
    out = __builtin_convertvector(f, typename S::type);
  } else {
    using hv = typename Vector<std::uint16_t, n>::type;
    using bv = typename Vector<std::int8_t, n>::type;
    using uv = typename Vector<std::uint32_t, n>::type;
    using iv = typename Vector<std::int32_t, n>::type;
    using fv = typename Vector<float, n>::type;
    fv f;
#if defined(__AVX512F__) || defined(__AVX2__)
    // The conversions GCC's generic vectors leave to scalar code (int8 -> int32) or split in
    // halves, in one instruction each; the values are the same.
    if constexpr (std::is_same_v<Scalar, float> && (!std::is_same_v<Codec, F16> || MASKGEN_HAS_F16C)) {
#if defined(__AVX512F__)
      static_assert(n == 16);
      __m512i wide;
      if constexpr (std::is_same_v<Codec, F16>) {  // vcvtph2ps: exact, subnormals included
        const __m512 converted = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        std::memcpy(&out, &converted, sizeof out);
      } else if constexpr (std::is_same_v<Codec, I8>) {
        wide = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        const __m512 converted = _mm512_cvtepi32_ps(wide);
        std::memcpy(&out, &converted, sizeof out);
      } else {
        wide = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16);
        std::memcpy(&out, &wide, sizeof out);
      }
#else
      static_assert(n == 8);
      __m256i wide;
      if constexpr (std::is_same_v<Codec, F16>) {
#if defined(__F16C__)
        const __m256 converted = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        std::memcpy(&out, &converted, sizeof out);
#endif
      } else if constexpr (std::is_same_v<Codec, I8>) {
        wide = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
        const __m256 converted = _mm256_cvtepi32_ps(wide);
        std::memcpy(&out, &converted, sizeof out);
      } else {
        wide = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16);
        std::memcpy(&out, &wide, sizeof out);
      }
#endif
      return;
    }
#endif
    if constexpr (std::is_same_v<Codec, I8>) {
      bv raw;
      std::memcpy(&raw, p, sizeof raw);
      f = __builtin_convertvector(__builtin_convertvector(raw, iv), fv);
    } else {
      hv raw;
      std::memcpy(&raw, p, sizeof raw);
      const uv wide = __builtin_convertvector(raw, uv);
      if constexpr (std::is_same_v<Codec, Bf16>) {
        const uv bits = wide << 16;
        std::memcpy(&f, &bits, sizeof f);
      } else {  // F16: magnitude into a float, scaled by 2^112, then the sign
        const uv bits = (wide & 0x7FFF) << 13;
        std::memcpy(&f, &bits, sizeof f);
        f = f * 0x1p112f;
        uv scaled;
        std::memcpy(&scaled, &f, sizeof scaled);
        scaled |= (wide & 0x8000) << 16;
        std::memcpy(&f, &scaled, sizeof f);
      }
    }
    if constexpr (std::is_same_v<Scalar, float>) {
      out = f;
    } else {
      out = __builtin_convertvector(f, typename S::type);
    }
  }
}

}  // namespace detail

// Where element i (0 <= i < panel_cols) of a panel row sits in the kernel's layout. BF16 panels
// interleave the two halves of the panel, so that each 32-bit word holds column i in its low half
// and column i + panel_cols / 2 in its high half: the kernel widens a word vector into both float
// vectors with one shift and one mask. Every other type keeps the columns in order.
inline std::size_t panel_slot(WeightType type, std::size_t i) {
  if (type != WeightType::BF16) return i;
  constexpr std::size_t half = panel_cols / 2;
  return i < half ? 2 * i : 2 * (i - half) + 1;
}

// Element (r, c) of `w`, as an index into its data (in elements).
inline std::size_t element_index(const WeightMatrix& w, std::size_t r, std::size_t c) {
  if (!w.panels) return r * w.cols + c;
  return (r / panel_cols) * w.cols * panel_cols + c * panel_cols + panel_slot(w.type, r % panel_cols);
}

// Row r of `w` widened into out[0, cols).
template <class Scalar>
void weight_row(const WeightMatrix& w, std::size_t r, Scalar* out) {
  const std::size_t first = element_index(w, r, 0);
  const std::size_t stride = w.panels ? panel_cols : 1;  // elements between (r, c) and (r, c + 1)
  auto widen = [&]<class Codec>(Codec) {
    typename Codec::storage v;
    const std::byte* p = w.data + first * sizeof v;
    for (std::size_t c = 0; c < w.cols; ++c) {
      std::memcpy(&v, p + c * stride * sizeof v, sizeof v);
      out[c] = static_cast<Scalar>(Codec::scalar(v));
    }
  };
  switch (w.type) {
    case WeightType::F32: widen(detail::Plain<float>{}); break;
    case WeightType::F64: widen(detail::Plain<double>{}); break;
    case WeightType::BF16: widen(detail::Bf16{}); break;
    case WeightType::F16: widen(detail::F16{}); break;
    case WeightType::I8:
      widen(detail::I8{});
      for (std::size_t c = 0; c < w.cols; ++c) out[c] *= static_cast<Scalar>(w.scales[r]);
      break;
  }
}

// Memory for packed weights: 64-byte aligned (a cache line; every panel row starts on a vector).
struct AlignedBytes {
  explicit AlignedBytes(std::size_t n)
      : size(n), data(static_cast<std::byte*>(::operator new(std::max<std::size_t>(n, 1), std::align_val_t{64}))) {}
  ~AlignedBytes() { ::operator delete(data, std::align_val_t{64}); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  std::size_t size;
  std::byte* data;
};

// `w` in the matmul kernel's layout: an outer-product kernel streams k for a tile of output
// columns, so the rows of W (the output columns) are grouped in panels of panel_cols rows, and each
// panel is stored k-major: panel p holds rows [p * panel_cols, (p + 1) * panel_cols), as `cols`
// groups of panel_cols elements (element c of every row of the panel side by side, at the slots of
// panel_slot). Rows past the last are zero. The elements keep their stored type: the layout
// is a permutation of the bytes, so the packed matrix costs what the stored one does (plus the
// padding of the last panel). Int8 scales are copied and padded with zeros.
//
// Panels are packed in order, `threads` at a time; after every chunk of panels, `done(rows)` is
// told how many leading rows of `w` have been read for the last time (so a caller can give back
// the memory of the source as it goes).
inline WeightMatrix pack_panels(const WeightMatrix& w, int threads = 1,
                                const std::function<void(std::size_t)>& done = {}) {
  if (w.panels) return w;
  const std::size_t panels = w.panel_count(), esize = w.element_bytes(), k = w.cols;
  const std::size_t panel_bytes = k * panel_cols * esize;
  struct Storage {
    explicit Storage(std::size_t bytes) : bytes(bytes) {}
    AlignedBytes bytes;
    std::vector<float> scales;
  };
  auto storage = std::make_shared<Storage>(panels * panel_bytes);
  if (w.scales) {
    storage->scales.assign(panels * panel_cols, 0.0f);
    std::copy(w.scales, w.scales + w.rows, storage->scales.begin());
  }
  std::byte* out = storage->bytes.data;
  std::size_t slot[panel_cols];
  for (std::size_t i = 0; i < panel_cols; ++i) slot[i] = panel_slot(w.type, i) * esize;
  // One panel: row by row (each a sequential read), each element to its place in every group.
  auto pack_panel = [&](std::size_t p) {
    std::byte* dst = out + p * panel_bytes;
    const std::size_t rows = std::min(panel_cols, w.rows - p * panel_cols);
    if (rows < panel_cols) std::memset(dst, 0, panel_bytes);
    const std::size_t group = panel_cols * esize;
    for (std::size_t i = 0; i < rows; ++i) {
      const std::byte* src = w.data + (p * panel_cols + i) * k * esize;
      std::byte* d = dst + slot[i];
      switch (esize) {  // fixed-size copies, so each compiles to one move
        case 1: for (std::size_t c = 0; c < k; ++c) std::memcpy(d + c * group, src + c, 1); break;
        case 2: for (std::size_t c = 0; c < k; ++c) std::memcpy(d + c * group, src + 2 * c, 2); break;
        case 4: for (std::size_t c = 0; c < k; ++c) std::memcpy(d + c * group, src + 4 * c, 4); break;
        default: for (std::size_t c = 0; c < k; ++c) std::memcpy(d + c * group, src + 8 * c, 8); break;
      }
    }
  };
  // Chunks of about 8 MiB of source, so the source can be given back while packing goes on.
  const std::size_t chunk = std::max<std::size_t>(1, (std::size_t{8} << 20) / std::max<std::size_t>(panel_bytes, 1));
  for (std::size_t p0 = 0; p0 < panels; p0 += chunk) {
    const std::size_t p1 = std::min(panels, p0 + chunk);
    maskgen::detail::parallel_for(p1 - p0, threads, [&](std::size_t b, std::size_t e) {
      for (std::size_t p = p0 + b; p < p0 + e; ++p) pack_panel(p);
    });
    if (done) done(std::min(w.rows, p1 * panel_cols));
  }
  WeightMatrix packed{w.type, out, w.rows, w.cols, w.scales ? storage->scales.data() : nullptr, true, nullptr};
  packed.keep = std::move(storage);
  return packed;
}

// A view of an existing row-major buffer of Scalar as a WeightMatrix (no ownership).
template <class Scalar>
WeightMatrix view_weights(const Scalar* data, std::size_t rows, std::size_t cols) {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>);
  return {std::is_same_v<Scalar, float> ? WeightType::F32 : WeightType::F64,
          reinterpret_cast<const std::byte*>(data), rows, cols, nullptr, false, nullptr};
}

// Symmetric int8 quantization of a row-major [rows, cols] float matrix, one scale per row:
// scale = max |w| / 127, q = round(w / scale). An all-zero row gets scale 0.
inline WeightMatrix quantize_int8(const float* w, std::size_t rows, std::size_t cols) {
  struct Storage {
    std::vector<std::int8_t> q;
    std::vector<float> scales;
  };
  auto s = std::make_shared<Storage>();
  s->q.resize(rows * cols);
  s->scales.resize(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    float max_abs = 0;
    for (std::size_t c = 0; c < cols; ++c) max_abs = std::max(max_abs, std::abs(row[c]));
    const float scale = max_abs / 127.0f;
    s->scales[r] = scale;
    for (std::size_t c = 0; c < cols; ++c) {
      s->q[r * cols + c] = scale == 0 ? 0 : static_cast<std::int8_t>(std::lround(row[c] / scale));
    }
  }
  WeightMatrix m{WeightType::I8, reinterpret_cast<const std::byte*>(s->q.data()), rows, cols, s->scales.data(), false,
                 nullptr};
  m.keep = std::move(s);
  return m;
}

}  // namespace maskgen::ops

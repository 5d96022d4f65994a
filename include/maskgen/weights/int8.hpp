#pragma once
// The I8 codec: symmetric int8 with one float scale per row, a row's values being q * scale. Only
// made at load (quantization.hpp): no safetensors dtype is read as it.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

#include "../ops/simd.hpp"
#include "ieee.hpp"
#include "weight_type.hpp"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace maskgen::weights {

struct I8 {
  using storage = std::int8_t;
  static constexpr WeightType type = WeightType::I8;
  static constexpr std::string_view name = "I8";
  static constexpr std::string_view dtype = "";  // none: int8 matrices are quantized at load
  static constexpr bool scaled = true;          // values are q * the row's scale

  // The kernels' widening of one element, before its row's scale.
  static float scalar(storage q) { return static_cast<float>(q); }

  // Exact widening to Scalar, before the row's scale.
  template <WideScalar Scalar>
  static Scalar widen(storage q) {
    return static_cast<Scalar>(q);
  }

  // Every int8 is finite.
  static std::optional<std::size_t> first_non_finite(std::span<const std::byte>) { return std::nullopt; }

  // One row of `cols` floats quantized into q[0, cols): scale = max |w| / 127, q = round(w / scale)
  // (an all-zero row gets scale 0 and zeros). Returns the scale.
  static float quantize_row(const float* row, std::size_t cols, storage* q) {
    float max_abs = 0;
    for (std::size_t c = 0; c < cols; ++c) max_abs = std::max(max_abs, std::abs(row[c]));
    const float scale = max_abs / 127.0f;
    for (std::size_t c = 0; c < cols; ++c) {
      q[c] = scale == 0 ? 0 : static_cast<storage>(std::lround(row[c] / scale));
    }
    return scale;
  }

  // ops::detail::Simd<Scalar>::lanes elements at p widened into a SIMD vector of Scalar (the scale
  // is applied to the finished sums).
  template <class Scalar>
  static void load(typename ops::detail::Simd<Scalar>::type& out, const storage* p) {
    using S = ops::detail::Simd<Scalar>;
    constexpr std::size_t n = S::lanes;
#if defined(__AVX512F__) || defined(__AVX2__)
    // int8 -> int32, which GCC's generic vectors leave to scalar code, in one instruction.
    if constexpr (std::is_same_v<Scalar, float>) {
#if defined(__AVX512F__)
      static_assert(n == 16);
      const __m512i wide = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      const __m512 converted = _mm512_cvtepi32_ps(wide);
#else
      static_assert(n == 8);
      const __m256i wide = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
      const __m256 converted = _mm256_cvtepi32_ps(wide);
#endif
      std::memcpy(&out, &converted, sizeof out);
      return;
    }
#endif
    using bv = typename ops::detail::Vector<std::int8_t, n>::type;
    using iv = typename ops::detail::Vector<std::int32_t, n>::type;
    using fv = typename ops::detail::Vector<float, n>::type;
    bv raw;
    std::memcpy(&raw, p, sizeof raw);
    const fv f = __builtin_convertvector(__builtin_convertvector(raw, iv), fv);
    if constexpr (std::is_same_v<Scalar, float>) {
      out = f;
    } else {
      out = __builtin_convertvector(f, typename S::type);
    }
  }
};

}  // namespace maskgen::weights

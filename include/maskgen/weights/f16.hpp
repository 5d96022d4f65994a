#pragma once
// The F16 codec: IEEE half precision (5 exponent bits, 10 mantissa bits).

#include <bit>
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
#if defined(__AVX512F__) || defined(__F16C__)
#define MASKGEN_HAS_F16C true
#else
#define MASKGEN_HAS_F16C false
#endif

namespace maskgen::weights {

struct F16 {
  using storage = std::uint16_t;
  using format = IeeeFormat<std::uint16_t, 5, 10>;
  static constexpr WeightType type = WeightType::F16;
  static constexpr std::string_view name = "F16";
  static constexpr std::string_view dtype = "F16";  // the safetensors dtype it reads

  // The kernels' widening of one element: the magnitude bits moved into a float's exponent and
  // mantissa, then scaled by 2^112 (the bias difference). Exact for normal and subnormal halves
  // alike, so equal to widen<float> for every finite value (the loader refuses the others).
  static float scalar(storage h) {
    const float magnitude = std::bit_cast<float>(static_cast<std::uint32_t>(h & 0x7FFF) << 13) * 0x1p112f;
    return (h & 0x8000) ? -magnitude : magnitude;
  }

  // Exact widening to Scalar, bit by bit: subnormals, infinities and NaN payloads kept.
  template <WideScalar Scalar>
  static Scalar widen(storage h) {
    return format::widen_bits<Scalar>(h);
  }

  // x rounded to the nearest float16, ties to even (from 65520 up: infinity; NaN stays NaN), by
  // arithmetic on the bits, so that every compiler and target gives the same half.
  static storage narrow(float x) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(x), a = u & 0x7FFFFFFFu;
    const auto sign = static_cast<storage>((u >> 16) & 0x8000u);
    if (a > 0x7F800000u) return static_cast<storage>(sign | 0x7E00u);  // NaN
    if (a >= 0x477FF000u) return static_cast<storage>(sign | 0x7C00u);  // 65520 and up round to infinity
    if (a < 0x38800000u) {  // below 2^-14: a subnormal half, in units of 2^-24 (the scaling is exact)
      return static_cast<storage>(sign | static_cast<std::uint32_t>(std::nearbyint(std::bit_cast<float>(a) * 0x1p24f)));
    }
    // A normal half: the exponent rebased from 127 to 15, the mantissa cut from 23 bits to 10 with
    // the discarded 13 rounded to nearest, ties to even (a carry moves into the exponent as it should).
    const std::uint32_t rounded = a + 0xFFFu + ((a >> 13) & 1u);
    return static_cast<storage>(sign | ((rounded - (112u << 23)) >> 13));
  }

  static std::optional<std::size_t> first_non_finite(std::span<const std::byte> bytes) {
    return format::first_non_finite(bytes);
  }

  // ops::detail::Simd<Scalar>::lanes elements at p widened into a SIMD vector of Scalar, lane by
  // lane as scalar() (vcvtph2ps where the target has it: exact, subnormals included).
  template <class Scalar>
  static void load(typename ops::detail::Simd<Scalar>::type& out, const storage* p) {
    using S = ops::detail::Simd<Scalar>;
    constexpr std::size_t n = S::lanes;
#if defined(__AVX512F__) || defined(__AVX2__)
    if constexpr (std::is_same_v<Scalar, float> && MASKGEN_HAS_F16C) {
#if defined(__AVX512F__)
      static_assert(n == 16);
      const __m512 converted = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      std::memcpy(&out, &converted, sizeof out);
#else
      static_assert(n == 8);
#if defined(__F16C__)
      const __m256 converted = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      std::memcpy(&out, &converted, sizeof out);
#endif
#endif
      return;
    }
#endif
    using hv = typename ops::detail::Vector<std::uint16_t, n>::type;
    using uv = typename ops::detail::Vector<std::uint32_t, n>::type;
    using fv = typename ops::detail::Vector<float, n>::type;
    hv raw;
    std::memcpy(&raw, p, sizeof raw);
    const uv wide = __builtin_convertvector(raw, uv);
    // The magnitude into a float, scaled by 2^112, then the sign.
    const uv bits = (wide & 0x7FFF) << 13;
    fv f;
    std::memcpy(&f, &bits, sizeof f);
    f = f * 0x1p112f;
    uv scaled;
    std::memcpy(&scaled, &f, sizeof scaled);
    scaled |= (wide & 0x8000) << 16;
    std::memcpy(&f, &scaled, sizeof f);
    if constexpr (std::is_same_v<Scalar, float>) {
      out = f;
    } else {
      out = __builtin_convertvector(f, typename S::type);
    }
  }
};

}  // namespace maskgen::weights

#pragma once
// The BF16 codec: bfloat16, the upper half of a float (8 exponent bits, 7 mantissa bits).

#include <bit>
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

struct Bf16 {
  using storage = std::uint16_t;
  using format = IeeeFormat<std::uint16_t, 8, 7>;
  static constexpr WeightType type = WeightType::BF16;
  static constexpr std::string_view name = "BF16";
  static constexpr std::string_view dtype = "BF16";  // the safetensors dtype it reads

  // The kernels' widening of one element: the bits moved up into a float's upper half (exact for
  // every input, the same as widen<float>).
  static float scalar(storage h) { return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16); }

  // Exact widening to Scalar, bit by bit: subnormals, infinities and NaN payloads kept.
  template <WideScalar Scalar>
  static Scalar widen(storage h) {
    return format::widen_bits<Scalar>(h);
  }

  static std::optional<std::size_t> first_non_finite(std::span<const std::byte> bytes) {
    return format::first_non_finite(bytes);
  }

  // ops::detail::Simd<Scalar>::lanes elements at p widened into a SIMD vector of Scalar.
  template <class Scalar>
  static void load(typename ops::detail::Simd<Scalar>::type& out, const storage* p) {
    using S = ops::detail::Simd<Scalar>;
    constexpr std::size_t n = S::lanes;
#if defined(__AVX512F__) || defined(__AVX2__)
    // The halves widened in one instruction (GCC's generic vectors split it); the values are the same.
    if constexpr (std::is_same_v<Scalar, float>) {
#if defined(__AVX512F__)
      static_assert(n == 16);
      const __m512i wide = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16);
#else
      static_assert(n == 8);
      const __m256i wide = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16);
#endif
      std::memcpy(&out, &wide, sizeof out);
      return;
    }
#endif
    using hv = typename ops::detail::Vector<std::uint16_t, n>::type;
    using uv = typename ops::detail::Vector<std::uint32_t, n>::type;
    using fv = typename ops::detail::Vector<float, n>::type;
    hv raw;
    std::memcpy(&raw, p, sizeof raw);
    const uv wide = __builtin_convertvector(raw, uv);
    const uv bits = wide << 16;
    fv f;
    std::memcpy(&f, &bits, sizeof f);
    if constexpr (std::is_same_v<Scalar, float>) {
      out = f;
    } else {
      out = __builtin_convertvector(f, typename S::type);
    }
  }
};

}  // namespace maskgen::weights

#pragma once
// The F32 and F64 codecs: float and double stored as they are.

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

namespace maskgen::weights {

template <class T>
struct Plain {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  static constexpr bool is_float = std::is_same_v<T, float>;

  using storage = T;
  using format = std::conditional_t<is_float, IeeeFormat<std::uint32_t, 8, 23>, IeeeFormat<std::uint64_t, 11, 52>>;
  static constexpr WeightType type = is_float ? WeightType::F32 : WeightType::F64;
  static constexpr std::string_view name = is_float ? "F32" : "F64";
  static constexpr std::string_view dtype = name;  // the safetensors dtype it reads

  // The kernels' widening of one element: the value itself.
  static T scalar(storage v) { return v; }

  // Exact widening to Scalar: float to double bit by bit (NaN payloads kept); double to float
  // rounds to nearest, ties to even (beyond float's range: inf), the one widening that is not exact.
  template <WideScalar Scalar>
  static Scalar widen(storage v) {
    if constexpr (std::is_same_v<Scalar, T>) {
      return v;
    } else if constexpr (is_float) {
      return format::template widen_bits<Scalar>(std::bit_cast<std::uint32_t>(v));
    } else {
      return static_cast<float>(v);
    }
  }

  static std::optional<std::size_t> first_non_finite(std::span<const std::byte> bytes) {
    return format::first_non_finite(bytes);
  }

  // ops::detail::Simd<Scalar>::lanes elements at p as a SIMD vector of Scalar (float weights may
  // meet double activations; double weights only double ones).
  template <class Scalar>
  static void load(typename ops::detail::Simd<Scalar>::type& out, const storage* p) {
    using S = ops::detail::Simd<Scalar>;
    if constexpr (std::is_same_v<Scalar, T>) {
      S::load(out, p);
    } else {
      static_assert(is_float, "float64 weights need float64 activations");
      typename ops::detail::Vector<float, S::lanes>::type f;
      std::memcpy(&f, p, sizeof f);
      out = __builtin_convertvector(f, typename S::type);
    }
  }
};

using F32 = Plain<float>;
using F64 = Plain<double>;

}  // namespace maskgen::weights

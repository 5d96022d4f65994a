#pragma once
// The weight codecs, one per element type. A codec says how its elements are stored (`storage`,
// `name`, the safetensors `dtype` it reads), how one element widens exactly to float or double
// (`widen`) and as the kernels widen it (`scalar`), how a SIMD vector of them is loaded for the
// kernels (`load`), where a tensor of them first holds a non-finite value (`first_non_finite`),
// and, for a scaled codec, how its scales apply. Adding an element type is its codec's header, its
// WeightType and one line in Codecs below.

#include <cstddef>
#include <cstring>
#include <optional>
#include <string_view>
#include <type_traits>

#include "../ops/simd.hpp"
#include "bf16.hpp"
#include "f16.hpp"
#include "float.hpp"
#include "int8.hpp"
#include "weight_type.hpp"

namespace maskgen::weights {

template <class... Codec>
struct CodecList {
  // Calls f(Codec{}) with the codec of `type`.
  template <class F>
  static void visit(WeightType type, F&& f) {
    (void)((type == Codec::type ? (f(Codec{}), true) : false) || ...);
  }
  // The codec that reads the safetensors dtype `dtype`, if any.
  static constexpr std::optional<WeightType> reading(std::string_view dtype) {
    std::optional<WeightType> found;
    (void)((!Codec::dtype.empty() && Codec::dtype == dtype ? (found = Codec::type, true) : false) || ...);
    return found;
  }
};

// Every codec, in WeightType's order.
using Codecs = CodecList<F32, F64, Bf16, F16, I8>;

// Calls f(Codec{}) with the codec of `type`.
template <class F>
void visit_codec(WeightType type, F&& f) {
  Codecs::visit(type, f);
}

// The codec that reads the safetensors dtype named `dtype` ("BF16"), if one does.
constexpr std::optional<WeightType> codec_for_dtype(std::string_view dtype) { return Codecs::reading(dtype); }

// "F32", "F64", "BF16", "F16", "I8", "Q4", "Q8", "FP8", "FP4", "E8M0".
inline std::string_view weight_type_name(WeightType type) {
  switch (type) {
    case WeightType::Q4: return "Q4";
    case WeightType::Q8: return "Q8";
    case WeightType::FP8: return "FP8";
    case WeightType::FP4: return "FP4";
    case WeightType::E8M0: return "E8M0";
    default: break;
  }
  std::string_view name = "?";
  visit_codec(type, [&]<class Codec>(Codec) { name = Codec::name; });
  return name;
}

// Bytes of one stored element (0 for the grouped codes, which are counted by their panel rows).
inline std::size_t element_bytes(WeightType type) {
  std::size_t bytes = 0;
  visit_codec(type, [&]<class Codec>(Codec) { bytes = sizeof(typename Codec::storage); });
  return bytes;
}

// ops::detail::Simd<Scalar>::lanes elements of Codec at p, widened into a SIMD vector of Scalar:
// the kernels' load.
template <class Scalar, class Codec>
inline void load_widened(typename ops::detail::Simd<Scalar>::type& out, const typename Codec::storage* p) {
  Codec::template load<Scalar>(out, p);
}

// n elements of Codec at p (little-endian, any alignment) widened exactly into out[0, n).
template <class Codec, WideScalar Scalar>
void widen_all(const std::byte* p, std::size_t n, Scalar* out) {
  using storage = typename Codec::storage;
  if (n == 0) return;  // memcpy's pointers must be valid even for zero bytes
  if constexpr (std::is_same_v<storage, Scalar>) {
    std::memcpy(out, p, n * sizeof(Scalar));
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      storage v;
      std::memcpy(&v, p + i * sizeof v, sizeof v);
      out[i] = Codec::template widen<Scalar>(v);
    }
  }
}

}  // namespace maskgen::weights

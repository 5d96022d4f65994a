#pragma once
// What the floating-point codecs share: exact widening of an IEEE binary float to float or double,
// bit by bit, and the finiteness scan (an element is non-finite when its exponent bits are all set).

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace maskgen::weights {

// The scalars stored elements are widened to.
template <class T>
concept WideScalar = std::same_as<T, float> || std::same_as<T, double>;

namespace detail {

template <class Scalar>
struct FloatBits;
template <>
struct FloatBits<float> {
  using Uint = std::uint32_t;
  static constexpr int exp_bits = 8;
  static constexpr int mant_bits = 23;
};
template <>
struct FloatBits<double> {
  using Uint = std::uint64_t;
  static constexpr int exp_bits = 11;
  static constexpr int mant_bits = 52;
};

// The IEEE binary float with SrcExp exponent and SrcMant mantissa bits held in the low bits of
// `src`, as a Scalar with at least as many of each: exact for every input. Infinities stay
// infinite, NaNs keep sign and payload, and subnormals are normalized when Scalar's exponent is
// wider (or stay subnormal when it is the same width, as for BF16 to float).
template <WideScalar Scalar, int SrcExp, int SrcMant>
Scalar widen_float(std::uint64_t src) {
  using Dst = FloatBits<Scalar>;
  using Uint = typename Dst::Uint;
  static_assert(SrcExp <= Dst::exp_bits && SrcMant <= Dst::mant_bits);
  constexpr Uint src_exp_all = (Uint{1} << SrcExp) - 1;
  constexpr Uint dst_exp_all = (Uint{1} << Dst::exp_bits) - 1;
  constexpr Uint bias_delta = ((Uint{1} << (Dst::exp_bits - 1)) - 1) - ((Uint{1} << (SrcExp - 1)) - 1);
  constexpr Uint src_hidden = Uint{1} << SrcMant;

  const Uint sign = static_cast<Uint>((src >> (SrcExp + SrcMant)) & 1);
  Uint exp = static_cast<Uint>((src >> SrcMant) & src_exp_all);
  Uint mant = static_cast<Uint>(src & (src_hidden - 1));
  if (exp == src_exp_all) {
    exp = dst_exp_all;  // inf or NaN
  } else if (exp != 0) {
    exp += bias_delta;  // normal
  } else if constexpr (SrcExp < Dst::exp_bits) {
    if (mant != 0) {  // subnormal: 0.mant * 2^(1 - src_bias) becomes 1.m * 2^(e - dst_bias)
      exp = 1 + bias_delta;
      while (!(mant & src_hidden)) {
        mant <<= 1;
        --exp;
      }
      mant &= src_hidden - 1;
    }
  }
  const Uint bits = (sign << (Dst::exp_bits + Dst::mant_bits)) | (exp << Dst::mant_bits) |
                    (mant << (Dst::mant_bits - SrcMant));
  return std::bit_cast<Scalar>(bits);
}

}  // namespace detail

// The layout of an IEEE binary float of ExpBits exponent and MantBits mantissa bits, held in
// `Bits` (an unsigned integer of its width): what a floating-point codec's exact widening and
// finiteness scan are made of.
template <class Bits, int ExpBits, int MantBits>
struct IeeeFormat {
  using bits_type = Bits;
  static constexpr int exp_bits = ExpBits;
  static constexpr int mant_bits = MantBits;
  static_assert(sizeof(Bits) * 8 == 1 + ExpBits + MantBits);
  // Every exponent bit set: infinity or NaN.
  static constexpr Bits exponent_mask = static_cast<Bits>(((Bits{1} << ExpBits) - 1) << MantBits);

  static constexpr bool is_finite(Bits v) { return (v & exponent_mask) != exponent_mask; }

  // `v` as Scalar, exactly (see detail::widen_float).
  template <WideScalar Scalar>
  static Scalar widen_bits(Bits v) {
    return detail::widen_float<Scalar, ExpBits, MantBits>(v);
  }

  // The index of the first non-finite element of `bytes` (whole elements, any alignment), if any.
  // One pass without branches over the whole tensor; the position only when something was found.
  static std::optional<std::size_t> first_non_finite(std::span<const std::byte> bytes) {
    const std::size_t n = bytes.size() / sizeof(Bits);
    Bits any = 0;
    for (std::size_t i = 0; i < n; ++i) {
      Bits v;
      std::memcpy(&v, bytes.data() + i * sizeof v, sizeof v);
      any |= static_cast<Bits>((v & exponent_mask) == exponent_mask);
    }
    if (!any) return std::nullopt;
    for (std::size_t i = 0; i < n; ++i) {
      Bits v;
      std::memcpy(&v, bytes.data() + i * sizeof v, sizeof v);
      if ((v & exponent_mask) == exponent_mask) return i;
    }
    return std::nullopt;
  }
};

}  // namespace maskgen::weights

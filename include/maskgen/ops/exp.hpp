#pragma once
// exp(x) for a SIMD vector of float, within 2 ulp of the exact value over float's whole range
// (inf above 88.72, subnormals and then 0 below -87.3, NaN for NaN), for the softmax of attention
// and for SwiGLU. Every lane goes through the same fixed sequence of operations, so a value's
// exp is the same wherever it sits in a vector and whatever else is in the vector; a tail shorter
// than a vector is computed in a vector padded with zeros. double is computed lane by lane with
// std::exp (Model<double> checks logic, not speed).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "simd.hpp"

namespace maskgen::ops::detail {

// exp of every lane of x.
template <class Scalar>
inline void exp_lanes(typename Simd<Scalar>::type& x) {
  using V = typename Simd<Scalar>::type;
  if constexpr (std::is_same_v<Scalar, double>) {
    for (std::size_t i = 0; i < Simd<double>::lanes; ++i) x[i] = std::exp(x[i]);
  } else {
    using I = typename Vector<std::int32_t, Simd<float>::lanes>::type;
    const V in = x;
    // Inputs beyond [-104, 89] give 0 and inf as they would exactly; clamping keeps n small.
    V c = in < -104.0f ? V{} - 104.0f : in;
    c = c > 89.0f ? V{} + 89.0f : c;
    // x = n ln2 + r, |r| <= ln2 / 2; n rounded to nearest by the 1.5 * 2^23 trick.
    V shifted = V{} + 12582912.0f;
    madd(shifted, c, V{} + 1.44269504088896341f);
    const V n = shifted - 12582912.0f;
    V r = c;  // ln2 in two parts (Cody and Waite): n times the first is exact
    madd(r, n, V{} - 0.693359375f);
    madd(r, n, V{} + 2.12194440e-4f);
    // exp(r) by the minimax polynomial of Cephes' expf.
    V p = V{} + 1.9875691500e-4f;
    for (const float coefficient : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
                                    5.0000001201e-1f}) {
      V next = V{} + coefficient;
      madd(next, p, r);
      p = next;
    }
    const V r2 = r * r;
    V q = r + 1.0f;
    madd(q, p, r2);
    // p * 2^n as p * 2^(n/2) * 2^(n - n/2): each factor a normal float for n in [-150, 129], so
    // the product rounds into the subnormals or overflows to inf exactly as exp would.
    const I ni = __builtin_convertvector(n, I);
    const I half = ni >> 1, rest = ni - half;
    const I e1 = (half + 127) << 23, e2 = (rest + 127) << 23;
    V s1, s2;
    std::memcpy(&s1, &e1, sizeof s1);
    std::memcpy(&s2, &e2, sizeof s2);
    const V result = q * s1 * s2;
    x = in == in ? result : in;  // NaN stays NaN
  }
}

// exp of each of n values in place: whole vectors, then the tail in a vector padded with zeros.
template <class Scalar>
inline void exp_in_place(Scalar* values, std::size_t n) {
  using S = Simd<Scalar>;
  typename S::type v;
  std::size_t i = 0;
  for (; n - i >= S::lanes; i += S::lanes) {
    S::load(v, values + i);
    exp_lanes<Scalar>(v);
    for (std::size_t l = 0; l < S::lanes; ++l) values[i + l] = v[l];
  }
  if (i < n) {
    Scalar tail[S::lanes] = {};
    std::memcpy(tail, values + i, (n - i) * sizeof(Scalar));
    S::load(v, tail);
    exp_lanes<Scalar>(v);
    std::memcpy(values + i, &v, (n - i) * sizeof(Scalar));
  }
}

}  // namespace maskgen::ops::detail

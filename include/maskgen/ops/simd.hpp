#pragma once
// A fixed-width SIMD vector (GCC vector extensions) and the fixed-order reductions the kernels
// share. The width is fixed for a build, so every reduction's order is too.

#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

namespace maskgen::ops::detail {

// A SIMD vector: 64 bytes where the target has AVX-512, else 32 (one AVX register or two SSE
// ones). The width is fixed for a build, so the reduction order is too.
#if defined(__AVX512F__)
inline constexpr std::size_t simd_bytes = 64;
#else
inline constexpr std::size_t simd_bytes = 32;
#endif

template <class Scalar>
struct Simd {
  typedef Scalar type __attribute__((vector_size(simd_bytes)));
  static constexpr std::size_t lanes = simd_bytes / sizeof(Scalar);
  // By reference, never by value: passing 32-byte vectors by value changes the ABI without AVX.
  static void load(type& v, const Scalar* p) { std::memcpy(&v, p, sizeof v); }
};

// A GCC vector of N elements of T.
template <class T, std::size_t N>
struct Vector {
  typedef T type __attribute__((vector_size(N * sizeof(T))));
};

// a * b, rounded, never fused into a following addition: compilers may contract `s += a * b` into
// one fused multiply-add where the target has one (GCC does by default), and may decide so
// differently in two instantiations of the same loop, which would make two kernels that promise
// the same order round differently. The empty asm hides the product from that contraction.
template <class T>
inline T rounded_product(T a, T b) {
  T p = a * b;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+x"(p));
#endif
  return p;
}

// ---- Fused multiply-add and broadcast --------------------------------------------------------

// acc = a * b + acc for SIMD vectors, as one fused multiply-add where the target has one. Written
// with intrinsics so that the compiler cannot decide otherwise in one instantiation and not
// another. (Vectors by reference: passing 32-byte vectors by value changes the ABI without AVX.)
template <class V>
inline void madd(V& acc, const V& a, const V& b) {
  using T [[maybe_unused]] = std::remove_cvref_t<decltype(a[0])>;
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) {
    if constexpr (std::is_same_v<T, float>) acc = _mm512_fmadd_ps(a, b, acc);
    else acc = _mm512_fmadd_pd(a, b, acc);
    return;
  }
#endif
#if defined(__FMA__)
  if constexpr (sizeof(V) == 32) {
    if constexpr (std::is_same_v<T, float>) acc = _mm256_fmadd_ps(a, b, acc);
    else acc = _mm256_fmadd_pd(a, b, acc);
    return;
  }
#endif
#if (defined(__x86_64__) || defined(__i386__)) && !defined(__FMA__)
  acc = acc + a * b;  // no fused multiply-add instruction exists on this target to contract into
#else
  for (std::size_t i = 0; i < sizeof(V) / sizeof(T); ++i) acc[i] = __builtin_fma(a[i], b[i], acc[i]);  // fused, lane by lane
#endif
}

// out = a vector with every lane x.
template <class V, class T>
inline void splat(V& out, T x) {
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) {
    if constexpr (std::is_same_v<T, float>) out = _mm512_set1_ps(x);
    else out = _mm512_set1_pd(x);
    return;
  }
#endif
#if defined(__AVX__)
  if constexpr (sizeof(V) == 32) {
    if constexpr (std::is_same_v<T, float>) out = _mm256_set1_ps(x);
    else out = _mm256_set1_pd(x);
    return;
  }
#endif
  for (std::size_t i = 0; i < sizeof(V) / sizeof(T); ++i) out[i] = x;  // lane by lane elsewhere
}

// a * b + c for scalars as madd computes it for vectors: fused where the target has a fused
// multiply-add, never where it has not.
template <class T>
inline T fused(T a, T b, T c) {
  static_assert(std::is_floating_point_v<T>);
#if defined(__FMA__) || defined(__AVX512F__) || !(defined(__x86_64__) || defined(__i386__))
  return std::fma(a, b, c);
#else
  return c + rounded_product(a, b);
#endif
}

// The lanes of a `bytes`-wide vector summed as a fixed pairwise tree: lane i + lane i + L/2, then
// again on the first half, down to one. Each step adds the upper half of the vector to the lower
// half as one vector operation (an extract and an add), not a chain of L - 1 scalar adds.
template <class Scalar, std::size_t bytes>
inline Scalar tree_sum(const void* v) {
  typedef Scalar Vec __attribute__((vector_size(bytes)));
  Vec whole;
  std::memcpy(&whole, v, bytes);
  if constexpr (bytes == 2 * sizeof(Scalar)) {
    return whole[0] + whole[1];
  } else {
    typedef Scalar Half __attribute__((vector_size(bytes / 2)));
    Half low, high;
    std::memcpy(&low, &whole, bytes / 2);
    std::memcpy(&high, reinterpret_cast<const char*>(&whole) + bytes / 2, bytes / 2);
    const Half sum = low + high;
    return tree_sum<Scalar, bytes / 2>(&sum);
  }
}

template <class Scalar>
inline Scalar sum_lanes(const typename Simd<Scalar>::type& v) {
  return tree_sum<Scalar, simd_bytes>(&v);
}

// The fixed final step of every dot product: the lanes' tree sum, then the k % lanes tail.
template <class Scalar>
inline Scalar finish(const typename Simd<Scalar>::type& acc, const Scalar* x, const Scalar* w, std::size_t k0,
                     std::size_t k) {
  Scalar s = sum_lanes<Scalar>(acc);
  for (std::size_t t = k0; t < k; ++t) s += rounded_product(x[t], w[t]);
  return s;
}

// Σ a[i] b[i] in the kernels' one order: vector lanes over i, lanes left to right, then the tail.
template <class Scalar>
inline Scalar dot(const Scalar* a, const Scalar* b, std::size_t n) {
  using S = Simd<Scalar>;
  typename S::type acc = {}, av, bv;
  const std::size_t n_vec = n - n % S::lanes;
  for (std::size_t i = 0; i < n_vec; i += S::lanes) {
    S::load(av, a + i);
    S::load(bv, b + i);
    acc += av * bv;
  }
  return finish<Scalar>(acc, a, b, n_vec, n);
}

// y[i] += alpha x[i], element by element.
template <class Scalar>
inline void axpy(Scalar alpha, const Scalar* x, Scalar* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace maskgen::ops::detail

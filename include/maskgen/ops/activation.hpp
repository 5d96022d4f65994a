#pragma once
// The gated MLP activations, element by element, a vector at a time (the tail in a vector padded
// with zeros: an element's result never depends on where it sits):
//   SwiGLU (Llama and most families):  silu(g) * u = g / (1 + exp(-g)) * u
//   GeGLU (Gemma, "gelu_pytorch_tanh"): gelu_tanh(g) * u, where
//       gelu_tanh(g) = 0.5 g (1 + tanh(y)), y = sqrt(2 / pi) (g + 0.044715 g³),
//   computed as g / (1 + exp(-2y)) (the same function: 0.5 (1 + tanh(y)) is the logistic of 2y),
//   which loses nothing to cancellation where tanh(y) nears -1.
//   Clamped SwiGLU (gpt-oss's experts): g' = min(g, 7), u' = clamp(u, -7, 7),
//       (u' + 1) * g' * sigmoid(1.702 g') = (u' + 1) * g' / (1 + exp(-1.702 g'))
// And tanh soft-capping (Gemma 2's attention scores and final logits): cap * tanh(x / cap), with
// tanh(z) = 2 / (1 + exp(-2z)) - 1, exact at ±inf and within a few ulp of cap elsewhere.

#include <algorithm>
#include <cstddef>
#include <cstring>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "exp.hpp"
#include "matrix.hpp"
#include "simd.hpp"

namespace maskgen::ops {

enum class Activation {
  Silu,      // config "silu": SwiGLU
  GeluTanh,  // config "gelu_pytorch_tanh" (and Gemma's "gelu_tanh"): GeGLU
  ClampedSwiglu,  // gpt-oss's experts: alpha 1.702, limit 7 (transformers' GptOssExperts fixes both)
};

// The clamped SwiGLU's constants.
inline constexpr double clamped_swiglu_alpha = 1.702;
inline constexpr double clamped_swiglu_limit = 7.0;

namespace detail {

// x := cap * tanh(x / cap), every lane.
template <class Scalar>
inline void softcap_lanes(typename Simd<Scalar>::type& x, Scalar cap) {
  using V = typename Simd<Scalar>::type;
  V e = x / cap * Scalar(-2);
  exp_lanes<Scalar>(e);
  const V t = Scalar(2) / (e + Scalar(1)) - Scalar(1);
  x = t * cap;
}

// g[i] := act(g[i]) * u[i] for i < n <= lanes, in one vector.
template <class Scalar>
inline void gated_lanes(Activation act, Scalar* g, const Scalar* u, std::size_t n) {
  using S = Simd<Scalar>;
  typename S::type gv{}, uv{}, e;
  std::memcpy(&gv, g, n * sizeof(Scalar));
  std::memcpy(&uv, u, n * sizeof(Scalar));
  if (act == Activation::Silu) {
    e = -gv;
  } else if (act == Activation::ClampedSwiglu) {
    constexpr Scalar limit = Scalar(clamped_swiglu_limit);
    gv = gv > limit ? typename S::type{} + limit : gv;
    uv = uv > limit ? typename S::type{} + limit : uv;
    uv = uv < -limit ? typename S::type{} - limit : uv;
    uv = uv + Scalar(1);
    e = gv * Scalar(-clamped_swiglu_alpha);
  } else {
    constexpr Scalar k = Scalar(0.7978845608028654);  // sqrt(2 / pi)
    const typename S::type y = (gv + gv * gv * gv * Scalar(0.044715)) * k;
    e = y * Scalar(-2);
  }
  exp_lanes<Scalar>(e);
  const typename S::type out = gv / (e + Scalar(1)) * uv;
  std::memcpy(g, &out, n * sizeof(Scalar));
}

}  // namespace detail

// gate := act(gate) * up.  gate, up: [tokens, intermediate]. Elements are split over `threads`.
template <class Scalar>
void gated_activation(Matrix<Scalar>& gate, const Matrix<Scalar>& up, Activation act, int threads = 1) {
  eigen_assert(gate.rows() == up.rows() && gate.cols() == up.cols());
  constexpr std::size_t lanes = detail::Simd<Scalar>::lanes;
  Scalar* g = gate.data();
  const Scalar* u = up.data();
  const auto n = static_cast<std::size_t>(gate.size());
  const std::size_t vectors = (n + lanes - 1) / lanes;
  if (n < 65536) threads = 1;  // waking a thread costs more than this much work
  maskgen::detail::parallel_for(vectors, threads, [&](std::size_t v0, std::size_t v1) {
    for (std::size_t v = v0; v < v1; ++v) {
      const std::size_t i = v * lanes;
      detail::gated_lanes(act, g + i, u + i, std::min(lanes, n - i));
    }
  });
}

// x := cap * tanh(x / cap) for every element.  x: [rows, cols]. Elements are split over `threads`.
template <class Scalar>
void softcap(Matrix<Scalar>& x, double cap, int threads = 1) {
  using S = detail::Simd<Scalar>;
  constexpr std::size_t lanes = S::lanes;
  Scalar* p = x.data();
  const auto n = static_cast<std::size_t>(x.size());
  const std::size_t vectors = (n + lanes - 1) / lanes;
  if (n < 65536) threads = 1;
  maskgen::detail::parallel_for(vectors, threads, [&](std::size_t v0, std::size_t v1) {
    for (std::size_t v = v0; v < v1; ++v) {
      const std::size_t i = v * lanes, m = std::min(lanes, n - i);
      typename S::type xv{};
      std::memcpy(&xv, p + i, m * sizeof(Scalar));
      detail::softcap_lanes<Scalar>(xv, static_cast<Scalar>(cap));
      std::memcpy(p + i, &xv, m * sizeof(Scalar));
    }
  });
}

}  // namespace maskgen::ops

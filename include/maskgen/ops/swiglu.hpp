#pragma once
// The SwiGLU activation of Llama-family MLPs: silu(gate) * up = gate / (1 + exp(-gate)) * up,
// element by element, a vector at a time (the tail in a vector padded with zeros: an element's
// result never depends on where it sits).

#include <algorithm>
#include <cstddef>
#include <cstring>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "exp.hpp"
#include "matrix.hpp"
#include "simd.hpp"

namespace maskgen::ops {

namespace detail {

// g[i] := silu(g[i]) * u[i] for i < n <= lanes, in one vector.
template <class Scalar>
inline void swiglu_lanes(Scalar* g, const Scalar* u, std::size_t n) {
  using S = Simd<Scalar>;
  typename S::type gv{}, uv{}, e;
  std::memcpy(&gv, g, n * sizeof(Scalar));
  std::memcpy(&uv, u, n * sizeof(Scalar));
  e = -gv;
  exp_lanes<Scalar>(e);
  const typename S::type out = gv / (e + Scalar(1)) * uv;
  std::memcpy(g, &out, n * sizeof(Scalar));
}

}  // namespace detail

// gate := silu(gate) * up.  gate, up: [tokens, intermediate]. Elements are split over `threads`.
template <class Scalar>
void swiglu(Matrix<Scalar>& gate, const Matrix<Scalar>& up, int threads = 1) {
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
      detail::swiglu_lanes(g + i, u + i, std::min(lanes, n - i));
    }
  });
}

}  // namespace maskgen::ops

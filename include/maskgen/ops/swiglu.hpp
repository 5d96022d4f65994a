#pragma once
// The SwiGLU activation of Llama-family MLPs: silu(gate) * up, element by element.

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "matrix.hpp"

namespace maskgen::ops {

// gate := silu(gate) * up.  gate, up: [tokens, intermediate]. Elements are split over `threads`.
template <class Scalar>
void swiglu(Matrix<Scalar>& gate, const Matrix<Scalar>& up, int threads = 1) {
  eigen_assert(gate.rows() == up.rows() && gate.cols() == up.cols());
  Scalar* g = gate.data();
  const Scalar* u = up.data();
  const auto n = static_cast<std::size_t>(gate.size());
  if (n < 65536) threads = 1;  // an exp is a few nanoseconds: waking a thread costs more below this
  maskgen::detail::parallel_for(n, threads, [&](std::size_t i0, std::size_t i1) {
    for (std::size_t i = i0; i < i1; ++i) g[i] = g[i] / (Scalar(1) + std::exp(-g[i])) * u[i];
  });
}

}  // namespace maskgen::ops

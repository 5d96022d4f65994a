#pragma once
// The SwiGLU activation of Llama-family MLPs: silu(gate) * up, element by element.

#include <cmath>

#include <Eigen/Core>

#include "matrix.hpp"

namespace maskgen::ops {

// gate := silu(gate) * up.  gate, up: [tokens, intermediate].
template <class Scalar>
void swiglu(Matrix<Scalar>& gate,
            const Matrix<Scalar>& up) {
  eigen_assert(gate.rows() == up.rows() && gate.cols() == up.cols());
  Scalar* g = gate.data();
  const Scalar* u = up.data();
  for (Eigen::Index i = 0; i < gate.size(); ++i) {
    g[i] = g[i] / (Scalar(1) + std::exp(-g[i])) * u[i];
  }
}

}  // namespace maskgen::ops

#pragma once
// The SwiGLU activation of Llama-family MLPs: silu(gate) * up (ops/activation.hpp).

#include "activation.hpp"

namespace maskgen::ops {

// gate := silu(gate) * up.  gate, up: [tokens, intermediate]. Elements are split over `threads`.
template <class Scalar>
void swiglu(Matrix<Scalar>& gate, const Matrix<Scalar>& up, int threads = 1) {
  gated_activation(gate, up, Activation::Silu, threads);
}

}  // namespace maskgen::ops

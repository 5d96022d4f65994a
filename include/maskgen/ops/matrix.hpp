#pragma once
// The matrix type of every kernel: dense, row-major, so a token's vector is contiguous; and the
// vector type of norm weights and biases.

#include <Eigen/Core>

namespace maskgen::ops {

template <class Scalar>
using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Norm weights and biases.
template <class Scalar>
using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

}  // namespace maskgen::ops

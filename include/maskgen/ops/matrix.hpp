#pragma once
// The matrix type of every kernel: dense, row-major, so a token's vector is contiguous.

#include <Eigen/Core>

namespace maskgen::ops {

template <class Scalar>
using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace maskgen::ops

#pragma once
// RMSNorm: y = x / sqrt(mean(x²) + eps) * weight, row by row. Each row is reduced left to right on
// its own, so a row's result never depends on the other rows.

#include <cmath>
#include <cstddef>

#include <Eigen/Core>

namespace maskgen::ops {

// x: [rows, dim] (any row-major block), weight: [dim]; writes y: [rows, dim]. y may alias x.
template <class Scalar, class In, class Out>
void rms_norm(const In& x, const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>& weight, double eps, Out&& y) {
  const Eigen::Index dim = x.cols();
  eigen_assert(weight.size() == dim && y.rows() == x.rows() && y.cols() == dim);
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    Scalar sum_sq = 0;
    for (Eigen::Index c = 0; c < dim; ++c) sum_sq += x(r, c) * x(r, c);
    const Scalar inv = Scalar(1) / std::sqrt(sum_sq / Scalar(dim) + Scalar(eps));
    for (Eigen::Index c = 0; c < dim; ++c) y(r, c) = weight(c) * (x(r, c) * inv);
  }
}

}  // namespace maskgen::ops

#pragma once
// RMSNorm: y = x / sqrt(mean(x²) + eps) * weight, row by row. Each row is reduced left to right on
// its own, so a row's result never depends on the other rows (or on which thread ran it).

#include <cmath>
#include <cstddef>
#include <type_traits>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "matrix.hpp"

namespace maskgen::ops {

// x: [rows, dim] (any row-major block), weight: [dim]; writes y: [rows, dim] (a Matrix is resized
// to it). y may alias x. Rows are split over `threads`.
template <class Scalar, class In, class Out>
void rms_norm(const In& x, const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>& weight, double eps, Out&& y,
              int threads = 1) {
  const Eigen::Index dim = x.cols();
  if constexpr (std::is_same_v<std::remove_cvref_t<Out>, Matrix<Scalar>>) y.resize(x.rows(), dim);
  eigen_assert(weight.size() == dim && y.rows() == x.rows() && y.cols() == dim);
  // A few thousand multiply-adds per row: only many rows are worth a second thread.
  if (x.rows() * dim < 65536) threads = 1;
  maskgen::detail::parallel_for(static_cast<std::size_t>(x.rows()), threads, [&](std::size_t r0, std::size_t r1) {
    for (auto r = static_cast<Eigen::Index>(r0); r < static_cast<Eigen::Index>(r1); ++r) {
      Scalar sum_sq = 0;
      for (Eigen::Index c = 0; c < dim; ++c) sum_sq += x(r, c) * x(r, c);
      const Scalar inv = Scalar(1) / std::sqrt(sum_sq / Scalar(dim) + Scalar(eps));
      for (Eigen::Index c = 0; c < dim; ++c) y(r, c) = weight(c) * (x(r, c) * inv);
    }
  });
}

}  // namespace maskgen::ops

#pragma once
// Rotary position embeddings, in the "rotate half" layout of Hugging Face checkpoints: within each
// head of dimension d, element i pairs with element i + d/2 and both turn by position · freq[i].

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "matrix.hpp"

namespace maskgen::ops {

// The cos and sin of every token's angles, computed in double and rounded once to Scalar.
template <class Scalar>
struct RopeTable {
  Matrix<Scalar> cos;  // [tokens, head_dim / 2]
  Matrix<Scalar> sin;  // [tokens, head_dim / 2]

  RopeTable(std::span<const std::int32_t> positions, const std::vector<double>& inverse_frequencies) {
    const auto n = static_cast<Eigen::Index>(positions.size());
    const auto half = static_cast<Eigen::Index>(inverse_frequencies.size());
    cos.resize(n, half);
    sin.resize(n, half);
    for (Eigen::Index t = 0; t < n; ++t) {
      for (Eigen::Index i = 0; i < half; ++i) {
        const double angle = static_cast<double>(positions[static_cast<std::size_t>(t)]) *
                             inverse_frequencies[static_cast<std::size_t>(i)];
        cos(t, i) = static_cast<Scalar>(std::cos(angle));
        sin(t, i) = static_cast<Scalar>(std::sin(angle));
      }
    }
  }
};

// Rotates every head of every token in place.  x: [tokens, heads * head_dim], table: [tokens, ...].
// Tokens are split over `threads`.
template <class Scalar>
void apply_rope(Matrix<Scalar>& x, const RopeTable<Scalar>& table, Eigen::Index head_dim, int threads = 1) {
  const Eigen::Index half = head_dim / 2, heads = x.cols() / head_dim;
  if (x.size() < 65536) threads = 1;
  maskgen::detail::parallel_for(static_cast<std::size_t>(x.rows()), threads, [&](std::size_t t0, std::size_t t1) {
    for (auto t = static_cast<Eigen::Index>(t0); t < static_cast<Eigen::Index>(t1); ++t) {
      for (Eigen::Index h = 0; h < heads; ++h) {
        Scalar* v = x.row(t).data() + h * head_dim;
        for (Eigen::Index i = 0; i < half; ++i) {
          const Scalar a = v[i], b = v[i + half], c = table.cos(t, i), s = table.sin(t, i);
          v[i] = a * c - b * s;
          v[i + half] = b * c + a * s;
        }
      }
    }
  });
}

}  // namespace maskgen::ops

#pragma once
// Rotary position embeddings, in the "rotate half" layout of Hugging Face checkpoints: the first
// rotary_dim elements of each head rotate (all of them, unless the family rotates only part: Phi-3's
// partial_rotary_factor), element i pairing with element i + rotary_dim / 2, both turning by
// position · freq[i]; the other elements pass through.

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "matrix.hpp"

namespace maskgen::ops {

// The cos and sin of every token's angles, computed in double, times `scaling` (LongRoPE's
// attention factor; 1 otherwise), and rounded once to Scalar.
template <class Scalar>
struct RopeTable {
  Matrix<Scalar> cos;  // [tokens, rotary_dim / 2]
  Matrix<Scalar> sin;  // [tokens, rotary_dim / 2]

  RopeTable() = default;
  RopeTable(std::span<const std::int32_t> positions, const std::vector<double>& inverse_frequencies,
            double scaling = 1.0)
      : RopeTable(positions, [&](std::size_t) -> const std::vector<double>& { return inverse_frequencies; }, scaling) {}

  // Token t turns by the frequencies frequencies_of(t) returns ([rotary_dim / 2] each).
  template <class Frequencies>
    requires std::invocable<Frequencies, std::size_t>
  RopeTable(std::span<const std::int32_t> positions, Frequencies frequencies_of, double scaling) {
    const auto n = static_cast<Eigen::Index>(positions.size());
    const auto half = n == 0 ? Eigen::Index{0} : static_cast<Eigen::Index>(frequencies_of(0).size());
    cos.resize(n, half);
    sin.resize(n, half);
    for (Eigen::Index t = 0; t < n; ++t) {
      const std::vector<double>& inv = frequencies_of(static_cast<std::size_t>(t));
      for (Eigen::Index i = 0; i < half; ++i) {
        const double angle = static_cast<double>(positions[static_cast<std::size_t>(t)]) * inv[static_cast<std::size_t>(i)];
        cos(t, i) = static_cast<Scalar>(std::cos(angle) * scaling);
        sin(t, i) = static_cast<Scalar>(std::sin(angle) * scaling);
      }
    }
  }
};

// Rotates the first 2 * table.cos.cols() elements of every head of every token in place.
//   x: [tokens, heads * head_dim], table: [tokens, ...]. Tokens are split over `threads`.
template <class Scalar>
void apply_rope(Matrix<Scalar>& x, const RopeTable<Scalar>& table, Eigen::Index head_dim, int threads = 1) {
  const Eigen::Index half = table.cos.cols(), heads = x.cols() / head_dim;
  eigen_assert(2 * half <= head_dim && table.cos.rows() == x.rows());
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

// The named kernels against plain long-double references, and the invariance the matmul promises.

#include <maskgen/ops/matmul.hpp>
#include <maskgen/ops/rms_norm.hpp>
#include <maskgen/ops/rope.hpp>
#include <maskgen/ops/swiglu.hpp>

#include <random>

#include <gtest/gtest.h>

namespace maskgen::ops {
namespace {

template <class Scalar>
Matrix<Scalar> random_matrix(Eigen::Index rows, Eigen::Index cols, std::mt19937& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  Matrix<Scalar> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<Scalar>(normal(rng));
  return m;
}

template <class Scalar>
void check_matmul_against_reference(double tolerance) {
  std::mt19937 rng(3);
  for (auto [m, k, n] : {std::tuple{1, 1, 1}, {1, 7, 3}, {2, 8, 4}, {3, 33, 17}, {5, 64, 96}, {17, 100, 31}, {70, 45, 130}}) {
    const auto x = random_matrix<Scalar>(m, k, rng), w = random_matrix<Scalar>(n, k, rng);
    Matrix<Scalar> y;
    matmul_transposed(x, w, y, 2);
    ASSERT_EQ(y.rows(), m);
    ASSERT_EQ(y.cols(), n);
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) {
        long double ref = 0, mag = 0;
        for (int t = 0; t < k; ++t) {
          ref += static_cast<long double>(x(i, t)) * w(j, t);
          mag += std::abs(static_cast<long double>(x(i, t)) * w(j, t));
        }
        EXPECT_NEAR(static_cast<double>(y(i, j)), static_cast<double>(ref), tolerance * static_cast<double>(mag))
            << m << "x" << k << "x" << n << " at " << i << "," << j;
      }
    }
  }
}

TEST(Matmul, MatchesLongDoubleReference) {
  check_matmul_against_reference<float>(1e-6);
  check_matmul_against_reference<double>(1e-14);
}

// A row's result is bitwise the same alone, among other rows at any index, and on any thread count.
template <class Scalar>
void check_matmul_invariance() {
  std::mt19937 rng(5);
  for (auto [k, n] : {std::pair{64, 96}, {288, 768}, {77, 35}, {768, 130}}) {
    const auto w = random_matrix<Scalar>(n, k, rng);
    const auto x = random_matrix<Scalar>(40, k, rng);
    Matrix<Scalar> all;
    matmul_transposed(x, w, all, 1);
    for (int rows : {1, 2, 3, 7, 40}) {
      for (int threads : {1, 2, 3, 5}) {
        const Matrix<Scalar> part = x.bottomRows(rows);
        Matrix<Scalar> y;
        matmul_transposed(part, w, y, threads);
        ASSERT_TRUE((y.array() == all.bottomRows(rows).array()).all())
            << "k=" << k << " n=" << n << " rows=" << rows << " threads=" << threads;
      }
    }
  }
}

TEST(Matmul, BitwiseInvariantToRowsAndThreads) {
  check_matmul_invariance<float>();
  check_matmul_invariance<double>();
}

TEST(RmsNorm, MatchesDefinition) {
  std::mt19937 rng(7);
  const auto x = random_matrix<double>(3, 10, rng);
  Eigen::VectorXd w = Eigen::VectorXd::LinSpaced(10, 0.5, 1.5);
  Matrix<double> y(3, 10);
  rms_norm(x, w, 1e-5, y);
  for (int r = 0; r < 3; ++r) {
    const double rms = std::sqrt(x.row(r).squaredNorm() / 10 + 1e-5);
    for (int c = 0; c < 10; ++c) EXPECT_NEAR(y(r, c), w(c) * x(r, c) / rms, 1e-15);
  }
  Matrix<double> zeros = Matrix<double>::Zero(1, 10), out(1, 10);  // eps keeps a zero row finite
  rms_norm(zeros, w, 1e-5, out);
  EXPECT_TRUE(out.allFinite());
}

TEST(Rope, RotatesPairsByPositionTimesFrequency) {
  const std::vector<double> inv = {1.0, 0.1};  // head_dim 4: pairs (0, 2) and (1, 3)
  const std::vector<std::int32_t> positions = {0, 3};
  const RopeTable<double> table(positions, inv);
  Matrix<double> x(2, 8);  // two heads per token
  x << 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8;
  const Matrix<double> before = x;
  apply_rope(x, table, 4);
  EXPECT_TRUE(x.row(0).isApprox(before.row(0)));  // position 0 does not move
  for (int h = 0; h < 2; ++h) {
    for (int i = 0; i < 2; ++i) {
      const double a = before(1, h * 4 + i), b = before(1, h * 4 + i + 2), angle = 3 * inv[i];
      EXPECT_NEAR(x(1, h * 4 + i), a * std::cos(angle) - b * std::sin(angle), 1e-15);
      EXPECT_NEAR(x(1, h * 4 + i + 2), b * std::cos(angle) + a * std::sin(angle), 1e-15);
    }
  }
}

TEST(Swiglu, IsSiluOfGateTimesUp) {
  Matrix<double> gate(1, 4), up(1, 4);
  gate << -1000, -1, 0, 30;
  up << 2, 2, 2, 2;
  swiglu(gate, up);
  EXPECT_EQ(gate(0, 0), -0.0);
  EXPECT_NEAR(gate(0, 1), 2 * -1 / (1 + std::exp(1.0)), 1e-15);
  EXPECT_EQ(gate(0, 2), 0.0);
  EXPECT_NEAR(gate(0, 3), 60, 1e-9);
  EXPECT_TRUE(gate.allFinite());
}

}  // namespace
}  // namespace maskgen::ops

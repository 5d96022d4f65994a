// The named kernels against plain long-double references, and the invariance the matmul promises.

#include <maskgen/ops/attention.hpp>
#include <maskgen/ops/exp.hpp>
#include <maskgen/ops/matmul.hpp>
#include <maskgen/ops/rms_norm.hpp>
#include <maskgen/ops/rope.hpp>
#include <maskgen/ops/swiglu.hpp>

#include <bit>
#include <cmath>
#include <iostream>
#include <limits>
#include <numbers>
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

// Every element is one chain over k, in order, from zero: a fused multiply-add per step where the
// target has one (as the kernel is compiled here), else a rounded product and a sum. This is that
// chain written out one element at a time: the kernel must give exactly its bits, whatever m, the
// tile a row falls in, the blocking of k or the thread count.
template <class Scalar>
Scalar sequential_chain(const Scalar* x, const Scalar* w, std::size_t k) {
  Scalar acc = 0;
  for (std::size_t t = 0; t < k; ++t) {
#if defined(__FMA__) || defined(__AVX512F__) || !(defined(__x86_64__) || defined(__i386__))
    acc = std::fma(x[t], w[t], acc);
#else
    const Scalar p = x[t] * w[t];  // no fused multiply-add on this target: nothing to contract into
    acc = acc + p;
#endif
  }
  return acc;
}

template <class Scalar>
void check_matmul_against_reference() {
  std::mt19937 rng(3);
  for (auto [m, k, n] : {std::tuple{1, 1, 1}, {1, 7, 3}, {2, 8, 4}, {3, 33, 17}, {5, 64, 96}, {17, 100, 31}, {70, 45, 130}}) {
    const auto x = random_matrix<Scalar>(m, k, rng), w = random_matrix<Scalar>(n, k, rng);
    Matrix<Scalar> y;
    matmul_transposed(x, w, y, 2);
    ASSERT_EQ(y.rows(), m);
    ASSERT_EQ(y.cols(), n);
    // The bound of a dot product summed in any order (Higham, Accuracy and Stability, 3.1):
    // |error| <= k u / (1 - k u) * Σ |x w|, u the unit roundoff.
    const double u = std::numeric_limits<Scalar>::epsilon() / 2, bound = k * u / (1 - k * u);
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) {
        long double ref = 0, mag = 0;
        for (int t = 0; t < k; ++t) {
          ref += static_cast<long double>(x(i, t)) * w(j, t);
          mag += std::abs(static_cast<long double>(x(i, t)) * w(j, t));
        }
        EXPECT_NEAR(static_cast<double>(y(i, j)), static_cast<double>(ref), bound * static_cast<double>(mag))
            << m << "x" << k << "x" << n << " at " << i << "," << j;
        EXPECT_EQ(y(i, j), sequential_chain<Scalar>(&x(i, 0), &w(j, 0), static_cast<std::size_t>(k)))
            << "not the sequential chain: " << m << "x" << k << "x" << n << " at " << i << "," << j;
      }
    }
  }
}

TEST(Matmul, MatchesLongDoubleReferenceAndTheSequentialChain) {
  check_matmul_against_reference<float>();
  check_matmul_against_reference<double>();
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

// 16-bit weights: the product equals, bit for bit, the product with the weights widened to Scalar
// first (nothing is rounded), on every shape, row count and thread count; int8 likewise equals
// scale * (x · q) computed from the widened integers.
template <class Scalar>
void check_stored_weights() {
  std::mt19937 rng(9);
  for (auto [m, k, n] : {std::tuple{1, 5, 3}, {3, 33, 17}, {7, 64, 96}, {40, 77, 130}, {2, 768, 40}}) {
    const auto x = random_matrix<Scalar>(m, k, rng);
    const auto w = random_matrix<float>(n, k, rng);
    std::vector<std::uint16_t> bf16(static_cast<std::size_t>(n * k)), f16(bf16.size());
    Matrix<Scalar> wide_bf16(n, k), wide_f16(n, k);
    for (std::size_t i = 0; i < bf16.size(); ++i) {
      bf16[i] = static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(w.data()[i]) >> 16);
      wide_bf16.data()[i] = static_cast<Scalar>(std::bit_cast<float>(static_cast<std::uint32_t>(bf16[i]) << 16));
      // A half with a random sign, exponent (subnormals included) and mantissa, never inf/NaN.
      f16[i] = static_cast<std::uint16_t>(rng() % 0x7C00) | static_cast<std::uint16_t>(rng() % 2 ? 0x8000 : 0);
    }
    for (std::size_t i = 0; i < f16.size(); ++i) {  // the half's value, decoded by arithmetic
      const int e = (f16[i] >> 10) & 0x1F, f = f16[i] & 0x3FF;
      const double v = e == 0 ? std::ldexp(f, -24) : std::ldexp(1024 + f, e - 25);
      wide_f16.data()[i] = static_cast<Scalar>((f16[i] & 0x8000) ? -v : v);
    }
    const auto u = static_cast<std::size_t>(n), kk = static_cast<std::size_t>(k);
    const WeightMatrix as_bf16{WeightType::BF16, reinterpret_cast<const std::byte*>(bf16.data()), u, kk, nullptr, false, nullptr};
    const WeightMatrix as_f16{WeightType::F16, reinterpret_cast<const std::byte*>(f16.data()), u, kk, nullptr, false, nullptr};
    const Matrix<float> wf = w;
    const WeightMatrix as_i8 = quantize_int8(wf.data(), u, kk);
    Matrix<Scalar> wide_i8(n, k);
    for (Eigen::Index r = 0; r < n; ++r) weight_row(as_i8, static_cast<std::size_t>(r), wide_i8.row(r).data());
    for (int threads : {1, 2, 3}) {
      Matrix<Scalar> ref, got;
      matmul_transposed(x, wide_bf16, ref, threads);
      matmul_transposed(x, as_bf16, got, threads);
      EXPECT_TRUE((ref.array() == got.array()).all()) << "bf16 " << m << "x" << k << "x" << n;
      matmul_transposed(x, wide_f16, ref, threads);
      matmul_transposed(x, as_f16, got, threads);
      EXPECT_TRUE((ref.array() == got.array()).all()) << "f16 " << m << "x" << k << "x" << n;
      // int8: the same rows alone or together; close to the float product (per-row scale)
      matmul_transposed(x, as_i8, got, threads);
      Matrix<Scalar> one;
      matmul_transposed(Matrix<Scalar>(x.bottomRows(1)), as_i8, one, 1);
      EXPECT_TRUE((one.array() == got.bottomRows(1).array()).all()) << "i8 row alone";
      matmul_transposed(x, wide_i8, ref, threads);
      EXPECT_LT((ref - got).norm(), 1e-5 * (1 + ref.norm())) << "i8 against its widened matrix";
    }
  }
}

TEST(Matmul, StoredWeightsWidenExactly) {
  check_stored_weights<float>();
  check_stored_weights<double>();
}

// The weights of a test in every stored type: BF16 and F16 rounded from w, int8 quantized from it.
struct StoredWeights {
  std::vector<std::uint16_t> bf16, f16;
  WeightMatrix f32, as_bf16, as_f16, as_i8;
};

StoredWeights store(const Matrix<float>& w) {
  StoredWeights s;
  const auto n = static_cast<std::size_t>(w.rows()), k = static_cast<std::size_t>(w.cols());
  s.bf16.resize(n * k);
  s.f16.resize(n * k);
  for (std::size_t i = 0; i < n * k; ++i) {
    s.bf16[i] = static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(w.data()[i]) >> 16);
    s.f16[i] = std::bit_cast<std::uint16_t>(static_cast<_Float16>(w.data()[i]));
  }
  s.f32 = view_weights(w.data(), n, k);
  s.as_bf16 = {WeightType::BF16, reinterpret_cast<const std::byte*>(s.bf16.data()), n, k, nullptr, false, nullptr};
  s.as_f16 = {WeightType::F16, reinterpret_cast<const std::byte*>(s.f16.data()), n, k, nullptr, false, nullptr};
  s.as_i8 = quantize_int8(w.data(), n, k);
  return s;
}

// Every row of a many-row product equals the same row computed alone, bit for bit, in every stored
// type: m across tile sizes and blocks of rows (odd counts included), n ending in a partial panel,
// k across blocks of k, on 1 to 3 threads. The weights are packed once, as a model holds them.
TEST(Matmul, EveryRowOfAManyRowProductEqualsItAlone) {
  std::mt19937 rng(17);
  for (auto [k, n] : {std::pair{1100, 70}, {37, 33}, {300, 16}}) {
    const auto w = random_matrix<float>(n, k, rng);
    const StoredWeights s = store(w);
    const auto x = random_matrix<float>(203, k, rng);
    for (const WeightMatrix* stored : {&s.f32, &s.as_bf16, &s.as_f16, &s.as_i8}) {
      const WeightMatrix packed = pack_panels(*stored);
      for (int m : {203, 16, 15, 7, 2}) {
        const Matrix<float> rows = x.topRows(m);
        for (int threads : {1, 2, 3}) {
          Matrix<float> all;
          matmul_transposed(rows, packed, all, threads);
          for (int i = 0; i < m; ++i) {
            Matrix<float> one;
            matmul_transposed(Matrix<float>(rows.row(i)), packed, one, 1);
            ASSERT_TRUE((one.array() == all.row(i).array()).all())
                << weight_type_name(stored->type) << " k=" << k << " n=" << n << " m=" << m << " threads=" << threads
                << ": row " << i << " differs from itself alone";
          }
        }
      }
    }
  }
}

// Packing is a permutation: every row read back from the panels is the row as stored.
TEST(Matmul, PanelsHoldEveryRowAsStored) {
  std::mt19937 rng(19);
  for (auto [n, k] : {std::pair{1, 1}, {70, 13}, {64, 32}, {3, 200}}) {
    const auto w = random_matrix<float>(n, k, rng);
    const StoredWeights s = store(w);
    for (const WeightMatrix* stored : {&s.f32, &s.as_bf16, &s.as_f16, &s.as_i8}) {
      const WeightMatrix packed = pack_panels(*stored, 2);
      ASSERT_TRUE(packed.panels);
      EXPECT_EQ(packed.bytes(), packed.panel_count() * panel_cols * static_cast<std::size_t>(k) * stored->element_bytes());
      std::vector<float> want(static_cast<std::size_t>(k)), got(want.size());
      for (int r = 0; r < n; ++r) {
        weight_row(*stored, static_cast<std::size_t>(r), want.data());
        weight_row(packed, static_cast<std::size_t>(r), got.data());
        ASSERT_EQ(want, got) << weight_type_name(stored->type) << " " << n << "x" << k << " row " << r;
      }
    }
  }
}

TEST(Matmul, Int8QuantizationIsSymmetricPerRow) {
  const std::vector<float> w = {1.0f, -0.5f, 0.25f, 0.0f, /* row 1 */ 0.0f, 0.0f, 0.0f, 0.0f, /* row 2 */ -2.54f, 1.27f, 0.004f, 2.0f};
  const WeightMatrix q = quantize_int8(w.data(), 3, 4);
  EXPECT_FLOAT_EQ(q.scales[0], 1.0f / 127);
  EXPECT_EQ(q.scales[1], 0.0f);  // an all-zero row
  EXPECT_FLOAT_EQ(q.scales[2], 2.54f / 127);
  const auto* v = reinterpret_cast<const std::int8_t*>(q.data);
  EXPECT_EQ(v[0], 127);
  EXPECT_EQ(v[1], -64);  // -63.5 rounds away from zero
  EXPECT_EQ(v[2], 32);   // 31.75
  EXPECT_EQ(v[8], -127);
  EXPECT_EQ(v[9], 64);   // 63.5
  EXPECT_EQ(v[10], 0);    // 0.2
  EXPECT_EQ(v[11], 100);
}

// The lane sums of several vectors at once (a transpose with AVX or AVX-512) are exactly each
// vector's own tree sum.
TEST(Simd, LaneSumsOfEachEqualTheTreeSumOfEach) {
  using S = detail::Simd<float>;
  std::mt19937 rng(29);
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-30, 30);  // magnitudes far apart: order shows
  for (int trial = 0; trial < 200; ++trial) {
    S::type acc[S::lanes];
    for (auto& v : acc)
      for (std::size_t i = 0; i < S::lanes; ++i) v[i] = std::ldexp(mantissa(rng), exponent(rng));
    float got[S::lanes];
    detail::sum_lanes_of_each<float>(acc, got);
    for (std::size_t i = 0; i < S::lanes; ++i) ASSERT_EQ(got[i], detail::sum_lanes<float>(acc[i])) << "vector " << i;
  }
}

// exp within 2 ulp of the exact value over float's range, exactly 0 and inf past its ends, NaN for
// NaN; and each value's exp is the same in a whole vector as in a padded tail.
TEST(Exp, WithinTwoUlpOverTheWholeRange) {
  std::vector<float> xs;
  for (float x = -110.0f; x < 95.0f; x += 0.0137f) xs.push_back(x);
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.72f, 88.73f, -87.33f, -103.9f, -104.5f, 1e30f, -1e30f}) xs.push_back(x);
  std::vector<float> ys = xs;
  detail::exp_in_place(ys.data(), ys.size());
  int worst = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double exact = std::exp(static_cast<double>(xs[i]));
    const auto want = static_cast<float>(exact);
    if (std::isinf(want) || want == 0.0f) {
      EXPECT_EQ(ys[i], want) << "exp(" << xs[i] << ")";
      continue;
    }
    // ulps in the float format at the exact value (subnormals have a fixed spacing)
    const double ulp = std::max(std::ldexp(1.0, std::ilogb(want) - 23), std::ldexp(1.0, -149));
    const double err = std::abs(static_cast<double>(ys[i]) - exact) / ulp;
    worst = std::max(worst, static_cast<int>(std::ceil(err)));
    EXPECT_LE(err, 2.0) << "exp(" << xs[i] << ") = " << ys[i] << ", exact " << exact;
  }
  std::cout << "[ exp      ] worst error " << worst << " ulp over " << xs.size() << " values\n";
  std::vector<float> nan{std::numeric_limits<float>::quiet_NaN()};
  detail::exp_in_place(nan.data(), nan.size());
  EXPECT_TRUE(std::isnan(nan[0]));
  for (std::size_t n = 1; n < 40; ++n) {  // a prefix of any length: the tail path gives the same bits
    std::vector<float> part(xs.begin() + 500, xs.begin() + 500 + static_cast<std::ptrdiff_t>(n));
    detail::exp_in_place(part.data(), n);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(part[i], ys[500 + i]) << n;
  }
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

// GeGLU as transformers' gelu_pytorch_tanh writes it: 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g³))) u,
// computed here from std::tanh in double; the kernel's logistic form equals it within rounding.
template <class Scalar>
void check_geglu(double tolerance) {
  std::mt19937 rng(5);
  std::normal_distribution<double> normal(0.0, 3.0);
  const Eigen::Index n = 3 * detail::Simd<Scalar>::lanes + 5;  // whole vectors and a tail
  Matrix<Scalar> gate(2, n), up(2, n);
  for (Eigen::Index i = 0; i < gate.size(); ++i) {
    gate.data()[i] = static_cast<Scalar>(normal(rng));
    up.data()[i] = static_cast<Scalar>(normal(rng));
  }
  gate(0, 0) = Scalar(-30);  // far in the tail: 0.5 (1 + tanh) underflows, no NaN
  gate(0, 1) = Scalar(30);
  gate(0, 2) = Scalar(0);
  const Matrix<Scalar> g0 = gate;
  gated_activation(gate, up, Activation::GeluTanh);
  for (Eigen::Index i = 0; i < gate.size(); ++i) {
    const double g = static_cast<double>(g0.data()[i]), u = static_cast<double>(up.data()[i]);
    const double want = 0.5 * g * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (g + 0.044715 * g * g * g))) * u;
    EXPECT_NEAR(static_cast<double>(gate.data()[i]), want, tolerance * (1 + std::abs(want))) << i;
  }
  EXPECT_TRUE(gate.allFinite());
  // An element's result does not depend on where it sits: each element alone equals its place.
  for (Eigen::Index i = 0; i < n; i += 3) {
    Matrix<Scalar> one_g(1, 1), one_u(1, 1);
    one_g(0, 0) = g0(1, i);
    one_u(0, 0) = up(1, i);
    gated_activation(one_g, one_u, Activation::GeluTanh);
    EXPECT_EQ(one_g(0, 0), gate(1, i)) << i;
  }
}
TEST(Geglu, IsGeluTanhOfGateTimesUpInDouble) { check_geglu<double>(1e-14); }
TEST(Geglu, IsGeluTanhOfGateTimesUpInFloat) { check_geglu<float>(1e-6); }

// Soft-capping: c · tanh(x / c), from std::tanh in double; bounded by c, exact at the extremes.
template <class Scalar>
void check_softcap(double tolerance) {
  std::mt19937 rng(9);
  std::normal_distribution<double> normal(0.0, 40.0);
  const Eigen::Index n = 2 * detail::Simd<Scalar>::lanes + 3;
  Matrix<Scalar> x(3, n);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<Scalar>(normal(rng));
  x(0, 0) = std::numeric_limits<Scalar>::max();
  x(0, 1) = -std::numeric_limits<Scalar>::max();
  x(0, 2) = Scalar(0);
  x(0, 3) = Scalar(1e-3);
  const Matrix<Scalar> before = x;
  softcap(x, 30.0);
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double want = 30.0 * std::tanh(static_cast<double>(before.data()[i]) / 30.0);
    EXPECT_NEAR(static_cast<double>(x.data()[i]), want, tolerance * 30.0) << i;
    EXPECT_LE(std::abs(static_cast<double>(x.data()[i])), 30.0);
  }
  EXPECT_EQ(x(0, 0), Scalar(30));
  EXPECT_EQ(x(0, 1), Scalar(-30));
  EXPECT_EQ(x(0, 2), Scalar(0));
  for (Eigen::Index i = 0; i < n; i += 2) {  // position independence
    Matrix<Scalar> one(1, 1);
    one(0, 0) = before(2, i);
    softcap(one, 30.0);
    EXPECT_EQ(one(0, 0), x(2, i)) << i;
  }
}
TEST(Softcap, IsCapTimesTanhInDouble) { check_softcap<double>(1e-15); }
TEST(Softcap, IsCapTimesTanhInFloat) { check_softcap<float>(1e-6); }

}  // namespace
}  // namespace maskgen::ops

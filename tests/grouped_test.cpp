// Grouped integer weights (Q4, Q8): the kernel computes with exactly the values (q - z) * s that
// the codes, zeros and scales define, so a grouped product equals bit for bit the product with the
// float matrix of those values, on every shape, row count, thread count, group assignment and
// scale type; and Int4 at load quantizes each group as its rule says.

#include <maskgen/ops/matmul.hpp>
#include <maskgen/weights/quantization.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace maskgen::ops {
namespace {

using weights::GroupedShape;

// The value of a float8 e4m3fn code and of a float4 e2m1 code, from the formats' definitions
// (OCP 8-bit floating point, e4m3: bias 7, subnormals at exponent 0; OCP microscaling, e2m1:
// bias 1), written out here independently of the library's decoders.
double e4m3_reference(unsigned q) {
  const unsigned e = (q >> 3) & 15, m = q & 7;
  const double magnitude = e == 0 ? m / 8.0 * std::ldexp(1.0, -6) : (1 + m / 8.0) * std::ldexp(1.0, static_cast<int>(e) - 7);
  return q & 0x80 ? -magnitude : magnitude;
}
double e2m1_reference(unsigned q) {
  const unsigned e = (q >> 1) & 3, m = q & 1;
  const double magnitude = e == 0 ? m * 0.5 : (1 + m * 0.5) * std::ldexp(1.0, static_cast<int>(e) - 1);
  return q & 8 ? -magnitude : magnitude;
}

// Random codes, zeros and scales of a [n, k] grouped matrix of `codes` (Q4, Q8, FP8, FP4), and the
// matrix of its values computed here by arithmetic: the code's value (q - z, or the float code's)
// times s in double, exact where the scale has at most 16 significant bits (F16, BF16, E8M0) and
// in double for float32 scales; the float kernels round that product once, so for float
// activations a float32 scale's product is taken in float.
struct RandomGrouped {
  GroupedShape shape;
  std::vector<unsigned> codes, zeros;  // [n, k], [n, groups]
  std::vector<std::uint32_t> scale_bits;
  std::vector<double> scales;
  WeightMatrix matrix;

  RandomGrouped(WeightType code_type, std::size_t n, std::size_t k, std::size_t group, WeightType scale_type,
                bool act_order, std::mt19937& rng)
      : shape{code_type, n, k, group, (k + group - 1) / group, scale_type, {}} {
    const int bits = code_type == WeightType::Q4 || code_type == WeightType::FP4 ? 4 : 8;
    const unsigned top = (1u << bits) - 1;
    if (act_order) {  // act-order: the groups of a random permutation of k, as GPTQ's desc_act writes them
      std::vector<std::uint32_t> order(k);
      std::iota(order.begin(), order.end(), 0u);
      std::shuffle(order.begin(), order.end(), rng);
      shape.group_of.resize(k);
      for (std::size_t i = 0; i < k; ++i) shape.group_of[order[i]] = static_cast<std::uint32_t>(i / group);
    }
    for (std::size_t i = 0; i < n * k; ++i) {
      unsigned q = rng() & top;
      if (code_type == WeightType::FP8 && (q & 0x7F) == 0x7F) q &= 0xFE;  // not the NaN codes
      codes.push_back(q);
    }
    for (std::size_t i = 0; i < n * shape.groups; ++i) {
      zeros.push_back(!integer() ? 0 : bits == 4 ? rng() % 17 : rng() & top);  // 4 bits: 16 too (GPTQ's zero - 1 of 15, plus 1)
      // A positive scale of about 2^-12 to 2^-4, as 4- and 8-bit checkpoints hold.
      const double s = std::ldexp(1.0 + static_cast<double>(rng() % 1024) / 1024, -4 - static_cast<int>(rng() % 9));
      if (scale_type == WeightType::F32) {
        const float f = static_cast<float>(s) * (1.0f + static_cast<float>(rng() % 1000) * 1e-7f);  // 24 bits
        scale_bits.push_back(std::bit_cast<std::uint32_t>(f));
        scales.push_back(f);
      } else if (scale_type == WeightType::BF16) {
        const std::uint32_t b = std::bit_cast<std::uint32_t>(static_cast<float>(s)) >> 16;  // 8 significant bits
        scale_bits.push_back(b);
        scales.push_back(std::bit_cast<float>(b << 16));
      } else if (scale_type == WeightType::E8M0) {  // 2^(e - 127), e anywhere from 0 (2^-127) to 140
        const std::uint32_t e = rng() % 8 == 0 ? 0 : 100 + rng() % 41;
        scale_bits.push_back(e);
        scales.push_back(std::ldexp(1.0, static_cast<int>(e) - 127));
      } else {  // F16: 1 + m/1024 times 2^e is exactly a normal half
        const int e = static_cast<int>(std::floor(std::log2(s)));
        const auto m = static_cast<std::uint32_t>(std::ldexp(s, -e) * 1024 - 1024);
        scale_bits.push_back((static_cast<std::uint32_t>(e + 15) << 10) | m);
        scales.push_back(std::ldexp(1024.0 + m, e - 10));
      }
    }
    const std::size_t scale_bytes = scale_type == WeightType::F32 ? 4 : scale_type == WeightType::E8M0 ? 1 : 2;
    matrix = weights::pack_grouped(
        shape, [&](std::size_t r, std::size_t c) { return codes[r * k + c]; },
        [&](std::size_t r, std::size_t g) { return zeros[r * shape.groups + g]; },
        [&](std::size_t r, std::size_t g, std::byte* out) { std::memcpy(out, &scale_bits[r * shape.groups + g], scale_bytes); },
        2);
  }

  bool integer() const { return shape.codes == WeightType::Q4 || shape.codes == WeightType::Q8; }
  std::size_t group(std::size_t c) const { return shape.group_of.empty() ? c / shape.group_size : shape.group_of[c]; }

  template <class Scalar>
  Matrix<Scalar> values() const {
    const std::size_t n = shape.rows, k = shape.cols;
    Matrix<Scalar> w(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(k));
    for (std::size_t r = 0; r < n; ++r) {
      for (std::size_t c = 0; c < k; ++c) {
        const std::size_t g = r * shape.groups + group(c);
        const unsigned q = codes[r * k + c];
        const double d = integer() ? static_cast<double>(static_cast<int>(q) - static_cast<int>(zeros[g]))
                         : shape.codes == WeightType::FP8 ? e4m3_reference(q)
                                                          : e2m1_reference(q);
        const double v = std::is_same_v<Scalar, float> && shape.scale_type == WeightType::F32
                             ? static_cast<double>(static_cast<float>(d) * static_cast<float>(scales[g]))
                             : d * scales[g];
        w(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c)) = static_cast<Scalar>(v);
      }
    }
    return w;
  }
};

template <class Scalar>
Matrix<Scalar> random_activations(Eigen::Index rows, Eigen::Index cols, std::mt19937& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  Matrix<Scalar> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<Scalar>(normal(rng));
  return m;
}

template <class Scalar>
void check_grouped_equals_its_values() {
  std::mt19937 rng(21);
  // (m, k, n, group): k a multiple of the group or not (a shorter last group), n a whole number of
  // panels or not, k long enough to be cut into blocks.
  for (auto [m, k, n, group] : {std::tuple{1, 32, 32, 32}, {3, 100, 70, 32}, {16, 256, 96, 128}, {5, 96, 33, 64},
                                {40, 1000, 64, 128}, {1, 2048, 40, 128}, {20, 48, 130, 32}}) {
    for (const auto& [codes, scale_types] :
         {std::pair{WeightType::Q4, std::vector{WeightType::F16, WeightType::BF16, WeightType::F32}},
          std::pair{WeightType::Q8, std::vector{WeightType::F16, WeightType::BF16, WeightType::F32}},
          std::pair{WeightType::FP8, std::vector{WeightType::F16, WeightType::BF16, WeightType::F32}},
          std::pair{WeightType::FP4, std::vector{WeightType::E8M0, WeightType::BF16}}}) {
      for (const WeightType scale_type : scale_types) {
        for (const bool act_order : {false, true}) {
          const RandomGrouped w(codes, static_cast<std::size_t>(n), static_cast<std::size_t>(k),
                                static_cast<std::size_t>(group), scale_type, act_order, rng);
          ASSERT_EQ(w.matrix.type, codes);
          const Matrix<Scalar> dense = w.template values<Scalar>();
          const auto x = random_activations<Scalar>(m, k, rng);
          const std::string what = std::string(weight_type_name(codes)) + " " + std::string(weight_type_name(scale_type)) +
                                   " scales, " + (act_order ? "act-order " : "") + std::to_string(m) + "x" +
                                   std::to_string(k) + "x" + std::to_string(n) + " groups of " + std::to_string(group);
          // weight_row reads back every value.
          std::vector<Scalar> row(static_cast<std::size_t>(k));
          for (Eigen::Index r = 0; r < n; ++r) {
            weight_row(w.matrix, static_cast<std::size_t>(r), row.data());
            for (Eigen::Index c = 0; c < k; ++c) ASSERT_EQ(row[static_cast<std::size_t>(c)], dense(r, c)) << what;
          }
          for (const int threads : {1, 2, 3}) {
            Matrix<Scalar> want, got;
            matmul_transposed(x, dense, want, threads);
            matmul_transposed(x, w.matrix, got, threads);
            ASSERT_TRUE((want.array() == got.array()).all()) << what << ", " << threads << " threads";
          }
          Matrix<Scalar> all, one;
          matmul_transposed(x, w.matrix, all, 2);
          matmul_transposed(Matrix<Scalar>(x.bottomRows(1)), w.matrix, one, 1);
          ASSERT_TRUE((one.array() == all.bottomRows(1).array()).all()) << what << ": the last row alone";
        }
      }
    }
  }
}

TEST(Grouped, ProductEqualsTheProductWithItsValuesBitForBit) {
  check_grouped_equals_its_values<float>();
  check_grouped_equals_its_values<double>();
}

TEST(Grouped, BytesAreTheCodesZerosAndScales) {
  std::mt19937 rng(2);
  const RandomGrouped w(WeightType::Q4, 70, 100, 32, WeightType::F16, false, rng);
  // ceil(70 / panel_cols) panels; per panel 100 panel rows of panel_cols / 2 bytes, and 4 groups of
  // panel_cols one-byte zeros and panel_cols two-byte scales.
  const std::size_t panels = (70 + panel_cols - 1) / panel_cols;
  EXPECT_EQ(w.matrix.bytes(), panels * (100 * panel_cols / 2 + 4 * (panel_cols + 2 * panel_cols)));
  // MXFP4: the same codes, no zeros, one-byte scales; FP8: a byte a code, no zeros.
  const RandomGrouped fp4(WeightType::FP4, 70, 96, 32, WeightType::E8M0, false, rng);
  EXPECT_EQ(fp4.matrix.bytes(), panels * (96 * panel_cols / 2 + 3 * panel_cols));
  const RandomGrouped fp8(WeightType::FP8, 70, 256, 128, WeightType::F32, false, rng);
  EXPECT_EQ(fp8.matrix.bytes(), panels * (256 * panel_cols + 2 * 4 * panel_cols));
}

// Every e4m3 code but the two NaNs and every e2m1 code widens to the value the formats define
// (the kernel's widening: a one-row product with a unit activation at each k, scale 1).
TEST(Grouped, EveryFloatCodeWidensToItsValue) {
  for (const WeightType codes : {WeightType::FP8, WeightType::FP4}) {
    const std::size_t k = codes == WeightType::FP8 ? 256 : 16;
    GroupedShape shape{codes, 1, k, k, 1, codes == WeightType::FP8 ? WeightType::F32 : WeightType::E8M0, {}};
    const std::uint32_t one = codes == WeightType::FP8 ? std::bit_cast<std::uint32_t>(1.0f) : 127u;
    const WeightMatrix w = weights::pack_grouped(
        shape, [](std::size_t, std::size_t c) { return static_cast<unsigned>(c); }, [](std::size_t, std::size_t) { return 0u; },
        [&](std::size_t, std::size_t, std::byte* out) { std::memcpy(out, &one, codes == WeightType::FP8 ? 4 : 1); });
    for (std::size_t c = 0; c < k; ++c) {
      if (codes == WeightType::FP8 && (c & 0x7F) == 0x7F) continue;
      Matrix<float> x = Matrix<float>::Zero(1, static_cast<Eigen::Index>(k)), y;
      x(0, static_cast<Eigen::Index>(c)) = 1.0f;
      matmul_transposed(x, w, y, 1);
      const double want = codes == WeightType::FP8 ? e4m3_reference(static_cast<unsigned>(c))
                                                   : e2m1_reference(static_cast<unsigned>(c));
      EXPECT_EQ(static_cast<double>(y(0, 0)), want) << weight_type_name(codes) << " code " << c;
    }
  }
}

// Int4 at load, AutoAWQ's asymmetric rule: s = (max - min) / 15 as float16, z = round(-min / s),
// q = clamp(round(w / s) + z, 0, 15). A group of 32: -1, 2, 0.5 and zeros. s = f16(0.2) =
// 0x3266 = 0.199951171875; z = round(5.0012) = 5; q(-1) = -5 + 5 = 0, q(2) = round(10.0024) + 5
// = 15, q(0.5) = round(2.5006) + 5 = 8, q(0) = 5.
TEST(Int4, ZeroPointQuantizationOfOneGroupWorkedByHand) {
  std::vector<float> w(32, 0.0f);
  w[0] = -1.0f;
  w[1] = 2.0f;
  w[2] = 0.5f;
  const WeightMatrix q = weights::quantize_int4(w.data(), 1, 32, {.group_size = 32, .zero_points = true});
  ASSERT_EQ(q.type, WeightType::Q4);
  ASSERT_EQ(q.groups.count, 1u);
  std::uint16_t scale;
  std::memcpy(&scale, q.groups.scales, 2);
  EXPECT_EQ(scale, 0x3266);
  const double s = 0.199951171875;
  std::vector<float> back(32);
  weight_row(q, 0, back.data());
  EXPECT_EQ(back[0], static_cast<float>((0 - 5) * s));
  EXPECT_EQ(back[1], static_cast<float>((15 - 5) * s));
  EXPECT_EQ(back[2], static_cast<float>((8 - 5) * s));
  EXPECT_EQ(back[3], 0.0f);
}

// Symmetric: s = max |w| / 7 as float16 = f16(0.285714) = 0x3492 = 0.28564453125, z = 8;
// q(2) = round(7.0017) + 8 = 15, q(-1) = round(-3.5009) + 8 = 4, q(0.5) = round(1.7505) + 8 = 10.
TEST(Int4, SymmetricQuantizationOfOneGroupWorkedByHand) {
  std::vector<float> w(64, 0.0f);
  w[0] = -1.0f;
  w[1] = 2.0f;
  w[2] = 0.5f;
  const WeightMatrix q = weights::quantize_int4(w.data(), 1, 64, {.group_size = 64, .zero_points = false});
  std::uint16_t scale;
  std::memcpy(&scale, q.groups.scales, 2);
  EXPECT_EQ(scale, 0x3492);
  const double s = 0.28564453125;
  std::vector<float> back(64);
  weight_row(q, 0, back.data());
  EXPECT_EQ(back[0], static_cast<float>((4 - 8) * s));
  EXPECT_EQ(back[1], static_cast<float>((15 - 8) * s));
  EXPECT_EQ(back[2], static_cast<float>((10 - 8) * s));
  EXPECT_EQ(back[3], 0.0f);
}

// Every value comes back within half a step of its group (a rounding), with a shorter last group
// (k = 40: groups of 32 and 8) and rows that are not a whole panel. With zero points the extremes
// may be clipped by one step (round(-min / s) and round(max / s) can both round up: AutoAWQ's rule
// has the same), so a value at its group's lowest or highest level is held to one step.
TEST(Int4, EveryValueWithinHalfAStepOfItsGroup) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::size_t n = 37, k = 40;
  std::vector<float> w(n * k);
  for (auto& v : w) v = normal(rng);
  for (const bool zero_points : {true, false}) {
    const WeightMatrix q = weights::quantize_int4(w.data(), n, k, {.group_size = 32, .zero_points = zero_points});
    EXPECT_EQ(q.groups.count, 2u);
    std::vector<float> back(k);
    for (std::size_t r = 0; r < n; ++r) {
      weight_row(q, r, back.data());
      for (std::size_t g = 0; g < 2; ++g) {
        const std::size_t c0 = g * 32, c1 = std::min(k, c0 + 32);
        float lo = w[r * k + c0], hi = lo, max_abs = 0;
        for (std::size_t c = c0; c < c1; ++c) {
          lo = std::min(lo, w[r * k + c]);
          hi = std::max(hi, w[r * k + c]);
          max_abs = std::max(max_abs, std::abs(w[r * k + c]));
        }
        const float step = zero_points ? (hi - lo) / 15 : max_abs / 7;
        const float lowest = *std::min_element(back.begin() + c0, back.begin() + c1);
        const float highest = *std::max_element(back.begin() + c0, back.begin() + c1);
        for (std::size_t c = c0; c < c1; ++c) {
          // Half a step (one at a clipped extreme), and the float16 rounding of the scale times
          // the largest code distance.
          const bool extreme = zero_points && (back[c] == lowest || back[c] == highest);
          EXPECT_LE(std::abs(back[c] - w[r * k + c]), (extreme ? 1.0f : 0.5f) * step * 1.01f + 16 * step * 1e-3f)
              << "row " << r << " col " << c << (zero_points ? " zero points" : " symmetric");
        }
      }
    }
  }
}

TEST(Int4, GroupSizesOtherThan32_64_128AreRefused) {
  const std::vector<float> w(96, 1.0f);
  EXPECT_THROW(weights::quantize_int4(w.data(), 1, 96, {.group_size = 48}), argument_error);
  EXPECT_THROW(weights::quantize_int4(w.data(), 1, 96, {.group_size = 0}), argument_error);
}

}  // namespace
}  // namespace maskgen::ops

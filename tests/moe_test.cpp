// The mixture-of-experts kernel (ops/moe.hpp): the router's choice and weights by arithmetic, the
// mixture against a plain double reference, the clamped SwiGLU, attention sinks against their
// definition, and a token's output bit for bit whatever other tokens share its step and experts.
// Compiled into both test binaries, with and without -march=native.

#include <maskgen/ops/attention.hpp>
#include <maskgen/ops/moe.hpp>
#include <maskgen/kv_cache.hpp>
#include <maskgen/model_config.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace maskgen::ops {
namespace {

Matrix<float> random_matrix(Eigen::Index rows, Eigen::Index cols, std::mt19937& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  Matrix<float> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<float>(normal(rng));
  return m;
}

Matrix<float> rows_of(std::initializer_list<std::initializer_list<float>> rows) {
  Matrix<float> m(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(rows.begin()->size()));
  Eigen::Index r = 0;
  for (const auto& row : rows) {
    Eigen::Index c = 0;
    for (const float v : row) m(r, c++) = v;
    ++r;
  }
  return m;
}

TEST(Router, PicksTheLargestLogitsAndBreaksTiesToTheLowerExpert) {
  // Experts 1 and 2 tie for first, 3 and 0 for third.
  const Matrix<float> logits = rows_of({{0.5f, 3.0f, 3.0f, 0.5f, -1.0f}});
  const Routing<float> r = route(logits, 3, true);
  EXPECT_EQ(r.expert, (std::vector<std::int32_t>{1, 2, 0}));
  // Normalized over the three: e^0, e^0, e^-2.5 over their sum.
  const double z = 2.0 + std::exp(-2.5);
  EXPECT_NEAR(r.weight[0], 1.0 / z, 1e-7);
  EXPECT_NEAR(r.weight[1], 1.0 / z, 1e-7);
  EXPECT_NEAR(r.weight[2], std::exp(-2.5) / z, 1e-7);
}

TEST(Router, WithoutNormalizationWeightsAreTheSoftmaxOverEveryExpert) {
  const Matrix<float> logits = rows_of({{1.0f, -2.0f, 0.25f, 2.0f}, {0.0f, 0.0f, 0.0f, 0.0f}});
  const Routing<float> r = route(logits, 2, false);
  EXPECT_EQ(r.expert, (std::vector<std::int32_t>{3, 0, 0, 1}));
  const double z = std::exp(1.0) + std::exp(-2.0) + std::exp(0.25) + std::exp(2.0);
  EXPECT_NEAR(r.weight[0], std::exp(2.0) / z, 1e-7);
  EXPECT_NEAR(r.weight[1], std::exp(1.0) / z, 1e-7);
  EXPECT_NEAR(r.weight[2], 0.25, 1e-7);  // four equal logits: a quarter each, the two lowest experts
  EXPECT_NEAR(r.weight[3], 0.25, 1e-7);
}

TEST(Router, ANanLogitRanksLast) {
  const Matrix<float> logits = rows_of({{std::nanf(""), -5.0f, -6.0f}});
  const Routing<float> r = route(logits, 2, true);
  EXPECT_EQ(r.expert, (std::vector<std::int32_t>{1, 2}));
  EXPECT_TRUE(std::isfinite(r.weight[0]) && std::isfinite(r.weight[1]));
}

struct Experts {
  std::vector<Matrix<float>> gate, up, down;  // the weights as float matrices, for the reference
  std::vector<ExpertWeights<float>> weights;  // views of them, as the kernel reads them
};

Experts random_experts(std::size_t count, Eigen::Index hidden, Eigen::Index inter, bool biases, std::mt19937& rng) {
  Experts x;
  for (std::size_t e = 0; e < count; ++e) {
    x.gate.push_back(random_matrix(inter, hidden, rng, 0.3));
    x.up.push_back(random_matrix(inter, hidden, rng, 0.3));
    x.down.push_back(random_matrix(hidden, inter, rng, 0.3));
  }
  for (std::size_t e = 0; e < count; ++e) {
    ExpertWeights<float> w;
    w.gate = view_weights(x.gate[e].data(), static_cast<std::size_t>(inter), static_cast<std::size_t>(hidden));
    w.up = view_weights(x.up[e].data(), static_cast<std::size_t>(inter), static_cast<std::size_t>(hidden));
    w.down = view_weights(x.down[e].data(), static_cast<std::size_t>(hidden), static_cast<std::size_t>(inter));
    if (biases) {
      w.gate_bias = random_matrix(inter, 1, rng).col(0);
      w.up_bias = random_matrix(inter, 1, rng).col(0);
      w.down_bias = random_matrix(hidden, 1, rng).col(0);
    }
    x.weights.push_back(std::move(w));
  }
  return x;
}

// act(g) * u in double, as transformers writes each activation.
double reference_gated(Activation act, double g, double u) {
  if (act == Activation::Silu) return g / (1.0 + std::exp(-g)) * u;
  const double limit = clamped_swiglu_limit;
  g = std::min(g, limit);
  u = std::clamp(u, -limit, limit);
  return (u + 1.0) * g / (1.0 + std::exp(-clamped_swiglu_alpha * g));
}

TEST(MixtureOfExperts, EqualsTheWeightedSumOfTheRoutedExpertsInDouble) {
  for (const Activation act : {Activation::Silu, Activation::ClampedSwiglu}) {
    std::mt19937 rng(5);
    const Eigen::Index hidden = 40, inter = 24, tokens = 9;
    const std::size_t count = 6, k = 2;
    const bool biases = act == Activation::ClampedSwiglu;
    Experts x = random_experts(count, hidden, inter, biases, rng);
    // Large enough inputs that the clamp engages for some gate and up values.
    const Matrix<float> h = random_matrix(tokens, hidden, rng, act == Activation::ClampedSwiglu ? 6.0 : 1.0);
    const Routing<float> routing = route(random_matrix(tokens, static_cast<Eigen::Index>(count), rng), k, true);
    Matrix<float> out;
    MoeScratch<float> scratch;
    mixture_of_experts(h, routing, std::span<const ExpertWeights<float>>(x.weights), act, out, 1, scratch);
    ASSERT_EQ(out.rows(), tokens);
    std::size_t clamped = 0;
    for (Eigen::Index t = 0; t < tokens; ++t) {
      Eigen::VectorXd want = Eigen::VectorXd::Zero(hidden);
      for (std::size_t i = 0; i < k; ++i) {
        const auto e = static_cast<std::size_t>(routing.expert[static_cast<std::size_t>(t) * k + i]);
        const Eigen::VectorXd in = h.row(t).transpose().cast<double>();
        Eigen::VectorXd g = x.gate[e].cast<double>() * in, u = x.up[e].cast<double>() * in;
        if (biases) {
          g += x.weights[e].gate_bias.cast<double>();
          u += x.weights[e].up_bias.cast<double>();
        }
        Eigen::VectorXd a(inter);
        for (Eigen::Index j = 0; j < inter; ++j) {
          clamped += g(j) > clamped_swiglu_limit || std::abs(u(j)) > clamped_swiglu_limit;
          a(j) = reference_gated(act, g(j), u(j));
        }
        Eigen::VectorXd d = x.down[e].cast<double>() * a;
        if (biases) d += x.weights[e].down_bias.cast<double>();
        want += static_cast<double>(routing.weight[static_cast<std::size_t>(t) * k + i]) * d;
      }
      const double scale = want.cwiseAbs().maxCoeff();
      EXPECT_LT((out.row(t).transpose().cast<double>() - want).cwiseAbs().maxCoeff(), 1e-5 * scale + 1e-6)
          << "token " << t;
    }
    if (act == Activation::ClampedSwiglu) {
      EXPECT_GT(clamped, 0u);  // the clamp is exercised, not only the smooth part
    }
  }
}

// A token's output is the same bits whatever other tokens are in the step, in whichever order,
// routed to the same experts or not, on one thread or two.
TEST(MixtureOfExperts, ATokensOutputDoesNotDependOnTheOtherTokens) {
  std::mt19937 rng(11);
  const Eigen::Index hidden = 64, inter = 48;
  const std::size_t count = 8, k = 3;
  Experts x = random_experts(count, hidden, inter, false, rng);
  const Eigen::Index pool = 40;
  const Matrix<float> h = random_matrix(pool, hidden, rng);
  const Matrix<float> logits = random_matrix(pool, static_cast<Eigen::Index>(count), rng);
  auto run = [&](const std::vector<Eigen::Index>& picks, int threads) {
    Matrix<float> hs(static_cast<Eigen::Index>(picks.size()), hidden), ls(static_cast<Eigen::Index>(picks.size()), logits.cols());
    for (std::size_t i = 0; i < picks.size(); ++i) {
      hs.row(static_cast<Eigen::Index>(i)) = h.row(picks[i]);
      ls.row(static_cast<Eigen::Index>(i)) = logits.row(picks[i]);
    }
    Matrix<float> out;
    MoeScratch<float> scratch;
    mixture_of_experts(hs, route(ls, k, false), std::span<const ExpertWeights<float>>(x.weights), Activation::Silu,
                       out, threads, scratch);
    return out;
  };
  std::vector<Matrix<float>> alone;
  for (Eigen::Index t = 0; t < pool; ++t) alone.push_back(run({t}, 1));
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<Eigen::Index> picks(static_cast<std::size_t>(1 + rng() % pool));
    for (auto& p : picks) p = static_cast<Eigen::Index>(rng() % pool);  // repeats allowed
    const Matrix<float> out = run(picks, 1 + trial % 2);
    for (std::size_t i = 0; i < picks.size(); ++i) {
      EXPECT_TRUE((out.row(static_cast<Eigen::Index>(i)).array() == alone[static_cast<std::size_t>(picks[i])].row(0).array()).all())
          << "trial " << trial << " token " << picks[i];
    }
  }
}

TEST(ClampedSwiglu, MatchesItsDefinitionAndClampsBothInputs) {
  const std::vector<float> g{-20.0f, -1.0f, 0.0f, 0.5f, 6.9f, 7.0f, 7.5f, 100.0f, 3.0f, 3.0f};
  const std::vector<float> u{0.0f, 2.0f, 1.0f, -0.5f, 8.0f, -9.0f, 3.0f, 1.0f, -100.0f, 100.0f};
  Matrix<float> gate(1, static_cast<Eigen::Index>(g.size())), up(1, static_cast<Eigen::Index>(u.size()));
  for (std::size_t i = 0; i < g.size(); ++i) {
    gate(0, static_cast<Eigen::Index>(i)) = g[i];
    up(0, static_cast<Eigen::Index>(i)) = u[i];
  }
  gated_activation(gate, up, Activation::ClampedSwiglu);
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double want = reference_gated(Activation::ClampedSwiglu, g[i], u[i]);
    EXPECT_NEAR(gate(0, static_cast<Eigen::Index>(i)), want, 2e-6 * std::max(1.0, std::abs(want))) << "element " << i;
  }
  // Past the limit nothing changes: min(100, 7) and min(7.5, 7) give the same output as 7.
  Matrix<float> at_limit(1, 1), one(1, 1);
  at_limit(0, 0) = 7.0f;
  one(0, 0) = 1.0f;
  gated_activation(at_limit, one, Activation::ClampedSwiglu);
  EXPECT_EQ(gate(0, 7), at_limit(0, 0));
}

// Sinks: softmax over [scores, sink], the sink's weight dropped: out = Σ_j e^{s_j} v_j / (Σ_j e^{s_j} + e^{sink}).
TEST(AttentionSinks, JoinTheDenominatorAsALogitWithoutAValue) {
  ModelConfig config;
  config.num_layers = 1;
  config.num_heads = 2;
  config.num_kv_heads = 1;
  config.head_dim = 16;
  config.hidden_size = 32;
  config.max_position_embeddings = 64;
  KVCache<float> cache(config, 1);
  std::mt19937 rng(3);
  const Eigen::Index keys = 21;
  const Matrix<float> k = random_matrix(keys, 16, rng), v = random_matrix(keys, 16, rng), q = random_matrix(keys, 32, rng);
  cache.append(0, 0, k.data(), v.data(), static_cast<std::size_t>(keys));
  cache.commit(0, static_cast<std::size_t>(keys));
  std::vector<QuerySpan> spans;
  for (Eigen::Index t = 0; t < keys; ++t) spans.push_back({0, static_cast<std::size_t>(t + 1)});
  const std::vector<float> sinks{1.5f, -30.0f};
  Matrix<float> out;
  attend(q, std::span<const QuerySpan>(spans), cache, 0, 2, 1, 16, out, 1, std::nullopt, 0.0, std::nullopt, sinks.data());
  for (Eigen::Index t = 0; t < keys; ++t) {
    for (int h = 0; h < 2; ++h) {
      std::vector<double> s(static_cast<std::size_t>(t + 1));
      for (Eigen::Index j = 0; j <= t; ++j) {
        double dot = 0;
        for (int d = 0; d < 16; ++d) dot += static_cast<double>(q(t, h * 16 + d)) * k(j, d);
        s[static_cast<std::size_t>(j)] = dot / 4.0;
      }
      const double top = std::max(*std::max_element(s.begin(), s.end()), static_cast<double>(sinks[static_cast<std::size_t>(h)]));
      double z = std::exp(sinks[static_cast<std::size_t>(h)] - top);
      for (const double x : s) z += std::exp(x - top);
      for (int d = 0; d < 16; ++d) {
        double want = 0;
        for (Eigen::Index j = 0; j <= t; ++j) want += std::exp(s[static_cast<std::size_t>(j)] - top) / z * v(j, d);
        EXPECT_NEAR(out(t, h * 16 + d), want, 2e-5) << "token " << t << " head " << h;
      }
    }
  }
}

TEST(Yarn, FrequenciesAsTransformersComputesThem) {
  // Arithmetic of transformers' _compute_yarn_parameters for dim 16, theta 10000, factor 4,
  // original 16, beta 32 / 1, not truncated: low = max(0, 16 ln(16 / (64 pi)) / (2 ln 10^4)) = 0,
  // high = 16 ln(16 / (2 pi)) / (2 ln 10^4) = 0.8119..., the ramp (i - low) / (high - low)
  // clamped to [0, 1]: pair 0 keeps its frequency, pairs 1.. are divided by 4.
  RopeConfig rope;
  rope.type = RopeType::Yarn;
  rope.theta = 10000.0;
  rope.factor = 4.0;
  rope.original_max_position_embeddings = 16;
  rope.truncate = false;
  const std::vector<double> inv = rope.inverse_frequencies(16);
  ASSERT_EQ(inv.size(), 8u);
  const double high = 16.0 * std::log(16.0 / (2.0 * std::numbers::pi)) / (2.0 * std::log(10000.0));
  EXPECT_GT(high, 0.8);
  EXPECT_LT(high, 0.82);
  EXPECT_DOUBLE_EQ(inv[0], 1.0);
  for (std::size_t i = 1; i < 8; ++i) {
    EXPECT_NEAR(inv[i], std::pow(10000.0, -static_cast<double>(2 * i) / 16.0) / 4.0, 1e-15) << i;
  }
  // Truncated, the bounds become floor(0) = 0 and ceil(0.81) = 1: the same here for pairs 0 and 1..
  rope.truncate = true;
  const std::vector<double> t = rope.inverse_frequencies(16);
  EXPECT_DOUBLE_EQ(t[0], 1.0);
  EXPECT_NEAR(t[1], std::pow(10000.0, -2.0 / 16.0) / 4.0, 1e-15);
}

}  // namespace
}  // namespace maskgen::ops

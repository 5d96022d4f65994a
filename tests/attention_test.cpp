// The masked attention kernel against a naive reference over random shapes, GQA ratios and masks.

#include <maskgen/ops/attention.hpp>

#include <optional>
#include <random>
#include <span>

#include <gtest/gtest.h>

namespace maskgen {
namespace {

// The config of a one-layer cache with these heads.
ModelConfig one_layer(std::size_t heads, std::size_t kv_heads, std::size_t head_dim) {
  ModelConfig config;
  config.num_layers = 1;
  config.num_heads = static_cast<std::int64_t>(heads);
  config.num_kv_heads = static_cast<std::int64_t>(kv_heads);
  config.head_dim = static_cast<std::int64_t>(head_dim);
  return config;
}

struct Case {
  std::size_t heads, kv_heads, head_dim;
  std::size_t max_length = 9;  // tokens per row, at most
};

// For random rows (each a run of real tokens with random q, k, v), the kernel's output for every
// query equals softmax(q·k/√d)·v over the keys at or before it in its own row.
// With `scale` (0: 1/√d) and a soft-cap (Gemma 2: c · tanh(score / c)) on the scores.
template <class Scalar>
void check_against_naive(double tolerance, double scale = 0.0, std::optional<double> softcap = std::nullopt) {
  std::mt19937 rng(11);
  std::normal_distribution<double> normal(0.0, 1.5);
  // Small heads, then the real sizes (64, 128) and a head_dim with a tail, over rows longer than a
  // block of keys or values.
  for (const Case c : {Case{1, 1, 2}, Case{4, 4, 8}, Case{4, 2, 8}, Case{8, 1, 4}, Case{6, 3, 16}, Case{8, 2, 64, 70},
                       Case{2, 2, 128, 40}, Case{3, 1, 100, 45}}) {
    const ModelConfig config = one_layer(c.heads, c.kv_heads, c.head_dim);
    const std::size_t rows = 1 + rng() % 5, q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim;
    KVCache<Scalar> cache(config, rows);
    std::vector<QuerySpan> spans;
    std::vector<std::vector<std::vector<double>>> keys(rows), values(rows);  // [row][token][kv_dim]
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t length = 1 + rng() % c.max_length;
      for (std::size_t t = 0; t < length; ++t) {
        std::vector<Scalar> k(kv_dim), v(kv_dim);
        for (auto& e : k) e = static_cast<Scalar>(normal(rng));
        for (auto& e : v) e = static_cast<Scalar>(normal(rng));
        cache.append(0, r, k.data(), v.data(), 1);
        keys[r].emplace_back(k.begin(), k.end());
        values[r].emplace_back(v.begin(), v.end());
        spans.push_back({r, t + 1});
      }
    }
    std::shuffle(spans.begin(), spans.end(), rng);  // queries of all rows, in any order
    ops::Matrix<Scalar> q(static_cast<Eigen::Index>(spans.size()), static_cast<Eigen::Index>(q_dim)), out;
    for (Eigen::Index i = 0; i < q.size(); ++i) q.data()[i] = static_cast<Scalar>(normal(rng));
    ops::attend<Scalar>(q, spans, cache, 0, c.heads, c.kv_heads, c.head_dim, out, 2, std::nullopt, scale, softcap);
    for (std::size_t t = 0; t < spans.size(); ++t) {
      for (std::size_t h = 0; h < c.heads; ++h) {
        const std::size_t g = h / (c.heads / c.kv_heads);
        std::vector<long double> w(spans[t].keys);
        long double max_w = -1e300L, sum = 0;
        for (std::size_t j = 0; j < w.size(); ++j) {
          long double s = 0;
          for (std::size_t d = 0; d < c.head_dim; ++d)
            s += static_cast<long double>(q(t, h * c.head_dim + d)) * keys[spans[t].cache_row][j][g * c.head_dim + d];
          w[j] = scale > 0 ? s * scale : s / std::sqrt(static_cast<long double>(c.head_dim));
          if (softcap) w[j] = *softcap * std::tanh(w[j] / *softcap);
          max_w = std::max(max_w, w[j]);
        }
        for (auto& x : w) sum += (x = std::exp(x - max_w));
        for (std::size_t d = 0; d < c.head_dim; ++d) {
          long double ref = 0;
          for (std::size_t j = 0; j < w.size(); ++j) ref += w[j] / sum * values[spans[t].cache_row][j][g * c.head_dim + d];
          EXPECT_NEAR(static_cast<double>(out(t, h * c.head_dim + d)), static_cast<double>(ref), tolerance)
              << "heads " << c.heads << "/" << c.kv_heads << " query " << t << " head " << h;
        }
      }
    }
    // Bitwise the same with one thread and with the queries in another order.
    ops::Matrix<Scalar> one;
    ops::attend<Scalar>(q, spans, cache, 0, c.heads, c.kv_heads, c.head_dim, one, 1, std::nullopt, scale, softcap);
    EXPECT_TRUE((one.array() == out.array()).all());
    ops::Matrix<Scalar> q_rev = q.colwise().reverse(), out_rev;
    std::vector<QuerySpan> spans_rev(spans.rbegin(), spans.rend());
    ops::attend<Scalar>(q_rev, spans_rev, cache, 0, c.heads, c.kv_heads, c.head_dim, out_rev, 3, std::nullopt, scale,
                        softcap);
    EXPECT_TRUE((out_rev.colwise().reverse().array() == out.array()).all());
  }
}

// One row prefilled at once (its queries in runs that share key blocks) gives every query the bits
// it gets alone, and alone is what a decode step computes; with a sliding window too.
template <class Scalar>
void check_query_alone_equals_in_a_run() {
  std::mt19937 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const std::size_t head_dim : {64, 100}) {
    for (const std::optional<std::size_t> window : {std::optional<std::size_t>{}, std::optional<std::size_t>{37}}) {
      const std::size_t heads = 8, kv_heads = 2, length = 150, q_dim = heads * head_dim;
      const ModelConfig config = one_layer(heads, kv_heads, head_dim);
      KVCache<Scalar> cache(config, 2);
      std::vector<QuerySpan> spans;
      for (std::size_t r = 0; r < 2; ++r) {
        std::vector<Scalar> kv(length * kv_heads * head_dim);
        for (auto& e : kv) e = static_cast<Scalar>(normal(rng));
        cache.append(0, r, kv.data(), kv.data(), length);
        for (std::size_t t = 0; t < length; ++t) spans.push_back({r, t + 1});
      }
      ops::Matrix<Scalar> q(static_cast<Eigen::Index>(spans.size()), static_cast<Eigen::Index>(q_dim)), all;
      for (Eigen::Index i = 0; i < q.size(); ++i) q.data()[i] = static_cast<Scalar>(normal(rng));
      ops::attend<Scalar>(q, spans, cache, 0, heads, kv_heads, head_dim, all, 2, window);
      for (std::size_t t = 0; t < spans.size(); t += 7) {
        const ops::Matrix<Scalar> one_q = q.row(static_cast<Eigen::Index>(t));
        ops::Matrix<Scalar> one;
        ops::attend<Scalar>(one_q, std::span<const QuerySpan>(&spans[t], 1), cache, 0, heads, kv_heads, head_dim, one, 1,
                            window);
        ASSERT_TRUE((one.array() == all.row(static_cast<Eigen::Index>(t)).array()).all())
            << "head_dim " << head_dim << " window " << window.value_or(0) << ": query " << t << " alone differs";
      }
    }
  }
}

// A cache that hands out its keys in blocks of `block` positions (as a paged layout would, the
// blocks starting at multiples of `block`), over the same contiguous storage.
template <class Scalar>
struct InBlocks {
  using scalar_type = Scalar;
  const KVCache<Scalar>& cache;
  std::size_t block;
  std::size_t rows() const { return cache.rows(); }
  std::size_t num_layers() const { return cache.num_layers(); }
  std::size_t kv_heads() const { return cache.kv_heads(); }
  std::size_t head_dim() const { return cache.head_dim(); }
  std::size_t length(std::size_t row) const { return cache.length(row); }
  void append(std::size_t, std::size_t, const Scalar*, const Scalar*, std::size_t) {}
  void commit(std::size_t, std::size_t) {}
  void runs(std::size_t layer, std::size_t row, std::size_t head, std::size_t lo, std::size_t hi,
            std::vector<KeyValueRun<Scalar>>& out) const {
    std::vector<KeyValueRun<Scalar>> whole;
    cache.runs(layer, row, head, lo, hi, whole);
    for (const auto& run : whole) {
      for (std::size_t a = run.first; a < run.first + run.count;) {
        const std::size_t b = std::min(run.first + run.count, (a / block + 1) * block), skip = (a - run.first) * head_dim();
        out.push_back({a, b - a, run.keys + skip, run.values + skip});
        a = b;
      }
    }
  }
};

// Attention reads a cache only as runs of keys: however they are cut, every output keeps its bits.
template <class Scalar>
void check_runs_of_any_length() {
  std::mt19937 rng(31);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::size_t heads = 4, kv_heads = 2, head_dim = 64, length = 70;
  const ModelConfig config = one_layer(heads, kv_heads, head_dim);
  KVCache<Scalar> cache(config, 2);
  std::vector<QuerySpan> spans;
  for (std::size_t r = 0; r < 2; ++r) {
    std::vector<Scalar> k(length * kv_heads * head_dim), v(k.size());
    for (auto& e : k) e = static_cast<Scalar>(normal(rng));
    for (auto& e : v) e = static_cast<Scalar>(normal(rng));
    cache.append(0, r, k.data(), v.data(), length);
    for (std::size_t t = 0; t < length; t += 1 + r) spans.push_back({r, t + 1});
  }
  ops::Matrix<Scalar> q(static_cast<Eigen::Index>(spans.size()), static_cast<Eigen::Index>(heads * head_dim));
  for (Eigen::Index i = 0; i < q.size(); ++i) q.data()[i] = static_cast<Scalar>(normal(rng));
  for (const std::optional<std::size_t> window : {std::optional<std::size_t>{}, std::optional<std::size_t>{19}}) {
    ops::Matrix<Scalar> whole;
    ops::attend<Scalar>(q, spans, cache, 0, heads, kv_heads, head_dim, whole, 2, window);
    for (const std::size_t block : {1, 3, 5, 16, 32}) {
      ops::Matrix<Scalar> cut;
      ops::attend<Scalar>(q, spans, InBlocks<Scalar>{cache, block}, 0, heads, kv_heads, head_dim, cut, 2, window);
      ASSERT_TRUE((cut.array() == whole.array()).all()) << "blocks of " << block << ", window " << window.value_or(0);
    }
  }
}

TEST(Attention, KeysCutIntoRunsOfAnyLengthGiveTheSameBits) {
  check_runs_of_any_length<float>();
  check_runs_of_any_length<double>();
}

TEST(Attention, EveryQueryAloneEqualsItInARun) {
  check_query_alone_equals_in_a_run<float>();
  check_query_alone_equals_in_a_run<double>();
}

TEST(Attention, MatchesNaiveReferenceDouble) { check_against_naive<double>(1e-12); }
TEST(Attention, MatchesNaiveReferenceFloat) { check_against_naive<float>(2e-5); }
// Gemma 2's attention: its own scale (query_pre_attn_scalar^-1/2) and scores soft-capped at 1.5,
// small enough that most scores pass through tanh's bend.
TEST(Attention, SoftCappedScoresMatchNaiveReferenceDouble) { check_against_naive<double>(1e-12, 0.7, 1.5); }
TEST(Attention, SoftCappedScoresMatchNaiveReferenceFloat) { check_against_naive<float>(2e-5, 0.7, 1.5); }

TEST(Attention, HugeScoresStayFinite) {
  KVCache<float> cache(one_layer(1, 1, 2), 1);
  const float k[] = {1e20f, 0, -1e20f, 0}, v[] = {1, 2, 3, 4};
  cache.append(0, 0, k, v, 2);
  ops::Matrix<float> q(1, 2), out;
  q << 1e20f, 0;  // scores overflow to ±inf in float
  const std::vector<QuerySpan> spans = {{0, 2}};
  ops::attend<float>(q, spans, cache, 0, 1, 1, 2, out, 1);
  EXPECT_TRUE(out.allFinite()) << out;
}

}  // namespace
}  // namespace maskgen

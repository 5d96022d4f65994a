// The block manager's books over the contiguous cache: the token budget, rows given and taken
// back, prefixes kept and reused. Expected numbers are the arithmetic of each case.

#include <maskgen/kv/block_manager.hpp>
#include <maskgen/kv/cache.hpp>

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace maskgen {
namespace {

constexpr std::size_t head_dim = 2;

KVCache<float> small_cache(std::size_t rows) {
  ModelConfig config;
  config.num_layers = 1;
  config.num_heads = config.num_kv_heads = 1;
  config.head_dim = head_dim;
  return KVCache<float>(config, rows);
}

// Caches `tokens` for `row` as a forward pass would (key i = value i = {token, token}) and tells
// the manager.
void feed(BlockManager<KVCache<float>>& m, std::size_t row, const std::vector<std::int32_t>& tokens) {
  std::vector<float> kv;
  for (const auto t : tokens) kv.insert(kv.end(), head_dim, static_cast<float>(t));
  m.cache().append(0, row, kv.data(), kv.data(), tokens.size());
  m.cache().commit(row, tokens.size());
  m.append(row, tokens);
}

TEST(BlockManager, AdmitsWhatFitsTheBudgetBesideReservations) {
  BlockManager<KVCache<float>> m(small_cache(4), 10, 2);
  ASSERT_TRUE(m.can_admit(6));
  const auto a = m.allocate(6);
  EXPECT_EQ(m.reserved_tokens(), 6u);
  EXPECT_FALSE(m.can_admit(5));  // 6 + 5 > 10
  EXPECT_TRUE(m.can_admit(4));
  feed(m, a.row, {5, 6, 7});
  EXPECT_EQ(m.cached_tokens(), 3u);
  m.free(a.row);  // a failed step: nothing kept
  EXPECT_EQ(m.reserved_tokens(), 0u);
  EXPECT_EQ(m.retained_tokens(), 0u);
  EXPECT_EQ(m.cache().length(a.row), 0u);
  EXPECT_TRUE(m.can_admit(10));
}

TEST(BlockManager, AFinishedRowIsKeptAndItsPrefixReused) {
  BlockManager<KVCache<float>> m(small_cache(4), 20, 2);
  const auto a = m.allocate(8);
  feed(m, a.row, {1, 2, 3, 4, 5});
  m.release(a.row, /*keep=*/true);
  EXPECT_EQ(m.reserved_tokens(), 0u);
  EXPECT_EQ(m.retained_tokens(), 5u);
  // A prompt sharing 3 tokens copies them; one sharing all 5 copies 4 (its last token's logits
  // are needed, so its last token is always computed).
  const std::vector<std::int32_t> three = {1, 2, 3, 9, 9}, all = {1, 2, 3, 4, 5};
  ASSERT_TRUE(m.can_admit(6));
  const auto b = m.allocate(6, three);
  EXPECT_EQ(b.reused, 3u);
  EXPECT_EQ(m.cache().length(b.row), 3u);
  std::vector<KeyValueRun<float>> runs;
  m.cache().runs(0, b.row, 0, 0, 3, runs);
  ASSERT_EQ(runs.size(), 1u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(runs[0].keys[i * head_dim], static_cast<float>(i + 1));
  const auto c = m.allocate(6, all);
  EXPECT_EQ(c.reused, 4u);
  EXPECT_EQ(m.reserved_tokens(), 12u);
}

TEST(BlockManager, RoomIsMadeByDroppingTheOldestPrefixes) {
  BlockManager<KVCache<float>> m(small_cache(4), 10, 2);
  for (const std::int32_t first : {10, 20}) {
    const auto r = m.allocate(4);
    feed(m, r.row, {first, first + 1, first + 2});
    m.release(r.row, true);
  }
  EXPECT_EQ(m.retained_tokens(), 6u);
  // 6 retained + 5 > 10: the oldest (10, 11, 12) goes, the newer (20, 21, 22) stays.
  ASSERT_TRUE(m.can_admit(5));
  EXPECT_EQ(m.retained_tokens(), 3u);
  const std::vector<std::int32_t> old_prompt = {10, 11, 12, 13}, new_prompt = {20, 21, 22, 23};
  EXPECT_EQ(m.allocate(5, old_prompt).reused, 0u);
  EXPECT_EQ(m.reserved_tokens(), 5u);
  ASSERT_TRUE(m.can_admit(2));  // 5 + 3 + 2 = 10: fits with the prefix kept
  EXPECT_EQ(m.allocate(2, new_prompt).reused, 3u);
  // A reservation that can never fit beside the others drops what is retained and still fails.
  EXPECT_FALSE(m.can_admit(4));
  EXPECT_EQ(m.retained_tokens(), 0u);
}

TEST(BlockManager, KeepsAtMostMaxRetainedRows) {
  BlockManager<KVCache<float>> m(small_cache(6), 100, 2);
  for (const std::int32_t first : {10, 20, 30}) {
    const auto r = m.allocate(4);
    feed(m, r.row, {first, first + 1});
    m.release(r.row, true);
  }
  EXPECT_EQ(m.retained_tokens(), 4u);  // the two most recent
  m.clear_retained();
  EXPECT_EQ(m.retained_tokens(), 0u);
}

}  // namespace
}  // namespace maskgen

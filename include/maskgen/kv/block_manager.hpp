#pragma once
// BlockManager: the books of a shared key-value cache. It owns the cache, the token budget, the
// free rows, the rows of running requests (with the tokens each holds) and the retained prefixes
// of finished ones, and it answers a scheduler's questions in a few verbs:
//
//   can_admit(need)             is there room for a request that may hold `need` tokens? (drops the
//                               oldest retained prefixes to make it)
//   allocate(need, prompt)      a row for it, with the longest prefix of `prompt` some row holds
//                               copied in (returns the row and the reused count)
//   append(row, tokens)         records the tokens a step cached for the row
//   release(row) / retain(row)  gives a finished row back, dropping or keeping its keys and values
//   free(row)                   gives back a row whose contents cannot be trusted (a failed step)
//
// Today's cache has one row per request, contiguous (kv/cache.hpp); the budget is counted in
// tokens. A request's reservation is its prompt plus max_new_tokens, so a running request never
// runs out. Retained prefixes are kept while they fit beside the reservations, most recently used
// first, and the oldest go first when room is needed.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <list>
#include <span>
#include <vector>

#include "../error.hpp"

namespace maskgen {

template <class Cache>
class BlockManager {
 public:
  // A cache of `cache.rows()` rows, for at most `max_tokens` tokens, keeping at most
  // `max_retained` finished rows as prefixes.
  BlockManager(Cache cache, std::size_t max_tokens, std::size_t max_retained)
      : cache_(std::move(cache)), max_tokens_(max_tokens), max_retained_(max_retained), rows_(cache_.rows()) {
    for (std::size_t r = cache_.rows(); r-- > 0;) free_rows_.push_back(r);
  }

  // The cache, for the forward pass.
  Cache& cache() { return cache_; }

  std::size_t max_tokens() const { return max_tokens_; }
  std::size_t reserved_tokens() const { return reserved_; }
  std::size_t retained_tokens() const { return retained_tokens_; }
  // Tokens cached for running requests.
  std::size_t cached_tokens() const {
    std::size_t n = 0;
    for (const std::size_t row : active_) n += cache_.length(row);
    return n;
  }

  // Whether a request that may hold `need` tokens fits, after dropping the oldest retained
  // prefixes until it does (or until none is left).
  bool can_admit(std::size_t need) {
    while (reserved_ + retained_tokens_ + need > max_tokens_ && !retained_.empty()) drop_oldest_retained();
    return reserved_ + retained_tokens_ + need <= max_tokens_;
  }

  struct Allocation {
    std::size_t row = 0;
    std::size_t reused = 0;  // tokens of the prompt whose keys and values were copied into the row
  };

  // A row for a request admitted by can_admit(need). With `reuse_from` non-empty, the row starts
  // with the longest prefix of it that a running or retained row holds (at most all but its last
  // token, whose logits the request needs); the retained row it came from counts as used now.
  Allocation allocate(std::size_t need, std::span<const std::int32_t> reuse_from = {}) {
    if (free_rows_.empty() && !retained_.empty()) drop_oldest_retained();
    if (free_rows_.empty()) throw argument_error("BlockManager::allocate: no free row (call can_admit first)");
    Allocation a{free_rows_.back(), 0};
    free_rows_.pop_back();
    rows_[a.row] = RowBooks{need, {}};
    reserved_ += need;
    active_.push_back(a.row);
    if (!reuse_from.empty()) a.reused = copy_longest_prefix(a.row, reuse_from);
    return a;
  }

  // Records that the last step cached `tokens` for `row` (its keys and values are in the cache).
  void append(std::size_t row, std::span<const std::int32_t> tokens) {
    rows_.at(row).tokens.insert(rows_[row].tokens.end(), tokens.begin(), tokens.end());
  }

  // A finished row: its reservation goes back; its keys and values stay as a reusable prefix when
  // `keep` and they fit beside the reservations, else they are dropped.
  void release(std::size_t row, bool keep) {
    RowBooks& books = rows_.at(row);
    leave_active(row);
    reserved_ -= books.reserved;
    books.reserved = 0;
    const std::size_t held = cache_.length(row);
    if (keep && held > 0 && reserved_ + retained_tokens_ + held <= max_tokens_) {
      books.tokens.resize(held);
      retained_.push_front(row);
      retained_tokens_ += held;
      while (retained_.size() > max_retained_) drop_oldest_retained();
    } else {
      drop(row);
    }
  }

  // Empties a running row (its reservation stays): it is about to be fed whole again.
  void restart(std::size_t row) {
    rows_.at(row).tokens.clear();
    cache_.release(row);
  }

  // A row whose last step failed part way: never kept.
  void free(std::size_t row) {
    leave_active(row);
    reserved_ -= rows_.at(row).reserved;
    rows_[row].reserved = 0;
    drop(row);
  }

  // Drops every retained prefix; their memory goes back at once.
  void clear_retained() {
    while (!retained_.empty()) drop_oldest_retained();
  }

 private:
  struct RowBooks {
    std::size_t reserved = 0;          // tokens promised to the row's request
    std::vector<std::int32_t> tokens;  // whose keys and values the row holds
  };

  // The longest common prefix of `prompt` (all but its last token) with what a running row (in
  // admission order), then a retained one (most recent first), holds; the first longest wins.
  std::size_t copy_longest_prefix(std::size_t row, std::span<const std::int32_t> prompt) {
    const std::size_t limit = prompt.size() - 1;
    std::size_t best = 0, donor = 0;
    bool from_retained = false;
    auto common = [&](std::size_t other) {
      const std::vector<std::int32_t>& held = rows_[other].tokens;
      const std::size_t n = std::min({held.size(), cache_.length(other), limit});
      std::size_t k = 0;
      while (k < n && held[k] == prompt[k]) ++k;
      return k;
    };
    for (const std::size_t other : active_) {
      if (other == row) continue;
      if (const std::size_t k = common(other); k > best) best = k, donor = other, from_retained = false;
    }
    for (const std::size_t other : retained_) {
      if (const std::size_t k = common(other); k > best) best = k, donor = other, from_retained = true;
    }
    if (best == 0) return 0;
    cache_.copy_prefix(donor, row, best);
    rows_[row].tokens.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(best));
    if (from_retained) retained_.splice(retained_.begin(), retained_, std::find(retained_.begin(), retained_.end(), donor));
    return best;
  }

  void leave_active(std::size_t row) {
    const auto it = std::find(active_.begin(), active_.end(), row);
    if (it == active_.end()) throw argument_error(detail::cat("BlockManager: row ", row, " is not allocated"));
    active_.erase(it);
  }

  void drop(std::size_t row) {
    rows_[row].tokens.clear();
    rows_[row].tokens.shrink_to_fit();
    cache_.release(row);
    free_rows_.push_back(row);
  }

  void drop_oldest_retained() {
    const std::size_t row = retained_.back();
    retained_tokens_ -= cache_.length(row);
    retained_.pop_back();
    drop(row);
  }

  Cache cache_;
  std::size_t max_tokens_, max_retained_;
  std::vector<RowBooks> rows_;          // [cache rows]
  std::vector<std::size_t> free_rows_;  // taken from the back
  std::vector<std::size_t> active_;     // rows of running requests, in allocation order
  std::list<std::size_t> retained_;     // finished rows kept as prefixes, most recently used first
  std::size_t reserved_ = 0, retained_tokens_ = 0;
};

}  // namespace maskgen

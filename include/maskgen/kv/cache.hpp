#pragma once
// The key-value cache: the keys and values of each row's real tokens only, per layer. A row's
// cache never holds a pad, so its length is its number of real tokens and a token's index in it
// is its position.
//
// What the forward pass needs of a cache is small (KeyValueCache below): append a step's keys and
// values to a row, commit them, and hand attention the keys and values of positions [lo, hi) of a
// row as runs, each run a stretch of consecutive positions stored one after another. Attention
// reads nothing else, so a layout in blocks (paged, shared between rows) is a new implementation
// of these verbs, not a change to the kernel. KVCache, the layout here, keeps each row's keys of
// each head in one contiguous array: every request is one run.
//
// Who gets which row, what the budget allows and which finished rows are kept as prefixes is the
// block manager's business (kv/block_manager.hpp), not the cache's.

#include <concepts>
#include <cstddef>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"

namespace maskgen {

// Keys and values of positions [first, first + count) of one row, layer and KV head, position
// after position.  keys, values: [count, head_dim]
template <class Scalar>
struct KeyValueRun {
  std::size_t first = 0;
  std::size_t count = 0;
  const Scalar* keys = nullptr;
  const Scalar* values = nullptr;
};

// What the forward pass and attention need of a cache. `runs` appends to `out` runs that cover
// [lo, hi) in increasing order (hi at most length(row) plus what this step appended).
template <class C>
concept KeyValueCache = requires(C& cache, const C& read, std::size_t n, const typename C::scalar_type* p,
                                 std::vector<KeyValueRun<typename C::scalar_type>>& out) {
  typename C::scalar_type;
  { read.rows() } -> std::convertible_to<std::size_t>;
  { read.num_layers() } -> std::convertible_to<std::size_t>;
  { read.kv_heads() } -> std::convertible_to<std::size_t>;
  { read.head_dim() } -> std::convertible_to<std::size_t>;
  { read.length(n) } -> std::convertible_to<std::size_t>;
  cache.append(n, n, p, p, n);
  cache.commit(n, n);
  read.runs(n, n, n, n, n, out);
};

template <class Scalar>
class KVCache {
 public:
  using scalar_type = Scalar;

  // An empty cache for `rows` rows of a model with `config`.
  KVCache(const ModelConfig& config, std::size_t rows)
      : layers_(static_cast<std::size_t>(config.num_layers)),
        kv_heads_(static_cast<std::size_t>(config.num_kv_heads)),
        head_dim_(static_cast<std::size_t>(config.head_dim)),
        kv_dim_(kv_heads_ * head_dim_),
        entries_(rows, std::vector<Entry>(layers_, Entry{std::vector<std::vector<Scalar>>(kv_heads_),
                                                         std::vector<std::vector<Scalar>>(kv_heads_)})),
        length_(rows, 0) {}

  std::size_t rows() const { return entries_.size(); }
  std::size_t num_layers() const { return layers_; }
  std::size_t kv_dim() const { return kv_dim_; }
  std::size_t kv_heads() const { return kv_heads_; }
  std::size_t head_dim() const { return head_dim_; }

  // Real tokens cached for `row` (after every layer of the last forward pass).
  std::size_t length(std::size_t row) const { return length_.at(row); }

  // Keys and values of positions [lo, hi) of KV head `head` of `row` at `layer`: here one run,
  // since each head's are contiguous.
  void runs(std::size_t layer, std::size_t row, std::size_t head, std::size_t lo, std::size_t hi,
            std::vector<KeyValueRun<Scalar>>& out) const {
    if (lo >= hi) return;
    const Entry& e = entries_[row][layer];
    out.push_back({lo, hi - lo, e.k[head].data() + lo * head_dim_, e.v[head].data() + lo * head_dim_});
  }

  // Appends `count` tokens' keys and values (each [count, kv_heads * head_dim], row-major, as
  // the projections produce them) to `row` at `layer`.
  void append(std::size_t layer, std::size_t row, const Scalar* k, const Scalar* v, std::size_t count) {
    auto& e = entries_[row][layer];
    for (std::size_t h = 0; h < kv_heads_; ++h) {
      for (std::size_t t = 0; t < count; ++t) {
        const std::size_t from = t * kv_dim_ + h * head_dim_;
        e.k[h].insert(e.k[h].end(), k + from, k + from + head_dim_);
        e.v[h].insert(e.v[h].end(), v + from, v + from + head_dim_);
      }
    }
  }

  // Records that every layer of `row` now holds `count` more tokens.
  void commit(std::size_t row, std::size_t count) { length_[row] += count; }

  // Makes row `to` a copy of row `from` (a beam that forks). The copy keeps `from`'s spare
  // capacity, so its next appends do not reallocate.
  void copy_row(std::size_t from, std::size_t to) {
    if (from >= rows() || to >= rows()) {
      throw argument_error(detail::cat("copy_row(", from, ", ", to, ") on a cache of ", rows(), " rows"));
    }
    if (from == to) return;
    for (std::size_t l = 0; l < layers_; ++l) {
      const Entry& src = entries_[from][l];
      Entry& dst = entries_[to][l];
      for (std::size_t h = 0; h < kv_heads_; ++h) {
        dst.k[h].reserve(src.k[h].capacity());
        dst.k[h].assign(src.k[h].begin(), src.k[h].end());
        dst.v[h].reserve(src.v[h].capacity());
        dst.v[h].assign(src.v[h].begin(), src.v[h].end());
      }
    }
    length_[to] = length_[from];
  }

  // Makes the empty row `to` hold the first `count` tokens of row `from`: a shared prefix whose
  // keys and values need not be computed again (each token's are the same however it was reached).
  void copy_prefix(std::size_t from, std::size_t to, std::size_t count) {
    if (from >= rows() || to >= rows() || from == to || count > length_[from] || length_[to] != 0) {
      throw argument_error(detail::cat("copy_prefix(", from, ", ", to, ", ", count, ") on a cache of ", rows(),
                                       " rows: rows must differ, `to` be empty and `from` hold ", count, " tokens"));
    }
    const std::size_t n = count * head_dim_;
    for (std::size_t l = 0; l < layers_; ++l) {
      const Entry& src = entries_[from][l];
      Entry& dst = entries_[to][l];
      for (std::size_t h = 0; h < kv_heads_; ++h) {
        dst.k[h].assign(src.k[h].begin(), src.k[h].begin() + static_cast<std::ptrdiff_t>(n));
        dst.v[h].assign(src.v[h].begin(), src.v[h].begin() + static_cast<std::ptrdiff_t>(n));
      }
    }
    length_[to] = count;
  }

  // Frees the memory of a finished row; it reads as empty afterwards.
  void release(std::size_t row) {
    for (auto& e : entries_.at(row)) {
      for (auto& h : e.k) std::vector<Scalar>().swap(h);
      for (auto& h : e.v) std::vector<Scalar>().swap(h);
    }
    length_[row] = 0;
  }

  // Bytes held by keys and values.
  std::size_t bytes() const {
    std::size_t b = 0;
    for (const auto& row : entries_)
      for (const auto& e : row)
        for (std::size_t h = 0; h < kv_heads_; ++h) b += (e.k[h].capacity() + e.v[h].capacity()) * sizeof(Scalar);
    return b;
  }

 private:
  struct Entry {
    std::vector<std::vector<Scalar>> k, v;  // [kv_heads][tokens * head_dim] each
  };
  std::size_t layers_, kv_heads_, head_dim_, kv_dim_;
  std::vector<std::vector<Entry>> entries_;  // [rows][layers]
  std::vector<std::size_t> length_;          // [rows]
};

static_assert(KeyValueCache<KVCache<float>> && KeyValueCache<KVCache<double>>);

}  // namespace maskgen

#pragma once
// KVCache: the keys and values of each row's real tokens only, per layer. A row's cache never holds
// a pad, so its length is its number of real tokens and a token's index in it is its position.
// Finished rows can be released; their memory goes back at once.

#include <cstddef>
#include <vector>

#include "config.hpp"
#include "error.hpp"

namespace maskgen {

template <class Scalar>
class KVCache {
 public:
  // An empty cache for `rows` rows of a model with `config`.
  KVCache(const ModelConfig& config, std::size_t rows)
      : layers_(static_cast<std::size_t>(config.num_layers)),
        kv_dim_(static_cast<std::size_t>(config.kv_dim())),
        entries_(rows, std::vector<Entry>(layers_)),
        length_(rows, 0) {}

  std::size_t rows() const { return entries_.size(); }
  std::size_t num_layers() const { return layers_; }
  std::size_t kv_dim() const { return kv_dim_; }

  // Real tokens cached for `row` (after every layer of the last forward pass).
  std::size_t length(std::size_t row) const { return length_.at(row); }

  // Keys and values of `row` at `layer`, one token after another.  // [tokens, kv_heads * head_dim]
  const Scalar* keys(std::size_t layer, std::size_t row) const { return entries_[row][layer].k.data(); }
  const Scalar* values(std::size_t layer, std::size_t row) const { return entries_[row][layer].v.data(); }

  // Appends `count` tokens' keys and values (each [count, kv_dim], row-major) to `row` at `layer`.
  void append(std::size_t layer, std::size_t row, const Scalar* k, const Scalar* v, std::size_t count) {
    auto& e = entries_[row][layer];
    e.k.insert(e.k.end(), k, k + count * kv_dim_);
    e.v.insert(e.v.end(), v, v + count * kv_dim_);
  }

  // Records that every layer of `row` now holds `count` more tokens.
  void commit(std::size_t row, std::size_t count) { length_[row] += count; }

  // Frees the memory of a finished row; it reads as empty afterwards.
  void release(std::size_t row) {
    for (auto& e : entries_.at(row)) {
      std::vector<Scalar>().swap(e.k);
      std::vector<Scalar>().swap(e.v);
    }
    length_[row] = 0;
  }

  // Bytes held by keys and values.
  std::size_t bytes() const {
    std::size_t b = 0;
    for (const auto& row : entries_)
      for (const auto& e : row) b += (e.k.capacity() + e.v.capacity()) * sizeof(Scalar);
    return b;
  }

 private:
  struct Entry {
    std::vector<Scalar> k, v;  // [tokens, kv_dim] each
  };
  std::size_t layers_, kv_dim_;
  std::vector<std::vector<Entry>> entries_;  // [rows][layers]
  std::vector<std::size_t> length_;          // [rows]
};

}  // namespace maskgen

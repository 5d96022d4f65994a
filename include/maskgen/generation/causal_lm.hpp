#pragma once
// What generation needs of a model (CausalLM) and of its cache (ForkableCache).

#include <concepts>
#include <cstddef>

#include "../batch.hpp"
#include "../config.hpp"
#include "../models/model.hpp"
#include "../ops/matrix.hpp"

namespace maskgen {

// What generation needs of a model: its config, a cache with one row per sequence, and the
// padding-free forward pass (one logits row per packed row, from its last token).
template <class M>
concept CausalLM = requires(const M& model, const PackedBatch& batch, typename M::cache_type& cache,
                            const ForwardOptions& options, std::size_t row) {
  typename M::scalar_type;
  { model.config() } -> std::convertible_to<const ModelConfig&>;
  { model.make_cache(row) } -> std::same_as<typename M::cache_type>;
  { model.forward_packed(batch, cache, options) } -> std::convertible_to<ops::Matrix<typename M::scalar_type>>;
  { cache.length(row) } -> std::convertible_to<std::size_t>;
};

// What generate() needs of a cache besides: a row copied into another (a beam that forks, a
// prompt's cache given to its other sequences) and a row given back.
template <class C>
concept ForkableCache = requires(C& cache, std::size_t row) {
  cache.copy_row(row, row);
  cache.release(row);
};

}  // namespace maskgen

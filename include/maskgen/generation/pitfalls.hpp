#pragma once
// What goes wrong without maskgen's contract, kept runnable for demonstrations and tests
// (examples/mask_pitfall.cpp): never what an application should call.

#include "generate.hpp"
#include "../padding.hpp"

namespace maskgen {

namespace pitfalls {

// Generates as a library does when the attention mask is dropped: every position of every row,
// pads included, is treated as a real token (attended to and counted in positions). Compare its
// output with generate()'s to see the failure maskgen prevents.
template <CausalLM M>
  requires ForkableCache<typename M::cache_type>
GenerationResult<typename M::scalar_type> generate_ignoring_mask(const M& model, const TokenMatrix& input_ids,
                                                                 const GenerationConfig& gen = {}) {
  const TokenMatrix all_real = TokenMatrix::Ones(input_ids.rows(), input_ids.cols());
  return generate(model, input_ids, all_real, gen);
}

}  // namespace pitfalls

}  // namespace maskgen

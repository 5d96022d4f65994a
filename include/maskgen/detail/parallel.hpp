#pragma once
// Runs independent pieces of work on several threads. Work is split into contiguous chunks of
// indices, so each index is always processed by exactly the same code whatever the thread count:
// results cannot depend on how many threads ran.

#include <algorithm>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

#include "../error.hpp"

namespace maskgen::detail {

// The number of threads to use for `requested` (0 means every core), as validated for `argument`.
inline int resolve_thread_count(int requested, const char* argument) {
  if (requested < 0) {
    throw argument_error(cat(argument, " must be >= 0 (0 uses every core), got ", requested));
  }
  if (requested == 0) return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return requested;
}

// Calls body(begin, end) on disjoint chunks covering [0, n), using up to `threads` threads (the
// calling thread included). Rethrows the exception of the lowest failing chunk, if any.
template <class Body>
void parallel_for(std::size_t n, int threads, Body&& body) {
  const std::size_t workers = std::min<std::size_t>(n, static_cast<std::size_t>(std::max(threads, 1)));
  if (workers <= 1) {
    if (n > 0) body(std::size_t{0}, n);
    return;
  }
  std::vector<std::exception_ptr> errors(workers);
  auto run_chunk = [&](std::size_t w) {
    const std::size_t begin = n * w / workers, end = n * (w + 1) / workers;
    try {
      body(begin, end);
    } catch (...) {
      errors[w] = std::current_exception();
    }
  };
  {
    std::vector<std::jthread> pool;
    pool.reserve(workers - 1);
    for (std::size_t w = 1; w < workers; ++w) pool.emplace_back(run_chunk, w);
    run_chunk(0);
  }  // joins
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace maskgen::detail

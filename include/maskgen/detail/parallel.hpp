#pragma once
// Runs independent pieces of work on several threads. Work is split into contiguous chunks of
// indices, so each index is always processed by exactly the same code whatever the thread count:
// results cannot depend on how many threads ran.
//
// Threads come from one process-wide pool of persistent workers (started on first use, grown on
// demand): starting threads for every call costs more than small batches take to encode.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "../error.hpp"

namespace maskgen::detail {

// The number of threads to use for `requested` (0 means every core), as validated for `argument`.
inline int resolve_thread_count(int requested, const char* argument) {
  if (requested < 0) {
    throw argument_error(cat(argument, " must be >= 0 (0 uses every core), got ", requested));
  }
  // hardware_concurrency() reads a system file on every call: ask once.
  static const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return requested == 0 ? cores : requested;
}

class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }

  // Calls task(i) for every i in [0, n): i = 0 on the calling thread, the others on workers.
  // Returns when all are done. A call from inside a task runs every i on the calling thread.
  void run(std::size_t n, const std::function<void(std::size_t)>& task) {
    if (n <= 1 || inside_task()) {
      for (std::size_t i = 0; i < n; ++i) task(i);
      return;
    }
    std::lock_guard one_job(job_mutex_);  // callers from several threads take turns
    {
      std::unique_lock lock(mutex_);
      while (workers_.size() < n - 1) workers_.emplace_back([this, k = workers_.size()] { work(k); });
      task_ = &task;
      tasks_ = n;
      pending_ = n - 1;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    inside_task() = true;
    task(0);
    inside_task() = false;
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    task_ = nullptr;
  }

  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }

 private:
  ThreadPool() = default;

  static bool& inside_task() {
    thread_local bool inside = false;
    return inside;
  }

  void work(std::size_t k) {  // worker k runs task k + 1 of each job that has that many
    inside_task() = true;
    std::size_t seen = 0;
    for (;;) {
      // Jobs often come in quick succession: look for the next one briefly before sleeping.
      for (int spin = 0; spin < spin_limit && generation_.load(std::memory_order_acquire) == seen; ++spin) {
        std::this_thread::yield();
      }
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
      if (k + 1 >= tasks_) continue;
      const auto* task = task_;
      lock.unlock();
      (*task)(k + 1);
      lock.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex job_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(std::size_t)>* task_ = nullptr;
  std::size_t tasks_ = 0, pending_ = 0;
  std::atomic<std::size_t> generation_{0};  // counts jobs; written under mutex_
  static constexpr int spin_limit = 2000;
  bool stop_ = false;
};

// Calls body(begin, end) on disjoint chunks covering [0, n), using up to `threads` threads (the
// calling thread included). Rethrows the exception of the lowest failing chunk, if any.
template <class Body>
void parallel_for(std::size_t n, int threads, Body&& body) {
  const std::size_t chunks = std::min<std::size_t>(n, static_cast<std::size_t>(std::max(threads, 1)));
  if (chunks <= 1) {
    if (n > 0) body(std::size_t{0}, n);
    return;
  }
  std::vector<std::exception_ptr> errors(chunks);
  ThreadPool::instance().run(chunks, [&](std::size_t c) {
    try {
      body(n * c / chunks, n * (c + 1) / chunks);
    } catch (...) {
      errors[c] = std::current_exception();
    }
  });
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

// Calls body(begin, end) on blocks of at most `grain` indices covering [0, n), handed out to up
// to `threads` threads as they become free: for independent items of uneven cost (or on cores of
// uneven speed). Which thread runs an item never changes what the item computes.
template <class Body>
void parallel_for_dynamic(std::size_t n, int threads, std::size_t grain, Body&& body) {
  grain = std::max<std::size_t>(grain, 1);
  const std::size_t blocks = (n + grain - 1) / grain;
  const std::size_t workers = std::min<std::size_t>(blocks, static_cast<std::size_t>(std::max(threads, 1)));
  std::atomic<std::size_t> next{0};
  parallel_for(workers, static_cast<int>(workers), [&](std::size_t, std::size_t) {
    for (std::size_t b; (b = next.fetch_add(1, std::memory_order_relaxed)) < blocks;) {
      body(b * grain, std::min(n, (b + 1) * grain));
    }
  });
}

}  // namespace maskgen::detail

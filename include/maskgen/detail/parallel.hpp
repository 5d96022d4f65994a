#pragma once
// Runs independent pieces of work on several threads. Work is split into contiguous chunks of
// indices, so each index is always processed by exactly the same code whatever the thread count:
// results cannot depend on how many threads ran.
//
// Threads come from one process-wide pool of persistent workers (started on first use, grown on
// demand): starting threads for every call costs more than small batches take to encode.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
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

// Jobs come in quick succession (a decode step runs about 90 kernels, each a few hundred
// microseconds), so waking a sleeping thread for each one (a futex round trip, tens of
// microseconds on a busy machine) would cost a good part of the step. Workers and the calling
// thread therefore spin on atomics for a while before sleeping, as OpenMP runtimes do.
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
    if (n - 1 > max_workers) throw argument_error(cat("thread pool: ", n, " threads requested, at most ", max_workers + 1));
    std::lock_guard one_job(job_mutex_);  // callers from several threads take turns
    const std::uint64_t job = (job_.load(std::memory_order_relaxed) >> 32) + 1;
    while (workers_.size() < n - 1) {
      workers_.emplace_back([this, k = workers_.size(), seen = job_.load(std::memory_order_relaxed)] { work(k, seen); });
    }
    task_ = &task;
    pending_.store(static_cast<std::uint32_t>(n - 1), std::memory_order_relaxed);
    job_.store(job << 32 | n, std::memory_order_release);  // publishes task_ and pending_
    job_.notify_all();
    inside_task() = true;
    task(0);
    inside_task() = false;
    // The workers usually finish within microseconds of this thread: spin, then sleep.
    std::uint32_t left;
    for (Spin spin; (left = pending_.load(std::memory_order_acquire)) != 0;) {
      if (!spin.next()) pending_.wait(left, std::memory_order_acquire);
    }
    task_ = nullptr;
  }

  ~ThreadPool() {
    job_.store(stop_job, std::memory_order_release);
    job_.notify_all();
    for (auto& w : workers_) w.join();
  }

 private:
  ThreadPool() = default;

  // job_ holds a job's number (high 32 bits) and its number of tasks (low 32), in one word so a
  // worker reads both at once: a worker with no task in job j must not take job j + 1's count as
  // job j's. The word changes only when no task of the previous job is running.
  static constexpr std::uint64_t stop_job = ~std::uint64_t{0};
  static constexpr std::size_t max_workers = 4095;

  // Busy-waits up to spin_time (pausing the core between looks), then says to sleep.
  class Spin {
   public:
    bool next() {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      if (++count_ % 64 != 0) return true;
      std::this_thread::yield();  // lets a thread that has work run first where cores are oversubscribed
      const auto now = std::chrono::steady_clock::now();
      if (count_ == 64) start_ = now;
      return now - start_ < spin_time;
    }

   private:
    static constexpr auto spin_time = std::chrono::microseconds(1000);
    std::uint64_t count_ = 0;
    std::chrono::steady_clock::time_point start_;
  };

  static bool& inside_task() {
    thread_local bool inside = false;
    return inside;
  }

  void work(std::size_t k, std::uint64_t seen) {  // worker k runs task k + 1 of each job that has that many
    inside_task() = true;
    for (;;) {
      std::uint64_t job;
      for (Spin spin; (job = job_.load(std::memory_order_acquire)) == seen;) {
        if (!spin.next()) job_.wait(seen, std::memory_order_acquire);
      }
      seen = job;
      if (job == stop_job) return;
      if (k + 1 >= (job & 0xFFFFFFFF)) continue;
      (*task_)(k + 1);  // task_ stays this job's until this task is counted done
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
    }
  }

  std::mutex job_mutex_;
  std::vector<std::thread> workers_;  // changed only under job_mutex_
  const std::function<void(std::size_t)>* task_ = nullptr;
  std::atomic<std::uint64_t> job_{0};
  std::atomic<std::uint32_t> pending_{0};  // tasks of the current job still running on workers
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

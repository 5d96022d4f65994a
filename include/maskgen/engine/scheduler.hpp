#pragma once
// Scheduler: which requests run in the next step and what each feeds. It admits waiting requests
// in arrival order while the block manager has room for them (prompt plus max_new_tokens), and
// builds each step's PackedBatch: every decoding request's last token, then prompt chunks within
// the prefill budget, the prompts with the fewest tokens left first (ties: the earlier request).
// So a short prompt arriving during a long one's prefill gets its first token after a step or
// two, not after the long prompt; the long one takes what the budget leaves.
//
// It knows of a request only its ScheduleState (a `schedule` member of the request type) and talks
// to the block manager alone; choosing tokens and streaming text are the engine's.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "../batch.hpp"
#include "../kv/block_manager.hpp"

namespace maskgen {

// Where a request stands in the schedule.
struct ScheduleState {
  std::vector<std::int32_t> prompt;
  std::size_t max_new_tokens = 0;
  std::size_t reservation = 0;        // cache tokens it may hold: prompt plus max_new_tokens, within the context
  std::optional<std::size_t> row{};   // its cache row, while it holds one
  std::size_t prefilled = 0;          // prompt tokens whose keys and values are cached
  std::size_t chunk = 0;              // prompt tokens the step being planned feeds (while prefilling)
  std::size_t reused = 0;             // prompt tokens copied from another row at admission
  std::vector<std::int32_t> history;  // prompt, then new tokens

  bool prefilling() const { return prefilled < prompt.size(); }
};

template <class Request, class Cache>
class Scheduler {
 public:
  struct Options {
    std::size_t max_running = 32;    // requests in a step at most
    std::size_t prefill_chunk = 16;  // prompt tokens a step feeds, over all requests
    bool reuse_prefixes = true;      // start a request from another row's copy of its prompt's prefix
    std::size_t refeed_past = 0;     // > 0: a row whose context grows past it is fed whole once more
                                     // (LongRoPE's switch to the long factors: RopeConfig::refeeds)
  };

  // The step's batch, and for each of its rows the request and the tokens it feeds.
  struct Step {
    PackedBatch batch;
    std::vector<Request*> requests;  // [batch rows]
  };

  Scheduler(BlockManager<Cache> blocks, Options options) : blocks_(std::move(blocks)), options_(options) {}

  Cache& cache() { return blocks_.cache(); }
  const BlockManager<Cache>& blocks() const { return blocks_; }

  void enqueue(std::unique_ptr<Request> request) { waiting_.push_back(std::move(request)); }
  std::size_t waiting() const { return waiting_.size(); }
  std::size_t running() const { return running_.size(); }
  bool empty() const { return waiting_.empty() && running_.empty(); }

  // Takes out the requests for which `leaves` is true: the waiting ones first (they hold no row),
  // then the running ones, whose rows go back (kept as prefixes where the options allow).
  template <class Pred>
  std::vector<std::unique_ptr<Request>> take_if(Pred leaves) {
    std::vector<std::unique_ptr<Request>> out;
    for (auto& r : waiting_) {
      if (leaves(*r)) out.push_back(std::move(r));
    }
    std::erase_if(waiting_, [](const auto& r) { return !r; });
    for (auto& r : running_) {
      if (leaves(*r)) {
        release(*r);
        out.push_back(std::move(r));
      }
    }
    std::erase_if(running_, [](const auto& r) { return !r; });
    return out;
  }

  // Every request still here (waiting, then running), their rows given back without keeping.
  std::vector<std::unique_ptr<Request>> take_all() {
    std::vector<std::unique_ptr<Request>> out;
    for (auto& r : waiting_) out.push_back(std::move(r));
    for (auto& r : running_) out.push_back(std::move(r));
    waiting_.clear();
    running_.clear();
    return out;
  }

  // Admits waiting requests in arrival order while they fit. `start(request)` prepares each one
  // once it has its row and returns false when it is already over (it then gave its row back).
  template <class Start>
  void admit(Start start) {
    while (!waiting_.empty() && running_.size() < options_.max_running) {
      Request& r = *waiting_.front();
      ScheduleState& s = r.schedule;
      if (!blocks_.can_admit(s.reservation)) return;  // waits for room
      s.history = s.prompt;
      const bool reuse = options_.reuse_prefixes && s.max_new_tokens > 0;  // it will compute something
      const auto a = blocks_.allocate(s.reservation, reuse ? std::span<const std::int32_t>(s.prompt)
                                                           : std::span<const std::int32_t>());
      s.row = a.row;
      s.prefilled = s.reused = a.reused;
      if (start(r)) running_.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
  }

  // The next step's batch (empty when nothing runs).
  Step plan() {
    std::vector<Request*> prefilling;
    for (auto& r : running_) {
      if (r->schedule.prefilling()) prefilling.push_back(r.get());
    }
    std::stable_sort(prefilling.begin(), prefilling.end(), [](const Request* a, const Request* b) {
      return a->schedule.prompt.size() - a->schedule.prefilled < b->schedule.prompt.size() - b->schedule.prefilled;
    });
    std::size_t budget = options_.prefill_chunk;
    for (Request* r : prefilling) {
      ScheduleState& s = r->schedule;
      s.chunk = std::min(budget, s.prompt.size() - s.prefilled);
      budget -= s.chunk;
    }
    Step step;
    for (auto& running : running_) {
      ScheduleState& s = running->schedule;
      if (!s.prefilling() && options_.refeed_past > 0 && s.history.size() - 1 <= options_.refeed_past &&
          s.history.size() > options_.refeed_past) {
        blocks_.restart(*s.row);
        step.batch.add_row(*s.row, s.history);
      } else if (!s.prefilling()) {
        step.batch.add_row(*s.row, s.history.back());
      } else if (s.chunk > 0) {
        step.batch.add_row(*s.row, std::span<const std::int32_t>(s.prompt).subspan(s.prefilled, s.chunk));
        step.batch.prefill_ends.resize(step.batch.rows() - 1, 0);
        step.batch.prefill_ends.push_back(s.prompt.size());
      } else {
        continue;
      }
      step.requests.push_back(running.get());
    }
    if (!step.batch.prefill_ends.empty()) step.batch.prefill_ends.resize(step.batch.rows(), 0);
    return step;
  }

  // After the step's forward pass: records what each row cached. Returns the batch rows whose
  // request now chooses a token (it decodes, or its prompt's last chunk went in).
  std::vector<std::size_t> complete(const Step& step) {
    std::vector<std::size_t> choosing;
    for (std::size_t i = 0; i < step.requests.size(); ++i) {
      ScheduleState& s = step.requests[i]->schedule;
      const std::span<const std::int32_t> fed(step.batch.tokens.data() + step.batch.row_offsets[i], step.batch.row_length(i));
      blocks_.append(*s.row, fed);
      if (s.prefilling()) {
        s.prefilled += fed.size();
        if (s.prefilling()) continue;  // its prompt goes on in the next step
      }
      choosing.push_back(i);
    }
    return choosing;
  }

  // A finished request gives its row back (kept as a prefix where the options allow).
  void release(Request& r) {
    if (!r.schedule.row) return;
    blocks_.release(*r.schedule.row, options_.reuse_prefixes);
    r.schedule.row.reset();
  }

  // A request whose row cannot be trusted (its step failed) gives it back, never kept.
  void free(Request& r) {
    if (!r.schedule.row) return;
    blocks_.free(*r.schedule.row);
    r.schedule.row.reset();
  }

  // Drops the requests `gone` says are over from the running set.
  template <class Pred>
  void forget_if(Pred gone) {
    std::erase_if(running_, [&](const auto& r) { return !r || gone(*r); });
  }

  void clear_retained() { blocks_.clear_retained(); }

 private:
  BlockManager<Cache> blocks_;
  Options options_;
  std::deque<std::unique_ptr<Request>> waiting_;
  std::vector<std::unique_ptr<Request>> running_;  // in admission order
};

}  // namespace maskgen

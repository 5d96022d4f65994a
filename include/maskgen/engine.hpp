#pragma once
// Engine: continuous batching. Requests are submitted one by one from any thread, each with its
// own GenerationConfig; a request joins the running batch at the next step and leaves the step it
// finishes. Prompts are prefilled in chunks of at most EngineOptions::prefill_chunk tokens per
// step (the prompts with the fewest tokens left first), so a long prompt does not stall the
// others' decoding nor a newcomer's first token.
//
// Every request's tokens are bitwise those generate() gives the same prompt and config alone
// (greedy, or sampling with the request's own seed), whatever else runs, whenever it arrived and
// however its prompt was chunked: a token's keys and values, and a row's logits, do not depend on
// the other rows of a step nor on how many of a row's tokens a step holds (DESIGN 2.7).
//
//   maskgen::Engine engine(model, tokenizer);
//   auto handle = engine.submit("Once upon a time", {.max_new_tokens = 64},
//                               {.on_text = [](std::string_view piece) { std::cout << piece; }});
//   const maskgen::RequestResult& result = handle.wait();
//
// Memory: the keys and values held for all requests together are bounded by
// EngineOptions::max_cached_tokens. A request is admitted only when its prompt plus
// max_new_tokens fits in what is free, so a running request never runs out; until then it waits
// in arrival order. A finished request gives its rows back at once, but its keys and values stay
// as a reusable prefix until their room is needed (Stats::retained_tokens).
//
// Shared prefixes: a new request whose prompt starts with tokens another request (running or
// retained) holds copies those tokens' keys and values instead of computing them again.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "error.hpp"
#include "generate.hpp"
#include "tokenizer.hpp"

namespace maskgen {

struct EngineOptions {
  // Keys and values held for all requests together, in tokens (0: 8 full contexts of the model).
  std::size_t max_cached_tokens = 0;
  std::size_t max_running = 32;  // requests decoded together at most
  // Prompt tokens prefilled per step, over all requests. A step cannot be interrupted, so a
  // request that arrives waits for the step in flight: 16 keeps every step close to a decode
  // step, and a short prompt arriving during a long prefill gets its first token in 1.8x the time
  // it takes on an idle engine (110M model, 2 cores; 256: 24x). The price: a long prompt alone
  // prefills about 1.5x slower (1500 tokens: 5.1 s against 3.2 s at 256) and 16 busy clients get
  // about 15% fewer tokens/s. Raise it for batch work where first-token latency matters less
  // (bench/RESULTS.md, "Continuous batching").
  std::size_t prefill_chunk = 16;
  bool reuse_prefixes = true;  // copy a shared prompt prefix's keys and values from another request
  int num_threads = 0;         // threads for the forward pass; 0 uses every core
};

// What a finished request produced.
struct RequestResult {
  std::vector<std::int32_t> tokens;  // the new tokens (an ending EOS included, as generate())
  std::string text;                  // their text, special tokens skipped, cut before a stop string
  FinishReason finish_reason = FinishReason::Length;
  std::size_t prompt_tokens = 0;
  std::size_t reused_prompt_tokens = 0;  // prompt tokens whose keys and values were copied, not computed
  double seconds_to_first_token = 0;     // from submit() to the first new token
  double seconds = 0;                    // from submit() to the end
};

// Called on the engine's thread, in order, for one request; keep them short.
struct RequestCallbacks {
  std::function<void(std::int32_t token)> on_token{};      // each new token
  std::function<void(std::string_view text)> on_text{};    // new complete characters (never inside a stop string)
  std::function<void(const RequestResult&)> on_finish{};  // once, before wait() returns
};

// A request's settings besides the prompt.
struct RequestOptions {
  std::vector<std::string> stop{};  // the request ends once its text contains one (text cut before it)
};

namespace detail {
struct RequestState {
  std::promise<RequestResult> promise;
  std::shared_future<RequestResult> future = promise.get_future().share();
  std::atomic<bool> cancelled{false};
  std::atomic<bool> finished{false};
};
}  // namespace detail

// A submitted request: wait for its result, or cancel it. Copies refer to the same request.
class RequestHandle {
 public:
  RequestHandle() = default;
  explicit RequestHandle(std::shared_ptr<detail::RequestState> state) : state_(std::move(state)) {}

  // Blocks until the request is finished; rethrows what made it fail.
  const RequestResult& wait() const { return state().future.get(); }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) const {
    return state().future.wait_for(d) == std::future_status::ready;
  }
  bool done() const { return state().finished.load(); }
  // Ends the request before its next step (FinishReason::Cancel); nothing if it is over.
  void cancel() const { state().cancelled.store(true); }

 private:
  detail::RequestState& state() const {
    if (!state_) throw argument_error("RequestHandle: an empty handle (default-constructed)");
    return *state_;
  }
  std::shared_ptr<detail::RequestState> state_;
};

template <CausalLM M, TokenizerBackend Backend = AnyTokenizerBackend>
class Engine {
 public:
  using Scalar = typename M::scalar_type;

  // What the engine holds now.
  struct Stats {
    std::size_t waiting = 0;          // submitted, not yet admitted
    std::size_t running = 0;          // admitted, prefilling or decoding
    std::size_t reserved_tokens = 0;  // cache room promised to running requests
    std::size_t cached_tokens = 0;    // keys and values held for running requests
    std::size_t retained_tokens = 0;  // keys and values of finished requests kept as reusable prefixes
    std::size_t max_cached_tokens = 0;
    std::uint64_t steps = 0;          // forward passes run
  };

  // `model` and `tokenizer` must outlive the engine.
  Engine(const M& model, const Tokenizer<Backend>& tokenizer, EngineOptions options = {})
      : model_(model), tokenizer_(tokenizer), options_(options), cache_(model.make_cache(0)) {
    const auto context = static_cast<std::size_t>(model.config().max_position_embeddings);
    if (options_.max_cached_tokens == 0) options_.max_cached_tokens = 8 * context;
    stats_.max_cached_tokens = options_.max_cached_tokens;
    if (options_.max_running == 0) throw argument_error("EngineOptions::max_running must be > 0");
    if (options_.prefill_chunk == 0) throw argument_error("EngineOptions::prefill_chunk must be > 0");
    threads_ = detail::resolve_thread_count(options_.num_threads, "EngineOptions::num_threads");
    // Rows for the running requests and as many retained prefixes.
    cache_ = model.make_cache(2 * options_.max_running);
    for (std::size_t r = cache_.rows(); r-- > 0;) free_rows_.push_back(r);
    worker_ = std::thread([this] { loop(); });
  }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Cancels what is still running or waiting and stops the engine's thread.
  ~Engine() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  // Queues a request; it joins the batch at the next step. Throws argument_error at once for a
  // request that can never run (empty prompt, ids outside the vocabulary, a prompt longer than the
  // context, beam search, a reservation larger than the whole cache); thread-safe.
  RequestHandle submit(std::vector<std::int32_t> prompt, const GenerationConfig& config, RequestOptions request = {},
                       RequestCallbacks callbacks = {}) {
    auto job = std::make_unique<Job>();
    job->prompt = std::move(prompt);
    job->config = config;
    job->stop = std::move(request.stop);
    job->callbacks = std::move(callbacks);
    validate(*job);
    job->state = std::make_shared<detail::RequestState>();
    job->submitted = std::chrono::steady_clock::now();
    RequestHandle handle(job->state);
    {
      std::lock_guard lock(mutex_);
      if (stopping_) throw argument_error("Engine::submit: the engine is shutting down");
      incoming_.push_back(std::move(job));
    }
    wake_.notify_all();
    return handle;
  }

  // A text prompt, encoded with the tokenizer's defaults (BOS as it adds it).
  RequestHandle submit(std::string_view prompt, const GenerationConfig& config, RequestOptions request = {},
                       RequestCallbacks callbacks = {}) {
    return submit(tokenizer_.encode(prompt), config, std::move(request), std::move(callbacks));
  }

  Stats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  // Blocks until nothing is waiting or running.
  void wait_idle() const {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return incoming_.empty() && stats_.waiting == 0 && stats_.running == 0; });
  }

  // Drops the retained prefixes of finished requests (their memory goes back at once).
  void clear_prefix_cache() {
    std::lock_guard lock(mutex_);
    clear_retained_ = true;
    wake_.notify_all();
  }

  const EngineOptions& options() const { return options_; }

 private:
  struct Job {
    std::vector<std::int32_t> prompt;
    GenerationConfig config;
    std::vector<std::string> stop;
    RequestCallbacks callbacks;
    std::shared_ptr<detail::RequestState> state;
    std::chrono::steady_clock::time_point submitted;

    // Set when admitted.
    std::size_t row = 0;
    std::size_t reserved = 0;
    std::size_t prefilled = 0;           // prompt tokens whose keys and values are cached
    std::size_t chunk = 0;               // prompt tokens this step feeds (while prefilling)
    std::vector<std::int32_t> history;   // prompt, then new tokens
    std::vector<std::int32_t> eos;
    std::optional<RowRandom> random;
    std::optional<LogitsProcessorChain<Scalar>> processors;
    std::optional<DecodeStream<Backend>> stream;
    std::string text;     // all text so far
    std::size_t sent = 0;  // bytes of `text` given to on_text
    RequestResult result;
    bool first_token_seen = false;
  };

  // A finished request's cache row, kept for its prefix.
  struct Retained {
    std::size_t row;
    std::vector<std::int32_t> tokens;  // whose keys and values the row holds
  };

  const M& model_;
  const Tokenizer<Backend>& tokenizer_;
  EngineOptions options_;
  int threads_ = 1;
  typename M::cache_type cache_;
  std::vector<std::size_t> free_rows_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  mutable std::condition_variable idle_;
  std::deque<std::unique_ptr<Job>> incoming_;  // guarded by mutex_
  bool stopping_ = false;                      // guarded by mutex_
  bool clear_retained_ = false;                // guarded by mutex_
  Stats stats_;                                // guarded by mutex_ (written by the worker)

  // The worker's own state.
  std::deque<std::unique_ptr<Job>> waiting_;
  std::vector<std::unique_ptr<Job>> running_;  // in admission order
  std::list<Retained> retained_;               // most recently finished first
  std::size_t reserved_ = 0, retained_tokens_ = 0;
  std::uint64_t steps_ = 0;
  std::thread worker_;

  void validate(const Job& job) const {
    const ModelConfig& c = model_.config();
    const GenerationConfig& g = job.config;
    detail::validate_generation(g, 1, false);
    if (g.num_beams != 1) throw argument_error("Engine: num_beams must be 1 (the engine runs greedy search and sampling; use generate() for beam search)");
    if (g.num_return_sequences != 1) throw argument_error("Engine: num_return_sequences must be 1 (submit one request per sequence)");
    if (g.row_seeds.size() > 1) throw argument_error(detail::cat("Engine: row_seeds has ", g.row_seeds.size(), " seeds for one prompt"));
    (void)detail::resolve_eos(g, c);
    if (job.prompt.empty()) throw argument_error("Engine: the prompt has no tokens");
    if (job.prompt.size() > static_cast<std::size_t>(c.max_position_embeddings)) {
      throw argument_error(detail::cat("Engine: the prompt has ", job.prompt.size(), " tokens, more than the model's context of ",
                               c.max_position_embeddings, " (max_position_embeddings)"));
    }
    for (std::size_t i = 0; i < job.prompt.size(); ++i) {
      detail::check_vocabulary_id(job.prompt[i], c.vocab_size, "Engine: prompt[", i, "]");
    }
    for (std::size_t i = 0; i < job.stop.size(); ++i) {
      if (job.stop[i].empty()) throw argument_error(detail::cat("Engine: stop[", i, "] is an empty string"));
    }
    if (reservation(job) > options_.max_cached_tokens) {
      throw argument_error(detail::cat("Engine: the request needs ", reservation(job), " cached tokens (prompt plus max_new_tokens) but the engine holds at most ",
                               options_.max_cached_tokens, " (EngineOptions::max_cached_tokens)"));
    }
  }

  std::size_t reservation(const Job& job) const {
    const auto context = static_cast<std::size_t>(model_.config().max_position_embeddings);
    return std::min(job.prompt.size() + static_cast<std::size_t>(job.config.max_new_tokens), context);
  }

  // ---- the worker ----

  void loop() {
    while (true) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || clear_retained_ || !incoming_.empty() || !running_.empty() || !waiting_.empty(); });
        if (stopping_) break;
        while (!incoming_.empty()) {
          waiting_.push_back(std::move(incoming_.front()));
          incoming_.pop_front();
        }
        stats_.waiting = waiting_.size();  // so that wait_idle() never sees a request in neither place
        if (clear_retained_) {
          clear_retained_ = false;
          while (!retained_.empty()) drop_oldest_retained();
        }
      }
      step();
      publish_stats();
    }
    // Shutting down: everything still here ends as cancelled.
    std::deque<std::unique_ptr<Job>> rest;
    {
      std::lock_guard lock(mutex_);
      rest = std::move(incoming_);
    }
    for (auto& job : waiting_) rest.push_back(std::move(job));
    for (auto& job : running_) rest.push_back(std::move(job));
    waiting_.clear();
    running_.clear();
    for (auto& job : rest) finish(*job, FinishReason::Cancel, /*release=*/false);
  }

  void publish_stats() {
    std::size_t cached = 0;
    for (const auto& job : running_) cached += cache_.length(job->row);
    std::lock_guard lock(mutex_);
    stats_.waiting = waiting_.size();
    stats_.running = running_.size();
    stats_.reserved_tokens = reserved_;
    stats_.cached_tokens = cached;
    stats_.retained_tokens = retained_tokens_;
    stats_.max_cached_tokens = options_.max_cached_tokens;
    stats_.steps = steps_;
    if (incoming_.empty() && waiting_.empty() && running_.empty()) idle_.notify_all();
  }

  void step() {
    // Cancelled requests leave before anything is computed for them.
    for (auto& job : waiting_) {
      if (job && job->state->cancelled) {
        finish(*job, FinishReason::Cancel, false);
        job.reset();
      }
    }
    std::erase_if(waiting_, [](const auto& j) { return !j; });
    for (auto& job : running_) {
      if (job->state->cancelled) {
        finish(*job, FinishReason::Cancel, true);
        job.reset();
      }
    }
    std::erase_if(running_, [](const auto& j) { return !j; });
    admit();
    if (running_.empty()) return;

    // The step's batch: every decoding request's last token, then prompt chunks within the
    // budget, the prompts with the fewest tokens left first (ties: the earlier request). So a short
    // prompt arriving during a long one's prefill gets its first token after a step or two, not
    // after the long prompt; the long one takes what the budget leaves.
    std::vector<Job*> prefilling;
    for (auto& job : running_) {
      if (job->prefilled < job->prompt.size()) prefilling.push_back(job.get());
    }
    std::stable_sort(prefilling.begin(), prefilling.end(), [](const Job* a, const Job* b) {
      return a->prompt.size() - a->prefilled < b->prompt.size() - b->prefilled;
    });
    std::size_t budget = options_.prefill_chunk;
    for (Job* job : prefilling) {
      job->chunk = std::min(budget, job->prompt.size() - job->prefilled);
      budget -= job->chunk;
    }
    PackedBatch batch;
    std::vector<Job*> rows;
    std::vector<std::size_t> fed;  // tokens each row of the batch feeds
    for (auto& running : running_) {
      Job* job = running.get();
      const bool decoding = job->prefilled == job->prompt.size();
      std::size_t count = 0;
      if (decoding) {
        count = 1;
        batch.add_row(job->row, job->history.back());
      } else {
        count = job->chunk;
        if (count == 0) continue;
        batch.add_row(job->row, std::span<const std::int32_t>(job->prompt).subspan(job->prefilled, count));
      }
      rows.push_back(job);
      fed.push_back(count);
    }

    ops::Matrix<Scalar> logits;
    try {
      logits = model_.forward_packed(batch, cache_, ForwardOptions{LogitsFor::Last, threads_});
    } catch (...) {
      fail_running(std::current_exception());
      return;
    }
    ++steps_;

    const auto vocab = static_cast<std::size_t>(model_.config().vocab_size);
    const auto context = static_cast<std::size_t>(model_.config().max_position_embeddings);
    std::vector<Scalar> scores(vocab);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      Job& job = *rows[i];
      if (job.prefilled < job.prompt.size()) {
        job.prefilled += fed[i];
        if (job.prefilled < job.prompt.size()) continue;  // its prompt goes on in the next step
      }
      // The row's next token, from its own logits and history only (as generate()'s search).
      std::int32_t token = 0;
      try {
        token = detail::choose_token(logits.row(static_cast<Eigen::Index>(i)), scores, *job.processors,
                                     RowHistory{job.history, job.prompt.size()}, job.config.do_sample, *job.random);
      } catch (...) {
        fail(job, std::current_exception());
        continue;
      }
      job.result.tokens.push_back(token);
      job.history.push_back(token);
      if (!job.first_token_seen) {
        job.first_token_seen = true;
        job.result.seconds_to_first_token = seconds_since(job.submitted);
      }
      std::optional<FinishReason> reason =
          detail::finish_reason(token, job.eos, job.result.tokens.size(), static_cast<std::size_t>(job.config.max_new_tokens),
                                job.history.size(), context);
      try {
        if (deliver(job, token, reason.has_value()) && !reason) reason = FinishReason::Stop;
      } catch (...) {
        fail(job, std::current_exception());
        continue;
      }
      if (reason) finish(job, *reason, true);
    }
    std::erase_if(running_, [](const auto& j) { return !j || j->state->finished; });
  }

  // Admits waiting requests in arrival order while they fit, reusing shared prefixes.
  void admit() {
    while (!waiting_.empty() && running_.size() < options_.max_running) {
      Job& job = *waiting_.front();
      const std::size_t need = reservation(job);
      while (reserved_ + retained_tokens_ + need > options_.max_cached_tokens && !retained_.empty()) drop_oldest_retained();
      if (reserved_ + retained_tokens_ + need > options_.max_cached_tokens) return;  // waits for room
      if (free_rows_.empty() && !retained_.empty()) drop_oldest_retained();
      job.row = free_rows_.back();
      free_rows_.pop_back();
      job.reserved = need;
      reserved_ += need;
      start(job);
      if (!job.state->finished) running_.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
  }

  void start(Job& job) {
    job.history = job.prompt;
    job.eos = detail::resolve_eos(job.config, model_.config());
    job.processors.emplace(detail::make_processors<Scalar>(job.config, job.eos));
    if (job.config.do_sample) {
      job.random.emplace(job.config.row_seeds.empty() ? mix_seed(job.config.seed, 0) : job.config.row_seeds[0]);
    }
    job.stream.emplace(tokenizer_);
    job.result.prompt_tokens = job.prompt.size();
    if (job.config.max_new_tokens == 0) {  // as generate(): nothing to compute
      job.prefilled = job.prompt.size();
      finish(job, FinishReason::Length, true);
      return;
    }
    if (options_.reuse_prefixes) reuse_prefix(job);
  }

  // Copies the longest prefix of the prompt that a running or retained row holds (at most all
  // but the prompt's last token, whose logits are needed).
  void reuse_prefix(Job& job) {
    const std::size_t limit = job.prompt.size() - 1;
    std::size_t best = 0, donor = 0;
    bool from_retained = false;
    typename std::list<Retained>::iterator donor_retained;
    auto common = [&](std::span<const std::int32_t> tokens, std::size_t held) {
      const std::size_t n = std::min({tokens.size(), held, limit});
      std::size_t k = 0;
      while (k < n && tokens[k] == job.prompt[k]) ++k;
      return k;
    };
    for (const auto& other : running_) {
      const std::size_t k = common(other->history, cache_.length(other->row));
      if (k > best) best = k, donor = other->row, from_retained = false;
    }
    for (auto it = retained_.begin(); it != retained_.end(); ++it) {
      const std::size_t k = common(it->tokens, cache_.length(it->row));
      if (k > best) best = k, donor = it->row, from_retained = true, donor_retained = it;
    }
    if (best == 0) return;
    cache_.copy_prefix(donor, job.row, best);
    job.prefilled = best;
    job.result.reused_prompt_tokens = best;
    if (from_retained) retained_.splice(retained_.begin(), retained_, donor_retained);  // recently used
  }

  // Streams a new token's text; true when a stop string has appeared (the text is cut before it).
  bool deliver(Job& job, std::int32_t token, bool last) {
    if (job.callbacks.on_token) job.callbacks.on_token(token);
    job.text += job.stream->put(token);
    if (last) job.text += job.stream->finish();
    bool stopped = false;
    std::size_t safe = job.text.size();  // bytes that can be sent: none can start a stop string
    for (const std::string& s : job.stop) {
      const std::size_t from = job.sent >= s.size() ? job.sent - s.size() + 1 : 0;
      const std::size_t at = job.text.find(s, from);
      if (at != std::string::npos) {
        stopped = true;
        safe = std::min(safe, at);
        continue;
      }
      // Hold back a tail that may be the start of `s`.
      for (std::size_t k = std::min(s.size() - 1, job.text.size()); k > 0; --k) {
        if (job.text.compare(job.text.size() - k, k, s, 0, k) == 0) {
          safe = std::min(safe, job.text.size() - k);
          break;
        }
      }
    }
    if (stopped) job.text.resize(safe);
    else if (last) safe = job.text.size();
    if (safe > job.sent && job.callbacks.on_text) job.callbacks.on_text(std::string_view(job.text).substr(job.sent, safe - job.sent));
    job.sent = std::max(job.sent, safe);
    return stopped;
  }

  void finish(Job& job, FinishReason reason, bool release) {
    if (job.state->finished) return;
    if (release) release_row(job);
    if (reason != FinishReason::Stop && job.stream && job.sent < job.text.size() && job.callbacks.on_text) {
      try {
        job.callbacks.on_text(std::string_view(job.text).substr(job.sent));
      } catch (...) {
      }
    }
    job.result.text = job.text;
    job.result.finish_reason = reason;
    job.result.seconds = seconds_since(job.submitted);
    try {
      if (job.callbacks.on_finish) job.callbacks.on_finish(job.result);
    } catch (...) {
    }
    job.state->finished = true;
    job.state->promise.set_value(std::move(job.result));
  }

  void fail(Job& job, std::exception_ptr error) {
    if (job.state->finished) return;
    if (job.reserved != 0) {  // the row may hold half a step: never kept as a prefix
      reserved_ -= job.reserved;
      job.reserved = 0;
      cache_.release(job.row);
      free_rows_.push_back(job.row);
    }
    job.state->finished = true;
    job.state->promise.set_exception(error);
  }

  void fail_running(std::exception_ptr error) {
    for (auto& job : running_) fail(*job, error);
    running_.clear();
  }

  // Gives the request's reservation back; its row stays as a reusable prefix when it holds one.
  void release_row(Job& job) {
    if (job.reserved == 0) return;
    reserved_ -= job.reserved;
    job.reserved = 0;
    const std::size_t held = cache_.length(job.row);
    if (options_.reuse_prefixes && held > 0 && reserved_ + retained_tokens_ + held <= options_.max_cached_tokens) {
      std::vector<std::int32_t> tokens(job.history.begin(), job.history.begin() + static_cast<std::ptrdiff_t>(held));
      retained_.push_front(Retained{job.row, std::move(tokens)});
      retained_tokens_ += held;
      while (retained_.size() > options_.max_running) drop_oldest_retained();
    } else {
      cache_.release(job.row);
      free_rows_.push_back(job.row);
    }
  }

  void drop_oldest_retained() {
    const Retained& r = retained_.back();
    retained_tokens_ -= cache_.length(r.row);
    cache_.release(r.row);
    free_rows_.push_back(r.row);
    retained_.pop_back();
  }

  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }
};

}  // namespace maskgen

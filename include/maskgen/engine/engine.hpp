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
// Log-probabilities: a request that sets RequestOptions::logprobs gets, for every new token, its
// raw log-probability (log_softmax of the model's logits, before the processors; see
// generation/logprobs.hpp) and the k most likely alternatives, in RequestResult::logprobs and
// through RequestCallbacks::on_logprobs. Like the tokens, they are bitwise those of the request
// alone.
//
// Memory: the keys and values held for all requests together are bounded by
// EngineOptions::max_cached_tokens. A request is admitted only when its prompt plus
// max_new_tokens fits in what is free, so a running request never runs out; until then it waits
// in arrival order. A finished request gives its rows back at once, but its keys and values stay
// as a reusable prefix until their room is needed (Stats::retained_tokens).
//
// Shared prefixes: a new request whose prompt starts with tokens another request (running or
// retained) holds copies those tokens' keys and values instead of computing them again.
//
// The parts: the engine (this file) owns the thread, submit() and the handles, and turns each
// step's logits into tokens (generation/step.hpp, as generate() does) and text
// (engine/text_output.hpp); the scheduler (engine/scheduler.hpp) decides each step's batch; the
// block manager (kv/block_manager.hpp) keeps the cache's books.

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

#include "../error.hpp"
#include "../generate.hpp"
#include "../generation/logprobs.hpp"
#include "../kv/block_manager.hpp"
#include "../tokenizer.hpp"
#include "scheduler.hpp"
#include "text_output.hpp"

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
  // [tokens] logprobs[i] is tokens[i]'s (generation/logprobs.hpp); empty unless RequestOptions::logprobs >= 0
  std::vector<TokenLogprobs> logprobs;
  std::string text;                  // their text in the prompt's context (engine/text_output.hpp), cut before a stop string
  FinishReason finish_reason = FinishReason::Length;
  std::size_t prompt_tokens = 0;
  std::size_t reused_prompt_tokens = 0;  // prompt tokens whose keys and values were copied, not computed
  double seconds_to_first_token = 0;     // from submit() to the first new token
  double seconds = 0;                    // from submit() to the end
};

// Called on the engine's thread, in order, for one request; keep them short.
struct RequestCallbacks {
  std::function<void(std::int32_t token)> on_token{};      // each new token
  std::function<void(const TokenLogprobs&)> on_logprobs{};  // its logprobs, right after on_token (RequestOptions::logprobs >= 0)
  std::function<void(std::string_view text)> on_text{};    // new complete characters (never inside a stop string)
  std::function<void(const RequestResult&)> on_finish{};  // once, before wait() returns
  // Instead of on_finish when the request fails (wait() rethrows the same error).
  std::function<void(std::exception_ptr)> on_error{};
};

// A request's settings besides the prompt.
struct RequestOptions {
  std::vector<std::string> stop{};  // the request ends once its text contains one (text cut before it)
  // Log-probabilities of the new tokens (OpenAI's logprobs and top_logprobs): -1 none; 0 the
  // chosen token's; k in [1, 20] also the k most likely tokens.
  int logprobs = -1;
  bool skip_special_tokens = true;  // special tokens are left out of the text (an ending EOS always is)
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

  // Blocks until the request is finished; rethrows what made it fail. On a temporary handle
  // (`engine.submit(...).wait()`) the result is returned by value: the handle may hold the last
  // reference to it.
  const RequestResult& wait() const& { return state().future.get(); }
  RequestResult wait() const&& { return state().future.get(); }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) const {
    return state().future.wait_for(d) == std::future_status::ready;
  }
  bool done() const { return state().finished.load(); }
  bool valid() const { return state_ != nullptr; }  // false for a default-constructed handle
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
      : model_(model), tokenizer_(tokenizer), options_(checked(options, model)),
        threads_(detail::resolve_thread_count(options_.num_threads, "EngineOptions::num_threads")),
        // Rows for the running requests and as many retained prefixes.
        scheduler_(BlockManager<Cache>(model.make_cache(2 * options_.max_running), options_.max_cached_tokens,
                                       options_.max_running),
                   {options_.max_running, options_.prefill_chunk, options_.reuse_prefixes,
                    model.config().rope.type == RopeType::LongRope
                        ? static_cast<std::size_t>(model.config().rope.original_max_position_embeddings)
                        : 0}) {
    stats_.max_cached_tokens = options_.max_cached_tokens;
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
    job->schedule.prompt = std::move(prompt);
    job->schedule.max_new_tokens = static_cast<std::size_t>(std::max(config.max_new_tokens, 0));
    job->sampling.config = config;
    job->stop = std::move(request.stop);
    job->logprobs = request.logprobs;
    job->skip_special_tokens = request.skip_special_tokens;
    job->callbacks = std::move(callbacks);
    validate(*job);
    job->schedule.reservation = reservation(*job);
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
  using Cache = typename M::cache_type;

  // How a request chooses its tokens.
  struct SamplingState {
    GenerationConfig config;
    std::vector<std::int32_t> eos;
    std::optional<RowRandom> random;
    std::optional<LogitsProcessorChain<Scalar>> processors;
  };

  // A request: its place in the schedule, its sampling, its text, and what it reports.
  struct Job {
    ScheduleState schedule;
    SamplingState sampling;
    std::vector<std::string> stop;
    int logprobs = -1;                          // RequestOptions::logprobs
    bool skip_special_tokens = true;
    std::optional<TextOutput<Backend>> output;  // from admission
    RequestCallbacks callbacks;
    std::shared_ptr<detail::RequestState> state;
    std::chrono::steady_clock::time_point submitted;
    RequestResult result;
    bool first_token_seen = false;
  };

  static EngineOptions checked(EngineOptions options, const M& model) {
    const auto context = static_cast<std::size_t>(model.config().max_position_embeddings);
    if (options.max_cached_tokens == 0) options.max_cached_tokens = 8 * context;
    if (options.max_running == 0) throw argument_error("EngineOptions::max_running must be > 0");
    if (options.prefill_chunk == 0) throw argument_error("EngineOptions::prefill_chunk must be > 0");
    // A LongRoPE row's keys turn by the short or the long factors depending on its prompt's
    // length, so another request's copy of the same tokens may hold other keys: never shared.
    if (model.config().rope.type == RopeType::LongRope) options.reuse_prefixes = false;
    return options;
  }

  const M& model_;
  const Tokenizer<Backend>& tokenizer_;
  EngineOptions options_;
  int threads_ = 1;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  mutable std::condition_variable idle_;
  std::deque<std::unique_ptr<Job>> incoming_;  // guarded by mutex_
  bool stopping_ = false;                      // guarded by mutex_
  bool clear_retained_ = false;                // guarded by mutex_
  Stats stats_;                                // guarded by mutex_ (written by the worker)

  // The worker's own state.
  Scheduler<Job, Cache> scheduler_;
  std::uint64_t steps_ = 0;
  std::thread worker_;

  void validate(const Job& job) const {
    const ModelConfig& c = model_.config();
    const GenerationConfig& g = job.sampling.config;
    const std::vector<std::int32_t>& prompt = job.schedule.prompt;
    step::validate_generation(g, 1, false);
    step::check_logit_bias(g, c.vocab_size);
    if (g.num_beams != 1) throw argument_error("Engine: num_beams must be 1 (the engine runs greedy search and sampling; use generate() for beam search)");
    if (g.num_return_sequences != 1) throw argument_error("Engine: num_return_sequences must be 1 (submit one request per sequence)");
    if (g.row_seeds.size() > 1) throw argument_error(detail::cat("Engine: row_seeds has ", g.row_seeds.size(), " seeds for one prompt"));
    (void)step::resolve_eos(g, c);
    if (prompt.empty()) throw argument_error("Engine: the prompt has no tokens");
    if (prompt.size() > static_cast<std::size_t>(c.max_position_embeddings)) {
      throw argument_error(detail::cat("Engine: the prompt has ", prompt.size(), " tokens, more than the model's context of ",
                               c.max_position_embeddings, " (max_position_embeddings)"));
    }
    for (std::size_t i = 0; i < prompt.size(); ++i) {
      detail::check_vocabulary_id(prompt[i], c.vocab_size, "Engine: prompt[", i, "]");
    }
    if (job.logprobs < -1 || job.logprobs > 20) {
      throw argument_error(detail::cat("Engine: RequestOptions::logprobs must be in [-1, 20] (-1: none), got ", job.logprobs));
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
    return std::min(job.schedule.prompt.size() + job.schedule.max_new_tokens, context);
  }

  // ---- the worker ----

  void loop() {
    while (true) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || clear_retained_ || !incoming_.empty() || !scheduler_.empty(); });
        if (stopping_) break;
        while (!incoming_.empty()) {
          scheduler_.enqueue(std::move(incoming_.front()));
          incoming_.pop_front();
        }
        stats_.waiting = scheduler_.waiting();  // so that wait_idle() never sees a request in neither place
        if (clear_retained_) {
          clear_retained_ = false;
          scheduler_.clear_retained();
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
    for (auto& job : scheduler_.take_all()) rest.push_back(std::move(job));
    for (auto& job : rest) finish(*job, FinishReason::Cancel);
  }

  void publish_stats() {
    const BlockManager<Cache>& blocks = scheduler_.blocks();
    std::lock_guard lock(mutex_);
    stats_.waiting = scheduler_.waiting();
    stats_.running = scheduler_.running();
    stats_.reserved_tokens = blocks.reserved_tokens();
    stats_.cached_tokens = blocks.cached_tokens();
    stats_.retained_tokens = blocks.retained_tokens();
    stats_.max_cached_tokens = options_.max_cached_tokens;
    stats_.steps = steps_;
    if (incoming_.empty() && scheduler_.empty()) idle_.notify_all();
  }

  void step() {
    // Cancelled requests leave before anything is computed for them.
    for (auto& job : scheduler_.take_if([](const Job& j) { return j.state->cancelled.load(); })) {
      finish(*job, FinishReason::Cancel);
    }
    scheduler_.admit([&](Job& job) { return start(job); });
    auto step = scheduler_.plan();
    if (step.requests.empty()) return;

    ops::Matrix<Scalar> logits;
    try {
      logits = model_.forward_packed(step.batch, scheduler_.cache(), ForwardOptions{LogitsFor::Last, threads_});
    } catch (...) {
      const std::exception_ptr error = std::current_exception();
      scheduler_.forget_if([&](Job& job) {  // every running request fails
        fail(job, error);
        return true;
      });
      return;
    }
    ++steps_;

    const auto vocab = static_cast<std::size_t>(model_.config().vocab_size);
    const auto context = static_cast<std::size_t>(model_.config().max_position_embeddings);
    std::vector<Scalar> scores(vocab);
    for (const std::size_t i : scheduler_.complete(step)) {
      Job& job = *step.requests[i];
      const ScheduleState& s = job.schedule;
      // The row's next token, from its own logits and history only (as generate()'s search).
      const auto row = logits.row(static_cast<Eigen::Index>(i));
      std::int32_t token = 0;
      try {
        token = step::choose_token(row, scores, *job.sampling.processors, RowHistory{s.history, s.prompt.size()},
                                     job.sampling.random ? &*job.sampling.random : nullptr);
      } catch (...) {
        fail(job, std::current_exception());
        continue;
      }
      if (job.logprobs >= 0) {  // from the raw logits, not the processed scores
        job.result.logprobs.push_back(token_logprobs<Scalar>(std::span<const Scalar>(row.data(), vocab), token,
                                                             static_cast<std::size_t>(job.logprobs)));
      }
      job.result.tokens.push_back(token);
      job.schedule.history.push_back(token);
      if (!job.first_token_seen) {
        job.first_token_seen = true;
        job.result.seconds_to_first_token = seconds_since(job.submitted);
      }
      std::optional<FinishReason> reason = step::finish_reason(token, job.sampling.eos, job.result.tokens.size(),
                                                                 s.max_new_tokens, s.history.size(), context);
      try {
        if (deliver(job, token, reason.has_value()) && !reason) reason = FinishReason::Stop;
      } catch (...) {
        fail(job, std::current_exception());
        continue;
      }
      if (reason) finish(job, *reason);
    }
    scheduler_.forget_if([](const Job& job) { return job.state->finished.load(); });
  }

  // Prepares an admitted request (it has its cache row); false when it is over at once.
  bool start(Job& job) {
    SamplingState& s = job.sampling;
    s.eos = step::resolve_eos(s.config, model_.config());
    s.processors.emplace(step::make_processors<Scalar>(s.config, s.eos));
    if (s.config.do_sample) s.random.emplace(s.config.row_seeds.empty() ? mix_seed(s.config.seed, 0) : s.config.row_seeds[0]);
    job.output.emplace(tokenizer_, job.schedule.prompt,
                       TextOutputOptions{job.stop, {.skip_special_tokens = job.skip_special_tokens}, s.eos});
    job.result.prompt_tokens = job.schedule.prompt.size();
    job.result.reused_prompt_tokens = job.schedule.reused;
    if (job.schedule.max_new_tokens == 0) {  // as generate(): nothing to compute
      job.schedule.prefilled = job.schedule.prompt.size();
      finish(job, FinishReason::Length);
      return false;
    }
    return true;
  }

  // Streams a new token's text; true when a stop string has appeared (the text is cut before it).
  bool deliver(Job& job, std::int32_t token, bool last) {
    if (job.callbacks.on_token) job.callbacks.on_token(token);
    if (job.logprobs >= 0 && job.callbacks.on_logprobs) job.callbacks.on_logprobs(job.result.logprobs.back());
    const auto piece = job.output->put(token, last);
    if (!piece.text.empty() && job.callbacks.on_text) job.callbacks.on_text(piece.text);
    return piece.stopped;
  }

  // Ends a request: its row goes back (kept as a prefix where allowed), the text held back for a
  // stop string that never came is sent, and wait() returns.
  void finish(Job& job, FinishReason reason) {
    if (job.state->finished) return;
    scheduler_.release(job);
    if (job.output) {
      const std::string_view rest = job.output->rest();
      if (reason != FinishReason::Stop && !rest.empty() && job.callbacks.on_text) {
        try {
          job.callbacks.on_text(rest);
        } catch (...) {
        }
      }
      job.result.text = job.output->text();
    }
    job.result.finish_reason = reason;
    job.result.seconds = seconds_since(job.submitted);
    try {
      if (job.callbacks.on_finish) job.callbacks.on_finish(job.result);
    } catch (...) {
    }
    job.state->finished = true;
    job.state->promise.set_value(std::move(job.result));
  }

  // Ends a request with an error; its row may hold half a step, so it is never kept as a prefix.
  void fail(Job& job, std::exception_ptr error) {
    if (job.state->finished) return;
    scheduler_.free(job);
    try {
      if (job.callbacks.on_error) job.callbacks.on_error(error);
    } catch (...) {
    }
    job.state->finished = true;
    job.state->promise.set_exception(error);
  }

  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }
};

}  // namespace maskgen

#pragma once
// An OpenAI-style HTTP server over maskgen::Engine (on the event-driven HTTP layer of http.hpp):
//   POST /v1/completions, POST /v1/chat/completions (when the model folder has a chat template),
//   GET /v1/models, GET /metrics (Prometheus), GET /health.
// Streaming answers are server-sent events; a client that disconnects mid-stream cancels its
// request. Every refusal and error carries {"error": {"message", "type", "param", "code"}}.
// With an API key, every endpoint but /health wants `Authorization: Bearer <key>` (401 otherwise).
//
// Each choice is exactly what generate() gives its prompt and settings alone (the engine's
// promise): temperature 0 is greedy; otherwise sampling with temperature, top_p, top_k (0, off,
// unless asked: OpenAI has no top-k) and min_p, seeded by `seed` (choice j uses seed + j; no seed:
// a random one). What the request fields mean, and which are refused: openai_request.hpp.
//
// Chat answers are parsed as the model's template family writes them: tool calls into
// `tool_calls` (Qwen2.5/Qwen3 <tool_call>, Llama 3.1/3.2 JSON, Mistral [TOOL_CALLS]) when the
// request lists tools and tool_choice is not "none", and a <think>...</think> block into
// `reasoning_content` (ServerOptions::reasoning).
//
// Log-probabilities are the model's own (log_softmax of its logits, before penalties, bias and
// temperature), as vLLM reports by default.

#include <maskgen/maskgen.hpp>
#include <maskgen/engine.hpp>
#include <maskgen/chat/reasoning.hpp>
#include <maskgen/chat/tool_calls.hpp>

#include "http.hpp"
#include "metrics.hpp"
#include "openai_request.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace maskgen_server {

using ModelType = maskgen::Model<float>;
using EngineType = maskgen::Engine<ModelType>;

// How a <think>...</think> block in a chat answer is returned.
enum class ReasoningFormat {
  Split,   // in `reasoning_content` (message and stream deltas), as vLLM's and llama-server's parsers
  Inline,  // left in `content`, as the model wrote it
};

struct ServerOptions {
  maskgen::EngineOptions engine{};
  maskgen_http::Limits http{};
  std::string api_key{};  // non-empty: Bearer authentication on every endpoint but /health
  ReasoningFormat reasoning = ReasoningFormat::Split;
  bool access_log = true;  // one line per request through maskgen::log (Info)
};

namespace detail {

inline std::string finish_reason(maskgen::FinishReason r) {
  switch (r) {
    case maskgen::FinishReason::Eos:
    case maskgen::FinishReason::Stop: return "stop";
    case maskgen::FinishReason::Length:
    case maskgen::FinishReason::Context: return "length";
    case maskgen::FinishReason::Cancel: return "cancelled";
  }
  return "stop";
}

// JSON text for the wire; a string that is not UTF-8 (a parse error quoting the body) is repaired.
inline std::string to_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

inline json error_body(const std::string& message, const std::string& type, const std::string& param, int code) {
  return json{{"error", {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)}, {"code", code}}}};
}

inline maskgen_http::Response error_response(int status, const std::string& message, const std::string& type,
                                             const std::string& param = {}) {
  return {status, "application/json", {}, to_text(error_body(message, type, param, status))};
}

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Constant-time comparison of a presented key with the configured one.
inline bool same_key(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0;
}

// Code points in UTF-8 text (continuation bytes are not counted).
inline std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace detail

class OpenAIServer {
 public:
  // Loads the model folder (config.json, safetensors, tokenizer, optional chat template).
  OpenAIServer(const std::filesystem::path& model_dir, ServerOptions options = {})
      : options_(std::move(options)),
        model_name_(std::filesystem::weakly_canonical(model_dir).filename().string()),
        created_(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count()),
        model_(ModelType::load(model_dir)),
        tokenizer_(maskgen::load_tokenizer(model_dir)) {
    const auto config = model_dir / "tokenizer_config.json";
    std::error_code ec;
    if (std::filesystem::exists(config, ec)) {
      try {
        chat_.emplace(maskgen::ChatTemplate::from_tokenizer_config(config));
        tool_format_ = maskgen::detect_tool_call_format(chat_->source());
      } catch (const maskgen::error& e) {
        maskgen::log(maskgen::LogLevel::Warning, std::string("no chat template: ") + e.what());
      }
    }
    parser_.emplace(tokenizer_, chat_ ? &*chat_ : nullptr, model_.config());
    engine_ = std::make_unique<EngineType>(model_, tokenizer_, options_.engine);
    http_ = std::make_unique<maskgen_http::Server>(
        options_.http, [this](std::shared_ptr<maskgen_http::Exchange> ex) { handle(std::move(ex)); },
        [this](const std::string& remote, int status, const std::string& reason) {
          metrics_.request("-", "-", status);
          if (options_.access_log) maskgen::log(maskgen::LogLevel::Info, remote + " refused " + std::to_string(status) + ": " + reason);
        });
  }

  ~OpenAIServer() { stop(); }

  // Binds (port 0: any free port) and serves on threads of its own; returns the port.
  int start(const std::string& host, int port) {
    const int bound = http_->bind(host, port);
    http_->start();
    return bound;
  }

  // Serves on the calling thread until stop(); `on_listening` is told the port once it is bound.
  void run(const std::string& host, int port, const std::function<void(int)>& on_listening = {}) {
    const int bound = http_->bind(host, port);
    if (on_listening) on_listening(bound);
    http_->run();
  }

  void stop() {
    if (http_) http_->stop();
  }

  const EngineType& engine() const { return *engine_; }
  EngineType& engine() { return *engine_; }
  bool has_chat_template() const { return chat_.has_value(); }
  const std::string& model_name() const { return model_name_; }
  maskgen::ToolCallFormat tool_call_format() const { return tool_format_; }

  // The request a body asks for; throws BadRequest. (Public for tests and fuzzing.)
  ParsedRequest parse(const std::string& text, bool chat) const { return parser_->parse(text, chat); }

 private:
  struct Completion;

  ServerOptions options_;
  std::string model_name_;
  std::int64_t created_ = 0;
  ModelType model_;
  maskgen::AutoTokenizer tokenizer_;
  std::optional<maskgen::ChatTemplate> chat_;
  maskgen::ToolCallFormat tool_format_ = maskgen::ToolCallFormat::None;
  std::optional<RequestParser> parser_;
  std::unique_ptr<EngineType> engine_;
  Metrics metrics_;
  std::unique_ptr<maskgen_http::Server> http_;
  std::atomic<std::uint64_t> next_id_{1};

  // ---- routing ----

  void handle(std::shared_ptr<maskgen_http::Exchange> ex) {
    const auto& req = ex->request();
    const auto start = std::chrono::steady_clock::now();
    struct Route {
      const char* path;
      const char* method;
    };
    static constexpr Route routes[] = {{"/health", "GET"}, {"/v1/models", "GET"}, {"/metrics", "GET"},
                                       {"/v1/completions", "POST"}, {"/v1/chat/completions", "POST"}};
    const Route* route = nullptr;
    for (const auto& r : routes) {
      if (req.path == r.path) route = &r;
    }
    auto answer = [&](maskgen_http::Response res) {
      log_request(req, route ? route->path : "other", res.status, start);
      ex->respond(std::move(res));
    };
    if (!route) return answer(detail::error_response(404, "no endpoint " + req.path, "invalid_request_error"));
    if (req.method != route->method) {
      auto res = detail::error_response(405, req.method + " is not allowed on " + req.path + "; use " + route->method,
                                        "invalid_request_error");
      res.headers.emplace_back("Allow", route->method);
      return answer(std::move(res));
    }
    if (!options_.api_key.empty() && req.path != "/health") {
      const auto auth = req.header("Authorization");
      const std::string_view bearer = "Bearer ";
      if (!auth || !auth->starts_with(bearer) || !detail::same_key(auth->substr(bearer.size()), options_.api_key)) {
        auto res = detail::error_response(401, auth ? "the API key is not valid" : "an API key is required: Authorization: Bearer <key>",
                                          "authentication_error");
        res.headers.emplace_back("WWW-Authenticate", "Bearer");
        return answer(std::move(res));
      }
    }
    if (req.path == "/health") {
      const auto s = engine_->stats();
      return answer({200, "application/json", {}, detail::to_text(json{{"status", "ok"}, {"running", s.running}, {"waiting", s.waiting},
                                                                        {"cached_tokens", s.cached_tokens}, {"retained_tokens", s.retained_tokens},
                                                                        {"max_cached_tokens", s.max_cached_tokens}})});
    }
    if (req.path == "/v1/models") {
      const json model{{"id", model_name_}, {"object", "model"}, {"created", created_}, {"owned_by", "maskgen"},
                       {"max_model_len", model_.config().max_position_embeddings}};
      return answer({200, "application/json", {}, detail::to_text(json{{"object", "list"}, {"data", json::array({model})}})});
    }
    if (req.path == "/metrics") {
      const auto s = engine_->stats();
      return answer({200, "text/plain; version=0.0.4; charset=utf-8", {},
                     metrics_.page({s.running, s.waiting, s.cached_tokens, s.retained_tokens, s.max_cached_tokens})});
    }
    const bool chat = req.path == "/v1/chat/completions";
    try {
      start_completion(ex, parse(req.body, chat), chat, start);
    } catch (const BadRequest& e) {
      answer(detail::error_response(e.status, e.message, e.type, e.param));
    } catch (const maskgen::argument_error& e) {
      answer(detail::error_response(400, e.what(), "invalid_request_error"));
    } catch (const std::exception& e) {
      answer(detail::error_response(500, e.what(), "server_error"));
    }
  }

  // One access-log line: who, what, the status, tokens, time to first token, total time, and
  // why generation ended.
  void log_request(const maskgen_http::Request& req, const char* route, int status, std::chrono::steady_clock::time_point start,
                   std::size_t prompt_tokens = 0, std::size_t completion_tokens = 0, double ttft = -1,
                   const std::string& finish = {}) {
    metrics_.request(req.method, route, status);
    if (!options_.access_log) return;
    char line[160];
    std::snprintf(line, sizeof line, " %d prompt_tokens=%zu completion_tokens=%zu ttft=%s total=%.3fs", status, prompt_tokens,
                  completion_tokens, ttft < 0 ? "-" : (std::to_string(ttft).substr(0, 5) + "s").c_str(), detail::seconds_since(start));
    maskgen::log(maskgen::LogLevel::Info, req.remote + " \"" + req.method + " " + req.path + "\"" + line +
                                               (finish.empty() ? "" : " finish=" + finish));
  }

  // ---- completions ----

  // One choice of an answer: its text as it arrives, split into reasoning, content and tool calls.
  struct Choice {
    maskgen::RequestHandle handle;
    std::optional<maskgen::ReasoningParser> reasoning;
    std::optional<maskgen::ToolCallParser> tools;
    std::string text;       // completions: everything; chat: the content
    std::string reasoning_text;
    std::vector<maskgen::ToolCall> calls;
    std::vector<maskgen::TokenLogprobs> logprobs, pending_logprobs;
    std::size_t text_offset = 0;  // completions: characters before the next token's text
    std::optional<std::chrono::steady_clock::time_point> last_token;
    maskgen::RequestResult result;
    bool done = false;
    bool failed = false;
    std::string error;
  };

  // A request in flight: its choices, and the exchange to answer on.
  struct Completion {
    std::shared_ptr<maskgen_http::Exchange> ex;
    ParsedRequest request;
    std::string id;
    std::int64_t created = 0;
    std::chrono::steady_clock::time_point start;
    std::recursive_mutex mutex;  // (on_client_gone may call back at once, under the lock)
    std::vector<Choice> choices;
    int open = 0;  // choices not finished
    bool answered = false;

    void cancel_all() {
      for (auto& c : choices) {
        if (c.handle.valid()) c.handle.cancel();
      }
    }
  };

  void start_completion(const std::shared_ptr<maskgen_http::Exchange>& ex, ParsedRequest r, bool chat,
                        std::chrono::steady_clock::time_point start) {
    auto job = std::make_shared<Completion>();
    job->ex = ex;
    job->id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id_++);
    job->created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    job->start = start;
    job->request = std::move(r);
    const ParsedRequest& q = job->request;
    job->choices.resize(static_cast<std::size_t>(q.n));
    job->open = q.n;
    const bool parse_tools = chat && q.tools && q.tool_choice == ToolChoice::Auto && tool_format_ != maskgen::ToolCallFormat::None;
    const bool split_reasoning = chat && options_.reasoning == ReasoningFormat::Split && chat_ &&
                                 chat_->source().find("<think>") != std::string::npos;
    const bool in_reasoning = split_reasoning && maskgen::prompt_opens_reasoning(q.prompt_text);
    for (auto& c : job->choices) {
      if (split_reasoning) c.reasoning.emplace(maskgen::ReasoningOptions{.starts_in_reasoning = in_reasoning});
      if (parse_tools) c.tools.emplace(tool_format_);
    }
    // Mistral and Llama mark a tool call with a special token ([TOOL_CALLS], <|python_tag|>),
    // which skipping special tokens would drop: a request parsed for their calls keeps them.
    const bool keep_special = parse_tools && tool_format_ != maskgen::ToolCallFormat::Hermes;
    std::lock_guard lock(job->mutex);
    for (int j = 0; j < q.n; ++j) {
      maskgen::GenerationConfig gen = q.gen;
      gen.seed = q.gen.seed + static_cast<std::uint64_t>(j);
      maskgen::RequestCallbacks callbacks;
      callbacks.on_token = [this, job, j](std::int32_t) {
        Choice& c = job->choices[static_cast<std::size_t>(j)];
        const auto now = std::chrono::steady_clock::now();
        if (c.last_token) metrics_.inter_token(std::chrono::duration<double>(now - *c.last_token).count());
        c.last_token = now;
      };
      if (q.logprobs >= 0) {
        callbacks.on_logprobs = [job, j](const maskgen::TokenLogprobs& lp) {
          std::lock_guard lock(job->mutex);
          Choice& c = job->choices[static_cast<std::size_t>(j)];
          c.logprobs.push_back(lp);
          c.pending_logprobs.push_back(lp);
        };
      }
      callbacks.on_text = [this, job, j](std::string_view piece) { on_text(job, j, piece); };
      callbacks.on_finish = [this, job, j](const maskgen::RequestResult& result) { on_finish(job, j, result); };
      callbacks.on_error = [this, job, j](std::exception_ptr error) { on_error(job, j, error); };
      maskgen::RequestOptions request{.stop = q.stop, .logprobs = q.logprobs, .skip_special_tokens = !keep_special};
      try {
        job->choices[static_cast<std::size_t>(j)].handle = engine_->submit(q.prompt, gen, request, std::move(callbacks));
      } catch (...) {
        job->cancel_all();
        job->answered = true;  // the choices submitted so far answer nothing: the caller answers 400
        throw;
      }
    }
    // The client leaving cancels every choice (the engine frees their rows at its next step).
    ex->on_client_gone([weak = std::weak_ptr<Completion>(job)] {
      if (auto j = weak.lock()) {
        std::lock_guard lock(j->mutex);
        j->cancel_all();
      }
    });
    if (!q.stream) return;
    // Every choice is submitted (their callbacks wait for this lock): the stream begins.
    if (!ex->begin_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}})) {
      job->cancel_all();
      job->answered = true;
      return;
    }
    for (int j = 0; j < q.n; ++j) {
      if (chat) send_chunk(*job, j, json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr);
      else if (q.echo) send_chunk(*job, j, json(q.prompt_text), nullptr, nullptr);
    }
  }

  // ---- one choice's text as it arrives (the engine's thread) ----

  void on_text(const std::shared_ptr<Completion>& job, int j, std::string_view piece) {
    std::lock_guard lock(job->mutex);
    if (job->answered) return;
    Choice& c = job->choices[static_cast<std::size_t>(j)];
    if (!job->request.chat) {
      c.text += piece;
      if (job->request.stream) send_chunk(*job, j, json(std::string(piece)), nullptr, take_logprobs(*job, c));
      return;
    }
    split(*job, j, piece, false);
  }

  // Chat text through the reasoning and tool-call parsers; streams what they release.
  void split(Completion& job, int j, std::string_view piece, bool last) {
    Choice& c = job.choices[static_cast<std::size_t>(j)];
    std::string reasoning, content;
    if (c.reasoning) {
      auto d = last ? c.reasoning->finish() : c.reasoning->feed(piece);
      reasoning = std::move(d.reasoning);
      content = std::move(d.content);
    } else {
      content = std::string(piece);
    }
    std::vector<std::pair<std::size_t, maskgen::ToolCall>> calls;
    if (c.tools) {
      auto d = c.tools->feed(content);
      if (last) {
        auto rest = c.tools->finish();
        d.content += rest.content;
        for (auto& call : rest.tool_calls) d.tool_calls.push_back(std::move(call));
      }
      content = std::move(d.content);
      for (auto& indexed : d.tool_calls) {
        if (!job.request.parallel_tool_calls && !c.calls.empty()) continue;  // at most one call
        c.calls.push_back(indexed.call);
        calls.emplace_back(c.calls.size() - 1, std::move(indexed.call));
      }
    }
    c.reasoning_text += reasoning;
    c.text += content;
    if (!job.request.stream) return;
    if (!reasoning.empty()) send_chunk(job, j, json{{"reasoning_content", reasoning}}, nullptr, take_logprobs(job, c));
    if (!content.empty()) send_chunk(job, j, json{{"content", content}}, nullptr, take_logprobs(job, c));
    for (const auto& [index, call] : calls) {
      send_chunk(job, j, json{{"tool_calls", json::array({tool_call_json(call, static_cast<int>(index))})}}, nullptr,
                 take_logprobs(job, c));
    }
  }

  void on_finish(const std::shared_ptr<Completion>& job, int j, const maskgen::RequestResult& result) {
    std::lock_guard lock(job->mutex);
    Choice& c = job->choices[static_cast<std::size_t>(j)];
    c.result = result;
    if (job->request.chat && !job->answered) split(*job, j, {}, true);
    c.done = true;
    metrics_.completion(j == 0 ? result.prompt_tokens : 0, result.tokens.size(), result.seconds_to_first_token, result.seconds);
    if (!job->answered && job->request.stream && result.finish_reason != maskgen::FinishReason::Cancel) {
      send_chunk(*job, j, job->request.chat ? json::object() : json(""), json(finish_reason(c)), take_logprobs(*job, c));
    }
    choice_over(*job);
  }

  void on_error(const std::shared_ptr<Completion>& job, int j, std::exception_ptr error) {
    std::lock_guard lock(job->mutex);
    Choice& c = job->choices[static_cast<std::size_t>(j)];
    c.failed = true;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      c.error = e.what();
    } catch (...) {
      c.error = "internal error";
    }
    maskgen::log(maskgen::LogLevel::Error, job->id + " choice " + std::to_string(j) + " failed: " + c.error);
    if (!job->answered && job->request.stream) {
      // An error event, then the choice's finish chunk: the stream still ends as streams end.
      job->ex->write("data: " + detail::to_text(detail::error_body(c.error, "server_error", "", 500)) + "\n\n");
      send_chunk(*job, j, job->request.chat ? json::object() : json(""), json("error"), take_logprobs(*job, c));
    }
    choice_over(*job);
  }

  // After a choice ended: once all have, the answer (or the stream's end) goes out.
  void choice_over(Completion& job) {
    if (--job.open > 0 || job.answered) return;
    job.answered = true;
    const ParsedRequest& q = job.request;
    std::size_t completion_tokens = 0;
    double ttft = -1;
    std::string finish, error;
    for (const auto& c : job.choices) {
      completion_tokens += c.result.tokens.size();
      if (!c.result.tokens.empty() && (ttft < 0 || c.result.seconds_to_first_token < ttft)) ttft = c.result.seconds_to_first_token;
      if (finish.empty()) finish = c.failed ? "error" : finish_reason(c);
      if (c.failed && error.empty()) error = c.error;
    }
    const char* route = q.chat ? "/v1/chat/completions" : "/v1/completions";
    const json usage{{"prompt_tokens", q.prompt.size()}, {"completion_tokens", completion_tokens},
                     {"total_tokens", q.prompt.size() + completion_tokens}};
    if (q.stream) {
      if (q.include_usage) {
        job.ex->write("data: " + detail::to_text(json{{"id", job.id}, {"object", q.chat ? "chat.completion.chunk" : "text_completion"},
                                                      {"created", job.created}, {"model", model_name_},
                                                      {"choices", json::array()}, {"usage", usage}}) + "\n\n");
      }
      job.ex->write("data: [DONE]\n\n");
      job.ex->end_stream();
      log_request(job.ex->request(), route, job.ex->client_gone() ? 499 : 200, job.start, q.prompt.size(), completion_tokens, ttft,
                  job.ex->client_gone() ? "cancelled" : finish);
      return;
    }
    if (!error.empty()) {
      log_request(job.ex->request(), route, 500, job.start, q.prompt.size(), completion_tokens, ttft, "error");
      job.ex->respond(detail::error_response(500, error, "server_error"));
      return;
    }
    json choices = json::array();
    for (std::size_t j = 0; j < job.choices.size(); ++j) {
      const Choice& c = job.choices[j];
      if (q.chat) {
        json message{{"role", "assistant"}, {"content", c.text.empty() && !c.calls.empty() ? json(nullptr) : json(c.text)}};
        if (c.reasoning) message["reasoning_content"] = c.reasoning_text.empty() ? json(nullptr) : json(c.reasoning_text);
        if (!c.calls.empty()) {
          json calls = json::array();
          for (std::size_t k = 0; k < c.calls.size(); ++k) calls.push_back(tool_call_json(c.calls[k], -1));
          message["tool_calls"] = std::move(calls);
        }
        choices.push_back({{"index", j}, {"message", std::move(message)},
                           {"logprobs", q.logprobs >= 0 ? chat_logprobs(c.logprobs) : json(nullptr)},
                           {"finish_reason", finish_reason(c)}});
      } else {
        std::size_t offset = q.echo ? detail::code_points(q.prompt_text) : 0;
        choices.push_back({{"index", j}, {"text", q.echo ? q.prompt_text + c.text : c.text},
                           {"logprobs", q.logprobs >= 0 ? completion_logprobs(c.logprobs, offset) : json(nullptr)},
                           {"finish_reason", finish_reason(c)}});
      }
    }
    const json body{{"id", job.id}, {"object", q.chat ? "chat.completion" : "text_completion"}, {"created", job.created},
                    {"model", model_name_}, {"choices", std::move(choices)}, {"usage", usage}};
    log_request(job.ex->request(), route, 200, job.start, q.prompt.size(), completion_tokens, ttft, finish);
    job.ex->respond({200, "application/json", {}, detail::to_text(body)});
  }

  std::string finish_reason(const Choice& c) const {
    if (!c.calls.empty() && (c.result.finish_reason == maskgen::FinishReason::Eos || c.result.finish_reason == maskgen::FinishReason::Stop)) {
      return "tool_calls";
    }
    return detail::finish_reason(c.result.finish_reason);
  }

  // ---- chunks and their parts ----

  // One SSE chunk of choice `j`: `delta` (chat: the delta object; completions: the text).
  void send_chunk(Completion& job, int j, const json& delta, const json& finish, const json& logprobs) {
    const ParsedRequest& q = job.request;
    json choice = q.chat ? json{{"index", j}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish}}
                         : json{{"index", j}, {"text", delta}, {"logprobs", logprobs}, {"finish_reason", finish}};
    json chunk{{"id", job.id}, {"object", q.chat ? "chat.completion.chunk" : "text_completion"}, {"created", job.created},
               {"model", model_name_}, {"choices", json::array({std::move(choice)})}};
    if (q.include_usage) chunk["usage"] = nullptr;
    job.ex->write("data: " + detail::to_text(chunk) + "\n\n");
  }

  // The log-probabilities of the tokens since the last chunk of this choice, for the next one.
  json take_logprobs(Completion& job, Choice& c) const {
    if (job.request.logprobs < 0) return nullptr;
    std::vector<maskgen::TokenLogprobs> tokens = std::move(c.pending_logprobs);
    c.pending_logprobs.clear();
    if (job.request.chat) return chat_logprobs(tokens);
    json out = completion_logprobs(tokens, c.text_offset);
    for (const auto& t : out["tokens"]) c.text_offset += detail::code_points(t.get<std::string>());
    return out;
  }

  json tool_call_json(const maskgen::ToolCall& call, int index) const {
    json out = json::object();
    if (index >= 0) out["index"] = index;
    out["id"] = call.id;
    out["type"] = "function";
    out["function"] = {{"name", call.name}, {"arguments", call.arguments}};
    return out;
  }

  // A token's bytes as they appear inside a text: byte-level pieces as their bytes,
  // SentencePiece pieces with their leading "▁" as a space and byte pieces as the byte.
  std::string token_bytes(std::int32_t id) const {
    if (id < 0 || id >= tokenizer_.vocab_size()) return {};
    const std::int32_t one[] = {id};
    if (auto bytes = tokenizer_.backend().decode_bytes(one, false)) return *bytes;
    std::string piece = tokenizer_.id_to_piece(id);
    if (piece.size() == 6 && piece.starts_with("<0x") && piece.back() == '>') {
      return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
    }
    std::string out;
    for (std::size_t i = 0; i < piece.size(); ++i) {
      if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
        out += ' ';
        i += 2;
      } else {
        out += piece[i];
      }
    }
    return out;
  }

  json token_entry(std::int32_t id, double logprob) const {
    const std::string bytes = token_bytes(id);
    json list = json::array();
    for (const unsigned char b : bytes) list.push_back(b);
    return json{{"token", maskgen::unicode::repaired(bytes)}, {"logprob", logprob}, {"bytes", std::move(list)}};
  }

  json chat_logprobs(const std::vector<maskgen::TokenLogprobs>& tokens) const {
    json content = json::array();
    for (const auto& t : tokens) {
      json entry = token_entry(t.token, t.logprob);
      json top = json::array();
      for (const auto& alt : t.top) top.push_back(token_entry(alt.token, alt.logprob));
      entry["top_logprobs"] = std::move(top);
      content.push_back(std::move(entry));
    }
    return json{{"content", std::move(content)}};
  }

  // The legacy completions format: parallel lists, `top_logprobs` as token -> logprob objects
  // (the chosen token always among them), `text_offset` in characters from the text's start.
  json completion_logprobs(const std::vector<maskgen::TokenLogprobs>& tokens, std::size_t offset) const {
    json out{{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()}, {"text_offset", json::array()}};
    for (const auto& t : tokens) {
      const std::string text = maskgen::unicode::repaired(token_bytes(t.token));
      out["tokens"].push_back(text);
      out["token_logprobs"].push_back(t.logprob);
      json top = json::object();
      top[text] = t.logprob;
      for (const auto& alt : t.top) {
        const std::string piece = maskgen::unicode::repaired(token_bytes(alt.token));
        if (!top.contains(piece)) top[piece] = alt.logprob;
      }
      out["top_logprobs"].push_back(std::move(top));
      out["text_offset"].push_back(offset);
      offset += detail::code_points(text);
    }
    return out;
  }
};

}  // namespace maskgen_server

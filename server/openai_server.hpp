#pragma once
// An OpenAI-style HTTP server over maskgen::Engine (cpp-httplib): POST /v1/completions,
// POST /v1/chat/completions (when the model folder has a chat template), GET /v1/models and
// GET /health. Streaming answers are server-sent events; a client that disconnects mid-stream
// cancels its request. Bad requests get 400 and {"error": {"message", "type", "param"}}.
//
// Each choice is exactly what generate() gives its prompt and settings alone (the engine's
// promise): temperature 0 is greedy; otherwise sampling with temperature, top_p, top_k (0, off,
// unless asked: OpenAI has no top-k) and min_p, seeded by `seed` (choice j uses seed + j; no seed:
// a random one). Extensions other servers also read: top_k, min_p, repetition_penalty,
// min_tokens, ignore_eos, chat_template_kwargs.

#include <maskgen/maskgen.hpp>
#include <maskgen/engine.hpp>

#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace maskgen_server {

using json = nlohmann::ordered_json;
using ModelType = maskgen::Model<float>;
using EngineType = maskgen::Engine<ModelType>;

// A request the server refuses: 400 with this message; `param` names the field.
struct BadRequest {
  std::string message;
  std::string param;
};

// One parsed /v1/completions or /v1/chat/completions body.
struct ParsedRequest {
  std::vector<std::int32_t> prompt;
  maskgen::GenerationConfig gen;
  std::vector<std::string> stop;
  int n = 1;
  bool stream = false;
  bool chat = false;
};

struct ServerOptions {
  maskgen::EngineOptions engine{};
  std::size_t max_body_bytes = 8u << 20;  // larger bodies get 413
  int http_threads = 64;                  // connections served at once (streams hold one each)
};

namespace detail {

inline const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

inline double number_field(const json& body, const char* name, double fallback, double lo, double hi) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) throw BadRequest{std::string("'") + name + "' must be a number", name};
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) {
    throw BadRequest{std::string("'") + name + "' must be between " + json(lo).dump() + " and " + json(hi).dump() +
                         ", got " + v->dump(),
                     name};
  }
  return x;
}

inline std::int64_t int_field(const json& body, const char* name, std::int64_t fallback, std::int64_t lo, std::int64_t hi) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) throw BadRequest{std::string("'") + name + "' must be an integer", name};
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) {
    throw BadRequest{std::string("'") + name + "' must be at most " + std::to_string(hi) + ", got " + v->dump(), name};
  }
  const std::int64_t x = v->get<std::int64_t>();
  if (x < lo || x > hi) {
    throw BadRequest{std::string("'") + name + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                         ", got " + v->dump(),
                     name};
  }
  return x;
}

inline bool bool_field(const json& body, const char* name, bool fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) throw BadRequest{std::string("'") + name + "' must be true or false", name};
  return v->get<bool>();
}

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

inline json error_body(const std::string& message, const std::string& type, const std::string& param = {}) {
  return json{{"error", {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)}}}};
}

// What the streaming response of one HTTP request waits on: SSE events from the engine's thread.
struct EventQueue {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::string> events;
  int open = 0;  // choices not finished yet
  std::vector<maskgen::RequestHandle> handles;

  void push(std::string event, bool finished) {
    {
      std::lock_guard lock(mutex);
      events.push_back(std::move(event));
      if (finished) --open;
    }
    ready.notify_all();
  }
  void cancel_all() {
    std::lock_guard lock(mutex);
    for (const auto& h : handles) h.cancel();
  }
};

}  // namespace detail

class OpenAIServer {
 public:
  // Loads the model folder (config.json, safetensors, tokenizer, optional chat template).
  OpenAIServer(const std::filesystem::path& model_dir, ServerOptions options = {})
      : options_(options),
        model_name_(std::filesystem::weakly_canonical(model_dir).filename().string()),
        model_(ModelType::load(model_dir)),
        tokenizer_(maskgen::load_tokenizer(model_dir)) {
    const auto config = model_dir / "tokenizer_config.json";
    std::error_code ec;
    if (std::filesystem::exists(config, ec)) {
      try {
        chat_.emplace(maskgen::ChatTemplate::from_tokenizer_config(config));
      } catch (const maskgen::error& e) {
        maskgen::log(maskgen::LogLevel::Warning, std::string("no chat template: ") + e.what());
      }
    }
    engine_ = std::make_unique<EngineType>(model_, tokenizer_, options_.engine);
    setup();
  }

  ~OpenAIServer() { stop(); }

  // Binds (port 0: any free port) and serves on a thread of its own; returns the port.
  int start(const std::string& host, int port) {
    const int bound = bind(host, port);
    thread_ = std::thread([this] { http_.listen_after_bind(); });
    return bound;
  }

  // Serves on the calling thread until stop(); `on_listening` is told the port once it is bound.
  void run(const std::string& host, int port, const std::function<void(int)>& on_listening = {}) {
    const int bound = bind(host, port);
    if (on_listening) on_listening(bound);
    http_.listen_after_bind();
  }

  void stop() {
    http_.stop();
    if (thread_.joinable()) thread_.join();
  }

  const EngineType& engine() const { return *engine_; }
  EngineType& engine() { return *engine_; }
  bool has_chat_template() const { return chat_.has_value(); }
  const std::string& model_name() const { return model_name_; }

  // The request a body asks for; throws BadRequest. (Public for tests and fuzzing.)
  ParsedRequest parse(const std::string& text, bool chat) const {
    json body;
    try {
      body = json::parse(text);
    } catch (const json::exception& e) {
      throw BadRequest{std::string("the body is not valid JSON: ") + e.what(), ""};
    }
    if (!body.is_object()) throw BadRequest{"the body must be a JSON object", ""};
    ParsedRequest r;
    r.chat = chat;
    for (const char* unsupported : {"logprobs", "echo", "suffix", "logit_bias", "top_logprobs"}) {
      const json* v = detail::field(body, unsupported);
      if (v && !(v->is_boolean() && !v->get<bool>()) && !(v->is_number_integer() && v->get<std::int64_t>() == 0) &&
          !(v->is_object() && v->empty())) {
        throw BadRequest{std::string("'") + unsupported + "' is not supported by this server", unsupported};
      }
    }
    if (detail::int_field(body, "best_of", 1, 1, 1) != 1) throw BadRequest{"'best_of' must be 1", "best_of"};
    const auto context = model_.config().max_position_embeddings;
    if (chat) {
      r.prompt = chat_prompt(body);
    } else {
      r.prompt = completion_prompt(body);
    }
    if (r.prompt.empty()) throw BadRequest{"the prompt has no tokens", chat ? "messages" : "prompt"};
    if (static_cast<std::int64_t>(r.prompt.size()) >= context) {
      throw BadRequest{"the prompt has " + std::to_string(r.prompt.size()) + " tokens; the model's context is " +
                           std::to_string(context),
                       chat ? "messages" : "prompt"};
    }
    const std::int64_t room = context - static_cast<std::int64_t>(r.prompt.size());
    const char* max_name = chat && detail::field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    r.gen.max_new_tokens = static_cast<int>(std::min<std::int64_t>(detail::int_field(body, max_name, chat ? room : 16, 0, 1 << 30), room));
    const double temperature = detail::number_field(body, "temperature", 1.0, 0.0, 100.0);
    r.gen.do_sample = temperature > 0;
    if (r.gen.do_sample) r.gen.temperature = temperature;
    r.gen.top_p = detail::number_field(body, "top_p", 1.0, 0.0, 1.0);
    if (r.gen.top_p <= 0) throw BadRequest{"'top_p' must be greater than 0", "top_p"};
    r.gen.top_k = static_cast<int>(detail::int_field(body, "top_k", 0, 0, 1 << 30));
    r.gen.min_p = detail::number_field(body, "min_p", 0.0, 0.0, 1.0);
    r.gen.repetition_penalty = detail::number_field(body, "repetition_penalty", 1.0, 1e-6, 100.0);
    if (const json* seed = detail::field(body, "seed")) {
      if (!seed->is_number_integer()) throw BadRequest{"'seed' must be an integer", "seed"};
      r.gen.seed = seed->is_number_unsigned() ? seed->get<std::uint64_t>() : static_cast<std::uint64_t>(seed->get<std::int64_t>());
    } else {
      r.gen.seed = std::random_device{}();
    }
    // min_tokens (as vLLM): no end-of-sequence before that many; ignore_eos (as vLLM, llama.cpp):
    // none at all, so every answer is max_tokens long (benchmarks).
    r.gen.min_new_tokens = static_cast<int>(std::min<std::int64_t>(detail::int_field(body, "min_tokens", 0, 0, 1 << 30), r.gen.max_new_tokens));
    if (detail::bool_field(body, "ignore_eos", false)) r.gen.min_new_tokens = r.gen.max_new_tokens;
    r.gen.pad_token_id = 0;  // unused by the engine; set so nothing warns
    r.n = static_cast<int>(detail::int_field(body, "n", 1, 1, 16));
    r.stream = detail::bool_field(body, "stream", false);
    if (const json* stop = detail::field(body, "stop")) {
      if (stop->is_string()) r.stop.push_back(stop->get<std::string>());
      else if (stop->is_array() && stop->size() <= 4) {
        for (const auto& s : *stop) {
          if (!s.is_string()) throw BadRequest{"'stop' must be a string or a list of up to 4 strings", "stop"};
          r.stop.push_back(s.get<std::string>());
        }
      } else {
        throw BadRequest{"'stop' must be a string or a list of up to 4 strings", "stop"};
      }
      for (const auto& s : r.stop) {
        if (s.empty()) throw BadRequest{"'stop' strings must not be empty", "stop"};
      }
    }
    return r;
  }

 private:
  ServerOptions options_;
  std::string model_name_;
  ModelType model_;
  maskgen::AutoTokenizer tokenizer_;
  std::optional<maskgen::ChatTemplate> chat_;
  std::unique_ptr<EngineType> engine_;
  httplib::Server http_;
  std::thread thread_;
  std::atomic<std::uint64_t> next_id_{1};
  socket_t listen_socket_ = -1;

  std::vector<std::int32_t> completion_prompt(const json& body) const {
    const json* p = detail::field(body, "prompt");
    if (!p) throw BadRequest{"'prompt' is required", "prompt"};
    if (p->is_string()) return tokenizer_.encode(p->get<std::string>());
    if (p->is_array() && !p->empty() && std::all_of(p->begin(), p->end(), [](const json& x) { return x.is_number_integer(); })) {
      std::vector<std::int32_t> ids;
      for (const auto& x : *p) {
        // (nlohmann reads a non-negative integer as unsigned; past 2^63 it is out of range anyway)
        const bool huge = x.is_number_unsigned() && x.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX);
        const std::int64_t id = huge ? -1 : x.get<std::int64_t>();
        if (huge || id < 0 || id >= model_.config().vocab_size) {
          throw BadRequest{"'prompt' holds the id " + x.dump() + ", outside the vocabulary [0, " +
                               std::to_string(model_.config().vocab_size) + ")",
                           "prompt"};
        }
        ids.push_back(static_cast<std::int32_t>(id));
      }
      return ids;
    }
    if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) return tokenizer_.encode((*p)[0].get<std::string>());
    throw BadRequest{"'prompt' must be a string, a list of one string, or a list of token ids", "prompt"};
  }

  std::vector<std::int32_t> chat_prompt(const json& body) const {
    if (!chat_) throw BadRequest{"this model has no chat template (tokenizer_config.json); use /v1/completions", "messages"};
    const json* m = detail::field(body, "messages");
    if (!m || !m->is_array() || m->empty()) throw BadRequest{"'messages' must be a non-empty list of messages", "messages"};
    json messages = json::array();
    for (std::size_t i = 0; i < m->size(); ++i) {
      const json& msg = (*m)[i];
      const std::string where = "messages[" + std::to_string(i) + "]";
      if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string()) {
        throw BadRequest{where + " must be an object with a string 'role'", "messages"};
      }
      json copy = msg;
      if (msg.contains("content") && msg["content"].is_array()) {  // content parts: text only
        std::string text;
        for (const auto& part : msg["content"]) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
            throw BadRequest{where + ".content: only parts of type 'text' are supported", "messages"};
          }
          text += part["text"].get<std::string>();
        }
        copy["content"] = text;
      } else if (msg.contains("content") && !msg["content"].is_string() && !msg["content"].is_null()) {
        throw BadRequest{where + ".content must be a string, null or a list of text parts", "messages"};
      }
      messages.push_back(std::move(copy));
    }
    maskgen::ChatOptions options{.add_generation_prompt = true};
    if (const json* tools = detail::field(body, "tools")) options.tools = *tools;
    if (const json* kwargs = detail::field(body, "chat_template_kwargs")) {
      if (!kwargs->is_object()) throw BadRequest{"'chat_template_kwargs' must be an object", "chat_template_kwargs"};
      options.variables = *kwargs;
    }
    std::string text;
    try {
      text = chat_->apply(messages, options);
    } catch (const maskgen::template_raised_error& e) {
      throw BadRequest{std::string("the chat template refused the conversation: ") + e.what(), "messages"};
    } catch (const maskgen::template_error& e) {
      throw BadRequest{std::string("the chat template failed: ") + e.what(), "messages"};
    }
    return tokenizer_.encode(text, {.add_bos = false, .add_eos = false});
  }

  int bind(const std::string& host, int port) {
    errno = 0;
    const int bound = port == 0 ? http_.bind_to_any_port(host) : (http_.bind_to_port(host, port) ? port : -1);
    if (bound < 0) {
      const int why = errno;  // what bind() or listen() said, when it was they that failed
      throw maskgen::io_error("cannot listen on " + host + ":" + std::to_string(port) + (why ? std::string(": ") + std::strerror(why) : ""));
    }
    // cpp-httplib listens with a backlog of 5, and a burst of clients past it sees its connection
    // reset; listen() again on the same socket raises the backlog.
    if (listen_socket_ >= 0) ::listen(listen_socket_, SOMAXCONN);
    return bound;
  }

  static void reply_error(httplib::Response& res, int status, const std::string& message, const std::string& type,
                          const std::string& param = {}) {
    res.status = status;
    res.set_content(detail::to_text(detail::error_body(message, type, param)), "application/json");
  }

  void setup() {
    http_.set_socket_options([this](socket_t sock) {
      // SO_REUSEADDR (a restarted server binds while old connections linger), but not cpp-httplib's
      // default SO_REUSEPORT, with which a second server on the same port starts without an
      // error and takes a share of the connections.
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      listen_socket_ = sock;
    });
    http_.new_task_queue = [threads = options_.http_threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    http_.set_payload_max_length(options_.max_body_bytes);
    http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const auto s = engine_->stats();
      res.set_content(json{{"status", "ok"},
                           {"running", s.running},
                           {"waiting", s.waiting},
                           {"cached_tokens", s.cached_tokens},
                           {"retained_tokens", s.retained_tokens},
                           {"max_cached_tokens", s.max_cached_tokens}}
                          .dump(-1, ' ', false, json::error_handler_t::replace),
                      "application/json");
    });
    http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(json{{"object", "list"}, {"data", json::array({{{"id", model_name_}, {"object", "model"}, {"owned_by", "maskgen"}}})}}.dump(-1, ' ', false, json::error_handler_t::replace),
                      "application/json");
    });
    http_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { handle(req, res, false); });
    http_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { handle(req, res, true); });
    http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      reply_error(res, 500, what, "server_error");
    });
  }

  void handle(const httplib::Request& req, httplib::Response& res, bool chat) {
    ParsedRequest r;
    try {
      r = parse(req.body, chat);
    } catch (const BadRequest& e) {
      return reply_error(res, 400, e.message, "invalid_request_error", e.param);
    } catch (const maskgen::error& e) {
      return reply_error(res, 400, e.what(), "invalid_request_error");
    }
    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id_++);
    const auto created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    auto queue = std::make_shared<detail::EventQueue>();
    queue->open = r.n;
    const std::string object = chat ? "chat.completion.chunk" : "text_completion";
    auto chunk = [=, model = model_name_](int index, const std::string& text, const json& reason) {
      json choice = chat ? json{{"index", index}, {"delta", {{"content", text}}}, {"finish_reason", reason}}
                         : json{{"index", index}, {"text", text}, {"finish_reason", reason}, {"logprobs", nullptr}};
      return "data: " + detail::to_text(json{{"id", id}, {"object", object}, {"created", created}, {"model", model}, {"choices", json::array({choice})}}) +
             "\n\n";
    };
    try {
      for (int j = 0; j < r.n; ++j) {
        maskgen::GenerationConfig gen = r.gen;
        gen.seed = r.gen.seed + static_cast<std::uint64_t>(j);
        maskgen::RequestCallbacks callbacks;
        if (r.stream) {
          if (chat) {
            queue->push("data: " + json{{"id", id}, {"object", object}, {"created", created}, {"model", model_name_},
                                        {"choices", json::array({{{"index", j}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}})}}
                                       .dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n",
                        false);
          }
          callbacks.on_text = [queue, chunk, j](std::string_view piece) { queue->push(chunk(j, std::string(piece), nullptr), false); };
          callbacks.on_finish = [queue, chunk, j](const maskgen::RequestResult& result) {
            queue->push(chunk(j, "", detail::finish_reason(result.finish_reason)), true);
          };
        }
        auto handle = engine_->submit(r.prompt, gen, {.stop = r.stop}, std::move(callbacks));
        std::lock_guard lock(queue->mutex);
        queue->handles.push_back(handle);
      }
    } catch (const maskgen::error& e) {
      queue->cancel_all();
      return reply_error(res, 400, e.what(), "invalid_request_error");
    }

    if (!r.stream) {
      json choices = json::array();
      std::size_t completion_tokens = 0;
      for (int j = 0; j < r.n; ++j) {
        const auto& result = queue->handles[static_cast<std::size_t>(j)].wait();
        completion_tokens += result.tokens.size();
        if (chat) {
          choices.push_back({{"index", j}, {"message", {{"role", "assistant"}, {"content", result.text}}}, {"finish_reason", detail::finish_reason(result.finish_reason)}});
        } else {
          choices.push_back({{"index", j}, {"text", result.text}, {"finish_reason", detail::finish_reason(result.finish_reason)}, {"logprobs", nullptr}});
        }
      }
      const json body{{"id", id},
                      {"object", chat ? "chat.completion" : "text_completion"},
                      {"created", created},
                      {"model", model_name_},
                      {"choices", choices},
                      {"usage", {{"prompt_tokens", r.prompt.size()}, {"completion_tokens", completion_tokens}, {"total_tokens", r.prompt.size() + completion_tokens}}}};
      res.set_content(detail::to_text(body), "application/json");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [queue](std::size_t, httplib::DataSink& sink) {
          std::unique_lock lock(queue->mutex);
          queue->ready.wait_for(lock, std::chrono::milliseconds(200), [&] { return !queue->events.empty() || queue->open == 0; });
          while (!queue->events.empty()) {
            const std::string event = std::move(queue->events.front());
            queue->events.pop_front();
            lock.unlock();
            if (!sink.write(event.data(), event.size())) return false;  // the client left: the releaser cancels
            lock.lock();
          }
          if (queue->open == 0) {
            lock.unlock();
            const std::string done = "data: [DONE]\n\n";
            sink.write(done.data(), done.size());
            sink.done();
          } else if (!sink.is_writable()) {
            return false;
          }
          return true;
        },
        [queue](bool success) {
          if (!success) queue->cancel_all();  // a client that disconnects cancels its request
        });
  }
};

}  // namespace maskgen_server

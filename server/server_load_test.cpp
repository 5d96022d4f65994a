// A load test of the HTTP server on loopback, bounded in requests and time: many concurrent clients
// on the bundled model, streaming and not, some disconnecting early, some sending bad bodies.
// Passes when nothing crashes, every bad body gets a 400 with a JSON error naming the problem,
// every completed answer is right by the task's arithmetic, a stream's usage chunk counts the
// tokens its log-probabilities list, a probe request's log-probabilities under load are bitwise
// those it gets alone, and the engine's cache is empty at the end. Prints a summary; exit code 0
// on success.

#include "openai_server.hpp"

#include "support/sort_reverse_task.hpp"

#include <httplib.h>  // the clients

#include <iostream>
#include <random>
#include <thread>

namespace {

using json = nlohmann::ordered_json;

struct Tally {
  std::atomic<int> right{0}, wrong{0}, rejected{0}, disconnected{0}, failures{0};
  std::mutex mutex;
  std::vector<std::string> problems;
  void problem(std::string p) {
    std::lock_guard lock(mutex);
    ++failures;
    if (problems.size() < 20) problems.push_back(std::move(p));
  }
};

// What a stream of choice 0 said: its text, its log-probabilities (completions format, joined)
// and the usage chunk's completion tokens (-1: none).
struct Streamed {
  json logprobs = json::array();  // [token, logprob] pairs
  long usage_completion_tokens = -1;
};

// The answer text of an SSE stream: the concatenated pieces of choice 0.
std::string join_stream(const std::string& sse, bool chat, bool& done, Streamed* extra = nullptr) {
  std::string text;
  done = false;
  std::size_t at = 0;
  while ((at = sse.find("data: ", at)) != std::string::npos) {
    const std::size_t end = sse.find("\n\n", at);
    if (end == std::string::npos) break;
    const std::string payload = sse.substr(at + 6, end - at - 6);
    at = end + 2;
    if (payload == "[DONE]") {
      done = true;
      continue;
    }
    const json event = json::parse(payload);
    if (extra && event.contains("usage") && event["usage"].is_object()) {
      extra->usage_completion_tokens = event["usage"]["completion_tokens"].get<long>();
    }
    if (event["choices"].empty()) continue;  // the usage chunk
    const json& choice = event["choices"][0];
    if (extra && choice["logprobs"].is_object()) {
      const json& lp = choice["logprobs"];
      for (std::size_t k = 0; k < lp["tokens"].size(); ++k) extra->logprobs.push_back({lp["tokens"][k], lp["token_logprobs"][k]});
    }
    if (chat) {
      if (choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    } else {
      text += choice["text"].get<std::string>();
    }
  }
  return text;
}

// The bundled model's ids of a prompt (its tokenizer, as the server would encode the text).
json tokenizer_ids(const std::string& prompt) {
  static const auto tok = maskgen::load_tokenizer(MASKGEN_DEMO_MODEL_DIR);
  return json(tok.encode(prompt));
}

// The probe: one prompt whose log-probabilities, asked alone before the load, every client asks
// again under load; they must be bitwise the same (the engine's promise).
const std::string probe_prompt = "sort 9 8 0 3 4 3 2 5 4 7 =";

json probe_body(bool stream) {
  return json{{"prompt", probe_prompt}, {"max_tokens", 24}, {"temperature", 0}, {"logprobs", 2}, {"stream", stream}};
}

// [token, logprob] pairs of a whole answer's choice 0.
json logprob_pairs(const json& answer) {
  json pairs = json::array();
  const json& lp = answer["choices"][0]["logprobs"];
  for (std::size_t k = 0; k < lp["tokens"].size(); ++k) pairs.push_back({lp["tokens"][k], lp["token_logprobs"][k]});
  return pairs;
}

void client(int port, int id, int requests, Tally& tally, const json& probe) {
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(60, 0);
  std::mt19937 rng(static_cast<unsigned>(1000 + id));
  const auto prompts = demo::make_prompts(static_cast<std::size_t>(requests), static_cast<std::uint32_t>(id), {1, 3, 5, 8, 12});
  for (int i = 0; i < requests; ++i) {
    const std::string& prompt = prompts[static_cast<std::size_t>(i)];
    const std::string expected = *demo::expected_answer(prompt);
    const int kind = static_cast<int>(rng() % 10);
    if (kind == 0) {  // a bad body
      static const std::vector<std::pair<std::string, std::string>> bad = {
          {"{not json", "not valid JSON"},
          {"[1, 2]", "must be a JSON object"},
          {R"({"prompt": "sort 1 =", "max_tokens": -3})", "max_tokens"},
          {R"({"prompt": "sort 1 =", "temperature": "hot"})", "temperature"},
          {R"({"prompt": [1, 2, 99999]})", "outside the vocabulary"},
          {R"({"max_tokens": 4})", "'prompt' is required"},
          {R"({"prompt": "sort 1 =", "stop": [1]})", "stop"},
          {R"({"prompt": "sort 1 =", "n": 1000})", "'n'"},
          {std::string("{\"prompt\": \"sort 1 =\xff\"}"), "JSON"},
      };
      const auto& [body, words] = bad[rng() % bad.size()];
      const auto res = http.Post("/v1/completions", body, "application/json");
      if (!res || res->status != 400) {
        tally.problem("bad body " + body + " got " + (res ? std::to_string(res->status) : "no answer: " + httplib::to_string(res.error())));
        continue;
      }
      const json error = json::parse(res->body, nullptr, false);
      if (error.is_discarded() || !error.contains("error") || error["error"]["message"].get<std::string>().find(words) == std::string::npos) {
        tally.problem("bad body " + body + " answered " + res->body);
        continue;
      }
      ++tally.rejected;
      continue;
    }
    if (kind == 1 || kind == 8) {  // the probe, whole or streamed
      const auto res = http.Post("/v1/completions", probe_body(kind == 8).dump(), "application/json");
      if (!res || res->status != 200) {
        tally.problem("probe got " + (res ? std::to_string(res->status) : "no answer: " + httplib::to_string(res.error())));
        continue;
      }
      json pairs;
      if (kind == 8) {
        bool done = false;
        Streamed extra;
        join_stream(res->body, false, done, &extra);
        pairs = extra.logprobs;
      } else {
        pairs = logprob_pairs(json::parse(res->body));
      }
      if (pairs == probe) ++tally.right;
      else {
        ++tally.wrong;
        tally.problem("probe under load: " + pairs.dump() + ", alone: " + probe.dump());
      }
      continue;
    }
    const bool stream = kind >= 4;
    const bool leave_early = kind == 9;
    json body{{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}, {"stream", stream}};
    if (kind == 2) body["prompt"] = tokenizer_ids(prompt);  // the same prompt as token ids
    if (kind == 3) body["stop"] = json::array({"never"});
    if (kind == 5 || kind == 6) body["stream_options"] = {{"include_usage", true}};
    if (kind == 6 || kind == 7) body["logprobs"] = 0;
    if (!stream) {
      const auto res = http.Post("/v1/completions", body.dump(), "application/json");
      if (!res || res->status != 200) {
        tally.problem("request got " + (res ? std::to_string(res->status) + " " + res->body : "no answer: " + httplib::to_string(res.error())));
        continue;
      }
      const std::string text = json::parse(res->body)["choices"][0]["text"].get<std::string>();
      if (demo::trim(text) == expected) ++tally.right;
      else {
        ++tally.wrong;
        tally.problem(prompt + " -> '" + text + "', expected " + expected);
      }
      continue;
    }
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    std::string sse;
    req.content_receiver = [&](const char* data, std::size_t len, std::uint64_t, std::uint64_t) {
      sse.append(data, len);
      return !(leave_early && sse.find("\n\n") != std::string::npos);  // gone after the first event
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    const bool ok = http.send(req, res, error);
    if (leave_early) {
      ++tally.disconnected;
      continue;
    }
    if (!ok || res.status != 200) {
      tally.problem("stream failed: " + httplib::to_string(error));
      continue;
    }
    bool done = false;
    Streamed extra;
    const std::string text = join_stream(sse, false, done, &extra);
    if (kind == 5 || kind == 6) {
      // The usage chunk counts the answer's tokens: as many as its log-probabilities list (one
      // per token, the ending EOS included).
      const long tokens = extra.usage_completion_tokens;
      if (tokens < 0) tally.problem(prompt + ": no usage chunk");
      if (kind == 6 && tokens != static_cast<long>(extra.logprobs.size())) {
        tally.problem(prompt + ": usage says " + std::to_string(tokens) + " tokens, logprobs list " + std::to_string(extra.logprobs.size()));
      }
    }
    if (done && demo::trim(text) == expected) ++tally.right;
    else {
      ++tally.wrong;
      tally.problem(prompt + " streamed '" + text + "', expected " + expected + (done ? "" : " (no [DONE])"));
    }
  }
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string model = argc > 1 ? argv[1] : MASKGEN_DEMO_MODEL_DIR;
  const int clients = argc > 2 ? std::stoi(argv[2]) : 24;
  const int per_client = argc > 3 ? std::stoi(argv[3]) : 12;
  maskgen_server::ServerOptions options;
  options.engine.max_running = 8;
  options.engine.max_cached_tokens = 400;  // small: requests also wait for cache room
  options.access_log = false;
  maskgen_server::OpenAIServer server(model, options);
  const int port = server.start("127.0.0.1", 0);
  const auto start = std::chrono::steady_clock::now();
  Tally tally;
  json probe;
  {
    httplib::Client http("127.0.0.1", port);
    const auto res = http.Post("/v1/completions", probe_body(false).dump(), "application/json");
    if (!res || res->status != 200) throw std::runtime_error("the probe request alone failed");
    probe = logprob_pairs(json::parse(res->body));
    if (probe.empty()) throw std::runtime_error("the probe has no log-probabilities: " + res->body);
  }
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) threads.emplace_back(client, port, c, per_client, std::ref(tally), std::cref(probe));
  for (auto& t : threads) t.join();
  // Health answers, the engine drains, and no memory is left held for requests.
  httplib::Client http("127.0.0.1", port);
  const auto health = http.Get("/health");
  if (!health || health->status != 200) tally.problem("GET /health failed");
  server.engine().wait_idle();
  const auto stats = server.engine().stats();
  if (stats.running != 0 || stats.waiting != 0 || stats.cached_tokens != 0 || stats.reserved_tokens != 0) {
    tally.problem("the engine still holds requests: running " + std::to_string(stats.running) + ", cached " +
                  std::to_string(stats.cached_tokens) + ", reserved " + std::to_string(stats.reserved_tokens));
  }
  server.engine().clear_prefix_cache();
  for (int i = 0; i < 1000 && server.engine().stats().retained_tokens != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (server.engine().stats().retained_tokens != 0) tally.problem("retained prefixes were not dropped");
  server.stop();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "clients " << clients << " x " << per_client << " requests in " << seconds << " s: right " << tally.right
            << ", wrong " << tally.wrong << ", bad bodies rejected " << tally.rejected << ", disconnected early "
            << tally.disconnected << ", failures " << tally.failures << "\n";
  for (const auto& p : tally.problems) std::cout << "  " << p << "\n";
  return tally.failures == 0 && tally.right > 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "server_load_test: " << e.what() << "\n";
  return 1;
}

// The OpenAI server on the bundled model under hostile clients (raw sockets): 70 connections
// that trickle their headers a byte at a time and 200 idle ones must not delay /health or a
// completion (each answers within 1 s); a request with 100,000 headers is refused with 431 at once
// and leaves the memory bounded; pipelined completions are all answered, in order. The expected
// answers come from the bundled task's arithmetic (support/sort_reverse_task.hpp).

#include "openai_server.hpp"
#include "raw_client.hpp"

#include "support/sort_reverse_task.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

namespace {

using maskgen_http_test::Client;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

maskgen_server::OpenAIServer& server() {
  static auto* s = [] {
    maskgen_server::ServerOptions options;
    options.engine.num_threads = 1;
    options.access_log = false;
    return new maskgen_server::OpenAIServer(MASKGEN_DEMO_MODEL_DIR, options);
  }();
  return *s;
}

int port() {
  static const int p = server().start("127.0.0.1", 0);
  return p;
}

std::string post(const std::string& body, bool close = true) {
  return "POST /v1/completions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
}

std::string completion_body(const std::string& prompt, bool stream = false) {
  return nlohmann::json{{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}, {"stream", stream}}.dump();
}

long resident_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST(HostileClients, TricklingAndIdleConnectionsDoNotDelayHealthOrACompletion) {
  const int p = port();
  std::vector<std::unique_ptr<Client>> idle, slow;
  for (int i = 0; i < 200; ++i) {
    idle.push_back(std::make_unique<Client>(p));
    ASSERT_TRUE(idle.back()->connected());
  }
  for (int i = 0; i < 70; ++i) {
    slow.push_back(std::make_unique<Client>(p));
    ASSERT_TRUE(slow.back()->connected());
  }
  // One byte per connection every 100 ms, for as long as the test runs.
  std::atomic<bool> done{false};
  std::thread trickler([&] {
    const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: test\r\nX-Slow: " + std::string(4000, 'a');
    for (std::size_t k = 0; !done && k < head.size(); ++k) {
      for (auto& c : slow) c->send(std::string_view(head).substr(k, 1));
      std::this_thread::sleep_for(100ms);
    }
  });
  std::this_thread::sleep_for(300ms);  // all of them are in the middle of their headers
  for (int round = 0; round < 3; ++round) {
    {
      Client c(p);
      const auto start = Clock::now();
      ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost: test\r\n\r\n"));
      const auto reply = c.read_response(1000ms);
      ASSERT_TRUE(reply) << "/health did not answer within 1 s, round " << round;
      EXPECT_EQ(reply->status, 200);
      EXPECT_LT(Clock::now() - start, 1000ms);
    }
    for (const bool stream : {false, true}) {
      Client c(p);
      const std::string prompt = "sort 3 1 2 =";
      ASSERT_TRUE(c.send(post(completion_body(prompt, stream))));
      const auto reply = c.read_response(1000ms);
      ASSERT_TRUE(reply) << "the completion did not answer within 1 s (stream " << stream << "), round " << round;
      ASSERT_EQ(reply->status, 200) << reply->body;
      if (!stream) {
        EXPECT_EQ(nlohmann::json::parse(reply->body)["choices"][0]["text"], " 1 2 3");
      } else {
        EXPECT_NE(reply->body.find("data: [DONE]"), std::string::npos) << reply->body;
      }
    }
  }
  done = true;
  trickler.join();
}

TEST(HostileClients, AHundredThousandHeadersAreRefusedAtOnceAndMemoryStaysBounded) {
  const int p = port();
  std::string request = "GET /health HTTP/1.1\r\nHost: test\r\n";
  for (int i = 0; i < 100000; ++i) request += "X-A: b\r\n";
  request += "\r\n";
  const long before = resident_kib();
  for (int round = 0; round < 5; ++round) {
    Client c(p);
    const auto start = Clock::now();
    c.send(request);  // the server may close before it has read everything
    const auto reply = c.read_response(1000ms);
    ASSERT_TRUE(reply) << "no answer within 1 s, round " << round;
    EXPECT_EQ(reply->status, 431);
    EXPECT_NE(nlohmann::json::parse(reply->body)["error"]["message"].get<std::string>().find("header"), std::string::npos)
        << reply->body;
    EXPECT_LT(Clock::now() - start, 1000ms);
  }
  const long after = resident_kib();
  EXPECT_LT(after - before, 20 * 1024) << "resident memory grew from " << before << " KiB to " << after << " KiB";
}

TEST(HostileClients, PipelinedCompletionsAreAllAnsweredInOrder) {
  const auto prompts = demo::make_prompts(6, 5, {2, 4, 7});
  std::string requests;
  for (std::size_t i = 0; i < prompts.size(); ++i) requests += post(completion_body(prompts[i]), i + 1 == prompts.size());
  Client c(port());
  ASSERT_TRUE(c.send(requests));  // all in one write
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const auto reply = c.read_response(5000ms);
    ASSERT_TRUE(reply) << "answer " << i << " of " << prompts.size() << " missing";
    ASSERT_EQ(reply->status, 200);
    const std::string text = nlohmann::json::parse(reply->body)["choices"][0]["text"];
    EXPECT_EQ(demo::trim(text), *demo::expected_answer(prompts[i])) << prompts[i];
  }
}

}  // namespace

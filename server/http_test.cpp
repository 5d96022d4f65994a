// The HTTP layer (http.hpp) against clients on raw POSIX sockets: slow, idle and hostile clients
// must not delay others; limits answer at once with the statuses and JSON errors of RFC 9110 and
// the OpenAI error shape; pipelining, streaming, keep-alive and HTTP/1.0 behave as RFC 9112 says.
// The expected bytes come from those documents (status lines, chunked framing, connection
// persistence), decoded here by the test's own client.

#include "http.hpp"
#include "raw_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using maskgen_http::Exchange;
using maskgen_http::Limits;
using maskgen_http::Response;
using maskgen_http::Server;
using maskgen_http_test::Client;

// A server on a free loopback port, serving on its own threads for the test's lifetime.
struct TestServer {
  TestServer(Limits limits, maskgen_http::Handler handler)
      : server(limits, std::move(handler), [this](const std::string&, int status, const std::string& reason) {
          std::lock_guard lock(mutex);
          refusals.emplace_back(status, reason);
        }) {
    port = server.bind("127.0.0.1", 0);
    server.start();
  }
  ~TestServer() { server.stop(); }
  std::vector<std::pair<int, std::string>> refusals_seen() {
    std::lock_guard lock(mutex);
    return refusals;
  }
  std::mutex mutex;
  std::vector<std::pair<int, std::string>> refusals;
  Server server;
  int port = 0;
};

// Answers "<method> <path>?<query> <body>" at once.
void echo(std::shared_ptr<Exchange> ex) {
  const auto& r = ex->request();
  ex->respond(Response{200, "text/plain", {}, r.method + " " + r.path + "?" + r.query + " " + r.body});
}

// The JSON error of a refusal, checked against the OpenAI shape; returns its message.
std::string error_message(const Client::Reply& reply) {
  auto j = nlohmann::json::parse(reply.body);
  EXPECT_EQ(reply.headers.at("content-type"), "application/json");
  EXPECT_EQ(reply.headers.at("connection"), "close");
  EXPECT_EQ(j["error"]["code"], reply.status);
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_EQ(j["error"]["type"], reply.status >= 500 ? "server_error" : "invalid_request_error");
  return j["error"]["message"];
}

std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f) {
    if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

long elapsed_ms(Clock::time_point since) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
}

TEST(Http, RequestPartsAndKeepAlive) {
  std::atomic<int> calls{0};
  std::string seen_remote, seen_header;
  std::mutex m;
  TestServer s({}, [&](std::shared_ptr<Exchange> ex) {
    {
      std::lock_guard lock(m);
      seen_remote = ex->request().remote;
      seen_header = std::string(ex->request().header("x-CUSTOM").value_or("missing"));
    }
    ++calls;
    echo(ex);
  });
  Client c(s.port);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("GET /v1/models?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Custom: yes\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /v1/models?a=1&b=2 ");
  EXPECT_EQ(r->headers["content-type"], "text/plain");
  EXPECT_EQ(r->headers["content-length"], "23");
  EXPECT_EQ(r->headers["connection"], "keep-alive");
  {
    std::lock_guard lock(m);
    EXPECT_EQ(seen_header, "yes");
    EXPECT_EQ(seen_remote.rfind("127.0.0.1:", 0), 0u) << seen_remote;
  }
  // The same connection serves a POST with a body next.
  ASSERT_TRUE(c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /v1/completions? hello");
  EXPECT_EQ(calls.load(), 2);
}

TEST(Http, SlowAndIdleClientsDoNotDelayOthers) {
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  if (files.rlim_cur < 2048 && files.rlim_max >= 2048) {
    files.rlim_cur = 2048;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  std::mutex m;
  std::vector<std::jthread> workers;
  TestServer s({}, [&](std::shared_ptr<Exchange> ex) {
    if (ex->request().method == "POST") {
      // A completion: answered later from another thread.
      std::lock_guard lock(m);
      workers.emplace_back([ex] {
        std::this_thread::sleep_for(50ms);
        ex->respond(Response{200, "application/json", {}, "{\"done\": true}"});
      });
    } else {
      echo(ex);
    }
  });
  std::vector<std::unique_ptr<Client>> idle, trickling;
  for (int i = 0; i < 200; ++i) {
    idle.push_back(std::make_unique<Client>(s.port));
    ASSERT_TRUE(idle.back()->connected());
  }
  for (int i = 0; i < 70; ++i) {
    trickling.push_back(std::make_unique<Client>(s.port));
    ASSERT_TRUE(trickling.back()->connected());
  }
  // One byte per connection every 100 ms: a request line that will not end while the test runs.
  const std::string slow = "GET /" + std::string(200, 'a') + " HTTP/1.1\r\n";
  std::atomic<bool> done{false};
  std::thread trickler([&] {
    for (std::size_t i = 0; !done.load() && i < slow.size(); ++i) {
      for (auto& t : trickling) t->send(std::string_view(slow).substr(i, 1));
      std::this_thread::sleep_for(100ms);
    }
  });
  std::this_thread::sleep_for(300ms);
  for (int round = 0; round < 5; ++round) {
    Client get(s.port);
    auto start = Clock::now();
    ASSERT_TRUE(get.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = get.read_response(1000ms);
    ASSERT_TRUE(r) << "GET round " << round;
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(elapsed_ms(start), 1000);

    Client post(s.port);
    start = Clock::now();
    ASSERT_TRUE(post.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"));
    r = post.read_response(1000ms);
    ASSERT_TRUE(r) << "POST round " << round;
    EXPECT_EQ(r->body, "{\"done\": true}");
    EXPECT_LT(elapsed_ms(start), 1000);
    std::this_thread::sleep_for(100ms);
  }
  done = true;
  trickler.join();
  // None of the slow or idle clients was refused meanwhile.
  EXPECT_TRUE(s.refusals_seen().empty());
  std::lock_guard lock(m);
  for (auto& w : workers) w.join();
}

TEST(Http, HundredThousandHeadersAreRefusedPromptlyWithBoundedMemory) {
  TestServer s({}, echo);
  std::string request = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 100000; ++i) request += "X-H" + std::to_string(i) + ": v\r\n";
  request += "\r\n";
  const std::size_t before = resident_bytes();
  Client c(s.port);
  auto start = Clock::now();
  std::thread sender([&] { c.send(request); });
  auto r = c.read_response(2000ms);
  sender.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(error_message(*r), "the request headers exceed 32768 bytes");
  EXPECT_LT(elapsed_ms(start), 1000);
  EXPECT_TRUE(c.closed_within(3000ms));
  const std::size_t after = resident_bytes();
  EXPECT_LT(after, before + (20u << 20)) << "resident grew from " << before << " to " << after;
  ASSERT_EQ(s.refusals_seen().size(), 1u);
  EXPECT_EQ(s.refusals_seen()[0].first, 431);
}

TEST(Http, HeaderLimitsAreExact) {
  Limits limits;
  limits.max_request_line_bytes = 64;
  limits.max_header_bytes = 100;
  limits.max_header_count = 3;
  TestServer s(limits, echo);
  auto ask = [&](const std::string& request) {
    Client c(s.port);
    c.send(request);
    auto r = c.read_response();
    return r ? *r : Client::Reply{};
  };
  // "GET /" + path + " HTTP/1.1" is 14 + path bytes: 50 more make 64, at the limit.
  EXPECT_EQ(ask("GET /" + std::string(50, 'p') + " HTTP/1.1\r\n\r\n").status, 200);
  auto r = ask("GET /" + std::string(51, 'p') + " HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 414);
  EXPECT_EQ(error_message(r), "the request line exceeds 64 bytes");
  // A header line "A: " + value + CRLF is 5 + value bytes: 95 more make 100, at the limit.
  EXPECT_EQ(ask("GET / HTTP/1.1\r\nA: " + std::string(95, 'v') + "\r\n\r\n").status, 200);
  r = ask("GET / HTTP/1.1\r\nA: " + std::string(96, 'v') + "\r\n\r\n");
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(error_message(r), "the request headers exceed 100 bytes");
  // Three fields pass, a fourth is one too many.
  EXPECT_EQ(ask("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n").status, 200);
  r = ask("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(error_message(r), "the request has more than 3 header fields");
  // Not HTTP: 400 with Beast's reason.
  r = ask("GET / FTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_message(r).rfind("malformed request: ", 0), 0u);
  // Bodies whose length cannot be known are refused (RFC 9112 6.1, 6.3), so that no body is read
  // as a next request.
  r = ask("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_message(r), "Transfer-Encoding \"gzip\" does not end in chunked");
  r = ask("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 501);
  r = ask("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 400);
  r = ask("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
  EXPECT_EQ(r.status, 400);
  r = ask("GET / HTTP/2.0\r\n\r\n");
  EXPECT_EQ(r.status, 505);
  EXPECT_EQ(error_message(r), "HTTP version 2.0 is not supported (expected HTTP/1.0 or HTTP/1.1)");
}

TEST(Http, HugeContentLengthIsRefusedAtOnce) {
  std::atomic<int> calls{0};
  TestServer s({}, [&](std::shared_ptr<Exchange> ex) {
    ++calls;
    echo(ex);
  });
  for (bool expect_continue : {false, true}) {
    Client c(s.port);
    auto start = Clock::now();
    std::string request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n";
    if (expect_continue) request += "Expect: 100-continue\r\n";
    ASSERT_TRUE(c.send(request + "\r\n"));
    auto r = c.read_response(1000ms);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);  // never 100 Continue first
    EXPECT_EQ(error_message(*r), "Content-Length 10737418240 exceeds the 8388608-byte limit");
    EXPECT_LT(elapsed_ms(start), 1000);
    EXPECT_TRUE(c.closed_within(3000ms));
  }
  EXPECT_EQ(calls.load(), 0);
}

TEST(Http, ChunkedBodiesAreDecodedAndLimited) {
  Limits limits;
  limits.max_body_bytes = 10;
  TestServer s(limits, echo);
  {
    Client c(s.port);
    ASSERT_TRUE(c.send("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n6;ext=1\r\nefghij\r\n0\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "POST /p? abcdefghij");  // 10 bytes: at the limit
  }
  {
    Client c(s.port);
    ASSERT_TRUE(c.send("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n7\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(error_message(*r), "the chunked request body exceeds the 10-byte limit");
  }
  {
    Client c(s.port);
    ASSERT_TRUE(c.send("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(error_message(*r), "Content-Length 11 exceeds the 10-byte limit");
  }
}

TEST(Http, ExpectContinueGetsContinueThenTheAnswer) {
  TestServer s({}, echo);
  Client c(s.port);
  ASSERT_TRUE(c.send("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 100);
  ASSERT_TRUE(c.send("abc"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /p? abc");
}

TEST(Http, PipelinedRequestsAreAnsweredInOrder) {
  std::atomic<int> in_flight{0}, max_in_flight{0};
  std::mutex m;
  std::vector<std::jthread> workers;
  TestServer s({}, [&](std::shared_ptr<Exchange> ex) {
    int now = ++in_flight;
    max_in_flight = std::max(max_in_flight.load(), now);
    // The first answer comes last in time if the layer let the others start: it must not.
    auto delay = ex->request().path == "/1" ? 200ms : 10ms;
    std::lock_guard lock(m);
    workers.emplace_back([ex, delay, &in_flight] {
      std::this_thread::sleep_for(delay);
      --in_flight;
      echo(ex);
    });
  });
  Client c(s.port);
  ASSERT_TRUE(c.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                     "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo"
                     "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"));
  for (const char* expected : {"GET /1? ", "POST /2? two", "GET /3? "}) {
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, expected);
  }
  EXPECT_EQ(max_in_flight.load(), 1);
  std::lock_guard lock(m);
  for (auto& w : workers) w.join();
}

TEST(Http, StreamsArriveAsChunksAndDisconnectsAreSeen) {
  std::promise<void> gone;
  std::atomic<bool> write_failed{false};
  std::mutex m;
  std::vector<std::jthread> workers;
  TestServer s({}, [&](std::shared_ptr<Exchange> ex) {
    const bool forever = ex->request().path == "/forever";
    if (forever) ex->on_client_gone([&] { gone.set_value(); });
    std::lock_guard lock(m);
    workers.emplace_back([ex, forever, &write_failed] {
      ASSERT_TRUE(ex->begin_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}}));
      for (int i = 0; i < (forever ? 1000 : 3); ++i) {
        if (!ex->write("data: {\"n\": " + std::to_string(i) + "}\n\n")) {
          write_failed = true;
          return;
        }
        std::this_thread::sleep_for(forever ? 20ms : 100ms);
      }
      if (!forever) ex->write("data: [DONE]\n\n");
      ex->end_stream();
    });
  });
  {
    Client c(s.port);
    ASSERT_TRUE(c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"));
    // The first event arrives while the stream is still going (the last chunk comes 300 ms later).
    auto start = Clock::now();
    ASSERT_TRUE(c.receive_until("data: {\"n\": 0}", 250ms));
    EXPECT_LT(elapsed_ms(start), 250);
    auto r = c.read_response(2000ms);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->headers["transfer-encoding"], "chunked");
    EXPECT_EQ(r->headers["content-type"], "text/event-stream");
    EXPECT_EQ(r->headers["cache-control"], "no-cache");
    EXPECT_EQ(r->chunks, (std::vector<std::string>{"data: {\"n\": 0}\n\n", "data: {\"n\": 1}\n\n", "data: {\"n\": 2}\n\n",
                                                   "data: [DONE]\n\n"}));
    // The connection goes on to its next request.
    ASSERT_TRUE(c.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n"));
    // (A stream again: its handler is the same.)
    r = c.read_response(2000ms);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->chunks.size(), 4u);
  }
  {
    Client c(s.port);
    ASSERT_TRUE(c.send("GET /forever HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(c.receive_until("data: {\"n\": 2}", 1000ms));
    c.close();
    EXPECT_EQ(gone.get_future().wait_for(2s), std::future_status::ready);
  }
  std::lock_guard lock(m);
  for (auto& w : workers) w.join();
  EXPECT_TRUE(write_failed.load());
}

TEST(Http, HeaderAndBodyDeadlinesCannotBeExtendedByTrickling) {
  Limits limits;
  limits.header_deadline = 400ms;
  limits.body_deadline = 400ms;
  TestServer s(limits, echo);
  for (bool body : {false, true}) {
    Client c(s.port);
    const std::string head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    std::string trickle = body ? std::string(100, 'b') : head;
    if (body) {
      ASSERT_TRUE(c.send(head));
    }
    auto start = Clock::now();
    std::atomic<bool> stop{false};
    std::thread t([&] {
      for (std::size_t i = 0; i < trickle.size() && !stop.load(); ++i) {
        c.send(std::string_view(trickle).substr(i, 1));
        std::this_thread::sleep_for(50ms);
      }
    });
    auto r = c.read_response(3000ms);
    stop = true;
    t.join();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 408);
    EXPECT_EQ(error_message(*r), body ? "the request body did not arrive within 400 ms"
                                      : "the request headers did not arrive within 400 ms");
    EXPECT_GE(elapsed_ms(start), 350);
    EXPECT_LT(elapsed_ms(start), 1000);
  }
}

TEST(Http, IdleKeepAliveConnectionsAreClosed) {
  Limits limits;
  limits.idle_timeout = 300ms;
  TestServer s(limits, echo);
  Client c(s.port);
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(c.read_response());
  auto start = Clock::now();
  EXPECT_TRUE(c.closed_within(2000ms));
  EXPECT_GE(elapsed_ms(start), 250);
  EXPECT_LT(elapsed_ms(start), 1000);
}

TEST(Http, Http10ClosesUnlessAskedToKeepAlive) {
  TestServer s({}, echo);
  {
    Client c(s.port);
    ASSERT_TRUE(c.send("GET /old HTTP/1.0\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "GET /old? ");
    EXPECT_EQ(r->headers["connection"], "close");
    EXPECT_TRUE(c.closed_within(1000ms));
  }
  {
    Client c(s.port);
    ASSERT_TRUE(c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->headers["connection"], "keep-alive");
    ASSERT_TRUE(c.send("GET /b HTTP/1.0\r\n\r\n"));
    r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "GET /b? ");
    EXPECT_TRUE(c.closed_within(1000ms));
  }
  {
    // HTTP/1.1 with Connection: close closes too.
    Client c(s.port);
    ASSERT_TRUE(c.send("GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->headers["connection"], "close");
    EXPECT_TRUE(c.closed_within(1000ms));
  }
}

TEST(Http, ConnectionsBeyondTheLimitGet503) {
  Limits limits;
  limits.max_connections = 4;
  TestServer s(limits, echo);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<Client>(s.port));
    ASSERT_TRUE(held.back()->send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(held.back()->read_response());  // accepted and served: it counts
  }
  {
    Client extra(s.port);
    extra.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = extra.read_response(1000ms);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    EXPECT_EQ(error_message(*r), "the server has reached its limit of 4 connections; try again later");
    EXPECT_TRUE(extra.closed_within(3000ms));
  }
  held.pop_back();
  std::this_thread::sleep_for(200ms);  // the server sees the close
  Client next(s.port);
  ASSERT_TRUE(next.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = next.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(Http, DroppedOrThrowingHandlersAnswer500) {
  TestServer s({}, [](std::shared_ptr<Exchange> ex) {
    if (ex->request().path == "/throw") throw std::runtime_error("boom");
    // "/drop": the exchange is dropped unanswered.
  });
  Client c(s.port);
  ASSERT_TRUE(c.send("GET /drop HTTP/1.1\r\nHost: x\r\n\r\nGET /throw HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(nlohmann::json::parse(r->body)["error"]["message"], "the request's handler dropped it without an answer");
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(nlohmann::json::parse(r->body)["error"]["message"], "the handler failed: boom");
}

TEST(Http, MisuseOfAnExchangeThrows) {
  std::promise<std::vector<bool>> result;
  TestServer s({}, [&](std::shared_ptr<Exchange> ex) {
    std::vector<bool> threw;
    auto throws = [&](auto f) {
      try {
        f();
        threw.push_back(false);
      } catch (const maskgen::argument_error&) {
        threw.push_back(true);
      }
    };
    throws([&] { ex->write("x"); });                                         // before begin_stream
    throws([&] { ex->respond(Response{600, "", {}, ""}); });                     // status out of range
    throws([&] { ex->respond(Response{200, "", {{"Content-Length", "1"}}, ""}); });  // the layer's header
    throws([&] { ex->respond(Response{200, "", {{"X", "a\r\nInjected: 1"}}, ""}); });
    ex->respond(Response{204, "", {}, ""});
    throws([&] { ex->respond(Response{}); });  // twice
    result.set_value(threw);
  });
  Client c(s.port);
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(result.get_future().get(), (std::vector<bool>{true, true, true, true, true}));
}

TEST(Http, StopEndsOpenExchangesAndBindRefusesAUsedPort) {
  std::promise<void> gone;
  std::shared_ptr<Exchange> kept;
  std::mutex m;
  auto server = std::make_unique<TestServer>(Limits{}, [&](std::shared_ptr<Exchange> ex) {
    ex->on_client_gone([&] { gone.set_value(); });
    std::lock_guard lock(m);
    kept = ex;  // never answered
  });
  Server second({}, echo);
  try {
    second.bind("127.0.0.1", server->port);
    ADD_FAILURE() << "a second server bound the same port";
  } catch (const maskgen::io_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(server->port)), std::string::npos) << e.what();
  }
  Client c(server->port);
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(10ms);
    std::lock_guard lock(m);
    if (kept) break;
  }
  auto start = Clock::now();
  server->server.stop();
  EXPECT_LT(elapsed_ms(start), 1000);
  EXPECT_EQ(gone.get_future().wait_for(1s), std::future_status::ready);
  std::lock_guard lock(m);
  ASSERT_TRUE(kept);
  EXPECT_TRUE(kept->client_gone());
  EXPECT_FALSE(kept->begin_stream(200, "text/plain"));
  server.reset();
  kept.reset();  // the exchange outlived its server: harmless
}

TEST(Http, LimitsAreChecked) {
  Limits limits;
  limits.max_header_count = 0;
  try {
    Server s(limits, echo);
    ADD_FAILURE() << "no throw";
  } catch (const maskgen::argument_error& e) {
    EXPECT_STREQ(e.what(), "Limits::max_header_count must be positive");
  }
  EXPECT_THROW(Server({}, maskgen_http::Handler{}), maskgen::argument_error);
}

}  // namespace

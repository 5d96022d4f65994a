#pragma once
// An HTTP/1.1 server layer that hostile clients cannot stop: event-driven on Boost.Asio, requests
// parsed by Boost.Beast's basic_parser, every limit checked before the offending part is stored.
//
// - Connections cost memory, never a thread: a few IO threads serve every connection, each
//   connection on its own strand. An idle connection holds no read buffer (it waits for
//   readability, then reads what the kernel has).
// - Deadlines are absolute: the request line and headers must arrive within header_deadline of
//   the request's first byte (of the accept for a new connection), the body within body_deadline
//   of the end of the headers; trickling bytes do not extend them. A keep-alive connection waiting
//   for its next request is closed after idle_timeout.
// - HTTP/1.1 keep-alive and HTTP/1.0 (keep-alive on request). Pipelined requests are answered in
//   order: the next request is parsed only after the current answer was written; bytes already
//   received are kept.
// - Refusals the layer makes itself (400, 408, 413, 414, 431, 501, 503, 505) carry an OpenAI-style JSON
//   error body, go to the RefusalLog, and close the connection (after draining what the client
//   still sends for a moment, so that it reads the answer instead of a reset).
// - A handler runs on an IO thread and must not block; it answers through its Exchange, now or
//   later, from any thread.
//
// Handlers see every well-formed request: routing, 404 and 405 are theirs. The path is not
// percent-decoded.

#include <maskgen/error.hpp>

#include <boost/asio.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/status.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace maskgen_http {

// What one connection may send and how long it may take. Every field must be positive.
struct Limits {
  std::size_t max_request_line_bytes = 8 * 1024;     // method + target + version (414 beyond)
  std::size_t max_header_bytes = 32 * 1024;          // all header lines together, CRLFs included (431 beyond)
  std::size_t max_header_count = 100;                // header fields (431 beyond)
  std::size_t max_body_bytes = 8u << 20;             // 413 at once when Content-Length says more; also while reading chunked bodies
  std::chrono::milliseconds header_deadline{10000};  // request line + headers must arrive by then (408)
  std::chrono::milliseconds body_deadline{30000};    // the body, likewise (408)
  std::chrono::milliseconds idle_timeout{30000};     // a keep-alive connection waiting for its next request is closed after this
  std::chrono::milliseconds write_timeout{60000};    // an answer's write that the client does not take within this closes the connection (client gone)
  std::size_t max_connections = 1024;                // beyond: the new connection gets 503 and is closed
  int io_threads = 2;                                // threads serving all connections
};

// One parsed request. Header names and values as received, in order.
struct Request {
  std::string method;  // "GET", "POST", ... as received
  std::string target;  // the request-target: "/v1/completions?x=1"
  std::string path;    // target up to '?': "/v1/completions" (not percent-decoded)
  std::string query;   // after '?', without it; empty when there is none
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;    // the whole body (chunked bodies decoded)
  std::string remote;  // the peer, "ip:port" ("[ip6]:port")
  int version = 11;    // 10 for HTTP/1.0, 11 for HTTP/1.1

  // The first header named `name` (ASCII case-insensitive); nullopt when there is none.
  std::optional<std::string_view> header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key.size() == name.size() &&
          std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) { return ascii_lower(a) == ascii_lower(b); })) {
        return std::string_view(value);
      }
    }
    return std::nullopt;
  }

 private:
  static char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }
};

// A whole answer. Content-Length, Transfer-Encoding, Connection and Date are the layer's to set.
struct Response {
  int status = 200;                                           // 100..599
  std::string content_type = "application/json";              // empty: no Content-Type header
  std::vector<std::pair<std::string, std::string>> headers;   // further headers
  std::string body;
};

// A refusal the layer makes itself (400/408/413/414/431/501/503/505), for the access log. Called on an
// IO thread; it must not block.
using RefusalLog = std::function<void(const std::string& remote, int status, const std::string& reason)>;

namespace detail {
class Core;
class Connection;
struct ExchangeAccess;
}  // namespace detail

// One request's answer. Handlers get a shared_ptr and may answer later from any thread; the calls
// of one exchange must come in order (respond, or begin_stream, write..., end_stream). Calls after
// the client is gone are accepted and dropped. An exchange destroyed unanswered answers 500; one
// destroyed mid-stream closes the connection, so that the client sees the stream cut short.
class Exchange {
 public:
  // A whole answer (once). Throws maskgen::argument_error when the answer was already begun, the
  // status is outside 100..599, or a header is one the layer sets or holds CR, LF or NUL.
  void respond(Response r);
  // Starts a streamed answer (chunked on HTTP/1.1; on HTTP/1.0 the body runs to the close).
  // Returns false when the client is gone. Throws as respond does.
  bool begin_stream(int status, std::string content_type, std::vector<std::pair<std::string, std::string>> headers = {});
  // Queues one piece of a streamed answer, in order; never blocks. False once the client is gone.
  // Throws maskgen::argument_error outside begin_stream..end_stream. An empty chunk sends nothing.
  bool write(std::string chunk);
  // Ends a streamed answer; the connection goes on to its next (pipelined) request.
  void end_stream();
  // True once the peer disconnected (or the server stopped) before the answer was written.
  bool client_gone() const { return gone_.load(); }
  // Calls f once, from an IO thread, when the peer disconnects before the answer was written;
  // at once on the calling thread when it is already gone. Each registered function is called.
  void on_client_gone(std::function<void()> f);
  // Bytes queued for this connection and not yet taken by the kernel (a slow reader's backlog).
  std::size_t queued_bytes() const;
  const Request& request() const { return request_; }

  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

 private:
  friend struct detail::ExchangeAccess;
  enum class Phase { fresh, streaming, ended };
  Exchange(std::shared_ptr<detail::Connection> connection, Request request, bool keep_alive, bool head)
      : connection_(std::move(connection)), request_(std::move(request)), keep_alive_(keep_alive), head_(head) {}
  void mark_gone();  // IO thread: the peer left before the answer ended

  std::shared_ptr<detail::Connection> connection_;
  const Request request_;
  const bool keep_alive_;  // the connection stays open after this answer
  const bool head_;        // a HEAD request: headers only
  std::atomic<bool> gone_{false};
  mutable std::mutex mutex_;  // guards phase_, chunked_ and gone_callbacks_
  Phase phase_ = Phase::fresh;
  bool chunked_ = false;      // the stream is sent with chunked transfer coding
  std::vector<std::function<void()>> gone_callbacks_;
};

// Runs on an IO thread for every well-formed request: must not block (answer later via the Exchange).
using Handler = std::function<void(std::shared_ptr<Exchange>)>;

class Server {
 public:
  // Throws maskgen::argument_error naming the Limits field that is not positive, or an empty handler.
  Server(Limits limits, Handler handler, RefusalLog log = {});
  // Listens on host:port (port 0: any free port) and returns the port. SO_REUSEADDR, no
  // SO_REUSEPORT (a second server on the same port fails), backlog SOMAXCONN. Throws
  // maskgen::io_error naming host:port and the system's reason. May be called more than once.
  int bind(const std::string& host, int port);
  // Serves on the calling thread (and io_threads - 1 more) until stop().
  void run();
  // Serves on io_threads threads of its own; returns at once.
  void start();
  // From any thread: stops accepting, closes every connection (open exchanges see client_gone)
  // and waits until the serving threads are done (unless called from one of them). Idempotent; a
  // stopped server does not start again.
  void stop();
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

 private:
  std::shared_ptr<detail::Core> core_;
  std::vector<std::thread> threads_;  // start()'s threads
  std::mutex threads_mutex_;
};

namespace detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Strand = asio::strand<asio::io_context::executor_type>;
using Headers = std::vector<std::pair<std::string, std::string>>;

// How long a refused or closing connection keeps reading (and discarding) what the client still
// sends, so that the client reads the answer instead of a reset; and how much it reads at most.
inline constexpr std::chrono::milliseconds linger_time{2000};
inline constexpr std::size_t linger_bytes = 64u << 20;
// Bytes read ahead (pipelined requests) while an answer is under way; reading pauses beyond.
inline constexpr std::size_t read_ahead_bytes = 64 * 1024;
// Bytes read at most in one go.
inline constexpr std::size_t read_chunk_bytes = 64 * 1024;
// Connections being refused with 503 at once; beyond, a new connection is closed without an answer.
inline constexpr std::size_t max_refusing = 64;

inline std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xf];
          out += hex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out;
}

// {"error": {"message": ..., "type": ..., "param": null, "code": status}}
inline std::string error_body(int status, std::string_view message) {
  const char* type = status >= 500 ? "server_error" : "invalid_request_error";
  return maskgen::detail::cat("{\"error\": {\"message\": \"", json_escape(message), "\", \"type\": \"", type,
                              "\", \"param\": null, \"code\": ", status, "}}");
}

inline std::string reason_phrase(int status) {
  auto reason = boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  if (reason.empty() || reason.front() == '<') return "Unknown";
  return std::string(reason.data(), reason.size());
}

// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 IMF-fixdate).
inline std::string http_date() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[40];
  std::size_t n = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(text, n);
}

inline bool equals_ascii_nocase(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return lower(x) == lower(y); });
}

// Throws unless `headers` are safe to send and leave the framing headers to the layer.
inline void check_headers(const Headers& headers, const char* caller) {
  for (const auto& [name, value] : headers) {
    auto bad = [](std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos; };
    if (name.empty() || bad(name) || bad(value) || name.find(':') != std::string::npos) {
      throw maskgen::argument_error(maskgen::detail::cat(caller, ": header \"", name,
                                                         "\" must be a non-empty name without ':' and, like its value, without CR, LF or NUL"));
    }
    for (std::string_view reserved : {"Content-Length", "Transfer-Encoding", "Connection", "Date"}) {
      if (equals_ascii_nocase(name, reserved)) {
        throw maskgen::argument_error(maskgen::detail::cat(caller, ": header ", name, " is set by the HTTP layer"));
      }
    }
  }
}

inline void check_status(int status, const char* caller) {
  if (status < 100 || status > 599) {
    throw maskgen::argument_error(maskgen::detail::cat(caller, ": status is ", status, ", expected 100..599"));
  }
}

// The status line and headers of an answer. `length`: Content-Length, or nullopt for a stream.
inline std::string head_bytes(int status, std::string_view content_type, const Headers& headers,
                              std::optional<std::size_t> length, bool chunked, bool keep_alive) {
  std::string out = maskgen::detail::cat("HTTP/1.1 ", status, " ", reason_phrase(status), "\r\nDate: ", http_date(), "\r\n");
  if (!content_type.empty()) out += maskgen::detail::cat("Content-Type: ", content_type, "\r\n");
  const bool bodiless = status < 200 || status == 204 || status == 304;
  if (length && !bodiless) out += maskgen::detail::cat("Content-Length: ", *length, "\r\n");
  if (chunked && !bodiless) out += "Transfer-Encoding: chunked\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  for (const auto& [name, value] : headers) out += maskgen::detail::cat(name, ": ", value, "\r\n");
  out += "\r\n";
  return out;
}

// A refusal's whole answer; the connection closes after it.
inline std::string refusal_bytes(int status, std::string_view message) {
  std::string body = error_body(status, message);
  return head_bytes(status, "application/json", {}, body.size(), false, false) + body;
}

// Received bytes not yet parsed. Empty, it holds no memory beyond a small capacity.
class InputBuffer {
 public:
  std::string_view data() const { return std::string_view(bytes_).substr(head_); }
  std::size_t size() const { return bytes_.size() - head_; }
  bool empty() const { return size() == 0; }
  void consume(std::size_t n) {
    head_ += std::min(n, size());
    if (head_ == bytes_.size()) {
      bytes_.clear();
      head_ = 0;
      if (bytes_.capacity() > 4096) std::string().swap(bytes_);
    }
  }
  // Room for n more bytes at the end; commit(k) keeps the first k of them.
  char* prepare(std::size_t n) {
    if (head_ > 0 && head_ >= bytes_.size() / 2) {
      bytes_.erase(0, head_);
      head_ = 0;
    }
    tail_ = bytes_.size();
    bytes_.resize(tail_ + n);
    return bytes_.data() + tail_;
  }
  void commit(std::size_t n) { bytes_.resize(tail_ + n); }
  // Gives the memory back when nothing is buffered (an idle connection holds none).
  void release() {
    if (empty()) {
      std::string().swap(bytes_);
      head_ = 0;
    }
  }

 private:
  std::string bytes_;
  std::size_t head_ = 0;  // first unparsed byte
  std::size_t tail_ = 0;  // where prepare()'s room began
};

// A refusal decided while reading a request.
struct Refusal {
  int status;
  std::string message;
};

// Beast's parser, building a Request and enforcing the header count and body limit as it goes.
class RequestParser final : public boost::beast::http::basic_parser<true> {
 public:
  RequestParser(const Limits& limits, Request& request) : limits_(limits), request_(request) {
    // The header's size was checked before it reached the parser; this limit is only a backstop.
    header_limit(static_cast<std::uint32_t>(limits.max_request_line_bytes + limits.max_header_bytes + 64));
    // Checked here, with precise messages. (Beast 1.74 treats boost::none as a limit below every
    // Content-Length, so "no limit" is the largest value.)
    body_limit(std::numeric_limits<std::uint64_t>::max());
    eager(true);
  }
  std::optional<Refusal> refusal;  // set when a callback refused the request
  bool expect_continue = false;    // "Expect: 100-continue" on HTTP/1.1

 private:
  using error_code = boost::beast::error_code;
  void refuse(int status, std::string message, error_code& ec) {
    refusal = Refusal{status, std::move(message)};
    ec = boost::beast::http::error::bad_field;  // any error stops the parser; `refusal` says which
  }
  void on_request_impl(boost::beast::http::verb, boost::beast::string_view method, boost::beast::string_view target,
                       int version, error_code&) override {
    request_.method.assign(method.data(), method.size());
    request_.target.assign(target.data(), target.size());
    std::string_view t(request_.target);
    auto q = t.find('?');
    request_.path = std::string(t.substr(0, q));
    request_.query = q == std::string_view::npos ? std::string() : std::string(t.substr(q + 1));
    request_.version = version;
  }
  void on_response_impl(int, boost::beast::string_view, int, error_code&) override {}
  void on_field_impl(boost::beast::http::field name, boost::beast::string_view name_string, boost::beast::string_view value,
                     error_code& ec) override {
    if (request_.headers.size() >= limits_.max_header_count) {
      return refuse(431, maskgen::detail::cat("the request has more than ", limits_.max_header_count, " header fields"), ec);
    }
    request_.headers.emplace_back(std::string(name_string.data(), name_string.size()), std::string(value.data(), value.size()));
    if (name == boost::beast::http::field::transfer_encoding) ++transfer_encodings_;
    if (name == boost::beast::http::field::expect && request_.version == 11 &&
        equals_ascii_nocase(std::string_view(value.data(), value.size()), "100-continue")) {
      expect_continue = true;
    }
  }
  void on_header_impl(error_code& ec) override {
    // Only "chunked" is understood (RFC 9112 6.1, 6.3): other codings, or chunked not last, would
    // leave the body's length unknown; reading on could take a body for the next request.
    if (transfer_encodings_ > 0) {
      std::string_view coding;
      for (const auto& [key, value] : request_.headers) {
        if (equals_ascii_nocase(key, "Transfer-Encoding")) coding = value;
      }
      if (!chunked()) {
        return refuse(400, maskgen::detail::cat("Transfer-Encoding \"", coding, "\" does not end in chunked"), ec);
      }
      if (transfer_encodings_ > 1 || !equals_ascii_nocase(trim(coding), "chunked")) {
        return refuse(501, maskgen::detail::cat("Transfer-Encoding \"", coding, "\" is not supported; only chunked is"), ec);
      }
    }
    auto length = content_length();
    if (length && *length > limits_.max_body_bytes) {
      return refuse(413, maskgen::detail::cat("Content-Length ", *length, " exceeds the ", limits_.max_body_bytes, "-byte limit"), ec);
    }
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(boost::beast::string_view body, error_code&) override {
    request_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t size, boost::beast::string_view, error_code& ec) override {
    if (size > limits_.max_body_bytes - request_.body.size()) {
      return refuse(413, maskgen::detail::cat("the chunked request body exceeds the ", limits_.max_body_bytes, "-byte limit"), ec);
    }
  }
  std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body, error_code&) override {
    request_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  }

  const Limits& limits_;
  Request& request_;
  int transfer_encodings_ = 0;  // Transfer-Encoding fields seen
};

// Where the request line and header section end in the bytes received so far, and whether they
// already exceed their limits. Resumable: scanning continues where it stopped.
class HeaderScanner {
 public:
  enum class State { incomplete, complete, line_too_long, headers_too_long };
  State scan(std::string_view in, const Limits& limits) {
    if (!line_end_) {
      auto pos = in.find("\r\n", line_from_);
      if (pos == std::string_view::npos) {
        // The line is at least in.size() - 1 bytes long (a CR may end what has arrived).
        if (in.size() > 0 && in.size() - 1 > limits.max_request_line_bytes) return State::line_too_long;
        line_from_ = in.size() > 0 ? in.size() - 1 : 0;
        return State::incomplete;
      }
      if (pos > limits.max_request_line_bytes) return State::line_too_long;
      line_end_ = pos;
      end_from_ = pos;
    }
    const std::size_t fields_begin = *line_end_ + 2;
    auto end = in.find("\r\n\r\n", end_from_);
    if (end == std::string_view::npos) {
      // The header lines take at least in.size() - 1 - fields_begin bytes (the final "\r\n\r\n"
      // may have begun in the last 3 bytes; its first CRLF ends the last header line).
      if (in.size() > fields_begin + 1 && in.size() - 1 - fields_begin > limits.max_header_bytes) return State::headers_too_long;
      end_from_ = std::max(end_from_, in.size() >= 3 ? in.size() - 3 : std::size_t{0});
      return State::incomplete;
    }
    if (end + 2 - fields_begin > limits.max_header_bytes) return State::headers_too_long;
    header_end_ = end + 4;
    return State::complete;
  }
  std::size_t header_end() const { return header_end_; }
  std::size_t line_end() const { return line_end_.value_or(0); }  // the request line's length, once complete

 private:
  std::optional<std::size_t> line_end_;  // offset of the request line's CRLF
  std::size_t line_from_ = 0;             // where to look for it next
  std::size_t end_from_ = 0;              // where to look for "\r\n\r\n" next
  std::size_t header_end_ = 0;            // bytes of request line + headers + blank line
};

struct ExchangeAccess {
  static std::shared_ptr<Exchange> make(std::shared_ptr<Connection> c, Request r, bool keep_alive, bool head) {
    return std::shared_ptr<Exchange>(new Exchange(std::move(c), std::move(r), keep_alive, head));
  }
  static void mark_gone(Exchange& e) { e.mark_gone(); }
};

// What every connection shares: the io_context, the limits, the handler and the registry that
// stop() walks. Connections and exchanges keep it alive, so an exchange outliving its Server is
// harmless (its calls are dropped).
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(Limits l, Handler h, RefusalLog g)
      : limits(l), handler(std::move(h)), log(std::move(g)), io(l.io_threads), guard(asio::make_work_guard(io)) {}

  const Limits limits;
  const Handler handler;
  const RefusalLog log;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard;

  std::mutex mutex;  // guards everything below
  bool stopped = false;
  bool drained = false;  // stop() ran what was left after the serving threads ended
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;
  std::size_t counted = 0;   // connections under max_connections
  std::size_t refusing = 0;  // connections being refused with 503
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
  int serving = 0;  // threads inside io.run()
  std::condition_variable served;

  // Posts f to `strand` unless the server stopped; false when it did.
  template <class F>
  bool post(const Strand& strand, F&& f) {
    std::lock_guard lock(mutex);
    if (stopped) return false;
    asio::post(strand, std::forward<F>(f));
    return true;
  }

  void refusal(const std::string& remote, int status, const std::string& reason) const {
    if (!log) return;
    try {
      log(remote, status, reason);
    } catch (...) {
    }
  }

  void accept(const std::shared_ptr<tcp::acceptor>& acceptor);
  void serve();  // one thread's share of io.run()

  static thread_local const Core* current;  // the Core whose IO thread this is, if any
};

inline thread_local const Core* Core::current = nullptr;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Core> core, Strand strand, tcp::socket socket, bool counted)
      : core_(std::move(core)),
        strand_(std::move(strand)),
        socket_(std::move(socket)),
        deadline_(strand_),
        write_timer_(strand_),
        counted_(counted) {
    boost::system::error_code ec;
    auto peer = socket_.remote_endpoint(ec);
    if (!ec) {
      auto address = peer.address();
      remote_ = address.is_v6() ? maskgen::detail::cat("[", address.to_string(), "]:", peer.port())
                                : maskgen::detail::cat(address.to_string(), ":", peer.port());
    }
    socket_.non_blocking(true, ec);
    socket_.set_option(tcp::no_delay(true), ec);
  }

  const Strand& strand() const { return strand_; }
  Core& core() const { return *core_; }
  std::size_t queued_bytes() const { return queued_bytes_.load(); }

  // Strand: a new connection. Serves it, or refuses it with 503 when it is over the limit.
  void start(bool over_limit) {
    if (over_limit) {
      return refuse(503, maskgen::detail::cat("the server has reached its limit of ", core_->limits.max_connections,
                                              " connections; try again later"));
    }
    phase_ = Phase::header;
    fresh_ = true;
    arm_deadline(core_->limits.header_deadline);
    advance();
  }

  // Strand: bytes of the current answer; `ends` marks its last piece.
  void send(std::string bytes, bool ends, bool keep_alive) {
    if (phase_ == Phase::closed) return;
    queued_bytes_ += bytes.size();
    if (!bytes.empty()) out_.push_back(std::move(bytes));
    if (ends) {
      answer_ended_ = true;
      keep_alive_ = keep_alive;
    }
    flush();
  }

  // Strand: an answer that cannot be finished (an exchange dropped mid-stream).
  void abort() { close(); }

  // Strand: the server stops.
  void stop() { close(); }

 private:
  enum class Phase { idle, header, body, answering, lingering, closed };

  void advance();
  void on_readable(const boost::system::error_code& ec);
  void want_read();
  void read_header();
  void read_body();
  void dispatch();
  void flush();
  void on_written(const boost::system::error_code& ec, std::size_t n);
  void answer_done();
  void refuse(int status, std::string message);
  void linger();
  void peer_gone();
  void close();

  void arm_deadline(std::chrono::milliseconds after) {
    const unsigned generation = ++deadline_generation_;
    deadline_.expires_after(after);
    deadline_.async_wait([self = shared_from_this(), generation](const boost::system::error_code& ec) {
      if (!ec && generation == self->deadline_generation_) self->on_deadline();
    });
  }
  void disarm_deadline() {
    ++deadline_generation_;
    deadline_.cancel();
  }
  void on_deadline();

  std::shared_ptr<Core> core_;
  const Strand strand_;
  tcp::socket socket_;
  asio::steady_timer deadline_;     // idle, header, body or linger deadline
  asio::steady_timer write_timer_;  // the write in flight must finish by then
  const bool counted_;              // counts against max_connections
  std::string remote_;

  Phase phase_ = Phase::idle;
  bool fresh_ = false;           // no request has arrived on this connection yet
  unsigned deadline_generation_ = 0;
  bool reading_ = false;         // a wait for readability is in flight
  InputBuffer in_;
  std::size_t lingered_ = 0;     // bytes discarded while lingering

  // The request being read.
  std::unique_ptr<Request> request_;
  std::unique_ptr<RequestParser> parser_;
  HeaderScanner scanner_;

  // The answer being written.
  std::weak_ptr<Exchange> exchange_;
  std::deque<std::string> out_;
  std::size_t in_flight_ = 0;    // out_'s first entries that the write in flight carries
  bool writing_ = false;
  unsigned write_generation_ = 0;
  bool answer_ended_ = false;    // its last piece is in out_
  bool keep_alive_ = true;
  bool close_after_write_ = false;  // a refusal: linger once it is written
  std::atomic<std::size_t> queued_bytes_{0};
};

// Strand: goes on with what the connection is doing, given what has arrived.
inline void Connection::advance() {
  if (phase_ == Phase::idle) {
    // Blank lines before a request line are ignored (RFC 9112 2.2).
    while (in_.data().substr(0, 2) == "\r\n") in_.consume(2);
    if (in_.empty()) {
      in_.release();
      arm_deadline(core_->limits.idle_timeout);
      return want_read();
    }
    phase_ = Phase::header;
    arm_deadline(core_->limits.header_deadline);
  }
  if (phase_ == Phase::header) {
    if (!request_) {
      while (in_.data().substr(0, 2) == "\r\n") in_.consume(2);
      request_ = std::make_unique<Request>();
      request_->remote = remote_;
      parser_ = std::make_unique<RequestParser>(core_->limits, *request_);
      scanner_ = HeaderScanner();
    }
    return read_header();
  }
  if (phase_ == Phase::body) return read_body();
  if (phase_ == Phase::answering) return want_read();  // read ahead, and notice a peer that leaves
  if (phase_ == Phase::lingering) {
    lingered_ += in_.size();
    in_.consume(in_.size());
    if (lingered_ > linger_bytes) return close();
    return want_read();
  }
}

inline void Connection::read_header() {
  switch (scanner_.scan(in_.data(), core_->limits)) {
    case HeaderScanner::State::incomplete: return want_read();
    case HeaderScanner::State::line_too_long:
      return refuse(414, maskgen::detail::cat("the request line exceeds ", core_->limits.max_request_line_bytes, " bytes"));
    case HeaderScanner::State::headers_too_long:
      return refuse(431, maskgen::detail::cat("the request headers exceed ", core_->limits.max_header_bytes, " bytes"));
    case HeaderScanner::State::complete: break;
  }
  boost::beast::error_code ec;
  auto n = parser_->put(asio::const_buffer(in_.data().data(), scanner_.header_end()), ec);
  if (parser_->refusal) return refuse(parser_->refusal->status, parser_->refusal->message);
  if (ec == boost::beast::http::error::need_more) ec = {};
  if (ec == boost::beast::http::error::bad_version) {
    // Beast takes HTTP/1.0 and HTTP/1.1 only; a well-formed other version gets 505.
    std::string_view line = in_.data().substr(0, scanner_.line_end());
    std::string_view version = line.substr(line.size() >= 8 ? line.size() - 8 : 0);
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && digit(version[5]) && version[6] == '.' && digit(version[7]) &&
        line.size() > 8 && line[line.size() - 9] == ' ') {
      return refuse(505, maskgen::detail::cat("HTTP version ", version.substr(5), " is not supported (expected HTTP/1.0 or HTTP/1.1)"));
    }
  }
  if (ec || !parser_->is_header_done()) {
    return refuse(400, maskgen::detail::cat("malformed request: ", ec ? ec.message() : std::string("incomplete header")));
  }
  in_.consume(n);
  fresh_ = false;
  if (parser_->is_done()) return dispatch();
  phase_ = Phase::body;
  arm_deadline(core_->limits.body_deadline);
  if (parser_->expect_continue && in_.empty()) {
    out_.push_back("HTTP/1.1 100 Continue\r\n\r\n");
    flush();
  }
  read_body();
}

inline void Connection::read_body() {
  while (!in_.empty() && !parser_->is_done()) {
    boost::beast::error_code ec;
    auto n = parser_->put(asio::const_buffer(in_.data().data(), in_.size()), ec);
    in_.consume(n);
    if (parser_->refusal) return refuse(parser_->refusal->status, parser_->refusal->message);
    if (ec == boost::beast::http::error::need_more) break;
    if (ec) return refuse(400, maskgen::detail::cat("malformed request body: ", ec.message()));
    if (n == 0) break;
  }
  if (parser_->is_done()) return dispatch();
  // A chunk header (with its extensions) or trailer the parser cannot finish in this much is refused.
  if (in_.size() > 2 * read_chunk_bytes) return refuse(400, "malformed request body: a chunk header or trailer is too long");
  want_read();
}

// Strand: a whole request arrived; hands it to the handler.
inline void Connection::dispatch() {
  disarm_deadline();
  phase_ = Phase::answering;
  answer_ended_ = false;
  const bool keep_alive = parser_->keep_alive();
  const bool head = request_->method == "HEAD";
  parser_.reset();
  auto exchange = ExchangeAccess::make(shared_from_this(), std::move(*request_), keep_alive, head);
  request_.reset();
  exchange_ = exchange;
  try {
    core_->handler(exchange);
  } catch (const std::exception& e) {
    try {
      exchange->respond(Response{500, "application/json", {}, error_body(500, maskgen::detail::cat("the handler failed: ", e.what()))});
    } catch (...) {
    }
  } catch (...) {
    try {
      exchange->respond(Response{500, "application/json", {}, error_body(500, "the handler failed")});
    } catch (...) {
    }
  }
  exchange.reset();
  if (phase_ == Phase::answering) want_read();
}

inline void Connection::want_read() {
  if (reading_ || phase_ == Phase::closed) return;
  if (phase_ == Phase::answering && in_.size() >= read_ahead_bytes) return;  // resumes after the answer
  reading_ = true;
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const boost::system::error_code& ec) { self->on_readable(ec); });
}

inline void Connection::on_readable(const boost::system::error_code& ec) {
  reading_ = false;
  if (phase_ == Phase::closed) return;
  if (ec) return peer_gone();
  boost::system::error_code rec;
  std::size_t available = socket_.available(rec);
  std::size_t want = std::clamp<std::size_t>(available, 512, read_chunk_bytes);
  char* room = in_.prepare(want);
  std::size_t n = socket_.read_some(asio::buffer(room, want), rec);
  in_.commit(rec ? 0 : n);
  if (rec == asio::error::would_block || rec == asio::error::try_again) return want_read();
  if (rec) return peer_gone();
  advance();
}

inline void Connection::on_deadline() {
  switch (phase_) {
    case Phase::idle: return close();  // keep-alive connection idle too long
    case Phase::header:
      if (in_.empty() && fresh_) return close();  // a connection that never sent a byte
      return refuse(408, maskgen::detail::cat("the request headers did not arrive within ",
                                              core_->limits.header_deadline.count(), " ms"));
    case Phase::body:
      return refuse(408, maskgen::detail::cat("the request body did not arrive within ", core_->limits.body_deadline.count(), " ms"));
    case Phase::lingering: return close();
    case Phase::answering:
    case Phase::closed: return;
  }
}

// Strand: writes what is queued, one write at a time.
inline void Connection::flush() {
  if (writing_ || phase_ == Phase::closed) return;
  if (out_.empty()) {
    if (close_after_write_) return linger();
    if (answer_ended_ && phase_ == Phase::answering) answer_done();
    return;
  }
  std::vector<asio::const_buffer> buffers;
  in_flight_ = std::min<std::size_t>(out_.size(), 64);
  buffers.reserve(in_flight_);
  for (std::size_t i = 0; i < in_flight_; ++i) buffers.emplace_back(asio::buffer(out_[i]));
  writing_ = true;
  const unsigned generation = ++write_generation_;
  write_timer_.expires_after(core_->limits.write_timeout);
  write_timer_.async_wait([self = shared_from_this(), generation](const boost::system::error_code& ec) {
    if (!ec && generation == self->write_generation_ && self->writing_) self->peer_gone();
  });
  asio::async_write(socket_, buffers, [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
    self->on_written(ec, n);
  });
}

inline void Connection::on_written(const boost::system::error_code& ec, std::size_t n) {
  writing_ = false;
  ++write_generation_;
  write_timer_.cancel();
  if (phase_ == Phase::closed) return;
  if (ec) return peer_gone();
  queued_bytes_ -= std::min(queued_bytes_.load(), n);
  for (std::size_t i = 0; i < in_flight_; ++i) out_.pop_front();
  in_flight_ = 0;
  flush();
}

// Strand: the current answer was written whole.
inline void Connection::answer_done() {
  answer_ended_ = false;
  exchange_.reset();
  if (!keep_alive_) return linger();
  phase_ = Phase::idle;
  advance();
}

// Strand: answers a request the layer will not serve, then closes.
inline void Connection::refuse(int status, std::string message) {
  core_->refusal(remote_, status, message);
  parser_.reset();
  request_.reset();
  phase_ = Phase::lingering;  // reads from here on are discarded
  arm_deadline(linger_time);  // also bounds the refusal's write
  lingered_ = in_.size();
  in_.consume(in_.size());
  out_.push_back(refusal_bytes(status, message));
  close_after_write_ = true;
  flush();
}

// Strand: sends FIN, then reads and discards until the client closes or linger_time passes.
inline void Connection::linger() {
  if (phase_ == Phase::closed) return;
  phase_ = Phase::lingering;
  close_after_write_ = false;
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close();
  arm_deadline(linger_time);
  advance();
}

// Strand: the peer closed or reset the connection, or stopped reading.
inline void Connection::peer_gone() { close(); }

inline void Connection::close() {
  if (phase_ == Phase::closed) return;
  phase_ = Phase::closed;
  boost::system::error_code ec;
  deadline_.cancel();
  write_timer_.cancel();
  socket_.close(ec);
  out_.clear();
  if (auto exchange = exchange_.lock()) ExchangeAccess::mark_gone(*exchange);
  exchange_.reset();
  std::lock_guard lock(core_->mutex);
  core_->connections.erase(this);
  if (counted_) {
    --core_->counted;
  } else {
    --core_->refusing;
  }
}

inline void Core::accept(const std::shared_ptr<tcp::acceptor>& acceptor) {
  auto strand = asio::make_strand(io);
  acceptor->async_accept(strand, [self = shared_from_this(), acceptor, strand](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (ec) {
      // Out of descriptors or buffers: try again shortly rather than spin.
      auto timer = std::make_shared<asio::steady_timer>(acceptor->get_executor(), std::chrono::milliseconds(50));
      timer->async_wait([self, acceptor, timer](const boost::system::error_code&) {
        std::unique_lock lock(self->mutex);
        if (!self->stopped) {
          lock.unlock();
          self->accept(acceptor);
        }
      });
      return;
    }
    std::shared_ptr<Connection> connection;
    bool over_limit = false;
    {
      std::lock_guard lock(self->mutex);
      if (self->stopped) return;
      over_limit = self->counted >= self->limits.max_connections;
      if (!over_limit || self->refusing < max_refusing) {
        connection = std::make_shared<Connection>(self, strand, std::move(socket), !over_limit);
        ++(over_limit ? self->refusing : self->counted);
        self->connections.emplace(connection.get(), connection);
      }
    }
    if (connection) {
      asio::dispatch(connection->strand(), [connection, over_limit] { connection->start(over_limit); });
    } else {
      // Too many refusals under way already: close without an answer.
      boost::system::error_code ignored;
      socket.close(ignored);
    }
    self->accept(acceptor);
  });
}

inline void Core::serve() {
  {
    std::lock_guard lock(mutex);
    ++serving;
  }
  current = this;
  for (;;) {
    try {
      io.run();
      break;
    } catch (...) {
      // A callback of the application threw; the connection it belonged to goes on.
    }
  }
  current = nullptr;
  std::lock_guard lock(mutex);
  --serving;
  served.notify_all();
}

}  // namespace detail

// ---- Exchange ----

inline void Exchange::mark_gone() {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(mutex_);
    if (gone_.load()) return;
    gone_ = true;
    callbacks.swap(gone_callbacks_);
  }
  for (auto& f : callbacks) {
    try {
      f();
    } catch (...) {
    }
  }
}

inline void Exchange::on_client_gone(std::function<void()> f) {
  if (!f) return;
  {
    std::lock_guard lock(mutex_);
    if (!gone_.load()) {
      gone_callbacks_.push_back(std::move(f));
      return;
    }
  }
  f();
}

inline std::size_t Exchange::queued_bytes() const { return connection_->queued_bytes(); }

inline void Exchange::respond(Response r) {
  detail::check_status(r.status, "Exchange::respond");
  detail::check_headers(r.headers, "Exchange::respond");
  {
    std::lock_guard lock(mutex_);
    if (phase_ != Phase::fresh) throw maskgen::argument_error("Exchange::respond: this exchange was already answered or its stream begun");
    phase_ = Phase::ended;
  }
  if (gone_.load()) return;
  std::string bytes = detail::head_bytes(r.status, r.content_type, r.headers, r.body.size(), false, keep_alive_);
  const bool bodiless = head_ || r.status < 200 || r.status == 204 || r.status == 304;
  if (!bodiless) bytes += r.body;
  connection_->core().post(connection_->strand(), [c = connection_, bytes = std::move(bytes), k = keep_alive_]() mutable {
    c->send(std::move(bytes), true, k);
  });
}

inline bool Exchange::begin_stream(int status, std::string content_type, std::vector<std::pair<std::string, std::string>> headers) {
  detail::check_status(status, "Exchange::begin_stream");
  detail::check_headers(headers, "Exchange::begin_stream");
  bool chunked = request_.version >= 11;
  {
    std::lock_guard lock(mutex_);
    if (phase_ != Phase::fresh) {
      throw maskgen::argument_error("Exchange::begin_stream: this exchange was already answered or its stream begun");
    }
    phase_ = Phase::streaming;
    chunked_ = chunked;
  }
  if (gone_.load()) return false;
  // HTTP/1.0 has no chunked coding: the body runs to the close.
  std::string bytes = detail::head_bytes(status, content_type, headers, std::nullopt, chunked, chunked && keep_alive_);
  return connection_->core().post(connection_->strand(), [c = connection_, bytes = std::move(bytes)]() mutable {
    c->send(std::move(bytes), false, false);
  });
}

inline bool Exchange::write(std::string chunk) {
  bool chunked;
  {
    std::lock_guard lock(mutex_);
    if (phase_ != Phase::streaming) throw maskgen::argument_error("Exchange::write: call it between begin_stream and end_stream");
    chunked = chunked_;
  }
  if (gone_.load()) return false;
  if (chunk.empty() || head_) return true;
  if (chunked) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string size;
    for (std::size_t n = chunk.size(); n > 0; n >>= 4) size.insert(size.begin(), hex[n & 0xf]);
    chunk = size + "\r\n" + std::move(chunk) + "\r\n";
  }
  return connection_->core().post(connection_->strand(), [c = connection_, chunk = std::move(chunk)]() mutable {
    c->send(std::move(chunk), false, false);
  });
}

inline void Exchange::end_stream() {
  bool chunked;
  {
    std::lock_guard lock(mutex_);
    if (phase_ != Phase::streaming) throw maskgen::argument_error("Exchange::end_stream: no stream was begun, or it already ended");
    phase_ = Phase::ended;
    chunked = chunked_;
  }
  if (gone_.load()) return;
  std::string last = chunked && !head_ ? "0\r\n\r\n" : "";
  connection_->core().post(connection_->strand(), [c = connection_, last = std::move(last), k = chunked && keep_alive_]() mutable {
    c->send(std::move(last), true, k);
  });
}

inline Exchange::~Exchange() {
  Phase phase;
  {
    std::lock_guard lock(mutex_);
    phase = phase_;
  }
  if (gone_.load() || phase == Phase::ended) return;
  if (phase == Phase::fresh) {
    std::string body = detail::error_body(500, "the request's handler dropped it without an answer");
    std::string bytes = detail::head_bytes(500, "application/json", {}, body.size(), false, keep_alive_) + (head_ ? "" : body);
    connection_->core().post(connection_->strand(), [c = connection_, bytes = std::move(bytes), k = keep_alive_]() mutable {
      c->send(std::move(bytes), true, k);
    });
  } else {
    connection_->core().post(connection_->strand(), [c = connection_] { c->abort(); });
  }
}

// ---- Server ----

inline Server::Server(Limits limits, Handler handler, RefusalLog log) {
  auto positive = [](auto value, const char* name) {
    if (!(value > decltype(value){0})) {
      throw maskgen::argument_error(maskgen::detail::cat("Limits::", name, " must be positive"));
    }
  };
  positive(limits.max_request_line_bytes, "max_request_line_bytes");
  positive(limits.max_header_bytes, "max_header_bytes");
  positive(limits.max_header_count, "max_header_count");
  positive(limits.max_body_bytes, "max_body_bytes");
  positive(limits.header_deadline.count(), "header_deadline");
  positive(limits.body_deadline.count(), "body_deadline");
  positive(limits.idle_timeout.count(), "idle_timeout");
  positive(limits.write_timeout.count(), "write_timeout");
  positive(limits.max_connections, "max_connections");
  positive(limits.io_threads, "io_threads");
  if (limits.max_request_line_bytes + limits.max_header_bytes > (std::size_t{1} << 31)) {
    throw maskgen::argument_error("Limits::max_request_line_bytes + max_header_bytes must stay below 2 GiB");
  }
  if (!handler) throw maskgen::argument_error("Server: handler is empty, expected a function");
  core_ = std::make_shared<detail::Core>(limits, std::move(handler), std::move(log));
}

inline int Server::bind(const std::string& host, int port) {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;
  const std::string where = maskgen::detail::cat(host, ":", port);
  if (port < 0 || port > 65535) throw maskgen::argument_error(maskgen::detail::cat("Server::bind: port is ", port, ", expected 0..65535"));
  {
    std::lock_guard lock(core_->mutex);
    if (core_->stopped) throw maskgen::io_error(maskgen::detail::cat("cannot listen on ", where, ": the server was stopped"));
  }
  boost::system::error_code ec;
  tcp::resolver resolver(core_->io);
  auto endpoints = resolver.resolve(host, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    throw maskgen::io_error(maskgen::detail::cat("cannot listen on ", where, ": ", ec ? ec.message() : std::string("no address")));
  }
  // The acceptor lives on a strand of its own: accepting and stop()'s close never run at once.
  auto acceptor = std::make_shared<tcp::acceptor>(asio::make_strand(core_->io));
  auto endpoint = endpoints.begin()->endpoint();
  auto fail = [&](const char* step) {
    throw maskgen::io_error(maskgen::detail::cat("cannot listen on ", where, ": ", step, ": ", ec.message()));
  };
  if (acceptor->open(endpoint.protocol(), ec)) fail("socket");
  if (acceptor->set_option(tcp::acceptor::reuse_address(true), ec)) fail("setsockopt(SO_REUSEADDR)");
  if (acceptor->bind(endpoint, ec)) fail("bind");
  if (acceptor->listen(asio::socket_base::max_listen_connections, ec)) fail("listen");
  const int bound = acceptor->local_endpoint(ec).port();
  if (ec) fail("getsockname");
  {
    std::lock_guard lock(core_->mutex);
    core_->acceptors.push_back(acceptor);
  }
  asio::post(acceptor->get_executor(), [core = core_, acceptor] { core->accept(acceptor); });
  return bound;
}

inline void Server::run() {
  std::vector<std::thread> helpers;
  for (int i = 1; i < core_->limits.io_threads; ++i) helpers.emplace_back([core = core_] { core->serve(); });
  core_->serve();
  for (auto& t : helpers) t.join();
}

inline void Server::start() {
  std::lock_guard lock(threads_mutex_);
  for (int i = 0; i < core_->limits.io_threads; ++i) threads_.emplace_back([core = core_] { core->serve(); });
}

inline void Server::stop() {
  std::vector<std::shared_ptr<detail::Connection>> open;
  {
    std::lock_guard lock(core_->mutex);
    if (!core_->stopped) {
      core_->stopped = true;
      for (auto& acceptor : core_->acceptors) {
        boost::asio::post(acceptor->get_executor(), [acceptor] {
          boost::system::error_code ec;
          acceptor->close(ec);
        });
      }
      for (auto& [raw, weak] : core_->connections) {
        if (auto c = weak.lock()) open.push_back(std::move(c));
      }
      core_->guard.reset();
    }
  }
  for (auto& c : open) boost::asio::post(c->strand(), [c] { c->stop(); });
  open.clear();
  if (detail::Core::current == core_.get()) return;  // called from a handler: the threads end after it
  {
    std::lock_guard lock(threads_mutex_);
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  {
    std::unique_lock lock(core_->mutex);
    core_->served.wait(lock, [&] { return core_->serving == 0; });
    if (core_->drained) return;
    core_->drained = true;
  }
  // Runs what is left (closing connections, handlers posted before the stop) to its end, so that
  // nothing queued keeps the Core alive.
  core_->io.restart();
  core_->serve();
}

inline Server::~Server() {
  stop();
}

}  // namespace maskgen_http

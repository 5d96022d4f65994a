#pragma once
// A client on a raw POSIX socket with a small HTTP/1.1 response reader of its own, for the tests
// of the HTTP layer (http_test.cpp) and of the server under hostile clients
// (hostile_client_test.cpp): it can send any bytes, one at a time, pipelined, or none at all.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace maskgen_http_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A client connection on a raw socket, with a small HTTP/1.1 response reader of its own.
class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }
  void close() {
    ::close(fd_);
    fd_ = -1;
  }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  struct Reply {
    int status = 0;
    std::map<std::string, std::string> headers;  // names lowercased
    std::string body;                           // chunked bodies decoded
    std::vector<std::string> chunks;            // the chunks of a chunked body, as framed
  };

  // One response within `timeout`; nullopt when it did not come whole (or the connection closed).
  std::optional<Reply> read_response(std::chrono::milliseconds timeout = 2000ms) {
    const auto deadline = Clock::now() + timeout;
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!receive(deadline)) return std::nullopt;
    }
    Reply reply;
    std::string head = buffer_.substr(0, end + 2);
    buffer_.erase(0, end + 4);
    if (head.compare(0, 9, "HTTP/1.1 ") != 0) return std::nullopt;
    reply.status = std::stoi(head.substr(9, 3));
    for (std::size_t at = head.find("\r\n") + 2; at < head.size();) {
      std::size_t eol = head.find("\r\n", at);
      std::string line = head.substr(at, eol - at);
      at = eol + 2;
      auto colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::size_t v = colon + 1;
      while (v < line.size() && line[v] == ' ') ++v;
      reply.headers[name] = line.substr(v);
    }
    if (reply.status < 200 || reply.status == 204 || reply.status == 304) return reply;  // no body (RFC 9112 6.3)
    if (reply.headers.count("transfer-encoding")) {
      for (;;) {
        std::size_t eol;
        while ((eol = buffer_.find("\r\n")) == std::string::npos) {
          if (!receive(deadline)) return std::nullopt;
        }
        std::size_t size = std::stoul(buffer_.substr(0, eol), nullptr, 16);
        while (buffer_.size() < eol + 2 + size + 2) {
          if (!receive(deadline)) return std::nullopt;
        }
        std::string data = buffer_.substr(eol + 2, size);
        if (buffer_.compare(eol + 2 + size, 2, "\r\n") != 0) return std::nullopt;
        buffer_.erase(0, eol + 2 + size + 2);
        if (size == 0) break;
        reply.chunks.push_back(data);
        reply.body += data;
      }
    } else if (reply.headers.count("content-length")) {
      std::size_t length = std::stoul(reply.headers["content-length"]);
      while (buffer_.size() < length) {
        if (!receive(deadline)) return std::nullopt;
      }
      reply.body = buffer_.substr(0, length);
      buffer_.erase(0, length);
    } else {
      while (receive(deadline)) {
      }
      reply.body = std::move(buffer_);
      buffer_.clear();
    }
    return reply;
  }

  // True when the server closes the connection (EOF or reset) within `timeout`, with no bytes first.
  bool closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::size_t before = buffer_.size();
    while (receive(deadline)) {
    }
    return eof_ && buffer_.size() == before;
  }

  // Receives what arrives until `timeout`, and returns everything buffered.
  std::string receive_for(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline && receive(deadline)) {
    }
    return buffer_;
  }
  // Receives until `needle` is buffered or `timeout` passes.
  bool receive_until(std::string_view needle, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (buffer_.find(needle) == std::string::npos) {
      if (!receive(deadline)) return false;
    }
    return true;
  }

 private:
  // Appends what arrives before the deadline; false on timeout, EOF or error.
  bool receive(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 || eof_) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

}  // namespace maskgen_http_test

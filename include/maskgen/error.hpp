#pragma once
// The exceptions maskgen throws at its API and I/O edges. Every message names the argument (and
// the row or element where there is one) and says what was expected.

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace maskgen {

// Base of everything maskgen throws on purpose.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An argument has the wrong shape, value or range.
class argument_error : public error {
 public:
  using error::error;
};

// A file is missing or cannot be read.
class io_error : public error {
 public:
  using error::error;
};

// A file was read but its contents are corrupt, inconsistent or of a kind maskgen does not support.
class format_error : public error {
 public:
  using error::error;
};

// A well-formed file that uses a feature maskgen does not implement (a tokenizer.json WordPiece
// model, an unknown normalizer...). Loaders may fall back to another file when they see one.
class unsupported_error : public format_error {
 public:
  using format_error::format_error;
};

namespace detail {

// Streams every argument into one string: cat("row ", 3, " has ", n, " tokens").
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return std::move(out).str();
}

// Throws argument_error "<what...> is <id>, outside the vocabulary [0, <vocab_size>)" unless
// 0 <= id < vocab_size; `what` names the argument and the row or element, as cat() joins them.
template <class... What>
void check_vocabulary_id(std::int64_t id, std::int64_t vocab_size, const What&... what) {
  if (id < 0 || id >= vocab_size) {
    throw argument_error(cat(what..., " is ", id, ", outside the vocabulary [0, ", vocab_size, ")"));
  }
}

}  // namespace detail
}  // namespace maskgen

#pragma once
// Reading a whole file, with errors that name it.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "../error.hpp"

namespace maskgen::detail {

// The bytes of the file at `path`; `what` names it in errors ("tokenizer file").
inline std::string read_file(const std::filesystem::path& path, std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw io_error(cat(what, " ", path, " does not exist or is not a file"));
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw io_error(cat(what, " ", path, " could not be read"));
  return bytes;
}

}  // namespace maskgen::detail

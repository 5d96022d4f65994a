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
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const std::streamoff size = in.tellg();
  if (!in || size < 0) throw io_error(cat(what, " ", path, " could not be read"));
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  in.read(bytes.data(), size);
  if (in.gcount() != size) throw io_error(cat(what, " ", path, " could not be read"));
  return bytes;
}

}  // namespace maskgen::detail

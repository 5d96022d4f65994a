#pragma once
// One JSON file read whole (config.json, generation_config.json, a safetensors index), with the
// errors every loader gives: io_error when it cannot be read, format_error when it is not JSON.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "../error.hpp"

namespace maskgen::detail {

// `what` names the file's role in messages ("model config", "safetensors index").
inline nlohmann::json read_json_file(const std::filesystem::path& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(cat(what, " ", path, " does not exist or cannot be read"));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw io_error(cat(what, " ", path, " could not be read"));
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw format_error(cat(path, " is not valid JSON: ", e.what()));
  }
}

}  // namespace maskgen::detail

#pragma once
// Writes safetensors files (the layout include/maskgen/safetensors.hpp reads): the tests write
// the checkpoints they read back, and random_model.hpp writes model folders of any shape. The
// library itself only reads the format, so the writer lives here, beside its users.

#include <maskgen/error.hpp>
#include <maskgen/safetensors.hpp>  // DType, dtype_name, dtype_size; asserts a little-endian host

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <ios>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace maskgen {

// One tensor to write: its bytes are little-endian values of `dtype`, numel(shape) of them.
struct TensorData {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;
};

// Writes a safetensors file: tensors in the order given, each range right after the previous one.
// Throws argument_error for a size that does not match the shape or a repeated name, io_error if
// the file cannot be written.
inline void write_safetensors(const std::filesystem::path& path, std::span<const TensorData> tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  using detail::cat;
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const auto& t : tensors) {
    std::size_t numel = 1;
    for (const auto d : t.shape) {
      if (d < 0) throw argument_error(cat("write_safetensors: tensor ", t.name, " has a negative dimension"));
      numel *= static_cast<std::size_t>(d);
    }
    if (t.bytes.size() != numel * dtype_size(t.dtype)) {
      throw argument_error(cat("write_safetensors: tensor ", t.name, " has ", t.bytes.size(), " bytes; its shape and dtype need ",
                               numel * dtype_size(t.dtype)));
    }
    if (header.contains(t.name)) throw argument_error(cat("write_safetensors: tensor ", t.name, " appears twice"));
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the format suggests
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const std::uint64_t length = text.size();  // little-endian host (asserted in safetensors.hpp)
  out.write(reinterpret_cast<const char*>(&length), sizeof length);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : tensors) out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
  out.close();
  if (!out) throw io_error(cat("write_safetensors: could not write ", path));
}

}  // namespace maskgen

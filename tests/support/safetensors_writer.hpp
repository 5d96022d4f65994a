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

// A tensor whose bytes are made only when the writer reaches it (write_safetensors_streamed).
struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
};

namespace detail {

// The header of a safetensors file holding `tensors` in order, each range right after the previous
// one, padded with spaces so that the data starts 8-byte aligned. Throws argument_error for a
// negative dimension or a repeated name.
inline std::string safetensors_header(std::span<const TensorSpec> tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const auto& t : tensors) {
    std::size_t numel = 1;
    for (const auto d : t.shape) {
      if (d < 0) throw argument_error(cat("write_safetensors: tensor ", t.name, " has a negative dimension"));
      numel *= static_cast<std::size_t>(d);
    }
    if (header.contains(t.name)) throw argument_error(cat("write_safetensors: tensor ", t.name, " appears twice"));
    const std::size_t bytes = numel * dtype_size(t.dtype);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the format suggests
  return text;
}

inline std::size_t spec_bytes(const TensorSpec& t) {
  std::size_t numel = 1;
  for (const auto d : t.shape) numel *= static_cast<std::size_t>(d);
  return numel * dtype_size(t.dtype);
}

}  // namespace detail

// Writes a safetensors file whose tensors, in the order given, get their bytes from
// `produce(i, bytes)` (bytes: an empty vector to fill with tensor i's little-endian values) one
// at a time: only one tensor's bytes are in memory at once, whatever the file's size.
// Throws argument_error for a negative dimension, a repeated name or a tensor whose bytes do not
// match its shape and dtype, io_error if the file cannot be written.
template <class Produce>
void write_safetensors_streamed(const std::filesystem::path& path, std::span<const TensorSpec> tensors, Produce&& produce,
                                const std::map<std::string, std::string>& metadata = {}) {
  using detail::cat;
  const std::string text = detail::safetensors_header(tensors, metadata);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const std::uint64_t length = text.size();  // little-endian host (asserted in safetensors.hpp)
  out.write(reinterpret_cast<const char*>(&length), sizeof length);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  std::vector<std::byte> bytes;
  for (std::size_t i = 0; i < tensors.size() && out; ++i) {
    bytes.clear();
    produce(i, bytes);
    if (bytes.size() != detail::spec_bytes(tensors[i])) {
      throw argument_error(cat("write_safetensors: tensor ", tensors[i].name, " has ", bytes.size(),
                               " bytes; its shape and dtype need ", detail::spec_bytes(tensors[i])));
    }
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  out.close();
  if (!out) throw io_error(cat("write_safetensors: could not write ", path));
}

// Writes a safetensors file: tensors in the order given, each range right after the previous one.
// Throws argument_error for a size that does not match the shape or a repeated name, io_error if
// the file cannot be written.
inline void write_safetensors(const std::filesystem::path& path, std::span<const TensorData> tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  using detail::cat;
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& t : tensors) specs.push_back({t.name, t.dtype, t.shape});
  detail::safetensors_header(specs, metadata);  // refuses a bad shape or name before the file is opened
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (tensors[i].bytes.size() != detail::spec_bytes(specs[i])) {
      throw argument_error(cat("write_safetensors: tensor ", specs[i].name, " has ", tensors[i].bytes.size(),
                               " bytes; its shape and dtype need ", detail::spec_bytes(specs[i])));
    }
  }
  write_safetensors_streamed(
      path, specs,
      [&](std::size_t i, std::vector<std::byte>& bytes) { bytes.assign(tensors[i].bytes.begin(), tensors[i].bytes.end()); },
      metadata);
}

}  // namespace maskgen

#pragma once
// Reading Hugging Face safetensors checkpoints: one memory-mapped file (SafetensorsFile) or a model
// folder, sharded through model.safetensors.index.json or not (SafetensorsCheckpoint).
//
// File layout: 8 bytes little-endian uint64 N, then N bytes of UTF-8 JSON (an object mapping each
// tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, plus an optional "__metadata__"
// object of strings), then the data section. Offsets are relative to the data section (byte 8 + N).
//
// Every header is validated before any tensor is touched, so a tensor that opened can be read
// without further checks: dtype supported, shape non-negative and its product representable, byte
// range inside the data section and of exactly numel * dtype_size bytes, no two ranges overlapping.
// Gaps between ranges and unused trailing bytes are allowed. Corrupt contents throw format_error;
// missing or unreadable files throw io_error. Nothing reads out of bounds, whatever the input.
//
// Values are converted to the caller's scalar (float or double) at read time by the dtype's codec
// (weights/codec.hpp). Every conversion is exact (F16 and BF16 are decoded bit by bit: subnormals,
// infinities and NaN payloads kept), except F64 read into float, which rounds to nearest, ties to
// even (values beyond float's range become inf).

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "detail/json_file.hpp"
#include "error.hpp"
#include "weights/codec.hpp"

namespace maskgen {

static_assert(std::endian::native == std::endian::little,
              "maskgen reads safetensors data (little-endian) in place: it needs a little-endian host");

// The element types maskgen reads. Other safetensors dtypes (integers, bool, float8) are rejected.
// The floating-point dtypes hold values (each has a codec, weights/codec.hpp); the others hold the
// packed codes, zeros, indices and scales of quantized checkpoints, read by their formats
// (weights/quantized_checkpoint.hpp).
enum class DType { F16, BF16, F32, F64, I32, I64, I8, U8, F8_E4M3 };

inline constexpr DType all_dtypes[] = {DType::F16, DType::BF16, DType::F32, DType::F64, DType::I32,
                                       DType::I64, DType::I8,   DType::U8,  DType::F8_E4M3};

// The dtype as safetensors spells it: "F16", "BF16", "F32", "F64", "I32", "I64", "I8", "U8", "F8_E4M3".
inline std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::F8_E4M3: return "F8_E4M3";
  }
  return "?";
}

// Bytes per element.
inline std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::I8:
    case DType::U8:
    case DType::F8_E4M3: return 1;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::F32:
    case DType::I32: return 4;
    case DType::F64:
    case DType::I64: return 8;
  }
  return 0;
}

// Whether `dtype` holds values that read() converts (F16, BF16, F32, F64).
inline bool is_float_dtype(DType dtype) { return weights::codec_for_dtype(dtype_name(dtype)).has_value(); }

// The codec that reads a floating-point `dtype` (is_float_dtype); a format_error naming the tensor
// for the others, which hold codes rather than values.
inline weights::WeightType stored_type(DType dtype, std::string_view tensor = "") {
  const auto codec = weights::codec_for_dtype(dtype_name(dtype));
  if (!codec) {
    throw format_error(detail::cat("tensor \"", tensor, "\" has dtype ", dtype_name(dtype),
                                   "; expected F16, BF16, F32 or F64 values (the checkpoint's quantization_config "
                                   "says which tensors hold packed codes)"));
  }
  return *codec;
}

// One tensor of a safetensors file, as its header describes it (validated).
struct TensorInfo {
  std::string name;                 // key in the header, e.g. "model.embed_tokens.weight"
  DType dtype = DType::F32;         // element type in the file
  std::vector<std::int64_t> shape;  // row-major dims, each >= 0; [] is a scalar of one element
  std::size_t begin = 0;            // absolute byte offset of the first element in the file
  std::size_t end = 0;  // absolute byte offset one past the last; end - begin = numel * dtype_size

  // Product of the dims (1 for a scalar). Validated at open to fit an int64.
  std::int64_t numel() const {
    std::uint64_t n = 1;  // unsigned: no undefined behaviour even for a hand-made TensorInfo
    for (const std::int64_t d : shape) n *= static_cast<std::uint64_t>(d);
    return static_cast<std::int64_t>(n);
  }
};

namespace detail {

// The scalars a tensor can be read into.
template <class T>
concept TensorScalar = std::same_as<T, float> || std::same_as<T, double>;

// "[512, 64]".
inline std::string shape_string(std::span<const std::int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---- Memory mapping --------------------------------------------------------------------------

// A whole file mapped read-only. Owns the mapping; movable, not copyable. An empty file has no
// mapping (bytes() is empty).
class MappedFile {
 public:
  MappedFile() = default;

  static MappedFile open(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block
    if (fd < 0) {
      const int err = errno;
      throw io_error(
          cat("safetensors file ", path, " cannot be opened: ", std::generic_category().message(err)));
    }
    MappedFile file;
    try {
      file.map(fd, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);  // the mapping stays valid without the descriptor
    return file;
  }

  MappedFile(MappedFile&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      unmap();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { unmap(); }

  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  void map(int fd, const std::filesystem::path& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      throw io_error(
          cat("safetensors file ", path, " cannot be read: ", std::generic_category().message(err)));
    }
    if (!S_ISREG(st.st_mode)) throw io_error(cat("safetensors file ", path, " is not a regular file"));
    if (st.st_size == 0) return;  // mmap refuses length 0; the header check reports the empty file
    const auto size = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      throw io_error(
          cat("safetensors file ", path, " cannot be memory-mapped: ", std::generic_category().message(err)));
    }
    data_ = static_cast<const std::byte*>(p);
    size_ = size;
  }

  void unmap() noexcept {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Tells the kernel that this process no longer needs the pages wholly inside [p, p + bytes) of a
// read-only private file mapping: they leave its resident memory (the page cache keeps the file),
// and reading them again faults them back in from the file. For a mapping whose contents have been
// copied elsewhere (packed weights), so that the copy replaces the pages instead of sitting beside
// them.
inline void release_mapped_pages(const std::byte* p, std::size_t bytes) noexcept {
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) / page * page;
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// ---- Header parsing --------------------------------------------------------------------------

// Headers above this are refused as corrupt before parsing (the safetensors crate's own limit).
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

// A little-endian value at `p` (any alignment).
template <class T>
T load_le(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Names the file and the tensor at the start of every header error.
struct HeaderContext {
  const std::filesystem::path& path;
  const std::string* tensor = nullptr;  // null outside a tensor entry

  template <class... Parts>
  format_error fail(const Parts&... parts) const {
    if (!tensor) return format_error(cat("safetensors file ", path, ": ", parts...));
    return format_error(cat("safetensors file ", path, ": tensor \"", *tensor, "\": ", parts...));
  }
};

// The JSON bytes of the header, after checking the length prefix against the file size.
inline std::string_view header_text(std::span<const std::byte> file, const HeaderContext& where) {
  if (file.size() < 8) {
    throw where.fail("the file is ", file.size(),
                     " bytes long; expected at least 8 (the little-endian header length)");
  }
  const auto n = load_le<std::uint64_t>(file.data());
  if (n > max_header_bytes) {
    throw where.fail("header length ", n, " is absurdly large (the limit is ", max_header_bytes,
                     " bytes); the file is corrupt or not safetensors");
  }
  if (n > file.size() - 8) {
    throw where.fail("header length ", n, " runs past the end of the file (", file.size() - 8,
                     " bytes after the length prefix)");
  }
  return {reinterpret_cast<const char*>(file.data() + 8), static_cast<std::size_t>(n)};
}

inline nlohmann::json parse_header_json(std::string_view text, const HeaderContext& where) {
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    throw where.fail("the header is not valid JSON: ", e.what());
  }
  if (!header.is_object()) {
    throw where.fail("the header is a JSON ", header.type_name(), "; expected an object of tensors");
  }
  return header;
}

// Known safetensors dtypes maskgen does not read; named as unsupported rather than unknown.
inline bool is_other_safetensors_dtype(std::string_view s) {
  static constexpr std::string_view others[] = {"BOOL",    "U16", "I16",     "U32",     "U64",    "F8_E5M2",
                                                "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "C64"};
  return std::ranges::find(others, s) != std::end(others);
}

inline DType parse_dtype(const nlohmann::json& j, const HeaderContext& where) {
  if (!j.is_string()) {
    throw where.fail("\"dtype\" is a JSON ", j.type_name(), "; expected a string such as \"F32\"");
  }
  const auto& s = j.get_ref<const std::string&>();
  for (const DType d : all_dtypes) {
    if (s == dtype_name(d)) return d;
  }
  if (is_other_safetensors_dtype(s)) {
    throw where.fail("dtype \"", s, "\" is not supported; expected F16, BF16, F32, F64, I32, I64, I8, U8 or F8_E4M3");
  }
  throw where.fail("unknown dtype \"", s.substr(0, 64), s.size() > 64 ? "...\"" : "\"",
                   "; expected F16, BF16, F32, F64, I32, I64, I8, U8 or F8_E4M3");
}

// A non-negative integer that fits `limit`; `what` names the field in the message.
inline std::uint64_t parse_count(const nlohmann::json& j, std::string_view what, std::uint64_t limit,
                                 const HeaderContext& where) {
  if (j.is_number_unsigned()) {
    const auto v = j.get<std::uint64_t>();
    if (v > limit) throw where.fail(what, " is ", v, "; expected at most ", limit);
    return v;
  }
  if (j.is_number_integer()) {
    throw where.fail(what, " is ", j.get<std::int64_t>(), "; expected a non-negative integer");
  }
  if (j.is_number()) throw where.fail(what, " is ", j.dump(), "; expected a non-negative integer");
  throw where.fail(what, " is a JSON ", j.type_name(), "; expected a non-negative integer");
}

// Dims of `j`, each a non-negative integer, whose product fits an int64.
inline std::vector<std::int64_t> parse_shape(const nlohmann::json& j, const HeaderContext& where) {
  if (!j.is_array()) {
    throw where.fail("\"shape\" is a JSON ", j.type_name(), "; expected an array of integers");
  }
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::vector<std::int64_t> shape;
  shape.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    shape.push_back(static_cast<std::int64_t>(parse_count(j[i], cat("shape dim ", i), max, where)));
  }
  std::uint64_t numel = 1;  // multiplied in order, like the safetensors crate: overflow is an error
  for (const std::int64_t d : shape) {
    const auto u = static_cast<std::uint64_t>(d);
    if (u != 0 && numel > max / u) {
      throw where.fail("shape ", shape_string(shape), " has more elements than an int64 can count");
    }
    numel *= u;
  }
  return shape;
}

// [begin, end] relative to the data section, with begin <= end <= data_size.
inline std::pair<std::size_t, std::size_t> parse_offsets(const nlohmann::json& j, std::size_t data_size,
                                                         const HeaderContext& where) {
  if (!j.is_array() || j.size() != 2) {
    throw where.fail("\"data_offsets\" is ",
                     j.is_array() ? cat("an array of ", j.size()) : cat("a JSON ", j.type_name()),
                     "; expected [begin, end]");
  }
  const auto begin =
      parse_count(j[0], "data_offsets begin", std::numeric_limits<std::uint64_t>::max(), where);
  const auto end = parse_count(j[1], "data_offsets end", std::numeric_limits<std::uint64_t>::max(), where);
  if (begin > end) {
    throw where.fail("data_offsets [", begin, ", ", end, "] has begin > end; expected begin <= end");
  }
  if (end > data_size) {
    throw where.fail("data_offsets end ", end, " is past the end of the data section (", data_size,
                     " bytes)");
  }
  return {static_cast<std::size_t>(begin), static_cast<std::size_t>(end)};
}

// One tensor entry. `data_start` is the absolute offset of the data section.
inline TensorInfo parse_tensor(const std::string& name, const nlohmann::json& j, std::size_t data_start,
                               std::size_t data_size, const HeaderContext& file_where) {
  const HeaderContext where{file_where.path, &name};
  if (!j.is_object()) {
    throw where.fail("the entry is a JSON ", j.type_name(),
                     "; expected an object with dtype, shape and data_offsets");
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!j.contains(key)) {
      throw where.fail("the entry has no \"", key, "\"; expected dtype, shape and data_offsets");
    }
  }
  TensorInfo t{
      .name = name, .dtype = parse_dtype(j.at("dtype"), where), .shape = parse_shape(j.at("shape"), where)};
  const auto [begin, end] = parse_offsets(j.at("data_offsets"), data_size, where);
  const auto numel = static_cast<std::uint64_t>(t.numel());
  const std::size_t size = dtype_size(t.dtype);
  if (numel > std::numeric_limits<std::size_t>::max() / size) {
    throw where.fail("shape ", shape_string(t.shape), " of ", dtype_name(t.dtype),
                     " needs more bytes than a size_t can count");
  }
  if (end - begin != numel * size) {
    throw where.fail("data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes; expected ",
                     numel * size, " for shape ", shape_string(t.shape), " of ", dtype_name(t.dtype));
  }
  t.begin = data_start + begin;
  t.end = data_start + end;
  return t;
}

inline std::map<std::string, std::string> parse_metadata(const nlohmann::json& j,
                                                         const HeaderContext& where) {
  if (!j.is_object()) {
    throw where.fail("\"__metadata__\" is a JSON ", j.type_name(), "; expected an object of strings");
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) {
      throw where.fail("\"__metadata__\" entry \"", key, "\" is a JSON ", value.type_name(),
                       "; expected a string");
    }
    metadata.emplace(key, value.get<std::string>());
  }
  return metadata;
}

// Throws when two non-empty byte ranges share a byte, naming both tensors.
inline void check_no_overlap(const std::map<std::string, TensorInfo, std::less<>>& tensors,
                             const HeaderContext& where) {
  std::vector<const TensorInfo*> ranges;
  for (const auto& [name, t] : tensors) {
    if (t.end > t.begin) ranges.push_back(&t);
  }
  std::ranges::sort(ranges, {}, [](const TensorInfo* t) { return t->begin; });
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    const TensorInfo& a = *ranges[i - 1];
    const TensorInfo& b = *ranges[i];
    if (b.begin < a.end) {
      throw where.fail("tensors \"", a.name, "\" (file bytes ", a.begin, " to ", a.end, ") and \"", b.name,
                       "\" (file bytes ", b.begin, " to ", b.end,
                       ") overlap; expected disjoint data_offsets");
    }
  }
}

struct ParsedHeader {
  std::map<std::string, TensorInfo, std::less<>> tensors;  // by name
  std::map<std::string, std::string> metadata;             // "__metadata__", empty when absent
};

// Validates the whole header of `file` (the complete file's bytes). `path` names it in errors.
inline ParsedHeader parse_header(std::span<const std::byte> file, const std::filesystem::path& path) {
  const HeaderContext where{path};
  const std::string_view text = header_text(file, where);
  const nlohmann::json header = parse_header_json(text, where);
  const std::size_t data_start = 8 + text.size();
  const std::size_t data_size = file.size() - data_start;
  ParsedHeader parsed;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      parsed.metadata = parse_metadata(entry, where);
    } else {
      parsed.tensors.emplace(name, parse_tensor(name, entry, data_start, data_size, where));
    }
  }
  check_no_overlap(parsed.tensors, where);
  return parsed;
}

// ---- Decoding --------------------------------------------------------------------------------

// Decodes `out.size()` little-endian elements of `dtype` from `src` (exactly that many bytes), with
// the codec that reads the dtype (weights/codec.hpp).
template <TensorScalar Scalar>
void decode(DType dtype, std::span<const std::byte> src, std::span<Scalar> out) {
  assert(src.size() == out.size() * dtype_size(dtype));
  weights::visit_codec(stored_type(dtype),
                       [&]<class Codec>(Codec) { weights::widen_all<Codec>(src.data(), out.size(), out.data()); });
}

}  // namespace detail

// ---- One file --------------------------------------------------------------------------------

// A memory-mapped safetensors file with a validated header. Immutable after open and safe to read
// from several threads. Movable, not copyable; spans from bytes() stay valid while it lives
// (moving it keeps them valid too: the mapping moves, it is not remapped).
class SafetensorsFile {
 public:
  // Maps `path` and validates its header: io_error when missing or unreadable, format_error when corrupt.
  static SafetensorsFile open(const std::filesystem::path& path) {
    auto map = detail::MappedFile::open(path);
    auto header = detail::parse_header(map.bytes(), path);
    return SafetensorsFile(path, std::move(map), std::move(header));
  }

  const std::filesystem::path& path() const { return path_; }
  bool contains(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }

  // Throws format_error naming the tensor and the file when absent.
  const TensorInfo& info(std::string_view name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) {
      throw format_error(detail::cat("safetensors file ", path_, " has no tensor \"", name, "\""));
    }
    return it->second;
  }

  // Tensor names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& [name, t] : tensors_) out.push_back(name);
    return out;
  }

  // The raw little-endian bytes of a tensor.  // [numel * dtype_size]
  std::span<const std::byte> bytes(std::string_view name) const {
    const TensorInfo& t = info(name);
    return map_.bytes().subspan(t.begin, t.end - t.begin);
  }

  // Converts the tensor into `out` (row-major), whose size must equal numel (argument_error otherwise).
  template <detail::TensorScalar Scalar>
  void read(std::string_view name, std::span<Scalar> out) const {
    const TensorInfo& t = info(name);
    if (static_cast<std::uint64_t>(out.size()) != static_cast<std::uint64_t>(t.numel())) {
      throw argument_error(detail::cat("out has ", out.size(), " elements but tensor \"", name,
                                       "\" of shape ", detail::shape_string(t.shape), " in ", path_, " has ",
                                       t.numel()));
    }
    (void)stored_type(t.dtype, name);  // values only: codes are read by their formats
    detail::decode(t.dtype, map_.bytes().subspan(t.begin, t.end - t.begin), out);
  }

  // The header's "__metadata__" (string to string); empty when absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile(std::filesystem::path path, detail::MappedFile map, detail::ParsedHeader header)
      : path_(std::move(path)),
        map_(std::move(map)),
        tensors_(std::move(header.tensors)),
        metadata_(std::move(header.metadata)) {}

  std::filesystem::path path_;
  detail::MappedFile map_;                                  // the whole file
  std::map<std::string, TensorInfo, std::less<>> tensors_;  // by name; offsets into map_
  std::map<std::string, std::string> metadata_;
};

// ---- A model folder --------------------------------------------------------------------------

namespace detail {

inline constexpr std::string_view safetensors_single_name = "model.safetensors";
inline constexpr std::string_view safetensors_index_name = "model.safetensors.index.json";

// A shard name from an index must name a file inside the folder.
inline void check_shard_name(std::string_view shard, std::string_view tensor,
                             const std::filesystem::path& index) {
  const bool escapes = shard.empty() || shard == "." || shard.find('/') != std::string_view::npos ||
                       shard.find('\\') != std::string_view::npos ||
                       shard.find("..") != std::string_view::npos ||
                       shard.find('\0') != std::string_view::npos;
  if (escapes) {
    throw format_error(cat("index ", index, ": tensor \"", tensor, "\" names shard \"", shard,
                           "\"; expected a plain file name in the same folder (no '/' or '..')"));
  }
}

// The index's "weight_map": tensor name -> shard file name.
inline std::map<std::string, std::string, std::less<>> read_weight_map(const std::filesystem::path& index) {
  const nlohmann::json j = read_json_file(index, "safetensors index");
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    throw format_error(
        cat("index ", index, " has no \"weight_map\" object; expected {\"weight_map\": {tensor: shard}}"));
  }
  std::map<std::string, std::string, std::less<>> weight_map;
  for (const auto& [tensor, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) {
      throw format_error(cat("index ", index, ": tensor \"", tensor, "\" maps to a JSON ", shard.type_name(),
                             "; expected a shard file name"));
    }
    check_shard_name(shard.get_ref<const std::string&>(), tensor, index);
    weight_map.emplace(tensor, shard.get<std::string>());
  }
  return weight_map;
}

}  // namespace detail

// The safetensors weights of a model folder: model.safetensors.index.json and its shards when the
// index exists, else model.safetensors. Immutable after open; movable, not copyable.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::filesystem::path& dir) {
    std::error_code ec;
    const auto index = dir / detail::safetensors_index_name;
    if (std::filesystem::exists(index, ec)) return open_sharded(dir, index);
    const auto single = dir / detail::safetensors_single_name;
    if (std::filesystem::exists(single, ec)) return open_single(dir, single);
    if (!std::filesystem::is_directory(dir, ec)) {
      throw io_error(detail::cat("model folder ", dir, " does not exist or is not a folder (looked for ",
                                 detail::safetensors_index_name, " or ", detail::safetensors_single_name,
                                 ")"));
    }
    throw io_error(detail::cat("model folder ", dir, " has neither ", detail::safetensors_index_name, " nor ",
                               detail::safetensors_single_name));
  }

  SafetensorsCheckpoint(SafetensorsCheckpoint&&) noexcept = default;
  SafetensorsCheckpoint& operator=(SafetensorsCheckpoint&&) noexcept = default;
  SafetensorsCheckpoint(const SafetensorsCheckpoint&) = delete;
  SafetensorsCheckpoint& operator=(const SafetensorsCheckpoint&) = delete;
  ~SafetensorsCheckpoint() = default;

  const std::filesystem::path& dir() const { return dir_; }
  bool contains(std::string_view name) const { return shard_of_.find(name) != shard_of_.end(); }

  // Throws format_error naming the tensor and the folder when absent.
  const TensorInfo& info(std::string_view name) const { return file_of(name).info(name); }

  // Tensor names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(shard_of_.size());
    for (const auto& [name, shard] : shard_of_) out.push_back(name);
    return out;
  }

  // The file that holds `name`; throws format_error naming the tensor and the folder when absent.
  const SafetensorsFile& file_of(std::string_view name) const {
    const auto it = shard_of_.find(name);
    if (it == shard_of_.end()) {
      throw format_error(detail::cat("model folder ", dir_, " has no tensor \"", name, "\""));
    }
    return shards_[it->second];
  }

  // Converts the tensor into `out`, whose size must equal its numel (argument_error otherwise).
  template <detail::TensorScalar Scalar>
  void read(std::string_view name, std::span<Scalar> out) const {
    file_of(name).read(name, out);
  }

  // The tensor, row-major, after checking that its shape is `expected_shape` (format_error naming
  // the tensor, the file, its shape and the expected one otherwise).
  template <detail::TensorScalar Scalar>
  std::vector<Scalar> load(std::string_view name, std::span<const std::int64_t> expected_shape) const {
    const SafetensorsFile& file = file_of(name);
    const TensorInfo& t = file.info(name);
    if (!std::ranges::equal(t.shape, expected_shape)) {
      throw format_error(detail::cat("tensor \"", name, "\" in ", file.path(), " has shape ",
                                     detail::shape_string(t.shape), "; expected ",
                                     detail::shape_string(expected_shape)));
    }
    std::vector<Scalar> out(static_cast<std::size_t>(t.numel()));
    file.read(name, std::span<Scalar>(out));
    return out;
  }
  template <detail::TensorScalar Scalar>
  std::vector<Scalar> load(std::string_view name, std::initializer_list<std::int64_t> expected_shape) const {
    return load<Scalar>(name, std::span<const std::int64_t>(expected_shape.begin(), expected_shape.size()));
  }

 private:
  static SafetensorsCheckpoint open_single(const std::filesystem::path& dir,
                                           const std::filesystem::path& file) {
    SafetensorsCheckpoint ckpt;
    ckpt.dir_ = dir;
    ckpt.shards_.push_back(SafetensorsFile::open(file));
    for (const auto& name : ckpt.shards_[0].names()) ckpt.shard_of_.emplace(name, 0);
    return ckpt;
  }

  // Opens every distinct shard of the index once and checks that each listed tensor is in its shard.
  static SafetensorsCheckpoint open_sharded(const std::filesystem::path& dir,
                                            const std::filesystem::path& index) {
    SafetensorsCheckpoint ckpt;
    ckpt.dir_ = dir;
    std::map<std::string, std::size_t, std::less<>> shard_index;  // shard file name -> index into shards_
    for (const auto& [tensor, shard] : detail::read_weight_map(index)) {
      auto it = shard_index.find(shard);
      if (it == shard_index.end()) {
        const auto path = dir / shard;
        std::error_code ec;
        if (!std::filesystem::is_regular_file(path, ec)) {
          throw io_error(detail::cat("shard ", path, " (listed in ", index, " for tensor \"", tensor,
                                     "\") does not exist or is not a file"));
        }
        ckpt.shards_.push_back(SafetensorsFile::open(path));
        it = shard_index.emplace(shard, ckpt.shards_.size() - 1).first;
      }
      if (!ckpt.shards_[it->second].contains(tensor)) {
        throw format_error(detail::cat("tensor \"", tensor, "\" is listed in ", index, " for shard ",
                                       ckpt.shards_[it->second].path(),
                                       " but that shard has no such tensor"));
      }
      ckpt.shard_of_.emplace(tensor, it->second);
    }
    return ckpt;
  }

  SafetensorsCheckpoint() = default;

  std::filesystem::path dir_;
  std::vector<SafetensorsFile> shards_;                       // each distinct file once
  std::map<std::string, std::size_t, std::less<>> shard_of_;  // tensor name -> index into shards_
};

}  // namespace maskgen

// SafetensorsFile and SafetensorsCheckpoint on files the tests write themselves: exact decoding of
// every dtype (expected values from the IEEE definitions, by arithmetic), every header error with a
// message that names the file and the tensor, sharded folders, and a fuzz of truncations and byte
// flips. Plus the real stories260K checkpoint and its BF16 copy when ../shared is present.

#include <maskgen/safetensors.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/safetensors_writer.hpp"
#include "support/test_support.hpp"

namespace maskgen {
namespace {

using nlohmann::json;

// ---- Writing files ---------------------------------------------------------------------------

// Writes a safetensors file: the 8-byte little-endian length of `header`, `header`, then `data`.
void write_raw(const std::filesystem::path& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  const auto n = static_cast<std::uint64_t>(header.size());
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
}

void write_file(const std::filesystem::path& path, const json& header, const std::string& data) {
  write_raw(path, header.dump(), data);
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// The little-endian bytes of `values` (the host is little-endian; maskgen asserts it too).
template <class T>
std::string bytes_of(const std::vector<T>& values) {
  std::string s(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

// One tensor for make_file: its bytes are laid out one after another in the order given.
struct Tensor {
  std::string name;
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::string data;
};

// A valid file holding `tensors` (and `metadata` when not null).
std::filesystem::path make_file(const std::filesystem::path& path, const std::vector<Tensor>& tensors,
                                const json& metadata = nullptr) {
  json header = json::object();
  std::string data;
  for (const auto& t : tensors) {
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.data.size()}}};
    data += t.data;
  }
  if (!metadata.is_null()) header["__metadata__"] = metadata;
  write_file(path, header, data);
  return path;
}

// ---- Expected values from the IEEE definitions -----------------------------------------------

// Value of an IEEE binary float with `exp_bits` exponent and `mant_bits` mantissa bits, computed
// from the definition: (-1)^s * 2^(1-bias) * 0.m for subnormals, (-1)^s * 2^(e-bias) * 1.m for normals.
double ieee_value(std::uint64_t bits, int exp_bits, int mant_bits) {
  const std::uint64_t mant = bits & ((std::uint64_t{1} << mant_bits) - 1);
  const std::uint64_t exp = (bits >> mant_bits) & ((std::uint64_t{1} << exp_bits) - 1);
  const bool negative = (bits >> (exp_bits + mant_bits)) & 1;
  const int bias = (1 << (exp_bits - 1)) - 1;
  double magnitude;
  if (exp == (std::uint64_t{1} << exp_bits) - 1) {
    magnitude =
        mant == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (exp == 0) {
    magnitude = std::ldexp(static_cast<double>(mant), 1 - bias - mant_bits);
  } else {
    magnitude = std::ldexp(static_cast<double>(mant | (std::uint64_t{1} << mant_bits)),
                           static_cast<int>(exp) - bias - mant_bits);
  }
  return negative ? -magnitude : magnitude;
}

double f16_value(std::uint16_t bits) { return ieee_value(bits, 5, 10); }
double bf16_value(std::uint16_t bits) { return ieee_value(bits, 8, 7); }

// Equal as values, with the sign of zero and NaN-ness compared too.
template <class T>
::testing::AssertionResult same_value(T actual, double expected) {
  const bool ok = std::isnan(expected) ? std::isnan(actual) && std::signbit(actual) == std::signbit(expected)
                                       : static_cast<double>(actual) == expected &&
                                             std::signbit(actual) == std::signbit(expected);
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got " << actual << ", expected " << expected;
}

std::vector<std::uint16_t> all_16_bit_patterns() {
  std::vector<std::uint16_t> v(65536);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint16_t>(i);
  return v;
}

// NaN with the sign bit set: -quiet_NaN() may or may not flip it, copysign does.
double negative_nan() { return std::copysign(std::numeric_limits<double>::quiet_NaN(), -1.0); }

// ---- Errors ----------------------------------------------------------------------------------

// Runs `f`, expects exception E whose message contains every one of `parts`.
template <class E>
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one naming " << ::testing::PrintToString(parts);
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& part : parts) {
      EXPECT_NE(what.find(part), std::string::npos) << "message: " << what << "\nmissing: " << part;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

// Opens a file whose header is `header` and data `data`; expects format_error naming the file and `parts`.
void expect_bad_header(const json& header, const std::string& data, const std::vector<std::string>& parts) {
  test::TempDir dir;
  const auto path = dir.path() / "bad.safetensors";
  write_file(path, header, data);
  auto all = parts;
  all.push_back(path.string());
  expect_error<format_error>([&] { SafetensorsFile::open(path); }, all);
}

json entry(const std::string& dtype, const json& shape, const json& offsets) {
  return {{"dtype", dtype}, {"shape", shape}, {"data_offsets", offsets}};
}

// ---- Round trips -----------------------------------------------------------------------------

TEST(SafetensorsRead, F32ExactIncludingSpecials) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> values = {
      0.0f,
      -0.0f,
      1.0f,
      -1.5f,
      0.1f,
      static_cast<float>(std::ldexp(1.0, -126)),                          // min normal
      static_cast<float>(std::ldexp(2.0 - std::ldexp(1.0, -23), 127)),    // max normal
      static_cast<float>(std::ldexp(1.0, -149)),                          // min subnormal
      static_cast<float>(-std::ldexp(1.0 - std::ldexp(1.0, -23), -126)),  // largest subnormal, negative
      inf,
      -inf,
      std::numeric_limits<float>::quiet_NaN(),
      -std::numeric_limits<float>::quiet_NaN()};
  test::TempDir dir;
  const auto file =
      SafetensorsFile::open(make_file(dir.path() / "f.safetensors", {{"x", "F32", {13}, bytes_of(values)}}));
  EXPECT_EQ(file.info("x").dtype, DType::F32);
  std::vector<float> f(values.size());
  std::vector<double> d(values.size());
  file.read<float>("x", f);
  file.read<double>("x", d);
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint32_t>(f[i]), std::bit_cast<std::uint32_t>(values[i])) << i;
    EXPECT_TRUE(same_value(d[i], static_cast<double>(values[i]))) << i;
  }
}

TEST(SafetensorsRead, F64ExactAndRoundedToFloat) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> values = {0.0,
                                      -0.0,
                                      1.0,
                                      0.1,
                                      1.0 + std::ldexp(1.0, -52),
                                      std::ldexp(1.0, -1022),                        // min normal
                                      std::ldexp(2.0 - std::ldexp(1.0, -52), 1023),  // max normal
                                      std::ldexp(1.0, -1074),                        // min subnormal
                                      inf,
                                      -inf,
                                      std::numeric_limits<double>::quiet_NaN(),
                                      negative_nan()};
  test::TempDir dir;
  const auto file = SafetensorsFile::open(
      make_file(dir.path() / "f.safetensors", {{"x", "F64", {3, 4}, bytes_of(values)}}));
  std::vector<double> d(values.size());
  std::vector<float> f(values.size());
  file.read<double>("x", d);
  file.read<float>("x", f);
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint64_t>(d[i]), std::bit_cast<std::uint64_t>(values[i])) << i;
  }
  // Into float: round to nearest, ties to even; overflow to inf, underflow to zero.
  EXPECT_EQ(f[3], 0.1f);
  EXPECT_EQ(f[4], 1.0f);
  EXPECT_EQ(f[5], 0.0f);
  EXPECT_EQ(f[6], std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f[10]) && std::isnan(f[11]) && std::signbit(f[11]));
}

TEST(SafetensorsRead, F16EveryBitPatternExact) {
  const auto bits = all_16_bit_patterns();
  test::TempDir dir;
  const auto file = SafetensorsFile::open(
      make_file(dir.path() / "h.safetensors", {{"h", "F16", {256, 256}, bytes_of(bits)}}));
  std::vector<float> f(bits.size());
  std::vector<double> d(bits.size());
  file.read<float>("h", f);
  file.read<double>("h", d);
  for (std::size_t i = 0; i < bits.size(); ++i) {
    ASSERT_TRUE(same_value(f[i], f16_value(bits[i]))) << "bits 0x" << std::hex << bits[i];
    ASSERT_TRUE(same_value(d[i], f16_value(bits[i]))) << "bits 0x" << std::hex << bits[i];
  }
  // The named corners, spelled out.
  EXPECT_EQ(f[0x0001], std::ldexp(1.0f, -24));     // min subnormal
  EXPECT_EQ(f[0x03ff], std::ldexp(1023.0f, -24));  // max subnormal
  EXPECT_EQ(f[0x0400], std::ldexp(1.0f, -14));     // min normal
  EXPECT_EQ(f[0x7bff], 65504.0f);                  // max normal
  EXPECT_EQ(f[0x3c00], 1.0f);
  EXPECT_TRUE(std::signbit(f[0x8000]) && f[0x8000] == 0.0f);  // -0
  EXPECT_EQ(f[0x7c00], std::numeric_limits<float>::infinity());
  EXPECT_EQ(f[0xfc00], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f[0x7e00]) && std::isnan(f[0x7c01]) && std::isnan(d[0xfe00]));
}

TEST(SafetensorsRead, BF16EveryBitPatternExact) {
  const auto bits = all_16_bit_patterns();
  test::TempDir dir;
  const auto file = SafetensorsFile::open(
      make_file(dir.path() / "b.safetensors", {{"b", "BF16", {65536}, bytes_of(bits)}}));
  std::vector<float> f(bits.size());
  std::vector<double> d(bits.size());
  file.read<float>("b", f);
  file.read<double>("b", d);
  for (std::size_t i = 0; i < bits.size(); ++i) {
    ASSERT_TRUE(same_value(f[i], bf16_value(bits[i]))) << "bits 0x" << std::hex << bits[i];
    ASSERT_TRUE(same_value(d[i], bf16_value(bits[i]))) << "bits 0x" << std::hex << bits[i];
  }
  EXPECT_EQ(f[0x0001], std::ldexp(1.0f, -133));    // min subnormal
  EXPECT_EQ(f[0x0080], std::ldexp(1.0f, -126));    // min normal
  EXPECT_EQ(f[0x7f7f], std::ldexp(255.0f, 120));   // max normal
  EXPECT_EQ(d[0x807f], -std::ldexp(127.0, -133));  // max subnormal, negative
  EXPECT_EQ(f[0x3f80], 1.0f);
  EXPECT_EQ(f[0x7f80], std::numeric_limits<float>::infinity());
  EXPECT_EQ(d[0xff80], -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(f[0x7fc0]) && std::isnan(d[0x7f81]) && std::signbit(f[0xffc0]));
}

TEST(SafetensorsRead, NaNPayloadsKept) {
  const std::vector<std::uint16_t> half = {0x7e01, 0xfd55};  // quiet and signalling, with payloads
  test::TempDir dir;
  const auto file = SafetensorsFile::open(make_file(
      dir.path() / "n.safetensors", {{"h", "F16", {2}, bytes_of(half)}, {"b", "BF16", {2}, bytes_of(half)}}));
  std::vector<float> h(2), b(2);
  file.read<float>("h", h);
  file.read<float>("b", b);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(h[0]), 0x7fc02000u);  // sign, all-ones exponent, mantissa << 13
  EXPECT_EQ(std::bit_cast<std::uint32_t>(h[1]), 0xffaaa000u);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(b[0]), 0x7e010000u);  // bf16 is the top half of a float
  EXPECT_EQ(std::bit_cast<std::uint32_t>(b[1]), 0xfd550000u);
}

TEST(SafetensorsFile, InfoNamesBytesMetadataAndScalars) {
  test::TempDir dir;
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  const std::vector<double> s = {42.5};
  const auto path = make_file(
      dir.path() / "m.safetensors",
      {{"w", "F32", {2, 3}, bytes_of(w)}, {"empty", "F16", {0, 7}, ""}, {"s", "F64", {}, bytes_of(s)}},
      {{"format", "pt"}, {"note", "hi"}});
  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"empty", "s", "w"}));
  EXPECT_TRUE(file.contains("w"));
  EXPECT_FALSE(file.contains("W"));
  const auto& info = file.info("w");
  EXPECT_EQ(info.name, "w");
  EXPECT_EQ(info.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(info.numel(), 6);
  EXPECT_EQ(info.end - info.begin, 24u);
  EXPECT_EQ(file.info("s").numel(), 1);
  EXPECT_EQ(file.info("empty").numel(), 0);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "hi"}}));
  EXPECT_EQ(dtype_name(DType::BF16), "BF16");
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F64), 8u);

  // bytes() is the tensor's slice of the file.
  const auto raw = file.bytes("w");
  ASSERT_EQ(raw.size(), 24u);
  EXPECT_EQ(std::memcmp(raw.data(), w.data(), 24), 0);
  const std::string on_disk = test::read_bytes(path);
  EXPECT_EQ(on_disk.substr(info.begin, 24), bytes_of(w));

  std::vector<double> scalar(1);
  file.read<double>("s", scalar);
  EXPECT_EQ(scalar[0], 42.5);
  std::vector<float> none;
  file.read<float>("empty", none);
}

TEST(SafetensorsFile, MovedFileKeepsItsMapping) {
  test::TempDir dir;
  const std::vector<float> w = {1, 2, 3};
  auto a = SafetensorsFile::open(make_file(dir.path() / "m.safetensors", {{"w", "F32", {3}, bytes_of(w)}}));
  const auto span = a.bytes("w");
  SafetensorsFile b = std::move(a);
  EXPECT_EQ(b.bytes("w").data(), span.data());
  std::vector<float> out(3);
  b.read<float>("w", out);
  EXPECT_EQ(out, w);
  auto c = SafetensorsFile::open(make_file(dir.path() / "n.safetensors", {{"v", "F32", {3}, bytes_of(w)}}));
  c = std::move(b);
  EXPECT_TRUE(c.contains("w"));
  static_assert(!std::is_copy_constructible_v<SafetensorsFile>);
  static_assert(!std::is_copy_constructible_v<SafetensorsCheckpoint>);
  static_assert(std::is_nothrow_move_constructible_v<SafetensorsCheckpoint>);
}

TEST(SafetensorsFile, ReadChecksTheOutputSizeAndTheName) {
  test::TempDir dir;
  const auto path =
      make_file(dir.path() / "m.safetensors", {{"layer.w", "F32", {2, 3}, bytes_of(std::vector<float>(6))}});
  const auto file = SafetensorsFile::open(path);
  std::vector<float> out(5);
  expect_error<argument_error>([&] { file.read<float>("layer.w", out); }, {"layer.w", "[2, 3]", "5", "6"});
  expect_error<format_error>([&] { file.info("layer.v"); }, {"layer.v", path.string()});
  expect_error<format_error>([&] { file.bytes("nope"); }, {"nope", path.string()});
}

// ---- Every header error ----------------------------------------------------------------------

TEST(SafetensorsErrors, MissingFileOrFolder) {
  test::TempDir dir;
  const auto missing = dir.path() / "missing.safetensors";
  expect_error<io_error>([&] { SafetensorsFile::open(missing); }, {missing.string(), "cannot be opened"});
  expect_error<io_error>([&] { SafetensorsFile::open(dir.path()); },
                         {dir.path().string(), "not a regular file"});
}

TEST(SafetensorsErrors, ShorterThanTheLengthPrefix) {
  test::TempDir dir;
  for (const std::size_t n : {0, 1, 7}) {
    const auto path = dir.path() / ("short" + std::to_string(n) + ".safetensors");
    write_bytes(path, std::string(n, '\x01'));
    expect_error<format_error>([&] { SafetensorsFile::open(path); },
                               {path.string(), std::to_string(n) + " bytes", "at least 8"});
  }
}

TEST(SafetensorsErrors, HeaderLengthPastTheEndOrAbsurd) {
  test::TempDir dir;
  const auto path = dir.path() / "len.safetensors";
  // 100 bytes announced, 2 present.
  write_bytes(path, std::string("\x64\0\0\0\0\0\0\0{}", 10));
  expect_error<format_error>([&] { SafetensorsFile::open(path); },
                             {path.string(), "header length 100", "past the end"});
  write_bytes(path, std::string("\xff\xff\xff\xff\xff\xff\xff\xff{}", 10));
  expect_error<format_error>([&] { SafetensorsFile::open(path); },
                             {path.string(), "18446744073709551615", "absurdly large"});
  write_bytes(path, std::string("\0\0\0\0\0\0\0\x80{}", 10));
  expect_error<format_error>([&] { SafetensorsFile::open(path); }, {path.string(), "absurdly large"});
}

TEST(SafetensorsErrors, HeaderNotJsonOrNotAnObject) {
  test::TempDir dir;
  const auto path = dir.path() / "j.safetensors";
  for (const std::string header : {"{\"a\": ", "", "{\"a\": 1,}", "\xff\xfe{}", "{\"\xc3\x28\": {}}"}) {
    write_raw(path, header, "");
    expect_error<format_error>([&] { SafetensorsFile::open(path); }, {path.string(), "not valid JSON"});
  }
  for (const std::string header : {"[1, 2]", "3", "\"text\"", "null"}) {
    write_raw(path, header, "");
    expect_error<format_error>([&] { SafetensorsFile::open(path); }, {path.string(), "expected an object"});
  }
}

TEST(SafetensorsErrors, EntryMissingFieldsOrWithWrongTypes) {
  const std::string data(8, '\0');
  expect_bad_header({{"w", 5}}, data, {"\"w\"", "expected an object"});
  expect_bad_header({{"w", {{"shape", {2}}, {"data_offsets", {0, 8}}}}}, data, {"\"w\"", "no \"dtype\""});
  expect_bad_header({{"w", {{"dtype", "F32"}, {"data_offsets", {0, 8}}}}}, data, {"\"w\"", "no \"shape\""});
  expect_bad_header({{"w", {{"dtype", "F32"}, {"shape", {2}}}}}, data, {"\"w\"", "no \"data_offsets\""});
  expect_bad_header({{"w", {{"dtype", 32}, {"shape", {2}}, {"data_offsets", {0, 8}}}}}, data,
                    {"\"w\"", "\"dtype\" is a JSON number", "expected a string"});
  expect_bad_header({{"w", {{"dtype", "F32"}, {"shape", "2"}, {"data_offsets", {0, 8}}}}}, data,
                    {"\"w\"", "\"shape\" is a JSON string", "expected an array"});
  expect_bad_header({{"w", {{"dtype", "F32"}, {"shape", {"2"}}, {"data_offsets", {0, 8}}}}}, data,
                    {"\"w\"", "shape dim 0 is a JSON string", "non-negative integer"});
  expect_bad_header({{"w", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {{"begin", 0}}}}}}, data,
                    {"\"w\"", "\"data_offsets\" is a JSON object", "expected [begin, end]"});
  expect_bad_header({{"w", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, "8"}}}}}, data,
                    {"\"w\"", "data_offsets end is a JSON string"});
}

TEST(SafetensorsErrors, NegativeOrNonIntegerDims) {
  const std::string data(8, '\0');
  expect_bad_header({{"w", entry("F32", {2, -1}, {0, 8})}}, data,
                    {"\"w\"", "shape dim 1 is -1", "non-negative integer"});
  expect_bad_header({{"w", entry("F32", {1.5}, {0, 8})}}, data,
                    {"\"w\"", "shape dim 0 is 1.5", "non-negative integer"});
  expect_bad_header({{"w", entry("F32", {2.0}, {0, 8})}}, data,
                    {"\"w\"", "shape dim 0", "non-negative integer"});
  expect_bad_header({{"w", entry("F32", {1e30}, {0, 8})}}, data,
                    {"\"w\"", "shape dim 0", "non-negative integer"});
  expect_bad_header({{"w", entry("F32", {std::uint64_t{1} << 63}, {0, 8})}}, data,
                    {"\"w\"", "shape dim 0 is 9223372036854775808", "at most 9223372036854775807"});
}

TEST(SafetensorsErrors, UnknownOrUnsupportedDtype) {
  const std::string data(8, '\0');
  expect_bad_header({{"ids", entry("U16", {4}, {0, 8})}}, data,
                    {"\"ids\"", "dtype \"U16\" is not supported", "F16, BF16, F32, F64, I32, I64, I8, U8 or F8_E4M3"});
  expect_bad_header({{"q", entry("F8_E5M2", {8}, {0, 8})}}, data, {"\"q\"", "F8_E5M2", "not supported"});
  expect_bad_header({{"w", entry("FP32", {2}, {0, 8})}}, data,
                    {"\"w\"", "unknown dtype \"FP32\"", "F16, BF16, F32, F64, I32, I64, I8, U8 or F8_E4M3"});
  expect_bad_header({{"w", entry("f32", {2}, {0, 8})}}, data, {"\"w\"", "unknown dtype \"f32\""});
}

TEST(SafetensorsErrors, BadDataOffsets) {
  const std::string data(16, '\0');
  expect_bad_header({{"w", entry("F32", {2}, {0, 8, 16})}}, data,
                    {"\"w\"", "an array of 3", "expected [begin, end]"});
  expect_bad_header({{"w", entry("F32", {2}, {8})}}, data, {"\"w\"", "an array of 1"});
  expect_bad_header({{"w", entry("F32", {2}, {16, 8})}}, data, {"\"w\"", "[16, 8]", "begin > end"});
  expect_bad_header({{"w", entry("F32", {2}, {-8, 0})}}, data, {"\"w\"", "data_offsets begin is -8"});
  expect_bad_header({{"w", entry("F32", {2}, {0, 8.5})}}, data, {"\"w\"", "data_offsets end is 8.5"});
  expect_bad_header({{"w", entry("F32", {6}, {0, 24})}}, data,
                    {"\"w\"", "end 24", "past the end of the data section (16 bytes)"});
  expect_bad_header({{"w", entry("F32", {2}, {16, 24})}}, data,
                    {"\"w\"", "past the end of the data section"});
  // Huge offsets must not wrap around when added to the data start.
  expect_bad_header(
      {{"w", entry("F32", {0},
                   {std::numeric_limits<std::uint64_t>::max(), std::numeric_limits<std::uint64_t>::max()})}},
      data, {"\"w\"", "past the end of the data section"});
}

TEST(SafetensorsErrors, ByteSizeDisagreesWithShape) {
  const std::string data(16, '\0');
  expect_bad_header({{"w", entry("F32", {3}, {0, 8})}}, data,
                    {"\"w\"", "hold 8 bytes", "expected 12", "[3]", "F32"});
  expect_bad_header({{"w", entry("BF16", {2, 2}, {0, 16})}}, data,
                    {"\"w\"", "hold 16 bytes", "expected 8", "[2, 2]", "BF16"});
  expect_bad_header({{"w", entry("F64", json::array(), {0, 16})}}, data, {"\"w\"", "expected 8", "[]"});
  expect_bad_header({{"w", entry("F16", {0}, {0, 2})}}, data, {"\"w\"", "expected 0"});
}

TEST(SafetensorsErrors, OverlappingTensors) {
  const std::string data(32, '\0');
  expect_bad_header({{"a", entry("F32", {4}, {0, 16})}, {"b", entry("F32", {4}, {8, 24})}}, data,
                    {"\"a\"", "\"b\"", "overlap"});
  // One range inside another, with a disjoint one sorted between them.
  expect_bad_header({{"big", entry("F32", {8}, {0, 32})},
                     {"x", entry("F32", {1}, {4, 8})},
                     {"y", entry("F32", {1}, {28, 32})}},
                    data, {"\"big\"", "overlap"});
  // The same range twice.
  expect_bad_header({{"a", entry("F64", {1}, {0, 8})}, {"b", entry("F64", {1}, {0, 8})}}, data,
                    {"\"a\"", "\"b\"", "overlap"});
}

TEST(SafetensorsErrors, EmptyTensorsOverlapNothing) {
  test::TempDir dir;
  const auto path = dir.path() / "e.safetensors";
  write_file(path,
             {{"a", entry("F32", {2}, {0, 8})},
              {"e", entry("F32", {0}, {4, 4})},
              {"z", entry("F32", {3, 0}, {8, 8})}},
             std::string(8, '\0'));
  EXPECT_EQ(SafetensorsFile::open(path).names().size(), 3u);
}

TEST(SafetensorsErrors, ShapeProductOverflow) {
  const std::string data(8, '\0');
  const std::int64_t big = std::int64_t{1} << 32;
  expect_bad_header({{"w", entry("F32", {big, big}, {0, 8})}}, data,
                    {"\"w\"", "[4294967296, 4294967296]", "int64"});
  // Multiplied in order: overflow before a zero dim is still an error (as in the safetensors crate).
  expect_bad_header({{"w", entry("F32", {big, big, 0}, {0, 0})}}, data, {"\"w\"", "int64"});
  // Fits an int64 but not in bytes.
  expect_bad_header({{"w", entry("F64", {std::int64_t{1} << 62}, {0, 8})}}, data, {"\"w\"", "size_t"});
}

TEST(SafetensorsErrors, BadMetadata) {
  const std::string data(8, '\0');
  expect_bad_header({{"__metadata__", "pt"}, {"w", entry("F32", {2}, {0, 8})}}, data,
                    {"__metadata__", "expected an object"});
  expect_bad_header({{"__metadata__", {{"format", 1}}}, {"w", entry("F32", {2}, {0, 8})}}, data,
                    {"__metadata__", "\"format\"", "expected a string"});
}

// ---- Checkpoint folders ----------------------------------------------------------------------

// A folder with two shards and an index: a and b in shard 1, c in shard 2.
void write_two_shards(const std::filesystem::path& dir, const json& weight_map) {
  make_file(dir / "model-00001-of-00002.safetensors",
            {{"a", "F32", {2}, bytes_of(std::vector<float>{1, 2})},
             {"b", "F16", {1}, bytes_of(std::vector<std::uint16_t>{0x3c00})}});
  make_file(dir / "model-00002-of-00002.safetensors",
            {{"c", "F64", {2, 1}, bytes_of(std::vector<double>{3, 4})}});
  std::ofstream(dir / "model.safetensors.index.json")
      << json{{"metadata", {{"total_size", 20}}}, {"weight_map", weight_map}}.dump(2);
}

json two_shard_map() {
  return {{"a", "model-00001-of-00002.safetensors"},
          {"b", "model-00001-of-00002.safetensors"},
          {"c", "model-00002-of-00002.safetensors"}};
}

TEST(SafetensorsCheckpoint, SingleFile) {
  test::TempDir dir;
  make_file(dir.path() / "model.safetensors",
            {{"w", "BF16", {2}, bytes_of(std::vector<std::uint16_t>{0x3f80, 0xc000})}});
  const auto ckpt = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(ckpt.dir(), dir.path());
  EXPECT_EQ(ckpt.names(), std::vector<std::string>{"w"});
  EXPECT_TRUE(ckpt.contains("w"));
  EXPECT_EQ(ckpt.info("w").dtype, DType::BF16);
  EXPECT_EQ(ckpt.load<double>("w", {2}), (std::vector<double>{1.0, -2.0}));
  expect_error<format_error>([&] { ckpt.info("v"); }, {"\"v\"", dir.path().string()});
}

TEST(SafetensorsCheckpoint, TwoShardsThroughTheIndex) {
  test::TempDir dir;
  write_two_shards(dir.path(), two_shard_map());
  const auto ckpt = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ckpt.load<float>("a", {2}), (std::vector<float>{1, 2}));
  EXPECT_EQ(ckpt.load<float>("b", {1}), (std::vector<float>{1}));
  std::vector<double> c(2);
  ckpt.read<double>("c", c);
  EXPECT_EQ(c, (std::vector<double>{3, 4}));
  EXPECT_EQ(ckpt.info("c").shape, (std::vector<std::int64_t>{2, 1}));
  EXPECT_EQ(ckpt.file_of("c").path(), dir.path() / "model-00002-of-00002.safetensors");
  EXPECT_EQ(&ckpt.file_of("a"), &ckpt.file_of("b"));  // each shard opened once
  EXPECT_FALSE(ckpt.contains("d"));
  expect_error<format_error>([&] { ckpt.info("d"); }, {"\"d\"", dir.path().string()});
}

TEST(SafetensorsCheckpoint, IndexWinsOverASingleFile) {
  test::TempDir dir;
  write_two_shards(dir.path(), two_shard_map());
  make_file(dir.path() / "model.safetensors", {{"other", "F32", {1}, bytes_of(std::vector<float>{9})}});
  EXPECT_FALSE(SafetensorsCheckpoint::open(dir.path()).contains("other"));
}

TEST(SafetensorsCheckpoint, MissingShard) {
  test::TempDir dir;
  auto map = two_shard_map();
  map["c"] = "model-00003-of-00002.safetensors";
  write_two_shards(dir.path(), map);
  expect_error<io_error>(
      [&] { SafetensorsCheckpoint::open(dir.path()); },
      {"model-00003-of-00002.safetensors", "\"c\"", "model.safetensors.index.json", "does not exist"});
}

TEST(SafetensorsCheckpoint, TensorListedButAbsentFromItsShard) {
  test::TempDir dir;
  auto map = two_shard_map();
  map["c"] = "model-00001-of-00002.safetensors";  // c is really in shard 2
  write_two_shards(dir.path(), map);
  expect_error<format_error>([&] { SafetensorsCheckpoint::open(dir.path()); },
                             {"\"c\"", "model-00001-of-00002.safetensors", "no such tensor"});
}

TEST(SafetensorsCheckpoint, ShardNamesMustStayInTheFolder) {
  for (const std::string shard :
       {"../model-00002-of-00002.safetensors", "..", "sub/model.safetensors", "/etc/passwd", "", "."}) {
    test::TempDir dir;
    auto map = two_shard_map();
    map["c"] = shard;
    write_two_shards(dir.path(), map);
    expect_error<format_error>([&] { SafetensorsCheckpoint::open(dir.path()); },
                               {"\"c\"", "\"" + shard + "\"", "no '/' or '..'"});
  }
}

TEST(SafetensorsCheckpoint, BadIndex) {
  test::TempDir dir;
  write_two_shards(dir.path(), two_shard_map());
  const auto index = dir.path() / "model.safetensors.index.json";
  std::ofstream(index) << "{\"weight_map\": ";
  expect_error<format_error>([&] { SafetensorsCheckpoint::open(dir.path()); },
                             {index.string(), "not valid JSON"});
  std::ofstream(index) << "{\"metadata\": {}}";
  expect_error<format_error>([&] { SafetensorsCheckpoint::open(dir.path()); },
                             {index.string(), "weight_map"});
  std::ofstream(index) << "{\"weight_map\": {\"a\": 1}}";
  expect_error<format_error>([&] { SafetensorsCheckpoint::open(dir.path()); },
                             {index.string(), "\"a\"", "shard file name"});
}

TEST(SafetensorsCheckpoint, CorruptShardIsNamed) {
  test::TempDir dir;
  write_two_shards(dir.path(), two_shard_map());
  const auto shard = dir.path() / "model-00002-of-00002.safetensors";
  write_bytes(shard, "abc");
  expect_error<format_error>([&] { SafetensorsCheckpoint::open(dir.path()); },
                             {shard.string(), "at least 8"});
}

TEST(SafetensorsCheckpoint, NeitherFile) {
  test::TempDir dir;
  expect_error<io_error>([&] { SafetensorsCheckpoint::open(dir.path()); },
                         {dir.path().string(), "model.safetensors.index.json", "model.safetensors"});
  const auto missing = dir.path() / "no-such-model";
  expect_error<io_error>(
      [&] { SafetensorsCheckpoint::open(missing); },
      {missing.string(), "does not exist", "model.safetensors.index.json", "model.safetensors"});
}

TEST(SafetensorsCheckpoint, LoadChecksTheShape) {
  test::TempDir dir;
  make_file(
      dir.path() / "model.safetensors",
      {{"model.layers.0.mlp.up_proj.weight", "F32", {2, 3}, bytes_of(std::vector<float>{1, 2, 3, 4, 5, 6})}});
  const auto ckpt = SafetensorsCheckpoint::open(dir.path());
  const std::vector<std::int64_t> right = {2, 3};
  EXPECT_EQ(ckpt.load<float>("model.layers.0.mlp.up_proj.weight", right),
            (std::vector<float>{1, 2, 3, 4, 5, 6}));
  for (const auto& wrong : std::vector<std::vector<std::int64_t>>{{3, 2}, {6}, {2, 3, 1}, {}}) {
    expect_error<format_error>([&] { ckpt.load<float>("model.layers.0.mlp.up_proj.weight", wrong); },
                               {"model.layers.0.mlp.up_proj.weight", "has shape [2, 3]",
                                "expected " + detail::shape_string(wrong), "model.safetensors"});
  }
  expect_error<format_error>([&] { ckpt.load<float>("model.norm.weight", {64}); },
                             {"model.norm.weight", dir.path().string()});
}

// ---- Fuzz ------------------------------------------------------------------------------------

// Truncations anywhere and byte flips inside the header: open either succeeds (then every tensor
// reads) or throws maskgen::error. Never a crash, never an out-of-bounds read (ASan in CI).
TEST(SafetensorsFuzz, TruncationsAndHeaderFlipsThrowOrSucceed) {
  test::TempDir dir;
  const auto valid =
      make_file(dir.path() / "valid.safetensors",
                {{"emb", "F32", {4, 3}, bytes_of(std::vector<float>(12, 0.5f))},
                 {"norm", "BF16", {3}, bytes_of(std::vector<std::uint16_t>{0x3f80, 0x0001, 0x7fc0})},
                 {"h", "F16", {2, 2}, bytes_of(std::vector<std::uint16_t>{0x3c00, 0x0001, 0x7c00, 0x8000})},
                 {"s", "F64", {}, bytes_of(std::vector<double>{2.0})}},
                {{"format", "pt"}});
  const std::string original = test::read_bytes(valid);
  std::uint64_t header_size = 0;
  std::memcpy(&header_size, original.data(), 8);
  const std::size_t header_end = 8 + static_cast<std::size_t>(header_size);
  ASSERT_LT(header_end, original.size());

  std::mt19937_64 rng(20240607);
  const auto path = dir.path() / "fuzz.safetensors";
  int opened = 0, rejected = 0;
  const auto try_open = [&](const std::string& bytes) {
    // The parser on a heap copy of exactly the file's size, where ASan sees any read past the end
    // (a read past the end of a mapping can stay inside its last page unnoticed).
    std::vector<std::byte> heap(bytes.size());
    if (!heap.empty()) std::memcpy(heap.data(), bytes.data(), heap.size());
    try {
      detail::parse_header(heap, path);
    } catch (const error&) {
    }
    write_bytes(path, bytes);
    try {
      const auto file = SafetensorsFile::open(path);
      for (const auto& name : file.names()) {
        std::vector<float> f(static_cast<std::size_t>(file.info(name).numel()));
        std::vector<double> d(f.size());
        file.read<float>(name, f);
        file.read<double>(name, d);
      }
      ++opened;
    } catch (const error&) {
      ++rejected;
    }
  };
  for (int i = 0; i < 200; ++i) {  // truncations, most of them inside the header
    const std::size_t cut = i < 150 ? rng() % (header_end + 1) : rng() % original.size();
    try_open(original.substr(0, cut));
  }
  for (int i = 0; i < 400; ++i) {  // 1 to 3 random bytes of the header set to random values
    std::string bytes = original;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) bytes[8 + rng() % (header_end - 8)] = static_cast<char>(rng() % 256);
    try_open(bytes);
  }
  for (int i = 0; i < 100; ++i) {  // single bit flips, including the length prefix
    std::string bytes = original;
    const std::size_t at = rng() % header_end;
    bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));
    try_open(bytes);
  }
  EXPECT_GT(rejected, 300);
  EXPECT_GT(opened, 0);  // some flips land in a name or the metadata and leave a valid file
  RecordProperty("opened", opened);
  RecordProperty("rejected", rejected);
}

// ---- The real checkpoint ---------------------------------------------------------------------

// float32 rounded to bfloat16, round to nearest, ties to even (NaN kept quiet), as bit arithmetic.
std::uint16_t bf16_round_nearest_even(float x) {
  const auto bits = std::bit_cast<std::uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40);
  const std::uint32_t lsb = (bits >> 16) & 1;
  return static_cast<std::uint16_t>((bits + 0x7fffu + lsb) >> 16);
}

TEST(SafetensorsStories260K, Float32Checkpoint) {
  const auto dir = test::shared_dir() / "models/stories260K";
  MASKGEN_REQUIRE_SHARED(dir / "model.safetensors");
  const auto file = SafetensorsFile::open(dir / "model.safetensors");
  const auto& emb = file.info("model.embed_tokens.weight");
  EXPECT_EQ(emb.shape, (std::vector<std::int64_t>{512, 64}));
  EXPECT_EQ(emb.dtype, DType::F32);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const auto ckpt = SafetensorsCheckpoint::open(dir);
  EXPECT_EQ(ckpt.names(), file.names());
  const auto values = ckpt.load<float>("model.embed_tokens.weight", {512, 64});
  EXPECT_TRUE(std::ranges::all_of(values, [](float v) { return std::isfinite(v); }));
  EXPECT_TRUE(std::ranges::any_of(values, [](float v) { return v != 0.0f; }));
}

TEST(SafetensorsStories260K, BF16CopyIsTheFloat32RoundedToNearestEven) {
  const auto f32_path = test::shared_dir() / "models/stories260K/model.safetensors";
  const auto bf16_path = test::shared_dir() / "models/stories260K-bf16/model.safetensors";
  MASKGEN_REQUIRE_SHARED(f32_path);
  MASKGEN_REQUIRE_SHARED(bf16_path);
  const auto f32 = SafetensorsFile::open(f32_path);
  const auto bf16 = SafetensorsFile::open(bf16_path);
  ASSERT_EQ(bf16.names(), f32.names());
  std::size_t compared = 0, ties = 0, differs_from_truncation = 0;
  for (const auto& name : f32.names()) {
    const auto& info = bf16.info(name);
    ASSERT_EQ(info.dtype, DType::BF16) << name;
    ASSERT_EQ(info.shape, f32.info(name).shape) << name;
    std::vector<float> exact(static_cast<std::size_t>(info.numel())), rounded(exact.size());
    f32.read<float>(name, exact);
    bf16.read<float>(name, rounded);
    const auto raw = bf16.bytes(name);
    for (std::size_t i = 0; i < exact.size(); ++i) {
      const std::uint16_t expected = bf16_round_nearest_even(exact[i]);
      std::uint16_t stored;
      std::memcpy(&stored, raw.data() + 2 * i, 2);
      ASSERT_EQ(stored, expected) << name << "[" << i << "] = " << exact[i];
      // And the decoded float is that bf16 value (its bits in the top half of a float32).
      ASSERT_EQ(std::bit_cast<std::uint32_t>(rounded[i]), std::uint32_t{expected} << 16)
          << name << "[" << i << "]";
      const auto bits = std::bit_cast<std::uint32_t>(exact[i]);
      ties += (bits & 0xffffu) == 0x8000u;
      differs_from_truncation += expected != (bits >> 16);
      ++compared;
    }
  }
  EXPECT_GT(compared, 200000u);
  // Truncation would agree everywhere; round-to-nearest differs on about half the values.
  EXPECT_GT(differs_from_truncation, compared / 4);
  RecordProperty("ties", static_cast<int>(ties));
}

// The packed tensors of quantized checkpoints (int32 codes, uint8 blocks, fp8) open, give their
// bytes, and are refused by name where values are asked for.
TEST(SafetensorsFile, CodeDtypesOpenAndAreNotReadAsValues) {
  test::TempDir dir;
  const std::vector<std::int32_t> q = {0x12345678, -1};
  const std::vector<std::uint8_t> blocks = {1, 2, 3, 4};
  const std::vector<TensorData> tensors = {{"m.qweight", DType::I32, {2}, std::as_bytes(std::span(q))},
                                           {"m.blocks", DType::U8, {4}, std::as_bytes(std::span(blocks))},
                                           {"m.weight", DType::F8_E4M3, {2, 2}, std::as_bytes(std::span(blocks))}};
  write_safetensors(dir.path() / "q.safetensors", tensors);
  const auto file = SafetensorsFile::open(dir.path() / "q.safetensors");
  EXPECT_EQ(file.info("m.qweight").dtype, DType::I32);
  EXPECT_EQ(file.info("m.weight").dtype, DType::F8_E4M3);
  std::int32_t back[2];
  std::memcpy(back, file.bytes("m.qweight").data(), 8);
  EXPECT_EQ(back[0], 0x12345678);
  EXPECT_EQ(back[1], -1);
  std::vector<float> out(2);
  expect_error<format_error>([&] { file.read<float>("m.qweight", out); },
                             {"\"m.qweight\"", "dtype I32", "expected F16, BF16, F32 or F64"});
}

TEST(SafetensorsWrite, RoundTripsThroughTheReader) {
  test::TempDir dir;
  const std::vector<float> a = {1.5f, -2.0f, 0.0f, 3.25f, -0.0f, 7.0f};
  const std::vector<double> b = {1e300, -1e-300};
  const std::vector<TensorData> tensors = {
      {"a", DType::F32, {2, 3}, std::as_bytes(std::span(a))},
      {"b", DType::F64, {2}, std::as_bytes(std::span(b))},
      {"empty", DType::F32, {0, 4}, {}}};
  write_safetensors(dir.path() / "w.safetensors", tensors, {{"format", "pt"}});
  const auto file = SafetensorsFile::open(dir.path() / "w.safetensors");
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a", "b", "empty"}));
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.info("a").shape, (std::vector<std::int64_t>{2, 3}));
  std::vector<float> a_back(6);
  file.read<float>("a", a_back);
  EXPECT_EQ(a_back, a);
  std::vector<double> b_back(2);
  file.read<double>("b", b_back);
  EXPECT_EQ(b_back, b);
  EXPECT_EQ(file.info("empty").numel(), 0);
  EXPECT_EQ(file.info("a").begin % 8, 0u);  // data section 8-byte aligned

  const std::vector<TensorData> short_data = {{"a", DType::F32, {7}, std::as_bytes(std::span(a))}};
  EXPECT_THROW(write_safetensors(dir.path() / "x.safetensors", short_data), argument_error);
  const std::vector<TensorData> twice = {tensors[0], tensors[0]};
  EXPECT_THROW(write_safetensors(dir.path() / "y.safetensors", twice), argument_error);
  EXPECT_THROW(write_safetensors(dir.path() / "no/such/dir/z.safetensors", tensors), io_error);
}

}  // namespace
}  // namespace maskgen

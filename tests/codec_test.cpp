// The weight codecs one by one: each element type's exact widening against values worked out by
// hand from the IEEE definitions, the kernels' widening (scalar and SIMD) against the exact one, the
// finiteness scan, the dtype table, int8's scales, and config.json's "quantization_config".

#include <maskgen/config.hpp>
#include <maskgen/ops/weights.hpp>
#include <maskgen/safetensors.hpp>
#include <maskgen/weights/codec.hpp>
#include <maskgen/weights/matrix.hpp>
#include <maskgen/weights/quantization.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

using weights::Bf16;
using weights::F16;
using weights::F32;
using weights::F64;
using weights::I8;
using weights::WeightType;

template <class T>
std::uint64_t bits_of(T v) {
  if constexpr (sizeof(T) == 4) return std::bit_cast<std::uint32_t>(v);
  else return std::bit_cast<std::uint64_t>(v);
}

// The bytes of `values`, starting one byte into the buffer (the scan must not need alignment).
template <class T>
std::vector<std::byte> unaligned_bytes(const std::vector<T>& values) {
  std::vector<std::byte> out(1 + values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.data() + 1, values.data(), values.size() * sizeof(T));
  return out;
}
template <class Codec, class T>
std::optional<std::size_t> scan(const std::vector<T>& values) {
  const auto bytes = unaligned_bytes(values);
  return Codec::first_non_finite(std::span<const std::byte>(bytes).subspan(1));
}

TEST(Bf16Codec, WidensByTheDefinition) {
  // sign | 8 exponent bits (bias 127) | 7 mantissa bits.
  EXPECT_EQ(Bf16::widen<float>(0x3F80), 1.0f);                 // 2^0
  EXPECT_EQ(Bf16::widen<float>(0xC000), -2.0f);                // -2^1
  EXPECT_EQ(Bf16::widen<float>(0x3EAB), 0x1.56p-2f);           // 2^-2 * (1 + 0x2B / 128)
  EXPECT_EQ(Bf16::widen<float>(0x0001), std::ldexp(1.0f, -133));  // smallest subnormal: 2^-126 * 2^-7
  EXPECT_EQ(Bf16::widen<double>(0x0001), std::ldexp(1.0, -133));   // normal in double
  EXPECT_EQ(Bf16::widen<double>(0x807F), -127 * std::ldexp(1.0, -133));  // largest subnormal, negative
  EXPECT_EQ(Bf16::widen<float>(0x7F7F), 0x1.FEp127f);          // largest finite
  EXPECT_EQ(Bf16::widen<float>(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(Bf16::widen<double>(0xFF80), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::signbit(Bf16::widen<double>(0x8000)));      // -0
  // NaN payload 0x41 moves to the top of the mantissa: float 0x7FC10000, double 0x41 << 45.
  EXPECT_EQ(bits_of(Bf16::widen<float>(0x7FC1)), 0x7FC10000u);
  EXPECT_EQ(bits_of(Bf16::widen<double>(0x7FC1)), 0x7FF8200000000000u);
  EXPECT_EQ(bits_of(Bf16::widen<double>(0xFF81)), 0xFFF0200000000000u);  // signalling, negative
}

TEST(F16Codec, WidensByTheDefinition) {
  // sign | 5 exponent bits (bias 15) | 10 mantissa bits.
  EXPECT_EQ(F16::widen<float>(0x3C00), 1.0f);
  EXPECT_EQ(F16::widen<float>(0x3555), 0.333251953125f);  // 2^-2 * (1 + 0x155 / 1024) = 1365 / 4096
  EXPECT_EQ(F16::widen<double>(0xC500), -5.0);             // -2^2 * (1 + 256 / 1024)
  EXPECT_EQ(F16::widen<float>(0x0001), std::ldexp(1.0f, -24));         // smallest subnormal
  EXPECT_EQ(F16::widen<double>(0x03FF), 1023 * std::ldexp(1.0, -24));  // largest subnormal
  EXPECT_EQ(F16::widen<float>(0x7BFF), 65504.0f);                      // largest finite
  EXPECT_EQ(F16::widen<float>(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F16::widen<double>(0xFC00), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::signbit(F16::widen<float>(0x8000)));
  // NaN payloads: 0x201 becomes float mantissa 0x201 << 13; 0x001 double mantissa 1 << 42.
  EXPECT_EQ(bits_of(F16::widen<float>(0x7E01)), 0x7FC02000u);
  EXPECT_EQ(bits_of(F16::widen<double>(0x7C01)), 0x7FF0040000000000u);
}

TEST(FloatCodecs, WidenByTheDefinition) {
  EXPECT_EQ(F32::widen<double>(0.1f), static_cast<double>(0.1f));
  EXPECT_EQ(F32::widen<double>(std::ldexp(1.0f, -149)), std::ldexp(1.0, -149));  // float's smallest subnormal
  // A signalling NaN keeps its payload (a conversion instruction would quiet it): 1 << 29.
  EXPECT_EQ(bits_of(F32::widen<double>(std::bit_cast<float>(0x7F800001u))), 0x7FF0000020000000u);
  EXPECT_EQ(bits_of(F32::widen<float>(std::bit_cast<float>(0xFF800001u))), 0xFF800001u);
  EXPECT_EQ(F64::widen<double>(1.0 / 3), 1.0 / 3);
  EXPECT_EQ(bits_of(F64::widen<float>(1.0 / 3)), 0x3EAAAAABu);  // 1/3 rounded to nearest
  EXPECT_EQ(F64::widen<float>(1e300), std::numeric_limits<float>::infinity());
}

TEST(I8Codec, WidensAndQuantizesARow) {
  EXPECT_EQ(I8::widen<float>(-128), -128.0f);
  EXPECT_EQ(I8::widen<double>(127), 127.0);
  // max |w| = 127 gives scale 1; halves round away from zero.
  const float row[] = {127.0f, -3.4f, 0.5f, -0.5f, 0.0f};
  std::int8_t q[5];
  EXPECT_EQ(I8::quantize_row(row, 5, q), 1.0f);
  EXPECT_EQ(std::vector<int>(q, q + 5), (std::vector<int>{127, -3, 1, -1, 0}));
  const float zeros[] = {0.0f, -0.0f};
  EXPECT_EQ(I8::quantize_row(zeros, 2, q), 0.0f);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[1], 0);
  // A row's values are q times its scale.
  const std::int8_t data[] = {2, -4, 6, 1};
  const float scales[] = {0.5f, 0.25f};
  const weights::WeightMatrix w{WeightType::I8, reinterpret_cast<const std::byte*>(data), 2, 2, scales, false, nullptr};
  float out[2];
  weights::weight_row(w, 1, out);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], 0.25f);
}

// The kernels' widenings, scalar and SIMD, equal the exact one on every finite element.
template <class Codec>
void check_kernel_widening() {
  using S = ops::detail::Simd<float>;
  std::vector<std::uint16_t> finite;
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto v = static_cast<std::uint16_t>(h);
    if (!Codec::format::is_finite(v)) continue;
    ASSERT_EQ(bits_of(Codec::scalar(v)), bits_of(Codec::template widen<float>(v))) << std::hex << h;
    finite.push_back(v);
  }
  while (finite.size() % S::lanes) finite.push_back(0);
  for (std::size_t i = 0; i < finite.size(); i += S::lanes) {
    S::type f;
    ops::detail::Simd<double>::type d[2];
    Codec::template load<float>(f, finite.data() + i);
    Codec::template load<double>(d[0], finite.data() + i);
    Codec::template load<double>(d[1], finite.data() + i + S::lanes / 2);
    for (std::size_t l = 0; l < S::lanes; ++l) {
      ASSERT_EQ(bits_of(f[l]), bits_of(Codec::template widen<float>(finite[i + l]))) << std::hex << finite[i + l];
      ASSERT_EQ(bits_of(d[l / (S::lanes / 2)][l % (S::lanes / 2)]), bits_of(Codec::template widen<double>(finite[i + l])));
    }
  }
}

TEST(Codecs, KernelWideningEqualsTheExactOneOnEveryFiniteElement) {
  check_kernel_widening<Bf16>();
  check_kernel_widening<F16>();
  for (int q = -128; q < 128; ++q) {
    EXPECT_EQ(I8::scalar(static_cast<std::int8_t>(q)), I8::widen<float>(static_cast<std::int8_t>(q)));
  }
}

TEST(Codecs, FinitenessScanFindsTheFirstBadElement) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(scan<F32>(std::vector<float>{1, -2, std::numeric_limits<float>::max(), std::ldexp(1.0f, -149)}), std::nullopt);
  EXPECT_EQ(scan<F32>(std::vector<float>{1, -2, -inf, nan}), 2u);
  EXPECT_EQ(scan<F32>(std::vector<float>{nan}), 0u);
  EXPECT_EQ(scan<F32>(std::vector<float>{}), std::nullopt);
  EXPECT_EQ(scan<F64>(std::vector<double>{1, 2, 3, std::numeric_limits<double>::max(), -HUGE_VAL}), 4u);
  EXPECT_EQ(scan<Bf16>(std::vector<std::uint16_t>{0x3F80, 0x7F7F, 0xFF81, 0x7F80}), 2u);
  EXPECT_EQ(scan<Bf16>(std::vector<std::uint16_t>{0x3F80, 0x7F7F, 0x0001, 0xFF7F}), std::nullopt);
  EXPECT_EQ(scan<F16>(std::vector<std::uint16_t>{0x7BFF, 0x3C00, 0x03FF, 0xFC00, 0x7E00}), 3u);
  EXPECT_EQ(scan<F16>(std::vector<std::uint16_t>{0x7BFF, 0xFBFF}), std::nullopt);
  EXPECT_EQ(scan<I8>(std::vector<std::int8_t>{-128, 127}), std::nullopt);
}

TEST(Codecs, TableNamesEveryCodecAndTheDtypesItReads) {
  EXPECT_EQ(weights::codec_for_dtype("F32"), WeightType::F32);
  EXPECT_EQ(weights::codec_for_dtype("F64"), WeightType::F64);
  EXPECT_EQ(weights::codec_for_dtype("BF16"), WeightType::BF16);
  EXPECT_EQ(weights::codec_for_dtype("F16"), WeightType::F16);
  EXPECT_EQ(weights::codec_for_dtype("I8"), std::nullopt);  // int8 is made at load, never read
  EXPECT_EQ(weights::codec_for_dtype(""), std::nullopt);
  for (const DType d : {DType::F16, DType::BF16, DType::F32, DType::F64}) {
    EXPECT_EQ(weights::weight_type_name(stored_type(d)), dtype_name(d));
    EXPECT_EQ(weights::element_bytes(stored_type(d)), dtype_size(d)) << dtype_name(d);
  }
  EXPECT_EQ(weights::weight_type_name(WeightType::I8), "I8");
  EXPECT_EQ(weights::element_bytes(WeightType::I8), 1u);
  EXPECT_EQ(ops::weight_type_name(ops::WeightType::BF16), "BF16");  // the ops names still work
}

nlohmann::json llama() {
  return nlohmann::json::parse(R"({
    "model_type": "llama", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 172,
    "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-05})");
}

// F16::narrow: every finite half comes back from its own value, and every value halfway between
// two neighbours rounds to the one with an even mantissa (the largest finite half's upper
// midpoint, 65520, to infinity).
TEST(F16Narrow, EveryHalfRoundTripsAndMidpointsRoundToEven) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;  // inf and NaN
    const auto half = static_cast<std::uint16_t>(h);
    ASSERT_EQ(weights::F16::narrow(weights::F16::widen<float>(half)), half) << std::hex << h;
    if ((h & 0x7FFF) == 0x7BFF) continue;  // the largest finite: its upper neighbour is infinity
    const double lo = weights::F16::widen<double>(half), hi = weights::F16::widen<double>(static_cast<std::uint16_t>(h + 1));
    const auto mid = static_cast<float>((lo + hi) / 2);  // exact in float: one bit below the half's last
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
    const std::uint16_t even = (h & 1) == 0 ? half : static_cast<std::uint16_t>(h + 1);
    ASSERT_EQ(weights::F16::narrow(mid), even) << std::hex << h;
  }
  EXPECT_EQ(weights::F16::narrow(65520.0f), 0x7C00);
  EXPECT_EQ(weights::F16::narrow(65519.99f), 0x7BFF);
  EXPECT_EQ(weights::F16::narrow(-1e10f), 0xFC00);
  EXPECT_EQ(weights::F16::narrow(std::numeric_limits<float>::quiet_NaN()) & 0x7C00, 0x7C00);
}

TEST(QuantizationConfig, AbsentOrNullReadsTensorsAsStored) {
  EXPECT_NO_THROW(ModelConfig::from_json(llama()));
  auto j = llama();
  j["quantization_config"] = nullptr;
  EXPECT_NO_THROW(ModelConfig::from_json(j));
}

TEST(QuantizationConfig, AMethodNotReadIsRefusedByName) {
  auto j = llama();
  j["quantization_config"] = {{"quant_method", "hqq"}, {"bits", 4}};
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"config.json", "\"quantization_config\"", "\"hqq\""});
  j["quantization_config"] = {{"bits", 8}};
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"\"quantization_config\"", "(none given)"});
  j["quantization_config"] = "fp8";
  test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, {"\"quantization_config\""});
}

// The fields of each method as the Hub's configs write them.
TEST(QuantizationConfig, GptqAwqAndCompressedTensorsAreRead) {
  auto j = llama();
  j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 8}, {"group_size", -1}, {"desc_act", true},
                              {"sym", false}, {"checkpoint_format", "gptq_v2"}};
  auto q = ModelConfig::from_json(j).quantization;
  EXPECT_EQ(q.method, weights::PackedMethod::Gptq);
  EXPECT_EQ(q.bits, 8);
  EXPECT_EQ(q.group_size, 0);  // one group over the whole of k
  EXPECT_FALSE(q.zero_minus_one);
  j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}};
  q = ModelConfig::from_json(j).quantization;
  EXPECT_EQ(q.group_size, 128);
  EXPECT_TRUE(q.zero_minus_one);  // GPTQ's first format by default
  j["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 64}, {"version", "gemm"},
                              {"zero_point", true}, {"modules_to_not_convert", {"visual"}}};
  q = ModelConfig::from_json(j).quantization;
  EXPECT_EQ(q.method, weights::PackedMethod::Awq);
  EXPECT_EQ(q.group_size, 64);
  EXPECT_EQ(q.not_converted, std::vector<std::string>{"visual"});
  j["quantization_config"] = nlohmann::json::parse(R"({"quant_method": "compressed-tensors", "format": "pack-quantized",
      "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": null, "output_activations": null,
        "weights": {"num_bits": 4, "type": "int", "symmetric": true, "strategy": "group", "group_size": 32}}},
      "ignore": ["lm_head", "re:.*mlp[.]gate$"]})");
  q = ModelConfig::from_json(j).quantization;
  EXPECT_EQ(q.method, weights::PackedMethod::CompressedTensors);
  EXPECT_EQ(q.bits, 4);
  EXPECT_EQ(q.group_size, 32);
  EXPECT_EQ(q.not_converted, (std::vector<std::string>{"lm_head", "re:.*mlp[.]gate$"}));
}

TEST(QuantizationConfig, BitsGroupsAndFormatsNotReadAreRefusedByName) {
  auto j = llama();
  auto refused = [&](const char* q, std::initializer_list<std::string_view> words) {
    j["quantization_config"] = nlohmann::json::parse(q);
    test::expect_error<format_error>([&] { ModelConfig::from_json(j); }, words);
  };
  refused(R"({"quant_method": "gptq", "bits": 3})", {"\"bits\"", "is 3", "4 or 8"});
  refused(R"({"quant_method": "gptq", "bits": 4, "group_size": 0})", {"\"group_size\"", "is 0"});
  refused(R"({"quant_method": "gptq", "bits": 4, "checkpoint_format": "marlin"})", {"\"checkpoint_format\"", "marlin"});
  refused(R"({"quant_method": "awq", "bits": 4, "version": "gemv"})", {"\"version\"", "gemv", "gemm"});
  refused(R"({"quant_method": "awq", "bits": 8})", {"\"bits\"", "is 8"});
  refused(R"({"quant_method": "awq", "group_size": -1})", {"\"group_size\"", "is -1"});
  refused(R"({"quant_method": "compressed-tensors", "format": "int-quantized", "config_groups": {"group_0":
             {"weights": {"num_bits": 8, "type": "int", "strategy": "channel"}}}})",
          {"\"format\"", "int-quantized", "pack-quantized", "float-quantized"});
  refused(R"({"quant_method": "compressed-tensors", "format": "float-quantized", "config_groups": {"group_0":
             {"weights": {"num_bits": 4, "type": "float", "strategy": "group", "group_size": 32}}}})",
          {"\"num_bits\"", "is 4", "8 bits"});
  refused(R"({"quant_method": "compressed-tensors", "format": "float-quantized", "config_groups": {"group_0":
             {"weights": {"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [128]}}}})",
          {"\"block_structure\"", "[128]"});
  refused(R"({"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"group_0":
             {"weights": {"num_bits": 4, "type": "int", "strategy": "tensor"}}}})",
          {"\"strategy\"", "tensor"});
  refused(R"({"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {}})",
          {"\"config_groups\""});
  refused(R"({"quant_method": "fp8", "fmt": "e5m2"})", {"\"fmt\"", "e5m2", "e4m3"});
  refused(R"({"quant_method": "fp8", "weight_block_size": [128, 0]})", {"\"weight_block_size\"", "[128,0]"});
  refused(R"({"quant_method": "bitsandbytes", "load_in_4bit": true})", {"\"bitsandbytes\"", "does not read"});
}

// The FP8 and MXFP4 configs as published: fine-grained blocks (default [128, 128]), compressed-
// tensors' strategies as scale grids (scale_rows 0: one scale for the tensor), MXFP4's groups of 32.
TEST(QuantizationConfig, Fp8AndMxfp4ConfigsAsPublished) {
  auto read = [](const char* q) {
    nlohmann::json j;
    j["quantization_config"] = nlohmann::json::parse(q);
    return weights::read_quantization_config(j, "config.json");
  };
  auto fp8 = read(R"({"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3", "weight_block_size": [64, 32],
                      "modules_to_not_convert": ["lm_head"]})");
  EXPECT_EQ(fp8.method, weights::PackedMethod::Fp8);
  EXPECT_EQ(fp8.scale_rows, 64);
  EXPECT_EQ(fp8.group_size, 32);
  EXPECT_EQ(fp8.not_converted, std::vector<std::string>{"lm_head"});
  fp8 = read(R"({"quant_method": "fp8"})");
  EXPECT_EQ(fp8.scale_rows, 128);
  EXPECT_EQ(fp8.group_size, 128);
  auto ct = [&](const char* weights) {
    return read((std::string(R"({"quant_method": "compressed-tensors", "format": "float-quantized", "config_groups":
                 {"group_0": {"input_activations": {"num_bits": 8, "type": "float", "dynamic": true}, "weights": )") +
                 weights + "}}}")
                    .c_str());
  };
  const auto channel = ct(R"({"num_bits": 8, "type": "float", "strategy": "channel"})");
  EXPECT_EQ(channel.method, weights::PackedMethod::CompressedFloat);
  EXPECT_EQ(channel.scale_rows, 1);
  EXPECT_EQ(channel.group_size, 0);
  const auto tensor = ct(R"({"num_bits": 8, "type": "float", "strategy": "tensor"})");
  EXPECT_EQ(tensor.scale_rows, 0);
  EXPECT_EQ(tensor.group_size, 0);
  const auto block = ct(R"({"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [128, 64]})");
  EXPECT_EQ(block.scale_rows, 128);
  EXPECT_EQ(block.group_size, 64);
  const auto mx = read(R"({"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn"]})");
  EXPECT_EQ(mx.method, weights::PackedMethod::Mxfp4);
  EXPECT_EQ(mx.group_size, 32);
}

}  // namespace
}  // namespace maskgen

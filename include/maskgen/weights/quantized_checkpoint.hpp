#pragma once
// The linear layers of a quantized checkpoint, read from the packing its method writes into the
// grouped matrix of the weights house (grouped.hpp: Q4 or Q8 in the kernel's panels, at the file's
// size). Element (o, i) of a layer of `out` rows and `in` inputs is (q - z) * s, where:
//
// GPTQ (GPTQModel's and AutoGPTQ's pack: qlinear `pack` / `dequantize_weight`):
//   qweight I32 [in / (32 / bits), out]: input i of output o is bits (bits * (i % per_word))...
//     of word [i / per_word, o], per_word = 32 / bits (packed along the inputs);
//   qzeros I32 [groups, out / per_word]: the zero of output o in word [g, o / per_word], bits
//     (bits * (o % per_word))... (packed along the outputs); GPTQ's first format ("gptq") stores
//     zero - 1, "gptq_v2" the zero;
//   scales F16 [groups, out]; g_idx I32 [in]: the group of each input (act-order assigns them out
//     of order; otherwise i / group_size). groups = ceil(in / group_size), or 1 for -1.
// AWQ (AutoAWQ's GEMM pack: WQLinear_GEMM.from_linear, awq/utils/packing_utils.py):
//   qweight I32 [in, out / 8]: eight 4-bit codes along the outputs, word nibble j holding output
//     8 w + order[j], order = 0, 2, 4, 6, 1, 3, 5, 7; qzeros I32 [in / group, out / 8] likewise;
//     scales F16 [in / group, out]. The group must divide the inputs.
// compressed-tensors pack-quantized (compressed-tensors' pack_to_int32, PackedQuantizationCompressor):
//   weight_packed I32 [out, ceil(in / per_word)]: codes along the inputs, low bits first, each the
//     signed value plus 2^(bits-1); weight_scale [out, groups] (F16, BF16 or F32); weight_shape
//     [2] = [out, in]; weight_g_idx I32 [in] where the scheme has act-order; symmetric: zero
//     2^(bits-1); asymmetric: weight_zero_point I32 [ceil(out / per_word), groups], each zero
//     plus 2^(bits-1) packed along the outputs (pack_to_int32 on dim 0).
// FP8 (transformers' FineGrainedFP8Config: quant_method "fp8"; compressed-tensors float-quantized):
//   weight F8_E4M3 [out, in], e4m3fn codes; its scale weight_scale_inv ("fp8") or weight_scale
//   (compressed-tensors) [ceil(out / rows), ceil(in / columns)] for blocks of [rows, columns]
//   (a channel: [out, 1]; a group: [out, ceil(in / group)]; a tensor: [1] or []); value = e4m3 * s.
// MXFP4 (gpt-oss's experts, as transformers' integrations/mxfp4.py reads them):
//   name_blocks U8 [experts, out, in / 32, 16]: byte b of block k holds input 32 k + 2 b in its low
//   nibble and 32 k + 2 b + 1 in its high one, e2m1 codes; name_scales U8 [experts, out, in / 32],
//   E8M0: value = e2m1 * 2^(scale - 127).
// Every tensor is checked against the shape the layer needs, scales for finiteness (and E8M0's
// for a float's range), FP8 codes for NaN and group indices for range, each error naming the tensor.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../detail/files.hpp"
#include "../error.hpp"
#include "../safetensors.hpp"
#include "codec.hpp"
#include "packing.hpp"
#include "quantization_config.hpp"

namespace maskgen::weights {

namespace detail {

using maskgen::detail::cat;
using maskgen::detail::shape_string;

// An integer tensor of a packed layer, checked: its dtype one of `dtypes`, its shape `shape`.
struct IntTensor {
  std::string name;
  DType dtype = DType::I32;
  std::span<const std::byte> bytes;

  std::int64_t at(std::size_t i) const {
    if (dtype == DType::I64) {
      std::int64_t v;
      std::memcpy(&v, bytes.data() + 8 * i, 8);
      return v;
    }
    std::int32_t v;
    std::memcpy(&v, bytes.data() + 4 * i, 4);
    return v;
  }
  // Word i as the unsigned 32 bits it packs.
  std::uint32_t word(std::size_t i) const { return static_cast<std::uint32_t>(at(i)); }
};

inline const TensorInfo& checked_shape(const SafetensorsCheckpoint& file, const std::string& name,
                                       const std::vector<std::int64_t>& shape, std::string_view layout) {
  const TensorInfo& t = file.info(name);
  if (t.shape != shape) {
    throw format_error(cat("tensor \"", name, "\" in ", file.file_of(name).path(), " has shape ",
                           shape_string(t.shape), "; expected ", shape_string(shape), " (", layout, ")"));
  }
  return t;
}

inline IntTensor int_tensor(const SafetensorsCheckpoint& file, const std::string& name,
                            const std::vector<std::int64_t>& shape, std::string_view layout, bool wide_ok = false) {
  const TensorInfo& t = checked_shape(file, name, shape, layout);
  if (t.dtype != DType::I32 && !(wide_ok && t.dtype == DType::I64)) {
    throw format_error(cat("tensor \"", name, "\" has dtype ", dtype_name(t.dtype), "; expected I32", wide_ok ? " or I64" : "",
                           " (", layout, ")"));
  }
  return {name, t.dtype, file.file_of(name).bytes(name)};
}

// A scale tensor: F16, BF16 or F32, every element finite.
struct ScaleTensor {
  WeightType type = WeightType::F16;
  std::span<const std::byte> bytes;
  std::size_t element_bytes() const { return type == WeightType::F32 ? 4 : 2; }
};

inline ScaleTensor scale_tensor(const SafetensorsCheckpoint& file, const std::string& name,
                                const std::vector<std::int64_t>& shape, std::string_view layout) {
  const TensorInfo& t = checked_shape(file, name, shape, layout);
  if (t.dtype != DType::F16 && t.dtype != DType::BF16 && t.dtype != DType::F32) {
    throw format_error(cat("tensor \"", name, "\" has dtype ", dtype_name(t.dtype), "; expected F16, BF16 or F32 scales"));
  }
  const WeightType type = stored_type(t.dtype, name);
  const auto bytes = file.file_of(name).bytes(name);
  std::optional<std::size_t> bad;
  visit_codec(type, [&]<class Codec>(Codec) { bad = Codec::first_non_finite(bytes); });
  if (bad) throw format_error(cat("tensor \"", name, "\" holds a non-finite scale (inf or NaN) at element ", *bad));
  return {type, bytes};
}

// The group of each input from a g_idx tensor: each in [0, groups); empty where every input i is
// in group i / size (the layout without act-order).
inline std::vector<std::uint32_t> group_indices(const IntTensor& g_idx, std::size_t in, std::size_t groups,
                                                std::size_t size) {
  std::vector<std::uint32_t> out(in);
  bool plain = true;
  for (std::size_t i = 0; i < in; ++i) {
    const std::int64_t g = g_idx.at(i);
    if (g < 0 || static_cast<std::uint64_t>(g) >= groups) {
      throw format_error(cat("tensor \"", g_idx.name, "\" holds group ", g, " at input ", i, "; expected 0 to ",
                             groups - 1));
    }
    out[i] = static_cast<std::uint32_t>(g);
    plain = plain && out[i] == i / size;
  }
  if (plain) out.clear();
  return out;
}

inline std::uint32_t bits_at(std::uint32_t word, int bits, std::size_t slot) {
  return (word >> (static_cast<unsigned>(bits) * slot)) & ((1u << bits) - 1);
}

// Rows [first, first + rows) of the packed layer `module` with `out` outputs and `in` inputs.
inline WeightMatrix read_gptq(const SafetensorsCheckpoint& file, const CheckpointQuantization& q,
                              const std::string& module, std::size_t out, std::size_t in, std::size_t first,
                              std::size_t rows, int threads) {
  const std::size_t per_word = 32 / static_cast<std::size_t>(q.bits);
  const std::size_t size = q.group_size > 0 ? static_cast<std::size_t>(q.group_size) : in;
  const std::size_t groups = (in + size - 1) / size;
  const auto I = static_cast<std::int64_t>(in), O = static_cast<std::int64_t>(out);
  if (in % per_word != 0 || out % per_word != 0) {
    throw format_error(cat("layer ", module, " has ", out, " outputs and ", in, " inputs; GPTQ at ", q.bits,
                           " bits packs both in multiples of ", per_word));
  }
  const IntTensor qweight = int_tensor(file, module + ".qweight", {I / static_cast<std::int64_t>(per_word), O},
                                       "GPTQ: [in / (32 / bits), out]");
  const IntTensor qzeros = int_tensor(file, module + ".qzeros",
                                      {static_cast<std::int64_t>(groups), O / static_cast<std::int64_t>(per_word)},
                                      "GPTQ: [groups, out / (32 / bits)]");
  const ScaleTensor scales = scale_tensor(file, module + ".scales", {static_cast<std::int64_t>(groups), O},
                                          "GPTQ: [groups, out]");
  GroupedShape shape{integer_codes_of(q.bits), rows, in, size, groups, scales.type, {}};
  if (file.contains(module + ".g_idx")) {
    shape.group_of = group_indices(int_tensor(file, module + ".g_idx", {I}, "GPTQ: [in]", true), in, groups, size);
  }
  const unsigned plus = q.zero_minus_one ? 1 : 0, top = 255;
  for (std::size_t g = 0; g < groups; ++g) {  // a zero that does not fit a byte (8 bits, zero - 1 = 255)
    for (std::size_t o = first; o < first + rows; ++o) {
      if (bits_at(qzeros.word(g * (out / per_word) + o / per_word), q.bits, o % per_word) + plus > top) {
        throw format_error(cat("tensor \"", qzeros.name, "\" holds zero ", 256, " for output ", o, " of group ", g,
                               "; maskgen holds zeros of at most 255"));
      }
    }
  }
  const std::size_t sb = scales.element_bytes();
  WeightMatrix w = pack_grouped(
      shape,
      [&](std::size_t r, std::size_t i) { return bits_at(qweight.word((i / per_word) * out + first + r), q.bits, i % per_word); },
      [&](std::size_t r, std::size_t g) {
        const std::size_t o = first + r;
        return bits_at(qzeros.word(g * (out / per_word) + o / per_word), q.bits, o % per_word) + plus;
      },
      [&](std::size_t r, std::size_t g, std::byte* dst) { std::memcpy(dst, scales.bytes.data() + (g * out + first + r) * sb, sb); },
      threads);
  maskgen::detail::release_mapped_pages(qweight.bytes.data(), qweight.bytes.size());  // the panels replace them
  return w;
}

inline WeightMatrix read_awq(const SafetensorsCheckpoint& file, const CheckpointQuantization& q, const std::string& module,
                             std::size_t out, std::size_t in, std::size_t first, std::size_t rows, int threads) {
  const auto size = static_cast<std::size_t>(q.group_size);
  if (in % size != 0 || out % 8 != 0) {
    throw format_error(cat("layer ", module, " has ", out, " outputs and ", in, " inputs; AWQ needs the inputs in whole ",
                           "groups of ", size, " and the outputs in multiples of 8"));
  }
  const std::size_t groups = in / size;
  const auto I = static_cast<std::int64_t>(in), O = static_cast<std::int64_t>(out);
  const IntTensor qweight = int_tensor(file, module + ".qweight", {I, O / 8}, "AWQ: [in, out / 8]");
  const IntTensor qzeros = int_tensor(file, module + ".qzeros", {static_cast<std::int64_t>(groups), O / 8},
                                      "AWQ: [in / group_size, out / 8]");
  const ScaleTensor scales = scale_tensor(file, module + ".scales", {static_cast<std::int64_t>(groups), O},
                                          "AWQ: [in / group_size, out]");
  // Output 8 w + j is in nibble slot[j] of word w (the inverse of AWQ's order 0, 2, 4, 6, 1, 3, 5, 7).
  static constexpr std::size_t slot[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  const GroupedShape shape{WeightType::Q4, rows, in, size, groups, scales.type, {}};
  const std::size_t sb = scales.element_bytes(), words = out / 8;
  WeightMatrix w = pack_grouped(
      shape,
      [&](std::size_t r, std::size_t i) {
        const std::size_t o = first + r;
        return bits_at(qweight.word(i * words + o / 8), 4, slot[o % 8]);
      },
      [&](std::size_t r, std::size_t g) {
        const std::size_t o = first + r;
        return bits_at(qzeros.word(g * words + o / 8), 4, slot[o % 8]);
      },
      [&](std::size_t r, std::size_t g, std::byte* dst) { std::memcpy(dst, scales.bytes.data() + (g * out + first + r) * sb, sb); },
      threads);
  maskgen::detail::release_mapped_pages(qweight.bytes.data(), qweight.bytes.size());
  return w;
}

inline WeightMatrix read_compressed(const SafetensorsCheckpoint& file, const CheckpointQuantization& q,
                                    const std::string& module, std::size_t out, std::size_t in, std::size_t first,
                                    std::size_t rows, int threads) {
  const std::size_t per_word = 32 / static_cast<std::size_t>(q.bits);
  const std::size_t size = q.group_size > 0 ? static_cast<std::size_t>(q.group_size) : in;
  const std::size_t groups = (in + size - 1) / size, words = (in + per_word - 1) / per_word;
  const auto I = static_cast<std::int64_t>(in), O = static_cast<std::int64_t>(out);
  const IntTensor packed = int_tensor(file, module + ".weight_packed", {O, static_cast<std::int64_t>(words)},
                                      "compressed-tensors: [out, ceil(in / (32 / bits))]");
  if (file.contains(module + ".weight_shape")) {
    const IntTensor s = int_tensor(file, module + ".weight_shape", {2}, "compressed-tensors: [2]", true);
    if (s.at(0) != O || s.at(1) != I) {
      throw format_error(cat("tensor \"", s.name, "\" says [", s.at(0), ", ", s.at(1), "]; the layer is [", O, ", ", I, "]"));
    }
  }
  const ScaleTensor scales = scale_tensor(file, module + ".weight_scale", {O, static_cast<std::int64_t>(groups)},
                                          "compressed-tensors: [out, groups]");
  GroupedShape shape{integer_codes_of(q.bits), rows, in, size, groups, scales.type, {}};
  if (file.contains(module + ".weight_g_idx")) {
    shape.group_of = group_indices(int_tensor(file, module + ".weight_g_idx", {I}, "compressed-tensors: [in]", true), in,
                                   groups, size);
  }
  // Asymmetric: weight_zero_point [ceil(out / per_word), groups] packs each zero plus 2^(bits-1)
  // along the outputs; symmetric: every zero is 0, stored 2^(bits-1) as the codes are.
  std::optional<IntTensor> zeros;
  if (!q.symmetric) {
    zeros = int_tensor(file, module + ".weight_zero_point",
                       {static_cast<std::int64_t>((out + per_word - 1) / per_word), static_cast<std::int64_t>(groups)},
                       "compressed-tensors: [ceil(out / (32 / bits)), groups]");
  }
  const unsigned offset = 1u << (q.bits - 1);
  const std::size_t sb = scales.element_bytes();
  WeightMatrix w = pack_grouped(
      shape,
      [&](std::size_t r, std::size_t i) { return bits_at(packed.word((first + r) * words + i / per_word), q.bits, i % per_word); },
      [&](std::size_t r, std::size_t g) {
        const std::size_t o = first + r;
        return zeros ? bits_at(zeros->word((o / per_word) * groups + g), q.bits, o % per_word) : offset;
      },
      [&](std::size_t r, std::size_t g, std::byte* dst) {
        std::memcpy(dst, scales.bytes.data() + ((first + r) * groups + g) * sb, sb);
      },
      threads);
  maskgen::detail::release_mapped_pages(packed.bytes.data(), packed.bytes.size());
  return w;
}

// FP8 rows [first, first + rows) of `module` (e4m3 weight, block scales: see the header).
inline WeightMatrix read_fp8(const SafetensorsCheckpoint& file, const CheckpointQuantization& q, const std::string& module,
                             std::size_t out, std::size_t in, std::size_t first, std::size_t rows, int threads) {
  const std::string name = module + ".weight";
  const auto I = static_cast<std::int64_t>(in), O = static_cast<std::int64_t>(out);
  (void)checked_shape(file, name, {O, I}, "FP8: [out, in]");
  const auto all = file.file_of(name).bytes(name);
  const auto codes = all.subspan(first * in, rows * in);
  for (std::size_t i = 0; i < codes.size(); ++i) {
    if ((static_cast<unsigned>(codes[i]) & 0x7Fu) == 0x7Fu) {
      throw format_error(cat("tensor \"", name, "\" holds the e4m3 NaN code ",
                             static_cast<unsigned>(codes[i]) == 0x7Fu ? "0x7F" : "0xFF", " at element ", first * in + i));
    }
  }
  const std::size_t size = q.group_size > 0 ? static_cast<std::size_t>(q.group_size) : in;
  const std::size_t groups = (in + size - 1) / size;
  const bool whole = q.scale_rows == 0;  // one scale for the tensor
  const std::size_t block_rows = whole ? out : static_cast<std::size_t>(q.scale_rows);
  const std::string scale_name = module + (q.method == PackedMethod::Fp8 ? ".weight_scale_inv" : ".weight_scale");
  std::vector<std::int64_t> scale_shape{static_cast<std::int64_t>((out + block_rows - 1) / block_rows),
                                        static_cast<std::int64_t>(groups)};
  if (whole && file.contains(scale_name)) {  // a tensor's scale: [1] or a scalar []
    const auto& stored = file.info(scale_name).shape;
    scale_shape = stored.empty() ? std::vector<std::int64_t>{} : std::vector<std::int64_t>{1};
  }
  const ScaleTensor scales = scale_tensor(file, scale_name, scale_shape,
                                          whole ? "a tensor's scale: [1]" : "[ceil(out / block rows), ceil(in / block columns)]");
  const std::size_t sb = scales.element_bytes();
  const GroupedShape shape{WeightType::FP8, rows, in, size, groups, scales.type, {}};
  WeightMatrix w = pack_grouped(
      shape, [&](std::size_t r, std::size_t i) { return static_cast<unsigned>(codes[r * in + i]); },
      [](std::size_t, std::size_t) { return 0u; },
      [&](std::size_t r, std::size_t g, std::byte* dst) {
        const std::size_t at = whole ? 0 : ((first + r) / block_rows) * groups + g;
        std::memcpy(dst, scales.bytes.data() + at * sb, sb);
      },
      threads);
  maskgen::detail::release_mapped_pages(codes.data(), codes.size());
  return w;
}

}  // namespace detail

// The rows first, first + step, ... (`rows` of them) of expert e of an MXFP4 tensor `name`
// (name + "_blocks", name + "_scales"; see the header) of [experts, out, in] values, as FP4 codes
// with E8M0 scales. The read that reaches the expert's last row releases its mapped pages (gpt-oss
// reads the gate's rows and the up's rows of one expert in turn).
inline WeightMatrix read_mxfp4(const SafetensorsCheckpoint& file, const std::string& name, std::size_t experts,
                               std::size_t out, std::size_t in, std::size_t e, std::size_t first, std::size_t step,
                               std::size_t rows, int threads) {
  using detail::cat;
  if (in % 32 != 0) {
    throw format_error(cat("tensor ", name, "_blocks packs ", in, " inputs; MXFP4 packs them in blocks of 32"));
  }
  if (e >= experts || step == 0 || (rows > 0 && first + step * (rows - 1) >= out)) {
    throw argument_error(cat("rows ", first, " + ", step, " i (", rows, " of them) of expert ", e, " of tensor ", name,
                             " with ", experts, " experts of ", out, " rows"));
  }
  const std::size_t blocks_per_row = in / 32;
  const auto E = static_cast<std::int64_t>(experts), O = static_cast<std::int64_t>(out),
             K = static_cast<std::int64_t>(blocks_per_row);
  const TensorInfo& b = detail::checked_shape(file, name + "_blocks", {E, O, K, 16}, "MXFP4: [experts, out, in / 32, 16]");
  const TensorInfo& s = detail::checked_shape(file, name + "_scales", {E, O, K}, "MXFP4: [experts, out, in / 32]");
  for (const auto& [t, n] : {std::pair{&b, name + "_blocks"}, std::pair{&s, name + "_scales"}}) {
    if (t->dtype != DType::U8) {
      throw format_error(cat("tensor \"", n, "\" has dtype ", dtype_name(t->dtype), "; expected U8 (MXFP4)"));
    }
  }
  const auto blocks = file.file_of(name + "_blocks").bytes(name + "_blocks").subspan(e * out * blocks_per_row * 16,
                                                                                     out * blocks_per_row * 16);
  const auto scales = file.file_of(name + "_scales").bytes(name + "_scales").subspan(e * out * blocks_per_row,
                                                                                     out * blocks_per_row);
  // E8M0 255 is NaN; from 253 on, 6 * 2^(e - 127) is past float's range.
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t k = 0; k < blocks_per_row; ++k) {
      const auto v = static_cast<unsigned>(scales[(first + step * r) * blocks_per_row + k]);
      if (v >= 253) {
        const std::string what = v == 255 ? " (NaN)" : cat(" (2^", v - 127, ": 6 times it is past float's range)");
        throw format_error(cat("tensor \"", name, "_scales\" holds E8M0 scale ", v, what, " at expert ", e, " row ",
                               first + step * r, " block ", k));
      }
    }
  }
  const GroupedShape shape{WeightType::FP4, rows, in, 32, blocks_per_row, WeightType::E8M0, {}};
  WeightMatrix w = pack_grouped(
      shape,
      [&](std::size_t r, std::size_t i) {
        const auto byte = static_cast<unsigned>(blocks[(first + step * r) * blocks_per_row * 16 + i / 2]);
        return i % 2 == 0 ? byte & 15u : byte >> 4;
      },
      [](std::size_t, std::size_t) { return 0u; },
      [&](std::size_t r, std::size_t g, std::byte* dst) { *dst = scales[(first + step * r) * blocks_per_row + g]; },
      threads);
  if (rows > 0 && first + step * (rows - 1) == out - 1) {
    maskgen::detail::release_mapped_pages(blocks.data(), blocks.size());
    maskgen::detail::release_mapped_pages(scales.data(), scales.size());
  }
  return w;
}

// The name of a layer's packed codes under `q`'s method ("qweight", "weight_packed").
inline std::string packed_tensor(const CheckpointQuantization& q, const std::string& module) {
  switch (q.method) {
    case PackedMethod::CompressedTensors: return module + ".weight_packed";
    case PackedMethod::Gptq:
    case PackedMethod::Awq: return module + ".qweight";
    default: return module + ".weight";  // FP8: the weight itself, in F8_E4M3
  }
}

// Rows [first, first + rows) of the linear layer `module` ("model.layers.0.self_attn.q_proj") of
// `out` outputs and `in` inputs, read from its packed tensors; nullopt where the checkpoint holds
// none for it (a module the method left as stored).
inline std::optional<WeightMatrix> read_packed_layer(const SafetensorsCheckpoint& file, const CheckpointQuantization& q,
                                                     const std::string& module, std::size_t out, std::size_t in,
                                                     std::size_t first, std::size_t rows, int threads) {
  if (!q.packed() || !file.contains(packed_tensor(q, module))) return std::nullopt;
  switch (q.method) {
    case PackedMethod::CompressedFloat:
    case PackedMethod::Fp8:
      if (file.info(module + ".weight").dtype != DType::F8_E4M3) return std::nullopt;  // left as stored
      return detail::read_fp8(file, q, module, out, in, first, rows, threads);
    case PackedMethod::Mxfp4: return std::nullopt;  // only experts are MXFP4 (read_mxfp4)
    case PackedMethod::Gptq: return detail::read_gptq(file, q, module, out, in, first, rows, threads);
    case PackedMethod::Awq: return detail::read_awq(file, q, module, out, in, first, rows, threads);
    case PackedMethod::CompressedTensors: return detail::read_compressed(file, q, module, out, in, first, rows, threads);
    case PackedMethod::None: break;
  }
  return std::nullopt;
}

}  // namespace maskgen::weights

#pragma once
// Which codec each tensor of a checkpoint is held in after load, and the quantization that makes
// the codecs a checkpoint does not store.
//
// A checkpoint's tensors are read as stored (F32, F64, BF16, F16), or, where its quantization
// config packed a layer (quantization_config.hpp), as that layer's grouped codes
// (quantized_checkpoint.hpp). The quantizations maskgen makes itself are at load, when asked
// (Quantization::Int8 and Int4, which Model::load's LoadOptions spells WeightFormat::Int8 and
// Int4): the projections and the output head become I8 with one scale per row, or Q4 in groups
// along k, while lookup tables and vectors stay as stored.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "codec.hpp"
#include "matrix.hpp"
#include "packing.hpp"
#include "quantization_config.hpp"

namespace maskgen::weights {

// How the matrices that a load may quantize (projections, the output head) are held.
enum class Quantization {
  AsStored,  // in the codec they are stored in
  Int8,      // quantized at load: I8, symmetric, one float scale per output row (a copy)
  Int4,      // quantized at load: Q4, groups along k with a float16 scale and a zero each (a copy)
};

// How Quantization::Int4 quantizes.
struct Int4Options {
  std::size_t group_size = 32;  // k of a group: 32, 64 or 128 (the last group of a row may be shorter)
  bool zero_points = true;      // true: a zero per group (min to max); false: symmetric, zero 8
};

// The codec a matrix stored as `stored` is held in under `quantization`.
inline WeightType held_type(WeightType stored, Quantization quantization) {
  if (quantization == Quantization::Int8) return WeightType::I8;
  if (quantization == Quantization::Int4) return WeightType::Q4;
  return stored;
}

// Checks Int4Options, naming the field.
inline void check_int4_options(const Int4Options& o) {
  if (o.group_size != 32 && o.group_size != 64 && o.group_size != 128) {
    throw argument_error(maskgen::detail::cat("Int4Options::group_size must be 32, 64 or 128, got ", o.group_size));
  }
}

// One group of n floats at w quantized to 4 bits: its scale as float16 bits and its zero, then
// each code through code(i, q). With zero points (AutoAWQ's asymmetric rule): s = (max - min) / 15
// (at least 1e-5 / 15), z = clamp(round(-min / s), 0, 15); symmetric: s = max |w| / 7 (at least
// 1e-5 / 7), z = 8. In both q = clamp(round(w / s) + z, 0, 15), with s the float16 scale as
// stored, so that (q - z) * s is the value the kernels compute.
template <class Code>
inline std::pair<std::uint16_t, unsigned> quantize_group4(const float* w, std::size_t n, bool zero_points, Code code) {
  float lo = 0, hi = 0, max_abs = 0;
  for (std::size_t i = 0; i < n; ++i) {
    lo = i == 0 ? w[i] : std::min(lo, w[i]);
    hi = i == 0 ? w[i] : std::max(hi, w[i]);
    max_abs = std::max(max_abs, std::abs(w[i]));
  }
  const float wanted = zero_points ? std::max(hi - lo, 1e-5f) / 15.0f : std::max(max_abs, 1e-5f) / 7.0f;
  const std::uint16_t bits = F16::narrow(wanted);
  const float s = F16::widen<float>(bits);
  if (!std::isfinite(s) || s == 0) {
    throw format_error(maskgen::detail::cat("a group of weights whose range (", lo, " to ", hi,
                                            ") has no float16 scale for 4-bit codes"));
  }
  const unsigned z = zero_points ? static_cast<unsigned>(std::clamp(std::nearbyint(-lo / s), 0.0f, 15.0f)) : 8u;
  for (std::size_t i = 0; i < n; ++i) {
    const float q = std::nearbyint(w[i] / s) + static_cast<float>(z);
    code(i, static_cast<unsigned>(std::clamp(q, 0.0f, 15.0f)));
  }
  return {bits, z};
}

// A row-major [rows, cols] float matrix quantized to Q4 in groups of options.group_size along
// cols (quantize_group4), in the kernel's panels.
inline WeightMatrix quantize_int4(const float* w, std::size_t rows, std::size_t cols, const Int4Options& options,
                                  int threads = 1) {
  check_int4_options(options);
  GroupedShape shape{WeightType::Q4, rows, cols, options.group_size, (cols + options.group_size - 1) / options.group_size,
                     WeightType::F16, {}};
  // Codes, zeros and scales of every group first (row-major), then packed.
  std::vector<std::uint8_t> codes(rows * cols);
  std::vector<std::uint8_t> zeros(rows * shape.groups);
  std::vector<std::uint16_t> scales(rows * shape.groups);
  maskgen::detail::parallel_for(rows, threads, [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      for (std::size_t g = 0; g < shape.groups; ++g) {
        const std::size_t c0 = g * options.group_size, n = std::min(options.group_size, cols - c0);
        std::uint8_t* out = codes.data() + r * cols + c0;
        const auto [scale, zero] = quantize_group4(w + r * cols + c0, n, options.zero_points,
                                                   [&](std::size_t i, unsigned q) { out[i] = static_cast<std::uint8_t>(q); });
        scales[r * shape.groups + g] = scale;
        zeros[r * shape.groups + g] = static_cast<std::uint8_t>(zero);
      }
    }
  });
  return pack_grouped(
      shape, [&](std::size_t r, std::size_t c) { return codes[r * cols + c]; },
      [&](std::size_t r, std::size_t g) { return zeros[r * shape.groups + g]; },
      [&](std::size_t r, std::size_t g, std::byte* out) { std::memcpy(out, &scales[r * shape.groups + g], 2); },
      threads);
}

// Symmetric int8 quantization of a row-major [rows, cols] float matrix, one scale per row (see
// I8::quantize_row): scale = max |w| / 127, q = round(w / scale). An all-zero row gets scale 0.
inline WeightMatrix quantize_int8(const float* w, std::size_t rows, std::size_t cols) {
  struct Storage {
    std::vector<std::int8_t> q;
    std::vector<float> scales;
  };
  auto s = std::make_shared<Storage>();
  s->q.resize(rows * cols);
  s->scales.resize(rows);
  for (std::size_t r = 0; r < rows; ++r) s->scales[r] = I8::quantize_row(w + r * cols, cols, s->q.data() + r * cols);
  WeightMatrix m{WeightType::I8, reinterpret_cast<const std::byte*>(s->q.data()), rows, cols, s->scales.data(), false,
                 nullptr};
  m.keep = std::move(s);
  return m;
}

}  // namespace maskgen::weights

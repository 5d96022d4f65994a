#pragma once
// Which codec each tensor of a checkpoint is held in after load, and the quantization that makes
// the codecs a checkpoint does not store.
//
// Today a checkpoint's tensors are read as stored (F32, F64, BF16, F16): config.json must not ask
// for a quantization method (check_quantization_config refuses one, naming it), and the one
// quantization maskgen does is its own, at load, when asked (Quantization::Int8, which
// Model::load's LoadOptions spells WeightFormat::Int8): the projections and the output head become
// I8 with one scale per row, while lookup tables and vectors stay as stored.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "codec.hpp"
#include "matrix.hpp"
#include "quantization_config.hpp"

namespace maskgen::weights {

// How the matrices that a load may quantize (projections, the output head) are held.
enum class Quantization {
  AsStored,  // in the codec they are stored in
  Int8,      // quantized at load: I8, symmetric, one float scale per output row (a copy)
};

// The codec a matrix stored as `stored` is held in under `quantization`.
inline WeightType held_type(WeightType stored, Quantization quantization) {
  return quantization == Quantization::Int8 ? WeightType::I8 : stored;
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

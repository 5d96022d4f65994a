#pragma once
// Weight matrices in the element type the checkpoint stores (float32, float64, bfloat16 or
// float16), or int8 with one float scale per row when quantized at load; row-major as stored (read
// in place from the memory-mapped safetensors file), or permuted once into the matmul kernel's
// panels (packing.hpp), still in the stored type. Kernels widen each element to the activations'
// type in registers; nothing is rounded, so a 16-bit checkpoint computes exactly as its float32
// widening would.

#include <cstddef>
#include <cstring>
#include <memory>
#include <type_traits>

#include "../ops/simd.hpp"
#include "codec.hpp"
#include "grouped.hpp"

namespace maskgen::weights {

// Columns of one panel of the matmul kernel's weight layout (see pack_panels): two SIMD vectors of
// float, so 32 with AVX-512 and 16 otherwise. Fixed for a build.
inline constexpr std::size_t panel_cols = 2 * ops::detail::Simd<float>::lanes;

// A read-only [rows, cols] weight matrix in `type`: row-major, or in the matmul kernel's panels
// (`panels`, see pack_panels). `keep` owns the storage (the mapped file or a buffer); copies share it.
struct WeightMatrix {
  WeightType type = WeightType::F32;
  const std::byte* data = nullptr;     // [rows, cols] elements of `type`, row-major or in panels
  std::size_t rows = 0, cols = 0;
  const float* scales = nullptr;       // I8 only: [rows] (panels: padded with zeros to whole panels),
                                       // row r's values are q * scales[r]
  bool panels = false;                 // data is in the kernel's panel layout
  std::shared_ptr<const void> keep;    // keeps data (and scales, groups) alive
  Groups groups{};                     // grouped codes only (Q4, Q8, FP8, FP4; always in panels)

  bool grouped() const { return groups.bits != 0; }
  std::size_t element_bytes() const { return weights::element_bytes(type); }
  // Panels of the kernel's layout (the last one padded with zero rows).
  std::size_t panel_count() const { return (rows + panel_cols - 1) / panel_cols; }
  // Bytes of data: rows * cols elements, or whole panels (grouped: codes, zeros and scales).
  std::size_t bytes() const {
    if (grouped()) {
      const std::size_t row = groups.row_bytes(panel_cols);
      const std::size_t zero = groups.zeros ? 1 : 0;
      return panel_count() * (cols * row + groups.count * panel_cols * (zero + groups.scale_bytes()));
    }
    return (panels ? panel_count() * panel_cols : rows) * cols * element_bytes();
  }
};

// Where element i (0 <= i < panel_cols) of a panel row sits in the kernel's layout. BF16 panels
// interleave the two halves of the panel, so that each 32-bit word holds column i in its low half
// and column i + panel_cols / 2 in its high half: the kernel widens a word vector into both float
// vectors with one shift and one mask. Every other type keeps the columns in order.
inline std::size_t panel_slot(WeightType type, std::size_t i) {
  if (type != WeightType::BF16) return i;
  constexpr std::size_t half = panel_cols / 2;
  return i < half ? 2 * i : 2 * (i - half) + 1;
}

// Element (r, c) of `w`, as an index into its data (in elements).
inline std::size_t element_index(const WeightMatrix& w, std::size_t r, std::size_t c) {
  if (!w.panels) return r * w.cols + c;
  return (r / panel_cols) * w.cols * panel_cols + c * panel_cols + panel_slot(w.type, r % panel_cols);
}

// Element (r, c) of a grouped matrix as the kernels compute it for Scalar activations: the code's
// exact value before the scale (unscaled_value) times the scale, in Scalar.
template <class Scalar = float>
Scalar grouped_value(const WeightMatrix& w, std::size_t r, std::size_t c) {
  const Groups& g = w.groups;
  const std::size_t p = r / panel_cols, i = r % panel_cols, row = g.row_bytes(panel_cols), group = g.group(c);
  const auto* codes = reinterpret_cast<const std::uint8_t*>(w.data);
  const unsigned q = code_at(codes + (p * w.cols + c) * row, g.bits, panel_cols, i);
  const unsigned z = g.zeros ? g.zeros[(p * g.count + group) * panel_cols + i] : 0;
  const float s = scale_at(g.scales + (p * g.count + group) * panel_cols * g.scale_bytes(), g.scale_type, i);
  return static_cast<Scalar>(unscaled_value(w.type, q, z)) * static_cast<Scalar>(s);
}

// Row r of `w` widened into out[0, cols), as the kernels widen it (times the row's scale for a
// scaled codec).
template <class Scalar>
void weight_row(const WeightMatrix& w, std::size_t r, Scalar* out) {
  if (w.grouped()) {
    for (std::size_t c = 0; c < w.cols; ++c) out[c] = grouped_value<Scalar>(w, r, c);
    return;
  }
  const std::size_t first = element_index(w, r, 0);
  const std::size_t stride = w.panels ? panel_cols : 1;  // elements between (r, c) and (r, c + 1)
  visit_codec(w.type, [&]<class Codec>(Codec) {
    typename Codec::storage v;
    const std::byte* p = w.data + first * sizeof v;
    for (std::size_t c = 0; c < w.cols; ++c) {
      std::memcpy(&v, p + c * stride * sizeof v, sizeof v);
      out[c] = static_cast<Scalar>(Codec::scalar(v));
    }
    if constexpr (requires { Codec::scaled; }) {
      for (std::size_t c = 0; c < w.cols; ++c) out[c] *= static_cast<Scalar>(w.scales[r]);
    }
  });
}

// A view of an existing row-major buffer of Scalar as a WeightMatrix (no ownership).
template <class Scalar>
WeightMatrix view_weights(const Scalar* data, std::size_t rows, std::size_t cols) {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>);
  return {Plain<Scalar>::type, reinterpret_cast<const std::byte*>(data), rows, cols, nullptr, false, nullptr};
}

}  // namespace maskgen::weights

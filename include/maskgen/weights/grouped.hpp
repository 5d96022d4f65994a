#pragma once
// Grouped integer weights: unsigned codes of 4 or 8 bits with, per output row and per group of
// consecutive k (its input columns), a scale s and a zero z: element (r, c) is (q - z) * s. This is
// what GPTQ, AWQ and compressed-tensors' pack-quantized checkpoints store (each in its own packing,
// read by quantized_checkpoint.hpp), and what Quantization::Int4 makes at load.
//
// Held only in the matmul kernel's panels (panel_cols output rows each, k-major), at the file's
// size: per panel and k, one panel row of codes (panel_cols codes: panel_cols / 2 bytes at 4 bits,
// byte i holding row i in its low nibble and row i + panel_cols / 2 in its high one, so that one
// vector of bytes widens into both halves with a mask and a shift; panel_cols bytes at 8 bits, in
// order); per panel and group, panel_cols zeros of one byte each (GPTQ's first format stores zero
// - 1, so a 4-bit zero may read as 16) and panel_cols scales in their stored type (F16, BF16 or
// F32). Only the zeros take more than the file: 4 bits a group and row at 4 bits.
//
// The value is exact in float where the scale has at most 16 significant bits (F16, BF16): q - z
// is an integer of at most 9 bits and the product needs at most 25 - so the kernels compute with
// the very values the checkpoint defines, and a grouped matrix multiplies bit for bit as the F32
// matrix of its values does.

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../ops/simd.hpp"
#include "bf16.hpp"
#include "f16.hpp"
#include "weight_type.hpp"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace maskgen::weights {

// The groups of a grouped matrix (WeightMatrix::groups).
struct Groups {
  int bits = 0;                             // 4 or 8 (0: the matrix is not grouped)
  std::size_t size = 0;                     // k of one group; the last may be shorter
  std::size_t count = 0;                    // groups along k
  WeightType scale_type = WeightType::F16;  // F16, BF16 or F32
  const std::byte* scales = nullptr;        // [panels][count][panel_cols] of scale_type
  const std::uint8_t* zeros = nullptr;      // [panels][count][panel_cols] one byte each
  const std::uint32_t* group_of = nullptr;  // [k] the group of each k (GPTQ's act-order), or null: k / size

  // Bytes of one panel row of codes (or zeros) for panels of `panel_cols` rows.
  std::size_t row_bytes(std::size_t panel_cols) const { return panel_cols * static_cast<std::size_t>(bits) / 8; }
  std::size_t scale_bytes() const { return scale_type == WeightType::F32 ? 4 : 2; }
  std::size_t group(std::size_t k) const { return group_of ? group_of[k] : k / size; }
};

// Where code i (0 <= i < panel_cols) of a panel row of `bits` sits: its byte and its shift.
struct CodeSlot {
  std::size_t byte;
  unsigned shift;
};
inline CodeSlot code_slot(int bits, std::size_t panel_cols, std::size_t i) {
  if (bits == 8) return {i, 0};
  const std::size_t half = panel_cols / 2;
  return i < half ? CodeSlot{i, 0} : CodeSlot{i - half, 4};
}

// Code i of the panel row at `row`.
inline unsigned code_at(const std::uint8_t* row, int bits, std::size_t panel_cols, std::size_t i) {
  const CodeSlot s = code_slot(bits, panel_cols, i);
  return bits == 8 ? row[s.byte] : (row[s.byte] >> s.shift) & 15u;
}

// Writes code `q` as code i of the panel row at `row` (4 bits: the other nibble is kept).
inline void set_code(std::uint8_t* row, int bits, std::size_t panel_cols, std::size_t i, unsigned q) {
  const CodeSlot s = code_slot(bits, panel_cols, i);
  if (bits == 8) {
    row[s.byte] = static_cast<std::uint8_t>(q);
  } else {
    row[s.byte] = static_cast<std::uint8_t>((row[s.byte] & ~(15u << s.shift)) | ((q & 15u) << s.shift));
  }
}

// Scale i of the stored scales at p (scale_type), widened exactly to float.
inline float scale_at(const std::byte* p, WeightType type, std::size_t i) {
  if (type == WeightType::F32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  std::uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return type == WeightType::BF16 ? Bf16::widen<float>(h) : F16::widen<float>(h);
}

// The kernels' codec of grouped codes of `Bits` bits. A panel row is panel_cols codes, which is
// two float vectors: rows [0, lanes) and [lanes, 2 lanes) of the panel.
template <int Bits>
struct GroupedCodes {
  static_assert(Bits == 4 || Bits == 8);
  using storage = std::uint8_t;
  static constexpr int bits = Bits;
  static constexpr WeightType type = Bits == 4 ? WeightType::Q4 : WeightType::Q8;
  using Floats = typename ops::detail::Simd<float>::type;
  static constexpr std::size_t lanes = ops::detail::Simd<float>::lanes;
  static constexpr std::size_t row_units = 2 * lanes * Bits / 8;  // bytes of one panel row

  // The panel row of codes at p as 2^23 + q in each lane of out[0] and out[1], exactly: the
  // code becomes the low mantissa bits of 2^23, so that subtracting 2^23 + z leaves q - z with
  // no rounding and no integer-to-float conversion.
  static void offset_codes(const storage* p, Floats* out) {
    using Words = typename ops::detail::Vector<std::uint32_t, lanes>::type;
    constexpr std::uint32_t two23 = 0x4B000000u;  // the bits of 2^23
    Words halves[2];
    if constexpr (Bits == 4) {
      Words w;
      bytes_to_words(p, w);
      halves[0] = (w & 15u) | two23;
      halves[1] = (w >> 4) | two23;
    } else {
      bytes_to_words(p, halves[0]);
      bytes_to_words(p + lanes, halves[1]);
      halves[0] |= two23;
      halves[1] |= two23;
    }
    std::memcpy(&out[0], &halves[0], sizeof(Floats));
    std::memcpy(&out[1], &halves[1], sizeof(Floats));
  }

  // `lanes` bytes at p, each widened to a 32-bit word: one instruction with AVX-512 or AVX2 (GCC's
  // generic conversion leaves it to scalar code). (By reference: see ops::detail::Simd.)
  static void bytes_to_words(const storage* p, typename ops::detail::Vector<std::uint32_t, lanes>::type& w) {
#if defined(__AVX512F__)
    static_assert(lanes == 16);
    const __m512i wide = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    std::memcpy(&w, &wide, sizeof w);
#elif defined(__AVX2__)
    static_assert(lanes == 8);
    const __m256i wide = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    std::memcpy(&w, &wide, sizeof w);
#else
    using Bytes = typename ops::detail::Vector<std::uint8_t, lanes>::type;
    using Words = typename ops::detail::Vector<std::uint32_t, lanes>::type;
    Bytes b;
    std::memcpy(&b, p, sizeof b);
    w = __builtin_convertvector(b, Words);
#endif
  }

  // The panel's zeros (as offset_codes: 2^23 + z) and scales (widened to float) of one group.
  static void load_group(const Groups& g, std::size_t panel, std::size_t group, Floats* zero, Floats* scale) {
    constexpr std::size_t cols = 2 * lanes;
    GroupedCodes<8>::offset_codes(g.zeros + (panel * g.count + group) * cols, zero);
    const std::byte* s = g.scales + (panel * g.count + group) * cols * g.scale_bytes();
    for (int h = 0; h < 2; ++h) {
      if (g.scale_type == WeightType::F32) {
        std::memcpy(&scale[h], s + h * lanes * 4, sizeof(Floats));
      } else {
        const auto* halfs = reinterpret_cast<const std::uint16_t*>(s) + h * lanes;
        if (g.scale_type == WeightType::BF16) Bf16::load<float>(scale[h], halfs);
        else F16::load<float>(scale[h], halfs);
      }
    }
  }

  // The panel row of codes at p widened to values: out[h] = (q - z) * s.
  static void widen(const storage* p, const Floats* zero, const Floats* scale, Floats* out) {
    offset_codes(p, out);
    out[0] = (out[0] - zero[0]) * scale[0];
    out[1] = (out[1] - zero[1]) * scale[1];
  }
};

}  // namespace maskgen::weights

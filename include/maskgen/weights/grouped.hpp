#pragma once
// Grouped weights: codes of 4 or 8 bits with, per output row and per group of consecutive k (its
// input columns), a scale s, and for integer codes a zero z. Element (r, c) is
//   Q4, Q8 (unsigned integers q):      (q - z) * s   GPTQ, AWQ, compressed-tensors pack-quantized,
//                                                     and Quantization::Int4 at load;
//   FP8 (float8 e4m3, "e4m3fn"):       e4m3(q) * s   fine-grained FP8 (weight_scale_inv per block),
//                                                     compressed-tensors float-quantized;
//   FP4 (float4 e2m1):                 e2m1(q) * s   MXFP4, with E8M0 scales 2^(e - 127).
// quantized_checkpoint.hpp reads each packing into these.
//
// Held only in the matmul kernel's panels (panel_cols output rows each, k-major), at the file's
// size: per panel and k, one panel row of codes (panel_cols codes: panel_cols / 2 bytes at 4 bits,
// byte i holding row i in its low nibble and row i + panel_cols / 2 in its high one, so that one
// vector of bytes widens into both halves with a mask and a shift; panel_cols bytes at 8 bits, in
// order); per panel and group, panel_cols zeros of one byte each for integer codes (GPTQ's first
// format stores zero - 1, so a 4-bit zero may read as 16) and panel_cols scales in their stored
// type (F16, BF16, F32 or E8M0). Only the zeros take more than the file (4 bits a group and row at
// 4 bits), and block scales, which are held once per row (4 bytes per 128 weights for FP8's).
//
// Each code widens exactly to float before its scale: q - z is an integer of at most 9 bits, an
// e4m3 or e2m1 code a float of 4 or 2 significant bits. The kernels then multiply by the scale in
// the activations' type: in float the product is rounded once (exact where the scale has at most
// 16 significant bits: F16, BF16, E8M0), in double it is exact. So the kernels compute with the
// very values the checkpoint defines, and a grouped matrix multiplies bit for bit as the matrix of
// its values (grouped_value) does.

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
  WeightType scale_type = WeightType::F16;  // F16, BF16, F32 or E8M0
  const std::byte* scales = nullptr;        // [panels][count][panel_cols] of scale_type
  const std::uint8_t* zeros = nullptr;      // [panels][count][panel_cols] one byte each (Q4, Q8), or null
  const std::uint32_t* group_of = nullptr;  // [k] the group of each k (GPTQ's act-order), or null: k / size

  // Bytes of one panel row of codes (or zeros) for panels of `panel_cols` rows.
  std::size_t row_bytes(std::size_t panel_cols) const { return panel_cols * static_cast<std::size_t>(bits) / 8; }
  std::size_t scale_bytes() const { return scale_type == WeightType::F32 ? 4 : scale_type == WeightType::E8M0 ? 1 : 2; }
  std::size_t group(std::size_t k) const { return group_of ? group_of[k] : k / size; }
};

// Whether the grouped codes of `type` are integers with zeros (Q4, Q8) rather than floats.
constexpr bool integer_codes(WeightType type) { return type == WeightType::Q4 || type == WeightType::Q8; }
constexpr int code_bits(WeightType type) { return type == WeightType::Q4 || type == WeightType::FP4 ? 4 : 8; }

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

// The value of float8 e4m3 ("e4m3fn": no infinities, NaN at 0x7F and 0xFF, which checkpoints
// are checked not to hold) code q: sign, 4 exponent bits of bias 7, 3 mantissa bits.
inline float e4m3_value(unsigned q) {
  const int e = static_cast<int>((q >> 3) & 15u), m = static_cast<int>(q & 7u);
  const float magnitude = e == 0 ? std::ldexp(static_cast<float>(m), -9) : std::ldexp(static_cast<float>(8 + m), e - 10);
  return q & 0x80u ? -magnitude : magnitude;
}

// The value of float4 e2m1 code q: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives (q >= 8).
inline float e2m1_value(unsigned q) {
  static constexpr float magnitude[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  return q & 8u ? -magnitude[q & 7u] : magnitude[q & 7u];
}

// The value of E8M0 scale e: 2^(e - 127) (255 is NaN: checkpoints are checked not to hold it).
inline float e8m0_value(unsigned e) { return std::ldexp(1.0f, static_cast<int>(e) - 127); }

// Scale i of the stored scales at p (scale_type), widened exactly to float.
inline float scale_at(const std::byte* p, WeightType type, std::size_t i) {
  if (type == WeightType::F32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  if (type == WeightType::E8M0) return e8m0_value(static_cast<unsigned>(p[i]));
  std::uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return type == WeightType::BF16 ? Bf16::widen<float>(h) : F16::widen<float>(h);
}

// A grouped code before its scale, exactly in float: q - z, e4m3(q) or e2m1(q).
inline float unscaled_value(WeightType type, unsigned q, unsigned z) {
  if (type == WeightType::FP8) return e4m3_value(q);
  if (type == WeightType::FP4) return e2m1_value(q);
  return static_cast<float>(static_cast<int>(q) - static_cast<int>(z));
}

// The kernels' codec of grouped codes of `Codes` (Q4, Q8, FP8, FP4). A panel row is panel_cols
// codes, which is two float vectors: rows [0, lanes) and [lanes, 2 lanes) of the panel.
template <WeightType Codes>
struct GroupedCodes {
  static_assert(Codes == WeightType::Q4 || Codes == WeightType::Q8 || Codes == WeightType::FP8 ||
                Codes == WeightType::FP4);
  using storage = std::uint8_t;
  static constexpr WeightType type = Codes;
  static constexpr int bits = code_bits(Codes);
  static constexpr bool zeros = integer_codes(Codes);
  using Floats = typename ops::detail::Simd<float>::type;
  using Words = typename ops::detail::Vector<std::uint32_t, ops::detail::Simd<float>::lanes>::type;
  static constexpr std::size_t lanes = ops::detail::Simd<float>::lanes;
  static constexpr std::size_t row_units = 2 * lanes * bits / 8;  // bytes of one panel row

  // The panel row's codes at p, one a 32-bit word: codes of rows [0, lanes) in out[0], the rest
  // in out[1].
  static void code_words(const storage* p, Words* out) {
    if constexpr (bits == 4) {
      Words w;
      bytes_to_words(p, w);
      out[0] = w & 15u;
      out[1] = w >> 4;
    } else {
      bytes_to_words(p, out[0]);
      bytes_to_words(p + lanes, out[1]);
    }
  }

  // `lanes` bytes at p, each widened to a 32-bit word: one instruction with AVX-512 or AVX2 (GCC's
  // generic conversion leaves it to scalar code). (By reference: see ops::detail::Simd.)
  static void bytes_to_words(const storage* p, Words& w) {
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
    Bytes b;
    std::memcpy(&b, p, sizeof b);
    w = __builtin_convertvector(b, Words);
#endif
  }

  // (Vectors in and out by reference, as everywhere in the kernels: see ops::detail::Simd.)
  static void as_floats(const Words& w, Floats& f) { std::memcpy(&f, &w, sizeof f); }

  // Integer codes (and zeros) q as 2^23 + q, exactly: the code becomes the low mantissa bits of
  // 2^23, so that subtracting 2^23 + z leaves q - z with no rounding and no integer conversion.
  static void offset(const Words& q, Floats& out) { as_floats(q | 0x4B000000u, out); }

  // An e4m3 code's sign and its 7 other bits put where a float's sign, exponent and mantissa
  // start: the float 2^-120 times the code's value (subnormal codes land on subnormal floats, the
  // same factor), so one exact multiplication by 2^120 gives the value.
  static void e4m3(const Words& q, Floats& out) {
    as_floats(((q & 0x80u) << 24) | ((q & 0x7Fu) << 20), out);
    out *= std::bit_cast<float>(0x7B800000u);  // 2^120
  }

  // An e2m1 code's value from a table of its 16 values (one permute with AVX-512; with AVX2 the
  // magnitude's 8 and the sign bit).
  static void e2m1(const Words& q, Floats& out) {
#if defined(__AVX512F__)
    alignas(64) static constexpr float table[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                                    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
    __m512i idx;
    std::memcpy(&idx, &q, sizeof idx);
    const __m512 v = _mm512_permutexvar_ps(idx, _mm512_load_ps(table));
    std::memcpy(&out, &v, sizeof out);
#elif defined(__AVX2__)
    alignas(32) static constexpr float table[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    const Words magnitude_index = q & 7u;
    __m256i idx;
    std::memcpy(&idx, &magnitude_index, sizeof idx);
    const __m256 v = _mm256_permutevar8x32_ps(_mm256_load_ps(table), idx);
    Words bits;
    std::memcpy(&bits, &v, sizeof bits);
    as_floats(bits | ((q & 8u) << 28), out);
#else
    for (std::size_t i = 0; i < lanes; ++i) out[i] = e2m1_value(q[i]);
#endif
  }

  // The panel's zeros (as offset: 2^23 + z; integer codes only) and scales (widened to float) of
  // one group.
  static void load_group(const Groups& g, std::size_t panel, std::size_t group, Floats* zero, Floats* scale) {
    constexpr std::size_t cols = 2 * lanes;
    if constexpr (zeros) {
      Words z[2];
      GroupedCodes<WeightType::Q8>::code_words(g.zeros + (panel * g.count + group) * cols, z);
      offset(z[0], zero[0]);
      offset(z[1], zero[1]);
    }
    const std::byte* s = g.scales + (panel * g.count + group) * cols * g.scale_bytes();
    for (int h = 0; h < 2; ++h) {
      if (g.scale_type == WeightType::F32) {
        std::memcpy(&scale[h], s + h * lanes * 4, sizeof(Floats));
      } else if (g.scale_type == WeightType::E8M0) {  // 2^(e - 127): e in the exponent; e = 0 is 2^-127
        Words e;
        bytes_to_words(reinterpret_cast<const storage*>(s) + h * lanes, e);
        as_floats((e << 23) | (((e - 1u) >> 31) << 22), scale[h]);  // e = 0: the bit of 2^-127
      } else {
        const auto* halfs = reinterpret_cast<const std::uint16_t*>(s) + h * lanes;
        if (g.scale_type == WeightType::BF16) Bf16::load<float>(scale[h], halfs);
        else F16::load<float>(scale[h], halfs);
      }
    }
  }

  // The panel row of codes at p widened to its values before the scales, exactly (unscaled_value).
  static void unscaled(const storage* p, const Floats* zero, Floats* out) {
    Words q[2];
    code_words(p, q);
    for (int h = 0; h < 2; ++h) {
      if constexpr (zeros) {
        offset(q[h], out[h]);
        out[h] -= zero[h];
      } else if constexpr (Codes == WeightType::FP8) {
        e4m3(q[h], out[h]);
      } else {
        e2m1(q[h], out[h]);
      }
    }
  }
};

}  // namespace maskgen::weights

#pragma once
// pack_panels: a weight matrix permuted once into the matmul kernel's panels, in its stored type.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <vector>

#include "../detail/parallel.hpp"
#include "matrix.hpp"

namespace maskgen::weights {

// Memory for packed weights: 64-byte aligned (a cache line; every panel row starts on a vector).
struct AlignedBytes {
  explicit AlignedBytes(std::size_t n)
      : size(n), data(static_cast<std::byte*>(::operator new(std::max<std::size_t>(n, 1), std::align_val_t{64}))) {}
  ~AlignedBytes() { ::operator delete(data, std::align_val_t{64}); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  std::size_t size;
  std::byte* data;
};

// `w` in the matmul kernel's layout: an outer-product kernel streams k for a tile of output
// columns, so the rows of W (the output columns) are grouped in panels of panel_cols rows, and each
// panel is stored k-major: panel p holds rows [p * panel_cols, (p + 1) * panel_cols), as `cols`
// groups of panel_cols elements (element c of every row of the panel side by side, at the slots of
// panel_slot). Rows past the last are zero. The elements keep their stored type: the layout
// is a permutation of the bytes, so the packed matrix costs what the stored one does (plus the
// padding of the last panel). Int8 scales are copied and padded with zeros.
//
// Panels are packed in order, `threads` at a time; after every chunk of panels, `done(rows)` is
// told how many leading rows of `w` have been read for the last time (so a caller can give back
// the memory of the source as it goes).
inline WeightMatrix pack_panels(const WeightMatrix& w, int threads = 1,
                                const std::function<void(std::size_t)>& done = {}) {
  if (w.panels) return w;
  const std::size_t panels = w.panel_count(), esize = w.element_bytes(), k = w.cols;
  const std::size_t panel_bytes = k * panel_cols * esize;
  struct Storage {
    explicit Storage(std::size_t bytes) : bytes(bytes) {}
    AlignedBytes bytes;
    std::vector<float> scales;
  };
  auto storage = std::make_shared<Storage>(panels * panel_bytes);
  if (w.scales) {
    storage->scales.assign(panels * panel_cols, 0.0f);
    std::copy(w.scales, w.scales + w.rows, storage->scales.begin());
  }
  std::byte* out = storage->bytes.data;
  std::size_t slot[panel_cols];
  for (std::size_t i = 0; i < panel_cols; ++i) slot[i] = panel_slot(w.type, i) * esize;
  // One panel: row by row (each a sequential read), each element to its place in every group.
  auto pack_panel = [&](std::size_t p) {
    std::byte* dst = out + p * panel_bytes;
    const std::size_t rows = std::min(panel_cols, w.rows - p * panel_cols);
    if (rows < panel_cols) std::memset(dst, 0, panel_bytes);
    const std::size_t group = panel_cols * esize;
    for (std::size_t i = 0; i < rows; ++i) {
      const std::byte* src = w.data + (p * panel_cols + i) * k * esize;
      std::byte* d = dst + slot[i];
      switch (esize) {  // fixed-size copies, so each compiles to one move
        case 1: for (std::size_t c = 0; c < k; ++c) std::memcpy(d + c * group, src + c, 1); break;
        case 2: for (std::size_t c = 0; c < k; ++c) std::memcpy(d + c * group, src + 2 * c, 2); break;
        case 4: for (std::size_t c = 0; c < k; ++c) std::memcpy(d + c * group, src + 4 * c, 4); break;
        default: for (std::size_t c = 0; c < k; ++c) std::memcpy(d + c * group, src + 8 * c, 8); break;
      }
    }
  };
  // Chunks of about 8 MiB of source, so the source can be given back while packing goes on.
  const std::size_t chunk = std::max<std::size_t>(1, (std::size_t{8} << 20) / std::max<std::size_t>(panel_bytes, 1));
  for (std::size_t p0 = 0; p0 < panels; p0 += chunk) {
    const std::size_t p1 = std::min(panels, p0 + chunk);
    maskgen::detail::parallel_for(p1 - p0, threads, [&](std::size_t b, std::size_t e) {
      for (std::size_t p = p0 + b; p < p0 + e; ++p) pack_panel(p);
    });
    if (done) done(std::min(w.rows, p1 * panel_cols));
  }
  WeightMatrix packed{w.type, out, w.rows, w.cols, w.scales ? storage->scales.data() : nullptr, true, nullptr};
  packed.keep = std::move(storage);
  return packed;
}

// A matrix laid out with any strides, packed into the kernel's panels: element (r, c) of the
// [rows, cols] matrix of `type` is element r * row_stride + c * col_stride at `data`. For the
// matrices a checkpoint stores transposed or interleaved (gpt-oss's experts: [in, out], gate and up
// alternating along out). Each panel is filled k-major, so a transposed source is read a panel row
// (row_stride apart) at a time.
inline WeightMatrix pack_strided(WeightType type, const std::byte* data, std::size_t rows, std::size_t cols,
                                 std::size_t row_stride, std::size_t col_stride, int threads = 1) {
  const WeightMatrix shape{type, nullptr, rows, cols, nullptr, false, nullptr};
  const std::size_t panels = shape.panel_count(), esize = element_bytes(type), k = cols;
  const std::size_t panel_bytes = k * panel_cols * esize;
  auto storage = std::make_shared<AlignedBytes>(panels * panel_bytes);
  std::byte* out = storage->data;
  std::size_t slot[panel_cols];
  for (std::size_t i = 0; i < panel_cols; ++i) slot[i] = panel_slot(type, i) * esize;
  maskgen::detail::parallel_for(panels, threads, [&](std::size_t p0, std::size_t p1) {
    for (std::size_t p = p0; p < p1; ++p) {
      std::byte* dst = out + p * panel_bytes;
      const std::size_t n = std::min(panel_cols, rows - p * panel_cols);
      if (n < panel_cols) std::memset(dst, 0, panel_bytes);
      for (std::size_t c = 0; c < k; ++c) {
        const std::byte* src = data + ((p * panel_cols) * row_stride + c * col_stride) * esize;
        std::byte* d = dst + c * panel_cols * esize;
        for (std::size_t i = 0; i < n; ++i) std::memcpy(d + slot[i], src + i * row_stride * esize, esize);
      }
    }
  });
  WeightMatrix packed{type, out, rows, cols, nullptr, true, nullptr};
  packed.keep = std::move(storage);
  return packed;
}

// The shape of a grouped matrix to pack (see grouped.hpp): [rows, cols] codes of `codes` (Q4, Q8,
// FP8 or FP4), groups of `group_size` along cols (or the assignment `group_of`, one group per
// column), scales of `scale_type`.
struct GroupedShape {
  WeightType codes = WeightType::Q4;
  std::size_t rows = 0, cols = 0;
  std::size_t group_size = 0;          // k of a group; the last one may be shorter
  std::size_t groups = 0;              // groups along cols
  WeightType scale_type = WeightType::F16;
  std::vector<std::uint32_t> group_of;  // empty: column c is in group c / group_size
};

inline WeightType integer_codes_of(int bits) { return bits == 4 ? WeightType::Q4 : WeightType::Q8; }

// A grouped matrix in the kernel's panels (grouped.hpp), from any packing: code(r, c) is the code
// of element (r, c), zero(r, g) the zero (at most 255; integer codes only, not called for float
// codes) and scale(r, g, out) writes the stored bytes of the scale (scale_bytes of them) of row r
// in group g. Rows past the last are zero codes, zeros and scales.
template <class Code, class Zero, class Scale>
WeightMatrix pack_grouped(const GroupedShape& shape, Code code, Zero zero, Scale scale, int threads = 1) {
  const int bits = code_bits(shape.codes);
  const bool with_zeros = integer_codes(shape.codes);
  Groups groups{bits, shape.group_size, shape.groups, shape.scale_type, nullptr, nullptr, nullptr};
  const WeightMatrix layout{shape.codes, nullptr, shape.rows, shape.cols, nullptr, true, nullptr, groups};
  const std::size_t panels = layout.panel_count(), k = shape.cols, row = groups.row_bytes(panel_cols);
  const std::size_t scale_bytes = groups.scale_bytes(), count = shape.groups;
  struct Storage {
    explicit Storage(std::size_t codes) : codes(codes) {}
    AlignedBytes codes;
    std::vector<std::uint8_t> zeros;
    std::vector<std::byte> scales;
    std::vector<std::uint32_t> group_of;
  };
  auto storage = std::make_shared<Storage>(panels * k * row);
  if (with_zeros) storage->zeros.assign(panels * count * panel_cols, 0);
  storage->scales.assign(panels * count * panel_cols * scale_bytes, std::byte{0});
  storage->group_of = shape.group_of;
  auto* codes = reinterpret_cast<std::uint8_t*>(storage->codes.data);
  std::memset(codes, 0, panels * k * row);
  maskgen::detail::parallel_for(panels, threads, [&](std::size_t p0, std::size_t p1) {
    for (std::size_t p = p0; p < p1; ++p) {
      const std::size_t n = std::min(panel_cols, shape.rows - p * panel_cols);
      for (std::size_t c = 0; c < k; ++c) {
        std::uint8_t* dst = codes + (p * k + c) * row;
        for (std::size_t i = 0; i < n; ++i) set_code(dst, bits, panel_cols, i, code(p * panel_cols + i, c));
      }
      for (std::size_t g = 0; g < count; ++g) {
        std::byte* sc = storage->scales.data() + (p * count + g) * panel_cols * scale_bytes;
        for (std::size_t i = 0; i < n; ++i) {
          if (with_zeros) storage->zeros[(p * count + g) * panel_cols + i] = static_cast<std::uint8_t>(zero(p * panel_cols + i, g));
          scale(p * panel_cols + i, g, sc + i * scale_bytes);
        }
      }
    }
  });
  WeightMatrix packed = layout;
  packed.data = storage->codes.data;
  packed.groups.zeros = with_zeros ? storage->zeros.data() : nullptr;
  packed.groups.scales = storage->scales.data();
  packed.groups.group_of = storage->group_of.empty() ? nullptr : storage->group_of.data();
  packed.keep = std::move(storage);
  return packed;
}

}  // namespace maskgen::weights

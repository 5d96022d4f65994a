#pragma once
// WeightReader: the tensors of a checkpoint as a model holds them, after checking their shapes and
// that every element is finite: vectors converted to Scalar, matrices in place as WeightMatrix
// views of the mapped file, packed into the matmul kernel's panels, or quantized at load.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../detail/parallel.hpp"
#include "../error.hpp"
#include "../safetensors.hpp"
#include "codec.hpp"
#include "matrix.hpp"
#include "packing.hpp"
#include "quantization.hpp"
#include "quantized_checkpoint.hpp"

namespace maskgen::weights {

// A matrix inside a stored tensor of any rank: element (r, c) of the [rows, cols] matrix is element
// offset + r * row_stride + c * col_stride of the tensor, counting its elements row-major. One
// expert of a fused [experts, out, in] tensor is {e * out * in, out, in, in, 1}; gpt-oss's gate, a
// transposed [in, 2 out] slab with gate and up alternating, is {e * in * 2 out, out, in, 2, 2 out}.
struct TensorPart {
  std::int64_t offset = 0;
  std::int64_t rows = 0, cols = 0;
  std::int64_t row_stride = 0, col_stride = 1;

  bool contiguous() const { return col_stride == 1 && row_stride == cols; }
  // Elements [first, end) of the tensor that the part reads.
  std::int64_t first() const { return offset; }
  std::int64_t end() const {
    return rows == 0 || cols == 0 ? offset : offset + (rows - 1) * row_stride + (cols - 1) * col_stride + 1;
  }
};

template <class Scalar>
class WeightReader {
 public:
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  // `quantization` applies to every matrix read without one of its own; `int4` says how
  // Quantization::Int4 quantizes; `packed` is how the checkpoint packed its linear layers (their
  // packed tensors are read as such whatever `quantization` says).
  WeightReader(std::shared_ptr<const SafetensorsCheckpoint> checkpoint, Quantization quantization,
               Int4Options int4 = {}, CheckpointQuantization packed = {})
      : checkpoint_(std::move(checkpoint)),
        quantization_(quantization),
        int4_(int4),
        packed_(std::move(packed)),
        threads_(maskgen::detail::resolve_thread_count(0, "threads")) {
    if (quantization_ == Quantization::Int4) check_int4_options(int4_);
  }

  // A projection's weights in the matmul kernel's panels (pack_panels), in the stored element type
  // (or int8 with Quantization::Int8). The panels replace the file's pages: those of the tensor
  // leave the process's memory as they are packed.
  WeightMatrix matrix(const std::string& name, std::int64_t rows, std::int64_t cols,
                      std::optional<Quantization> quantization = std::nullopt) const {
    return matrix_rows(name, rows, cols, 0, rows, quantization);
  }

  // Rows [first, first + rows) of a [total_rows, cols] tensor, as matrix() reads a whole one: one
  // part of a fused tensor (Phi-3's qkv_proj and gate_up_proj), read from its own rows of the file.
  WeightMatrix matrix_rows(const std::string& name, std::int64_t total_rows, std::int64_t cols, std::int64_t first,
                           std::int64_t rows, std::optional<Quantization> quantization = std::nullopt) const {
    if (packed_.packed() && name.ends_with(".weight") && first >= 0 && rows >= 0 && first + rows <= total_rows) {
      const std::string module = name.substr(0, name.size() - 7);
      if (auto w = read_packed_layer(*checkpoint_, packed_, module, static_cast<std::size_t>(total_rows),
                                     static_cast<std::size_t>(cols), static_cast<std::size_t>(first),
                                     static_cast<std::size_t>(rows), threads_)) {
        return *w;
      }
    }
    const WeightMatrix w = row_major_rows(name, total_rows, cols, first, rows, quantization);
    const bool mapped = w.keep == checkpoint_;
    return pack_panels(w, threads_, [&](std::size_t rows_done) {
      if (mapped) maskgen::detail::release_mapped_pages(w.data, rows_done * w.cols * w.element_bytes());
    });
  }

  // The same, row-major, read in place from the mapped file where the type allows (an embedding
  // table that is only looked up).
  WeightMatrix row_major(const std::string& name, std::int64_t rows, std::int64_t cols,
                         std::optional<Quantization> quantization = std::nullopt) const {
    return row_major_rows(name, rows, cols, 0, rows, quantization);
  }

  WeightMatrix row_major_rows(const std::string& name, std::int64_t total_rows, std::int64_t cols, std::int64_t first,
                              std::int64_t rows, std::optional<Quantization> quantization = std::nullopt) const {
    const WeightType stored = checked(name, {total_rows, cols});
    if (first < 0 || rows < 0 || first + rows > total_rows) {
      throw argument_error(maskgen::detail::cat("rows [", first, ", ", first + rows, ") of tensor ", name, " with ",
                                                total_rows, " rows"));
    }
    const auto all = checkpoint_->file_of(name).bytes(name);
    const std::size_t row_bytes = static_cast<std::size_t>(cols) * element_bytes(stored);
    const auto bytes = all.subspan(static_cast<std::size_t>(first) * row_bytes, static_cast<std::size_t>(rows) * row_bytes);
    WeightMatrix w{stored, bytes.data(), static_cast<std::size_t>(rows), static_cast<std::size_t>(cols), nullptr,
                   false, checkpoint_};
    auto part = [&]<class T>(std::vector<T> whole) {  // the rows of a converted copy of the whole tensor
      const auto begin = whole.begin() + static_cast<std::ptrdiff_t>(first * cols);
      return std::vector<T>(begin, begin + static_cast<std::ptrdiff_t>(rows * cols));
    };
    if constexpr (!std::is_same_v<Scalar, double>) {
      if (stored == WeightType::F64) {  // no float64 kernel for float activations: convert once
        w = owned(part(checkpoint_->template load<Scalar>(name, {total_rows, cols})), rows, cols);
      }
    }
    const WeightType held = held_type(stored, quantization.value_or(quantization_));
    if (held == WeightType::I8 || held == WeightType::Q4) {
      std::vector<float> wide(static_cast<std::size_t>(total_rows * cols));
      checkpoint_->read(name, std::span<float>(wide));
      maskgen::detail::release_mapped_pages(bytes.data(), bytes.size());  // the quantized copy replaces them
      return quantized(part(std::move(wide)).data(), held, w.rows, w.cols);
    }
    return w;
  }

  Vector vector(const std::string& name, std::int64_t n) const {
    checked(name, {n});
    Vector v(n);
    checkpoint_->read(name, std::span<Scalar>(v.data(), static_cast<std::size_t>(n)));
    return v;
  }

  // Every element of a tensor of `shape`, in order, converted to Scalar (a stack of biases).
  Vector elements(const std::string& name, std::span<const std::int64_t> shape) const {
    checked_part(name, shape, std::nullopt);
    std::int64_t n = 1;
    for (const auto d : shape) n *= d;
    Vector v(n);
    checkpoint_->read(name, std::span<Scalar>(v.data(), static_cast<std::size_t>(n)));
    return v;
  }

  // Rows first, first + step, ... (`rows` of them) of expert e of the [experts, out, in] tensor
  // `name` where the checkpoint holds it in MXFP4 (name + "_blocks", name + "_scales"; read_mxfp4),
  // else nullopt.
  std::optional<WeightMatrix> mxfp4_rows(const std::string& name, std::int64_t experts, std::int64_t out,
                                         std::int64_t in, std::int64_t e, std::int64_t first, std::int64_t step,
                                         std::int64_t rows) const {
    if (packed_.method != PackedMethod::Mxfp4 || !checkpoint_->contains(name + "_blocks")) return std::nullopt;
    auto u = [](std::int64_t v) { return static_cast<std::size_t>(std::max<std::int64_t>(v, 0)); };
    return read_mxfp4(*checkpoint_, name, u(experts), u(out), u(in), u(e), u(first), u(step), u(rows), threads_);
  }

  // Whether the checkpoint holds a tensor of this name (for a matrix "....weight", its packed codes
  // count too).
  bool contains(const std::string& name) const {
    if (checkpoint_->contains(name)) return true;
    return packed_.packed() && name.ends_with(".weight") &&
           checkpoint_->contains(packed_tensor(packed_, name.substr(0, name.size() - 7)));
  }

  // A matrix inside a tensor of `shape` (TensorPart), as matrix() reads a whole one: in the
  // kernel's panels in the stored type (or int8), only the part's elements scanned and read.
  WeightMatrix matrix_part(const std::string& name, std::span<const std::int64_t> shape, const TensorPart& part,
                           std::optional<Quantization> quantization = std::nullopt) const {
    const WeightType stored = checked_part(name, shape, part);
    const auto all = checkpoint_->file_of(name).bytes(name);
    const std::size_t esize = element_bytes(stored);
    const auto rows = static_cast<std::size_t>(part.rows), cols = static_cast<std::size_t>(part.cols);
    const std::byte* base = all.data() + static_cast<std::size_t>(part.offset) * esize;
    const std::span<const std::byte> extent = all.subspan(static_cast<std::size_t>(part.first()) * esize,
                                                          static_cast<std::size_t>(part.end() - part.first()) * esize);
    const WeightType held = held_type(stored, quantization.value_or(quantization_));
    const bool to_int = held == WeightType::I8 || held == WeightType::Q4;
    bool convert = to_int;
    if constexpr (!std::is_same_v<Scalar, double>) convert = convert || stored == WeightType::F64;
    if (convert) {  // a converted copy: widened to float for int8 and int4, or float64 narrowed to Scalar
      auto gather = [&]<class T>(T) {
        std::vector<T> out(rows * cols);
        visit_codec(stored, [&]<class Codec>(Codec) {
          if constexpr (requires { Codec::template widen<T>(typename Codec::storage{}); }) {
            typename Codec::storage v;
            for (std::size_t r = 0; r < rows; ++r) {
              for (std::size_t c = 0; c < cols; ++c) {
                std::memcpy(&v, base + (r * static_cast<std::size_t>(part.row_stride) + c * static_cast<std::size_t>(part.col_stride)) * esize, esize);
                out[r * cols + c] = Codec::template widen<T>(v);
              }
            }
          }
        });
        return out;
      };
      if (to_int) {
        const std::vector<float> wide = gather(float{});
        maskgen::detail::release_mapped_pages(extent.data(), extent.size());  // the quantized copy replaces them
        return quantized(wide.data(), held, rows, cols);
      }
      return pack_panels(owned(gather(Scalar{}), part.rows, part.cols), threads_);
    }
    if (part.contiguous()) {
      const WeightMatrix w{stored, base, rows, cols, nullptr, false, checkpoint_};
      return pack_panels(w, threads_, [&](std::size_t rows_done) {
        maskgen::detail::release_mapped_pages(w.data, rows_done * cols * esize);
      });
    }
    WeightMatrix packed = pack_strided(stored, base, rows, cols, static_cast<std::size_t>(part.row_stride),
                                       static_cast<std::size_t>(part.col_stride), threads_);
    return packed;
  }

 private:
  // The codec the tensor is stored in, after checking its shape and that every element is finite
  // (the codec's scan, which reads the whole tensor once).
  WeightType checked(const std::string& name, std::initializer_list<std::int64_t> shape) const {
    using maskgen::detail::cat;
    using maskgen::detail::shape_string;
    const SafetensorsFile& file = checkpoint_->file_of(name);
    const TensorInfo& t = file.info(name);
    if (!std::ranges::equal(t.shape, shape)) {
      throw format_error(cat("tensor \"", name, "\" in ", file.path(), " has shape ", shape_string(t.shape),
                             "; expected ", shape_string(std::vector<std::int64_t>(shape))));
    }
    const WeightType stored = stored_type(t.dtype, name);
    std::optional<std::size_t> bad;
    visit_codec(stored, [&]<class Codec>(Codec) { bad = Codec::first_non_finite(file.bytes(name)); });
    if (bad) {
      throw format_error(cat("tensor ", name, " in ", file.path(), " holds a non-finite value (inf or NaN) at element ",
                             *bad));
    }
    return stored;
  }

  // As checked(), for a tensor of any rank; the finiteness scan covers the part's elements only
  // (the whole tensor without one). Refuses a part that reaches outside the tensor.
  WeightType checked_part(const std::string& name, std::span<const std::int64_t> shape,
                          const std::optional<TensorPart>& part) const {
    using maskgen::detail::cat;
    using maskgen::detail::shape_string;
    const SafetensorsFile& file = checkpoint_->file_of(name);
    const TensorInfo& t = file.info(name);
    if (!std::ranges::equal(t.shape, shape)) {
      throw format_error(cat("tensor \"", name, "\" in ", file.path(), " has shape ", shape_string(t.shape),
                             "; expected ", shape_string(std::vector<std::int64_t>(shape.begin(), shape.end()))));
    }
    std::int64_t elements = 1;
    for (const auto d : shape) elements *= d;
    const WeightType stored = stored_type(t.dtype, name);
    auto bytes = file.bytes(name);
    if (part) {
      if (part->offset < 0 || part->rows < 0 || part->cols < 0 || part->row_stride < 0 || part->col_stride < 0 ||
          part->end() > elements) {
        throw argument_error(cat("a [", part->rows, ", ", part->cols, "] part at element ", part->offset,
                                 " reaches outside tensor ", name, " of ", elements, " elements"));
      }
      const std::size_t esize = element_bytes(stored);
      bytes = bytes.subspan(static_cast<std::size_t>(part->first()) * esize,
                            static_cast<std::size_t>(part->end() - part->first()) * esize);
    }
    std::optional<std::size_t> bad;
    visit_codec(stored, [&]<class Codec>(Codec) { bad = Codec::first_non_finite(bytes); });
    if (bad) {
      throw format_error(cat("tensor ", name, " in ", file.path(), " holds a non-finite value (inf or NaN) at element ",
                             *bad + static_cast<std::size_t>(part ? part->first() : 0)));
    }
    return stored;
  }

  // A row-major float matrix quantized to `held` (I8 or Q4).
  WeightMatrix quantized(const float* w, WeightType held, std::size_t rows, std::size_t cols) const {
    return held == WeightType::I8 ? quantize_int8(w, rows, cols) : quantize_int4(w, rows, cols, int4_, threads_);
  }

  static WeightMatrix owned(std::vector<Scalar> values, std::int64_t rows, std::int64_t cols) {
    auto storage = std::make_shared<std::vector<Scalar>>(std::move(values));
    WeightMatrix w = view_weights(storage->data(), static_cast<std::size_t>(rows), static_cast<std::size_t>(cols));
    w.keep = std::move(storage);
    return w;
  }

  std::shared_ptr<const SafetensorsCheckpoint> checkpoint_;
  Quantization quantization_;
  Int4Options int4_;
  CheckpointQuantization packed_;
  int threads_;  // for packing: every core
};

}  // namespace maskgen::weights

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

namespace maskgen::weights {

template <class Scalar>
class WeightReader {
 public:
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  // `quantization` applies to every matrix read without one of its own.
  WeightReader(std::shared_ptr<const SafetensorsCheckpoint> checkpoint, Quantization quantization)
      : checkpoint_(std::move(checkpoint)),
        quantization_(quantization),
        threads_(maskgen::detail::resolve_thread_count(0, "threads")) {}

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
    if (held_type(stored, quantization.value_or(quantization_)) == WeightType::I8) {
      std::vector<float> wide(static_cast<std::size_t>(total_rows * cols));
      checkpoint_->read(name, std::span<float>(wide));
      maskgen::detail::release_mapped_pages(bytes.data(), bytes.size());  // the quantized copy replaces them
      return quantize_int8(part(std::move(wide)).data(), w.rows, w.cols);
    }
    return w;
  }

  Vector vector(const std::string& name, std::int64_t n) const {
    checked(name, {n});
    Vector v(n);
    checkpoint_->read(name, std::span<Scalar>(v.data(), static_cast<std::size_t>(n)));
    return v;
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
    const WeightType stored = stored_type(t.dtype);
    std::optional<std::size_t> bad;
    visit_codec(stored, [&]<class Codec>(Codec) { bad = Codec::first_non_finite(file.bytes(name)); });
    if (bad) {
      throw format_error(cat("tensor ", name, " in ", file.path(), " holds a non-finite value (inf or NaN) at element ",
                             *bad));
    }
    return stored;
  }

  static WeightMatrix owned(std::vector<Scalar> values, std::int64_t rows, std::int64_t cols) {
    auto storage = std::make_shared<std::vector<Scalar>>(std::move(values));
    WeightMatrix w = view_weights(storage->data(), static_cast<std::size_t>(rows), static_cast<std::size_t>(cols));
    w.keep = std::move(storage);
    return w;
  }

  std::shared_ptr<const SafetensorsCheckpoint> checkpoint_;
  Quantization quantization_;
  int threads_;  // for packing: every core
};

}  // namespace maskgen::weights

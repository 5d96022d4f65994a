#pragma once
// The weight matrices the kernels read, under their ops names: they live in weights/ (one codec per
// element type in weights/codec.hpp, the matrix and its panel layout in weights/matrix.hpp, packing
// in weights/packing.hpp, int8 quantization at load in weights/quantization.hpp).

#include "../weights/codec.hpp"
#include "../weights/matrix.hpp"
#include "../weights/packing.hpp"
#include "../weights/quantization.hpp"

namespace maskgen::ops {

using weights::AlignedBytes;
using weights::Groups;
using weights::element_index;
using weights::pack_panels;
using weights::panel_cols;
using weights::panel_slot;
using weights::quantize_int8;
using weights::view_weights;
using weights::weight_row;
using weights::weight_type_name;
using weights::WeightMatrix;
using weights::WeightType;

namespace detail {

// The codecs as the kernels name them.
using weights::Bf16;
using weights::F16;
using weights::I8;
using weights::load_widened;
using weights::Plain;

}  // namespace detail

}  // namespace maskgen::ops

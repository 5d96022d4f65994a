#pragma once
// The element types a weight matrix can hold: one codec each (codec.hpp lists them).

namespace maskgen::weights {

enum class WeightType { F32, F64, BF16, F16, I8 };

}  // namespace maskgen::weights

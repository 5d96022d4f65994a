#pragma once
// The element types a weight matrix can hold: one codec each (codec.hpp lists them).

namespace maskgen::weights {

// Q4 and Q8 are grouped integer codes (grouped.hpp): a WeightMatrix of them carries its Groups.
enum class WeightType { F32, F64, BF16, F16, I8, Q4, Q8 };

}  // namespace maskgen::weights

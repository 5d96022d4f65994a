#pragma once
// The element types a weight matrix can hold: one codec each (codec.hpp lists them).

namespace maskgen::weights {

// Q4, Q8, FP8 and FP4 are grouped codes (grouped.hpp), held only in the kernel's panels: a
// WeightMatrix of them carries its Groups. Q4 and Q8 are unsigned integers with a zero and a scale
// per group, FP8 is float8 e4m3 and FP4 is float4 e2m1 (MXFP4's elements), each with a scale per
// group. E8M0 is a type of scales only (MXFP4's: 2^(e - 127) in one byte); no matrix holds it.
enum class WeightType { F32, F64, BF16, F16, I8, Q4, Q8, FP8, FP4, E8M0 };

}  // namespace maskgen::weights

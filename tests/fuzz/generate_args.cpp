// libFuzzer harness: generate() on the bundled model (models/sort-reverse: vocab 48, context 64)
// with arguments decoded from the bytes: the batch's shape, ids (some outside the vocabulary), mask
// values (some neither 0 nor 1), and GenerationConfig fields (lengths, beams, sampling settings,
// penalties, EOS and pad ids, seeds), each byte read modulo a range that straddles the valid one.
// generate() returns or throws a maskgen::error; a result is checked for its shapes, its ids and
// for scores that are never NaN. Anything else escaping, a sanitizer report or a hang is a finding.
// Built by tests/fuzz/run.sh.

#include <maskgen/generate.hpp>
#include <maskgen/model.hpp>

#include <cmath>
#include <cstdint>
#include <limits>

namespace {

const maskgen::Model<float>& model() {
  static const auto m = maskgen::Model<float>::load(MASKGEN_FUZZ_BUNDLED_MODEL);
  return m;
}

struct Bytes {
  const std::uint8_t* data;
  std::size_t size, at = 0;
  int next(int lo, int hi) {  // in [lo, hi]
    const int b = at < size ? data[at++] : 0;
    return lo + b % (hi - lo + 1);
  }
};

double pick(Bytes& in, std::initializer_list<double> values) {
  const int i = in.next(0, static_cast<int>(values.size()) - 1);
  return *(values.begin() + i);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes in{data, size};
  const int rows = in.next(0, 4), cols = in.next(0, 12);
  maskgen::TokenMatrix ids(rows, cols), mask(rows, cols);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      ids(r, c) = in.next(-2, 52);
      mask(r, c) = in.next(0, 9) == 0 ? in.next(-1, 2) : (in.next(0, 3) != 0);
    }
  }
  maskgen::GenerationConfig gen;
  gen.max_new_tokens = in.next(-1, 70);
  gen.min_new_tokens = in.next(-1, 5);
  gen.num_beams = in.next(0, 5);
  gen.num_return_sequences = in.next(0, 3);
  gen.do_sample = in.next(0, 1);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  gen.temperature = pick(in, {1.0, 0.7, 0.0, -1.0, 1e-30, 1e30, nan, inf});
  gen.top_k = in.next(-1, 60);
  gen.top_p = pick(in, {1.0, 0.9, 0.0, 1e-9, 1.5, nan});
  gen.min_p = pick(in, {0.0, 0.1, 1.0, -0.5, nan});
  gen.repetition_penalty = pick(in, {1.0, 1.3, 0.0, -1.0, nan, 1e30});
  gen.no_repeat_ngram_size = in.next(-1, 4);
  gen.length_penalty = pick(in, {1.0, 0.0, -2.0, nan});
  gen.early_stopping = static_cast<maskgen::EarlyStopping>(in.next(0, 2));
  if (in.next(0, 3) == 0) gen.eos_token_id = maskgen::TokenIds(std::vector<std::int32_t>{in.next(-1, 50), in.next(0, 47)});
  if (in.next(0, 3) == 0) gen.pad_token_id = in.next(-1, 50);
  gen.seed = static_cast<std::uint64_t>(in.next(0, 255));
  if (in.next(0, 5) == 0) gen.row_seeds.assign(static_cast<std::size_t>(in.next(0, 5)), 7);
  gen.output_scores = in.next(0, 1);
  gen.num_threads = in.next(0, 2);
  try {
    const auto out = maskgen::generate(model(), ids, mask, gen);
    if (out.sequences.rows() != static_cast<Eigen::Index>(out.lengths.size())) __builtin_trap();
    for (Eigen::Index r = 0; r < out.sequences.rows(); ++r) {
      for (Eigen::Index c = 0; c < out.sequences.cols(); ++c) {
        if (out.sequences(r, c) < 0 || out.sequences(r, c) >= 48) __builtin_trap();
      }
    }
    for (const auto& s : out.scores) {
      for (Eigen::Index i = 0; i < s.size(); ++i) {
        if (std::isnan(s.data()[i])) __builtin_trap();
      }
    }
    for (const double s : out.sequence_scores) {
      if (std::isnan(s)) __builtin_trap();
    }
  } catch (const maskgen::error&) {
  }
  return 0;
}

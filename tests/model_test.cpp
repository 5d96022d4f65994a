// Model<Scalar> against the float64 transformers oracle (tests/data/reference/*.json, made by
// tests/reference/make_model_fixtures.py), batch invariance, and the loader's refusals.

#include <maskgen/model.hpp>

#include <random>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> tiny_models = {"llama_gqa", "llama_tied", "mistral", "qwen2", "qwen3"};

using test::model_dir;

// max |a - b| / max |b| over one logits vector.
template <class Row>
double relative_error(const Row& ours, const nlohmann::json& reference) {
  double diff = 0, scale = 0;
  for (std::size_t v = 0; v < reference.size(); ++v) {
    const double ref = reference[v].get<double>();
    diff = std::max(diff, std::abs(static_cast<double>(ours(static_cast<Eigen::Index>(v))) - ref));
    scale = std::max(scale, std::abs(ref));
  }
  return diff / scale;
}

class ModelOracle : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    MASKGEN_REQUIRE_SHARED(model_dir(GetParam()) / "config.json");
    reference_ = test::read_json(test::data_dir() / "reference" / (GetParam() + ".json"));
  }

  // Every real position of every fixture batch, within `tolerance` relative of the oracle.
  template <class Scalar>
  void check_all_batches(double tolerance) {
    const auto model = Model<Scalar>::load(model_dir(GetParam()));
    double worst = 0;
    for (const auto& batch : reference_["forward"]) {
      const TokenMatrix ids = test::to_matrix(batch["input_ids"]), mask = test::to_matrix(batch["attention_mask"]);
      const auto logits = model.forward(ids, mask, nullptr, {.logits = LogitsFor::All});
      ASSERT_TRUE(logits.allFinite()) << batch["name"];  // pad positions are zeros, never NaN
      for (Eigen::Index r = 0; r < ids.rows(); ++r) {
        std::size_t real = 0;
        for (Eigen::Index c = 0; c < ids.cols(); ++c) {
          if (mask(r, c) == 0) {
            EXPECT_TRUE((logits.row(r * ids.cols() + c).array() == 0).all());
            continue;
          }
          const double err = relative_error(logits.row(r * ids.cols() + c), batch["logits"][r][real++]);
          worst = std::max(worst, err);
          EXPECT_LE(err, tolerance) << batch["name"] << " row " << r << " column " << c;
        }
        EXPECT_EQ(real, batch["logits"][r].size());
      }
    }
    RecordProperty("worst_relative_error", std::to_string(worst));
    std::cout << "[ worst    ] " << GetParam() << " " << typeid(Scalar).name() << ": " << worst << "\n";
  }

  nlohmann::json reference_;
};

TEST_P(ModelOracle, DoubleWithin1e9OfFloat64Oracle) { check_all_batches<double>(1e-9); }
TEST_P(ModelOracle, FloatWithin1e4OfFloat64Oracle) { check_all_batches<float>(1e-4); }

// A prompt's logits are bitwise the same alone, in any batch, padded on either side, with extra
// padding or holes, and on any thread count.
TEST_P(ModelOracle, BitwiseBatchInvariance) {
  const auto model = Model<float>::load(model_dir(GetParam()));
  std::vector<std::vector<std::int32_t>> prompts;
  for (const auto& p : reference_["prompts"]) prompts.push_back(p.get<std::vector<std::int32_t>>());
  auto alone = [&](std::size_t i, int threads) {
    TokenMatrix ids(1, static_cast<Eigen::Index>(prompts[i].size()));
    for (std::size_t t = 0; t < prompts[i].size(); ++t) ids(0, static_cast<Eigen::Index>(t)) = prompts[i][t];
    const TokenMatrix mask = TokenMatrix::Ones(1, ids.cols());
    return model.forward(ids, mask, nullptr, {.logits = LogitsFor::All, .num_threads = threads});
  };
  std::vector<ops::Matrix<float>> expected;
  for (std::size_t i = 0; i < prompts.size(); ++i) expected.push_back(alone(i, 1));
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_TRUE((alone(i, 2).array() == expected[i].array()).all()) << "prompt " << i << " on 2 threads";
  }
  std::mt19937 rng(13);
  for (int trial = 0; trial < 12; ++trial) {
    // A random batch: random prompts (repeats allowed), random side, random extra pads and holes.
    const std::size_t rows = 1 + rng() % 6;
    std::vector<std::size_t> which(rows);
    std::vector<std::vector<int>> layout(rows);  // per row: -1 pad, else index into the prompt
    std::size_t width = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      which[r] = rng() % prompts.size();
      for (std::size_t t = 0; t < prompts[which[r]].size(); ++t) {
        if (trial % 3 == 2 && rng() % 3 == 0) layout[r].push_back(-1);  // a hole
        layout[r].push_back(static_cast<int>(t));
      }
      width = std::max(width, layout[r].size());
    }
    width += rng() % 4;
    TokenMatrix ids = TokenMatrix::Constant(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(width), 0);
    TokenMatrix mask = TokenMatrix::Zero(ids.rows(), ids.cols());
    for (std::size_t r = 0; r < rows; ++r) {
      const bool left = (trial + r) % 2 == 0;
      const std::size_t offset = left ? width - layout[r].size() : 0;
      for (std::size_t j = 0; j < layout[r].size(); ++j) {
        if (layout[r][j] < 0) continue;
        const auto c = static_cast<Eigen::Index>(offset + j);
        ids(static_cast<Eigen::Index>(r), c) = prompts[which[r]][static_cast<std::size_t>(layout[r][j])];
        mask(static_cast<Eigen::Index>(r), c) = 1;
      }
    }
    const int threads = 1 + trial % 3;
    const auto all = model.forward(ids, mask, nullptr, {.logits = LogitsFor::All, .num_threads = threads});
    const auto last = model.forward(ids, mask, nullptr, {.logits = LogitsFor::Last, .num_threads = threads});
    for (std::size_t r = 0; r < rows; ++r) {
      std::size_t t = 0;
      for (Eigen::Index c = 0; c < ids.cols(); ++c) {
        if (mask(static_cast<Eigen::Index>(r), c) == 0) continue;
        ASSERT_TRUE((all.row(static_cast<Eigen::Index>(r) * ids.cols() + c).array() ==
                     expected[which[r]].row(static_cast<Eigen::Index>(t)).array()).all())
            << "trial " << trial << " row " << r << " token " << t;
        ++t;
      }
      ASSERT_TRUE((last.row(static_cast<Eigen::Index>(r)).array() ==
                   expected[which[r]].row(expected[which[r]].rows() - 1).array()).all())
          << "trial " << trial << " row " << r << " last-token logits";
    }
  }
}

// Feeding prompts in pieces through the cache gives the logits of feeding them whole.
TEST_P(ModelOracle, CacheContinuesARow) {
  const auto model = Model<double>::load(model_dir(GetParam()));
  const auto& batch = reference_["forward"][0];  // left padded: the last column is real in every row
  const TokenMatrix all_ids = test::to_matrix(batch["input_ids"]), all_mask = test::to_matrix(batch["attention_mask"]);
  std::vector<Eigen::Index> keep;  // rows with a prefix to cache
  for (Eigen::Index r = 0; r < all_ids.rows(); ++r)
    if (all_mask.row(r).sum() >= 2) keep.push_back(r);
  ASSERT_GE(keep.size(), 2u);
  TokenMatrix ids(static_cast<Eigen::Index>(keep.size()), all_ids.cols()), mask(ids.rows(), ids.cols());
  for (std::size_t i = 0; i < keep.size(); ++i) {
    ids.row(static_cast<Eigen::Index>(i)) = all_ids.row(keep[i]);
    mask.row(static_cast<Eigen::Index>(i)) = all_mask.row(keep[i]);
  }
  const auto whole = model.forward(ids, mask);
  auto cache = model.make_cache(keep.size());
  const Eigen::Index n = ids.cols();
  model.forward(ids.leftCols(n - 1), mask.leftCols(n - 1), &cache);
  const auto step = model.forward(ids.rightCols(1), mask.rightCols(1), &cache);
  EXPECT_LE((step - whole).cwiseAbs().maxCoeff(), 1e-12 * whole.cwiseAbs().maxCoeff());
  for (std::size_t i = 0; i < keep.size(); ++i) {
    EXPECT_EQ(cache.length(i), static_cast<std::size_t>(mask.row(static_cast<Eigen::Index>(i)).sum()));
  }
}

INSTANTIATE_TEST_SUITE_P(Families, ModelOracle,
                         ::testing::Values("llama_gqa", "llama_tied", "mistral", "qwen2", "qwen3", "stories260K",
                                           "llama_bf16", "qwen3_f16", "mistral_window", "smollm3", "gemma2",
                                           "gemma3_text", "phi3", "olmo2", "granite", "qwen3_moe", "mixtral",
                                           "olmoe", "gpt_oss"));

// Checkpoints packed by GPTQ, AWQ and compressed-tensors (tests/reference/make_quant_fixtures.py):
// the oracle runs the dequantized weights in float64.
INSTANTIATE_TEST_SUITE_P(QuantizedCheckpoints, ModelOracle,
                         ::testing::Values("gptq_qwen3", "gptq_qwen3_actorder", "gptq_qwen3_8bit", "gptq_qwen3_g_uneven",
                                           "awq_qwen3", "ct_w4a16_qwen3", "ct_w4a16_asym_qwen3", "ct_w8a16_qwen3",
                                           "ct_fp8_qwen3", "ct_fp8_tensor_qwen3", "fp8_block_qwen3", "gpt_oss_mxfp4"));

TEST(ModelBf16, LoadsAndAgreesWithFloat32WithinBf16Rounding) {
  const auto f32_dir = test::shared_dir() / "models/stories260K", bf16_dir = test::shared_dir() / "models/stories260K-bf16";
  MASKGEN_REQUIRE_SHARED(bf16_dir / "model.safetensors");
  const auto f32 = Model<float>::load(f32_dir), bf16 = Model<float>::load(bf16_dir);
  TokenMatrix ids(2, 6), mask(2, 6);
  ids << 1, 403, 407, 261, 378, 1, 0, 0, 1, 403, 407, 261;
  mask << 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1;
  const auto a = f32.forward(ids, mask, nullptr, {.logits = LogitsFor::All});
  const auto b = bf16.forward(ids, mask, nullptr, {.logits = LogitsFor::All});
  ASSERT_TRUE(b.allFinite());
  const double rel = (a - b).cwiseAbs().maxCoeff() / a.cwiseAbs().maxCoeff();
  std::cout << "[ bf16     ] max relative difference to float32: " << rel << "\n";
  EXPECT_GT(rel, 0.0);   // the weights really were rounded
  EXPECT_LT(rel, 0.05);  // bf16 keeps 8 significant bits: 2^-9 per weight, compounded over 5 layers
}

// Copies a tiny model folder so a test can damage it.
fs::path copy_model(const std::string& name, const fs::path& to) {
  fs::copy(model_dir(name), to, fs::copy_options::recursive);
  return to;
}

void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto j = test::read_json(dir / "config.json");
  edit(j);
  std::ofstream(dir / "config.json") << j.dump(2);
}

TEST(ModelLoad, RefusesBrokenFolders) {
  test::TempDir tmp;
  test::expect_error<io_error>([&] { Model<float>::load(tmp.path() / "nothing"); }, {"config.json"});

  auto dir = copy_model("llama_tied", tmp.path() / "untied");
  edit_config(dir, [](auto& j) { j["tie_word_embeddings"] = false; });
  test::expect_error<format_error>([&] { Model<float>::load(dir); }, {"lm_head.weight"});

  dir = copy_model("llama_gqa", tmp.path() / "shape");
  edit_config(dir, [](auto& j) { j["intermediate_size"] = 95; });
  test::expect_error<format_error>([&] { Model<float>::load(dir); }, {"mlp.gate_proj.weight", "95"});

  dir = copy_model("llama_gqa", tmp.path() / "type");
  edit_config(dir, [](auto& j) { j["model_type"] = "falcon"; });
  test::expect_error<format_error>([&] { Model<float>::load(dir); }, {"model_type", "falcon"});

  dir = copy_model("llama_gqa", tmp.path() / "noweights");
  fs::remove(dir / "model.safetensors");
  test::expect_error<io_error>([&] { Model<float>::load(dir); }, {"model.safetensors"});

  dir = copy_model("llama_gqa", tmp.path() / "truncated");
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") / 2);
  EXPECT_THROW(Model<float>::load(dir), format_error);
}

class ModelForward : public ::testing::Test {
 protected:
  void SetUp() override { model_.emplace(Model<float>::load(model_dir("llama_gqa"))); }
  std::optional<Model<float>> model_;
};

TEST_F(ModelForward, BadInputNamesTheArgumentAndRow) {
  TokenMatrix ids(2, 3), mask(2, 3);
  ids << 1, 5, 6, 0, 1, 7;
  mask << 1, 1, 1, 0, 1, 1;
  EXPECT_NO_THROW(model_->forward(ids, mask));
  test::expect_error<argument_error>([&] { model_->forward(ids, TokenMatrix::Ones(2, 4)); }, {"input_ids", "attention_mask", "[2, 4]"});
  TokenMatrix bad = mask;
  bad(1, 2) = 2;
  test::expect_error<argument_error>([&] { model_->forward(ids, bad); }, {"attention_mask[1, 2]", "0 or 1"});
  bad = mask;
  bad.row(1).setZero();
  test::expect_error<argument_error>([&] { model_->forward(ids, bad); }, {"row 1", "no real token"});
  TokenMatrix bad_ids = ids;
  bad_ids(1, 1) = 128;
  test::expect_error<argument_error>([&] { model_->forward(bad_ids, mask); }, {"input_ids[1, 1]", "128"});
  bad_ids(1, 1) = -3;
  test::expect_error<argument_error>([&] { model_->forward(bad_ids, mask); }, {"input_ids[1, 1]", "-3"});
  bad_ids = ids;
  bad_ids(1, 0) = -99;  // a pad position may hold anything
  EXPECT_NO_THROW(model_->forward(bad_ids, mask));
  auto cache = model_->make_cache(3);
  test::expect_error<argument_error>([&] { model_->forward(ids, mask, &cache); }, {"cache", "3 rows"});
  const auto other = Model<float>::load(model_dir("qwen3"));  // same layers, other KV shape
  auto foreign = other.make_cache(2);
  test::expect_error<argument_error>([&] { model_->forward(ids, mask, &foreign); }, {"cache", "make_cache"});
  const TokenMatrix long_ids = TokenMatrix::Constant(1, 257, 5), long_mask = TokenMatrix::Ones(1, 257);
  test::expect_error<argument_error>([&] { model_->forward(long_ids, long_mask); }, {"row 0", "257", "256"});
}

TEST(ModelWeights, AreKeptInTheCheckpointsDtype) {
  EXPECT_EQ(Model<float>::load(model_dir("llama_gqa")).weight_type(), ops::WeightType::F32);
  EXPECT_EQ(Model<float>::load(model_dir("llama_bf16")).weight_type(), ops::WeightType::BF16);
  EXPECT_EQ(Model<float>::load(model_dir("qwen3_f16")).weight_type(), ops::WeightType::F16);
  EXPECT_EQ(Model<double>::load(model_dir("llama_bf16")).weight_type(), ops::WeightType::BF16);
  EXPECT_EQ(Model<float>::load(model_dir("llama_bf16"), {.weights = WeightFormat::Int8}).weight_type(),
            ops::WeightType::I8);
}

TEST(ModelWeights, NonFiniteWeightsAreRefusedByName) {
  for (const std::string name : {"llama_gqa", "llama_bf16", "qwen3_f16"}) {
    test::TempDir tmp;
    const auto dir = copy_model(name, tmp.path() / "m");
    // Overwrite the first element of model.norm.weight with all exponent bits set (inf or NaN).
    const auto file = dir / "model.safetensors";
    const SafetensorsFile st = SafetensorsFile::open(file);
    const TensorInfo t = st.info("model.norm.weight");
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(t.begin));
    const unsigned char inf_bits[4][8] = {{0, 0, 0x80, 0x7F}, {0x80, 0x7F}, {0x00, 0x7C}};
    const int which = t.dtype == DType::F32 ? 0 : t.dtype == DType::BF16 ? 1 : 2;
    f.write(reinterpret_cast<const char*>(inf_bits[which]), static_cast<std::streamsize>(dtype_size(t.dtype)));
    f.close();
    test::expect_error<format_error>([&] { (void)Model<float>::load(dir); },
                                     {"model.norm.weight", "non-finite", "element 0"});
  }
}

}  // namespace
}  // namespace maskgen

// The bad-input table (docs/bad-input.md): one test per row, named after the row. Each damages one
// thing, and checks the exception type and that the message names the argument (or file, field,
// tensor), the row where there is one, and what was expected.

#include <maskgen/maskgen.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include <nlohmann/json.hpp>

#include "support/test_support.hpp"

namespace {

namespace fs = std::filesystem;
using maskgen::argument_error;
using maskgen::format_error;
using maskgen::GenerationConfig;
using maskgen::io_error;
using maskgen::Model;
using maskgen::TokenMatrix;
using maskgen::test::expect_error;

fs::path copy_model(const std::string& name, const fs::path& to) {
  fs::copy(maskgen::test::model_dir(name), to, fs::copy_options::recursive);
  return to;
}

void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto j = maskgen::test::read_json(dir / "config.json");
  edit(j);
  std::ofstream(dir / "config.json") << j.dump(2);
}

// A safetensors file from a header (JSON text) and data bytes.
void write_raw(const fs::path& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
}

std::string floats(std::size_t n, float value = 0.5f) {
  std::string s(n * 4, '\0');
  for (std::size_t i = 0; i < n; ++i) std::memcpy(s.data() + 4 * i, &value, 4);
  return s;
}

const Model<float>& tiny() {
  static const auto m = Model<float>::load(maskgen::test::model_dir("llama_gqa"));  // vocab 128, context 256
  return m;
}

// ---- files ----

TEST(BadInput, R01_ModelFolderMissing) {
  maskgen::test::TempDir tmp;
  expect_error<io_error>([&] { Model<float>::load(tmp.path() / "absent"); }, {"config.json"});
}

TEST(BadInput, R02_WeightsFileMissing) {
  maskgen::test::TempDir tmp;
  const auto dir = copy_model("llama_gqa", tmp.path() / "m");
  fs::remove(dir / "model.safetensors");
  expect_error<io_error>([&] { Model<float>::load(dir); }, {"model.safetensors"});
}

TEST(BadInput, R03_SafetensorsEmpty) {
  maskgen::test::TempDir tmp;
  std::ofstream(tmp.path() / "e.safetensors").close();
  expect_error<format_error>([&] { maskgen::SafetensorsFile::open(tmp.path() / "e.safetensors"); }, {"e.safetensors"});
}

TEST(BadInput, R04_SafetensorsTruncated) {
  maskgen::test::TempDir tmp;
  const auto dir = copy_model("llama_gqa", tmp.path() / "m");
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") / 2);
  expect_error<format_error>([&] { Model<float>::load(dir); }, {"model.safetensors"});
}

TEST(BadInput, R05_FileOfTheWrongKind) {
  maskgen::test::TempDir tmp;
  std::ofstream(tmp.path() / "w.safetensors") << "<html>not a checkpoint</html>";
  expect_error<format_error>([&] { maskgen::SafetensorsFile::open(tmp.path() / "w.safetensors"); }, {"w.safetensors"});
  std::ofstream(tmp.path() / "tokenizer.json") << "PK\x03\x04 zip bytes";
  expect_error<format_error>([&] { maskgen::TokenizerJsonBackend::from_file(tmp.path() / "tokenizer.json"); },
                             {"tokenizer.json"});
}

TEST(BadInput, R06_HeaderLengthPastTheFile) {
  maskgen::test::TempDir tmp;
  std::ofstream out(tmp.path() / "h.safetensors", std::ios::binary);
  const std::uint64_t n = std::uint64_t{1} << 40;
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << "{}";
  out.close();
  expect_error<format_error>([&] { maskgen::SafetensorsFile::open(tmp.path() / "h.safetensors"); }, {"h.safetensors"});
}

TEST(BadInput, R07_OffsetsOverlapping) {
  maskgen::test::TempDir tmp;
  write_raw(tmp.path() / "o.safetensors",
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            floats(3));
  expect_error<format_error>([&] { maskgen::SafetensorsFile::open(tmp.path() / "o.safetensors"); }, {"o.safetensors"});
}

TEST(BadInput, R08_OffsetsOutOfRange) {
  maskgen::test::TempDir tmp;
  write_raw(tmp.path() / "r.safetensors", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", floats(2));
  expect_error<format_error>([&] { maskgen::SafetensorsFile::open(tmp.path() / "r.safetensors"); }, {"r.safetensors", "\"a\""});
}

TEST(BadInput, R09_DtypeUnknown) {
  maskgen::test::TempDir tmp;
  write_raw(tmp.path() / "d.safetensors", R"({"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", floats(4));
  expect_error<format_error>([&] { maskgen::SafetensorsFile::open(tmp.path() / "d.safetensors"); }, {"F128"});
}

TEST(BadInput, R10_ShapeProductOverflowing) {
  maskgen::test::TempDir tmp;
  write_raw(tmp.path() / "s.safetensors",
            R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})", floats(1));
  expect_error<format_error>([&] { maskgen::SafetensorsFile::open(tmp.path() / "s.safetensors"); }, {"\"a\""});
}

TEST(BadInput, R11_TensorMissing) {
  maskgen::test::TempDir tmp;
  const auto dir = copy_model("llama_tied", tmp.path() / "m");
  edit_config(dir, [](auto& j) { j["tie_word_embeddings"] = false; });  // now lm_head.weight is needed
  expect_error<format_error>([&] { Model<float>::load(dir); }, {"lm_head.weight"});
}

TEST(BadInput, R12_TensorOfTheWrongShape) {
  maskgen::test::TempDir tmp;
  const auto dir = copy_model("llama_gqa", tmp.path() / "m");
  edit_config(dir, [](auto& j) { j["intermediate_size"] = 95; });
  expect_error<format_error>([&] { Model<float>::load(dir); }, {"mlp.gate_proj.weight", "95", "expected"});
}

TEST(BadInput, R13_NonFiniteWeights) {
  maskgen::test::TempDir tmp;
  const auto dir = copy_model("llama_gqa", tmp.path() / "m");
  std::size_t at = 0;
  {
    const auto file = maskgen::SafetensorsFile::open(dir / "model.safetensors");
    at = file.info("model.norm.weight").begin + 4;  // its second element (float32)
  }
  std::fstream f(dir / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  f.write(reinterpret_cast<const char*>(&nan), 4);
  f.close();
  expect_error<format_error>([&] { Model<float>::load(dir); }, {"model.norm.weight", "non-finite", "element 1"});
}

// ---- config.json ----

TEST(BadInput, R14_ConfigFieldMissing) {
  auto j = maskgen::test::read_json(maskgen::test::model_dir("llama_gqa") / "config.json");
  j.erase("hidden_size");
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"hidden_size", "missing"});
}

TEST(BadInput, R15_ConfigFieldOfTheWrongType) {
  auto j = maskgen::test::read_json(maskgen::test::model_dir("llama_gqa") / "config.json");
  j["vocab_size"] = "128";
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"vocab_size", "integer"});
}

TEST(BadInput, R16_HeadsNotDividingHiddenSize) {
  auto j = maskgen::test::read_json(maskgen::test::model_dir("llama_gqa") / "config.json");
  j.erase("head_dim");
  j["num_attention_heads"] = 5;
  j["num_key_value_heads"] = 5;
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"hidden_size", "num_attention_heads"});
}

TEST(BadInput, R17_KvHeadsNotDividingHeads) {
  auto j = maskgen::test::read_json(maskgen::test::model_dir("llama_gqa") / "config.json");
  j["num_key_value_heads"] = 3;
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"num_key_value_heads", "divide"});
}

TEST(BadInput, R18_HostileSizes) {
  auto j = maskgen::test::read_json(maskgen::test::model_dir("llama_gqa") / "config.json");
  j["vocab_size"] = 1'000'000'000'000;
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"vocab_size", "at most"});
  j = maskgen::test::read_json(maskgen::test::model_dir("llama_gqa") / "config.json");
  j["num_hidden_layers"] = 1'000'000;
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"num_hidden_layers", "at most"});
}

// A mixture-of-experts config (Qwen3-MoE's keys, or another family's) that maskgen cannot run.
TEST(BadInput, R29_MixtureOfExpertsConfigItCannotRun) {
  auto moe = [](const char* model_type) {
    auto j = maskgen::test::read_json(maskgen::test::model_dir("llama_gqa") / "config.json");
    j["model_type"] = model_type;
    j[std::string(model_type) == "qwen3_moe" || std::string(model_type) == "olmoe" ? "num_experts" : "num_local_experts"] = 8;
    j["num_experts_per_tok"] = 2;
    j["moe_intermediate_size"] = 16;
    return j;
  };
  auto j = moe("qwen3_moe");
  j["num_experts_per_tok"] = 9;
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"num_experts_per_tok", "is 9", "[1, 8]"});
  j = moe("qwen3_moe");
  j["num_experts"] = 1'000'000;
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"num_experts", "0 to 4096"});
  j = moe("qwen3_moe");
  j["mlp_only_layers"] = {0, 99};
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"mlp_only_layers", "99", "layer index"});
  j = moe("qwen3_moe");
  j.erase("moe_intermediate_size");
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"moe_intermediate_size", "missing"});
  j = moe("gpt_oss");
  j["swiglu_limit"] = 5.0;
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"swiglu_limit", "7.0"});
  j = moe("olmoe");
  j["clip_qkv"] = 8.0;
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"clip_qkv"});
  j = moe("mixtral");
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", -1.0}, {"rope_theta", 10000.0}};
  expect_error<format_error>([&] { maskgen::ModelConfig::from_json(j); }, {"factor", "> 0"});
}

// A quantized checkpoint whose packed tensors or quantization_config maskgen cannot read (the
// corrupt copies of tests/data/models/quant_bad; its README says what each holds).
TEST(BadInput, R30_QuantizedCheckpointItCannotRead) {
  auto refused = [](const char* folder, std::initializer_list<std::string_view> words) {
    const auto dir = maskgen::test::model_dir(std::string("quant_bad/") + folder);
    expect_error<format_error>([&] { Model<float>::load(dir); }, words);
  };
  refused("awq_qweight_shape", {"model.layers.0.self_attn.q_proj.qweight", "[128, 15]", "expected [128, 16]"});
  refused("gptq_scales_rows", {"model.layers.0.self_attn.q_proj.", "expected [4, "});
  refused("awq_scale_nan", {"model.layers.0.self_attn.q_proj.scales", "non-finite"});
  refused("ct_scale_inf", {"model.layers.0.mlp.down_proj.weight_scale", "non-finite"});
  refused("gptq_g_idx_range", {"model.layers.0.self_attn.q_proj.g_idx", "group 4 at input 5", "0 to 3"});
  refused("unknown_method_hqq", {"quant_method \"hqq\"", "does not read"});
  refused("gptq_bits3", {"\"bits\"", "is 3"});
  refused("awq_group48", {"model.layers.0.self_attn.q_proj", "groups of 48"});
}

// A copy of fixture `source` in `to` with byte `index` of tensor `tensor`'s data set to `value`
// (the tensor's place read from the safetensors header: 8 bytes of length, the JSON, the data).
std::filesystem::path with_tensor_byte(const std::string& source, const std::filesystem::path& to,
                                       const std::string& tensor, std::size_t index, unsigned char value) {
  std::filesystem::copy(maskgen::test::model_dir(source), to, std::filesystem::copy_options::recursive);
  const auto file = to / "model.safetensors";
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  std::uint64_t length = 0;
  f.read(reinterpret_cast<char*>(&length), 8);
  std::string header(length, '\0');
  f.read(header.data(), static_cast<std::streamsize>(length));
  const auto begin = nlohmann::json::parse(header)[tensor]["data_offsets"][0].get<std::uint64_t>();
  f.seekp(static_cast<std::streamoff>(8 + length + begin + index));
  f.put(static_cast<char>(value));
  return to;
}

// FP8 codes that are NaN and MXFP4 scales that are NaN or past float's range, each named.
TEST(BadInput, R30_FloatCodesAndScalesThatAreNotFinite) {
  maskgen::test::TempDir tmp;
  const auto fp8 = with_tensor_byte("fp8_block_qwen3", tmp.path() / "fp8", "model.layers.1.mlp.up_proj.weight", 1000, 0xFF);
  expect_error<format_error>([&] { Model<float>::load(fp8); },
                             {"model.layers.1.mlp.up_proj.weight", "NaN code 0xFF", "element 1000"});
  const auto ct = with_tensor_byte("ct_fp8_qwen3", tmp.path() / "ct", "model.layers.0.self_attn.k_proj.weight", 7, 0x7F);
  expect_error<format_error>([&] { Model<float>::load(ct); }, {"model.layers.0.self_attn.k_proj.weight", "0x7F"});
  // down_proj_scales [8, 64, 2]: expert 2, row 5, block 1 is byte (2 * 64 + 5) * 2 + 1.
  const std::string scales = "model.layers.0.mlp.experts.down_proj_scales";
  const auto nan = with_tensor_byte("gpt_oss_mxfp4", tmp.path() / "nan", scales, (2 * 64 + 5) * 2 + 1, 255);
  expect_error<format_error>([&] { Model<float>::load(nan); }, {scales, "E8M0 scale 255 (NaN)", "expert 2 row 5 block 1"});
  const auto big = with_tensor_byte("gpt_oss_mxfp4", tmp.path() / "big", scales, 0, 253);
  expect_error<format_error>([&] { Model<float>::load(big); }, {scales, "253", "range"});
}

// ---- batches and generation ----

TEST(BadInput, R19_MaskNotZeroOrOne) {
  TokenMatrix ids = TokenMatrix::Constant(2, 3, 5), mask = TokenMatrix::Ones(2, 3);
  mask(1, 2) = 2;
  expect_error<argument_error>([&] { maskgen::generate(tiny(), ids, mask, {}); }, {"attention_mask[1, 2]", "0 or 1"});
}

TEST(BadInput, R20_RowWithNoRealToken) {
  TokenMatrix ids = TokenMatrix::Constant(2, 3, 5), mask = TokenMatrix::Ones(2, 3);
  mask.row(1).setZero();
  expect_error<argument_error>([&] { maskgen::generate(tiny(), ids, mask, {}); }, {"row 1", "no real token"});
}

TEST(BadInput, R21_ShapeMismatch) {
  const TokenMatrix ids = TokenMatrix::Constant(2, 3, 5), mask = TokenMatrix::Ones(2, 4);
  expect_error<argument_error>([&] { maskgen::generate(tiny(), ids, mask, {}); }, {"input_ids", "attention_mask"});
}

TEST(BadInput, R22_IdOutsideTheVocabulary) {
  TokenMatrix ids = TokenMatrix::Constant(2, 3, 5);
  ids(0, 1) = 128;
  expect_error<argument_error>([&] { maskgen::generate(tiny(), ids, TokenMatrix::Ones(2, 3), {}); }, {"input_ids[0, 1]", "128"});
  // Decoding: a negative id is refused; an id beyond the tokenizer's size decodes to nothing.
  const auto tok_dir = maskgen::test::shared_dir() / "models/stories260K";
  MASKGEN_REQUIRE_SHARED(tok_dir);
  const auto tok = maskgen::load_tokenizer(tok_dir);
  expect_error<argument_error>([&] { (void)tok.decode(std::vector<std::int32_t>{5, -1}); }, {"ids[1] is -1", ">= 0"});
  EXPECT_EQ(tok.decode(std::vector<std::int32_t>{5, 151883}), tok.decode(std::vector<std::int32_t>{5}));
}

TEST(BadInput, R23_GenerationSettingsOutOfRange) {
  const TokenMatrix ids = TokenMatrix::Constant(1, 3, 5), mask = TokenMatrix::Ones(1, 3);
  auto run = [&](GenerationConfig g) { maskgen::generate(tiny(), ids, mask, g); };
  expect_error<argument_error>([&] { run({.max_new_tokens = -1}); }, {"max_new_tokens", ">= 0"});
  expect_error<argument_error>([&] { run({.do_sample = true, .temperature = 0}); }, {"temperature"});
  expect_error<argument_error>([&] { run({.do_sample = true, .top_p = 1.5}); }, {"top_p"});
  expect_error<argument_error>([&] { run({.repetition_penalty = std::numeric_limits<double>::quiet_NaN()}); }, {"repetition_penalty"});
  expect_error<argument_error>([&] { run({.eos_token_id = 500}); }, {"eos_token_id", "500"});
  expect_error<argument_error>([&] { run({.frequency_penalty = 2.5}); }, {"frequency_penalty", "[-2, 2]", "2.5"});
  expect_error<argument_error>([&] { run({.logit_bias = {{128, 1.0}}}); }, {"logit_bias", "128", "[0, 128)"});
}

TEST(BadInput, R24_ContextLongerThanTheModels) {
  const TokenMatrix ids = TokenMatrix::Constant(1, 257, 5), mask = TokenMatrix::Ones(1, 257);
  expect_error<argument_error>([&] { maskgen::generate(tiny(), ids, mask, {}); }, {"row 0", "257", "256"});
}

// ---- tokenizers, chat templates, the engine ----

TEST(BadInput, R25_TokenizerFileMissing) {
  maskgen::test::TempDir tmp;
  expect_error<io_error>([&] { maskgen::load_tokenizer(tmp.path()); }, {tmp.path().string()});
}

// A hostile SentencePiece-style tokenizer.json beside a tokenizer.model: a broken file is an
// error naming the field, never quietly replaced by the other backend (only a component maskgen
// does not implement falls back to tokenizer.model).
TEST(BadInput, R25b_HostileSentencePieceStyleTokenizerJson) {
  MASKGEN_REQUIRE_SHARED(maskgen::test::shared_dir() / "tokenizers/llama2-json/tokenizer.json");
  maskgen::test::TempDir tmp;
  fs::copy_file(maskgen::test::shared_dir() / "models/stories260K/tokenizer.model", tmp.path() / "tokenizer.model");
  const auto base = nlohmann::json::parse(maskgen::test::read_bytes(maskgen::test::shared_dir() / "tokenizers/llama2-json/tokenizer.json"));
  const auto write = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto j = base;
    edit(j);
    std::ofstream(tmp.path() / "tokenizer.json") << j.dump();
  };
  write([](auto& j) {  // byte_fallback without the byte piece of 'A' (renamed, so the ids still run without gaps)
    auto& v = j["model"]["vocab"];
    v["<0x41>?"] = v["<0x41>"];
    v.erase("<0x41>");
  });
  expect_error<format_error>([&] { maskgen::load_tokenizer(tmp.path()); }, {"tokenizer.json", "byte_fallback", "<0x41>"});
  write([](auto& j) { j["model"]["vocab"]["<0x0a>"] = 32000; });  // decodes as a byte, but not byte fallback's spelling
  expect_error<format_error>([&] { maskgen::load_tokenizer(tmp.path()); }, {"model.vocab", "<0x0a>"});
  write([](auto& j) { j["model"]["vocab"]["<0x0A>"] = 4000000000; });  // an id past int32
  expect_error<format_error>([&] { maskgen::load_tokenizer(tmp.path()); }, {"model.vocab", "4000000000"});
  write([](auto& j) { j["decoder"]["decoders"][3]["stop"] = "all"; });
  expect_error<format_error>([&] { maskgen::load_tokenizer(tmp.path()); }, {"decoder Strip.stop"});
  write([](auto& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", ""}}; });
  expect_error<format_error>([&] { maskgen::load_tokenizer(tmp.path()); }, {"Metaspace.replacement", "one character"});
  write([](auto& j) { j["normalizer"]["normalizers"][0] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}}; });
  EXPECT_EQ(maskgen::load_tokenizer(tmp.path()).backend().kind(), "tokenizer.model");  // unsupported: falls back
}

TEST(BadInput, R26_ChatTemplateSyntaxOrUnsupported) {
  expect_error<maskgen::template_error>([] { maskgen::ChatTemplate("a\n{% if x %}b"); }, {"line"});
  expect_error<maskgen::unsupported_template_error>([] { maskgen::ChatTemplate("a\n{% include 'x' %}"); }, {"line 2", "include"});
}

TEST(BadInput, R27_ChatTemplateRaises) {
  const maskgen::ChatTemplate chat("{{ raise_exception('Conversation roles must alternate user/assistant') }}");
  try {
    chat.apply(nlohmann::ordered_json::array());
    ADD_FAILURE() << "no exception";
  } catch (const maskgen::template_raised_error& e) {
    EXPECT_STREQ(e.what(), "Conversation roles must alternate user/assistant");
  }
}

TEST(BadInput, R28_EngineRequestThatCanNeverRun) {
  const auto tok_dir = maskgen::test::shared_dir() / "models/stories260K";
  MASKGEN_REQUIRE_SHARED(tok_dir);
  const auto tok = maskgen::load_tokenizer(tok_dir);
  maskgen::Engine engine(tiny(), tok, {.max_cached_tokens = 50});
  expect_error<argument_error>([&] { engine.submit(std::vector<std::int32_t>(40, 5), {.max_new_tokens = 20}); },
                               {"60 cached tokens", "at most 50", "max_cached_tokens"});
  expect_error<argument_error>([&] { engine.submit(std::vector<std::int32_t>{}, {}); }, {"prompt has no tokens"});
  expect_error<argument_error>([&] { engine.submit(std::vector<std::int32_t>{5}, {}, {.logprobs = 21}); },
                               {"RequestOptions::logprobs", "[-1, 20]", "21"});
}

}  // namespace

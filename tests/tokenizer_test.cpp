// Tokenizer against SentencePiece itself (ids) and transformers (layout), from
// tests/data/tokenizer_fixtures.json, plus the decode, pad-id, threading and error rules.

#include <maskgen/tokenizer.hpp>

#include <random>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {

PaddingOptions options_from_fixture(const nlohmann::json& c);  // padding_test.cpp

namespace {

using Ids = std::vector<std::int32_t>;

std::filesystem::path llama2_model() { return test::shared_dir() / "tokenizers/llama2/tokenizer.model"; }
std::filesystem::path stories_model() { return test::shared_dir() / "models/stories260K/tokenizer.model"; }

std::filesystem::path model_for(const std::string& name) {
  return name == "llama2" ? llama2_model() : stories_model();
}

const nlohmann::json& fixture() {
  static const auto j = test::read_json(test::data_dir() / "tokenizer_fixtures.json");
  return j;
}

// Texts that are not in the fixture: invalid UTF-8, control bytes, long and odd inputs.
std::vector<std::string> extra_texts() {
  return {std::string("bad \xff byte"), std::string("cut \xe4\xb8"), std::string("nul\0inside", 10),
          std::string("\xc0\x80 overlong"), "\x1b[31mred\x1b[0m", std::string(3000, 'z'),
          "<s> literal </s> pieces <unk>", "ß ẞ ǅ ﬁ ㎏ ½ Ⅻ", "🏳️‍🌈🇯🇵", "\t\t\t", "a\r\nb\rc\n\n\nd"};
}

class TokenizerOn : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { MASKGEN_REQUIRE_SHARED(model_for(GetParam())); }
  Tokenizer<> tok() const { return Tokenizer<>::from_file(model_for(GetParam())); }
  const nlohmann::json& entry() const { return fixture()["tokenizers"][GetParam()]; }
};

TEST_P(TokenizerOn, IdsEqualPythonSentencePiece) {
  const auto t = tok();
  const auto& texts = fixture()["texts"];
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto text = texts[i].get<std::string>();
    EXPECT_EQ(t.encode(text, {.add_bos = false}), entry()["ids"][i].get<Ids>()) << text;
    Ids with_specials = entry()["ids"][i].get<Ids>();
    with_specials.insert(with_specials.begin(), entry()["bos_id"].get<std::int32_t>());
    with_specials.push_back(entry()["eos_id"].get<std::int32_t>());
    EXPECT_EQ(t.encode(text, {.add_bos = true, .add_eos = true}), with_specials) << text;
  }
}

TEST_P(TokenizerOn, IdsEqualSentencePieceEncodeAsIdsOnOtherTexts) {
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model_for(GetParam()).string()).ok());
  const auto t = tok();
  for (const auto& text : extra_texts()) {
    const std::vector<int> expected = sp.EncodeAsIds(text);
    EXPECT_EQ(t.encode(text, {.add_bos = false}), Ids(expected.begin(), expected.end())) << text;
  }
}

TEST_P(TokenizerOn, BatchLayoutEqualsTransformersEndToEnd) {
  const auto t = tok();
  const auto& texts = fixture()["texts"];
  int checked = 0;
  for (const auto& c : entry()["cases"]) {
    SCOPED_TRACE(c["mode"].dump() + " " + c["settings"].dump() + " rows " + c["rows"].dump());
    std::vector<std::string> batch_texts;
    for (const auto& i : c["rows"]) batch_texts.push_back(texts[i.get<std::size_t>()]);
    const PaddingOptions options = options_from_fixture(c);
    if (c.contains("error")) {
      EXPECT_THROW(t.encode_batch(batch_texts, options), argument_error);
      continue;
    }
    const BatchEncoding b = t.encode_batch(batch_texts, options);
    EXPECT_EQ(b.input_ids, test::to_matrix(c["input_ids"]));
    EXPECT_EQ(b.attention_mask, test::to_matrix(c["attention_mask"]));
    ++checked;
  }
  EXPECT_GT(checked, 200);
}

TEST_P(TokenizerOn, SameResultForAnyThreadCount) {
  const auto t = tok();
  std::vector<std::string> texts;
  std::mt19937 rng(7);
  const auto& base = fixture()["texts"];
  for (int i = 0; i < 301; ++i) {
    texts.push_back(base[rng() % base.size()].get<std::string>() + std::to_string(rng() % 1000));
  }
  PaddingOptions o{.num_threads = 1};
  const auto one = t.encode_batch(texts, o);
  for (int threads : {2, 3, 8, 0}) {
    o.num_threads = threads;
    const auto many = t.encode_batch(texts, o);
    EXPECT_EQ(many.input_ids, one.input_ids) << threads;
    EXPECT_EQ(many.attention_mask, one.attention_mask) << threads;
    EXPECT_EQ(t.decode_batch(many.input_ids, many.attention_mask, {.num_threads = threads}),
              t.decode_batch(one.input_ids, one.attention_mask, {.num_threads = 1}));
  }
  // Row by row, the batch equals each text encoded alone.
  for (Eigen::Index r = 0; r < one.input_ids.rows(); r += 37) {
    Ids real;
    for (Eigen::Index j = 0; j < one.input_ids.cols(); ++j)
      if (one.attention_mask(r, j)) real.push_back(one.input_ids(r, j));
    EXPECT_EQ(real, t.encode(texts[static_cast<std::size_t>(r)]));
  }
}

TEST_P(TokenizerOn, DecodeRoundTripsAndDropsPads) {
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model_for(GetParam()).string()).ok());
  const auto t = tok();
  std::vector<std::string> texts;
  for (const auto& x : fixture()["texts"]) texts.push_back(x);
  const auto b = t.encode_batch(texts, {.padding_side = Side::Right});
  const auto decoded = t.decode_batch(b.input_ids, b.attention_mask);
  const auto decoded_skip = t.decode_batch(b.input_ids);  // pads are EOS here: skipped as special
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string expected = sp.DecodeIds(sp.EncodeAsIds(texts[i]));  // SentencePiece's own round trip
    EXPECT_EQ(decoded[i], expected);
    EXPECT_EQ(decoded_skip[i], expected);
    EXPECT_EQ(t.decode(t.encode(texts[i])), expected);
  }
  // Special tokens are rendered as their pieces when not skipped.
  const Ids ids = t.encode("Hello", {.add_bos = true, .add_eos = true});
  const std::string kept = t.decode(ids, {.skip_special_tokens = false});
  EXPECT_EQ(kept.substr(0, 3), "<s>");
  EXPECT_EQ(kept.substr(kept.size() - 4), "</s>");
  EXPECT_EQ(t.decode(ids), sp.DecodeIds(std::vector<int>(ids.begin(), ids.end())));
}

TEST_P(TokenizerOn, InvalidUtf8BecomesReplacementCharacters) {
  const auto t = tok();
  const std::string replaced = t.decode(t.encode("a\xff" "b\xfe"));
  EXPECT_EQ(replaced, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");  // each bad byte is one U+FFFD
  EXPECT_EQ(t.encode("a\xff" "b"), t.encode("a\xEF\xBF\xBD" "b"));
}

TEST_P(TokenizerOn, Accessors) {
  const auto t = tok();
  EXPECT_EQ(t.vocab_size(), entry()["vocab_size"].get<std::int32_t>());
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.unk_id(), 0);
  EXPECT_EQ(t.pad_id(), std::nullopt);  // neither model has a pad piece
  EXPECT_EQ(t.id_to_piece(1), "<s>");
  EXPECT_EQ(t.piece_to_id("</s>"), 2);
  EXPECT_EQ(t.piece_to_id("<unk>"), 0);
  EXPECT_EQ(t.piece_to_id("no such piece at all"), std::nullopt);
  EXPECT_THROW(t.id_to_piece(t.vocab_size()), argument_error);
  EXPECT_THROW(t.id_to_piece(-1), argument_error);
}

INSTANTIATE_TEST_SUITE_P(SharedModels, TokenizerOn, ::testing::Values("llama2", "stories260K"));

class TokenizerStories : public ::testing::Test {
 protected:
  void SetUp() override { MASKGEN_REQUIRE_SHARED(stories_model()); }
};

TEST_F(TokenizerStories, PadIdResolution) {
  const auto t = Tokenizer<>::from_file(stories_model());
  std::vector<std::string> messages;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::Warning) messages.emplace_back(m);
  });
  const std::vector<std::string> texts = {"a b c d", "a"};
  // Explicit pad id wins, and nothing is logged.
  auto b = t.encode_batch(texts, {.pad_token_id = 7});
  EXPECT_EQ(b.input_ids(1, 0), 7);
  EXPECT_TRUE(messages.empty());
  // No pad piece: EOS, logged once per tokenizer.
  b = t.encode_batch(texts);
  EXPECT_EQ(b.input_ids(1, 0), 2);
  t.encode_batch(texts);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find("eos_token_id"), std::string::npos);
  // Pad ids never decide what is padding: a pad id equal to a real token changes only the ids.
  const std::int32_t a_id = t.encode("a", {.add_bos = false}).at(0);
  b = t.encode_batch(texts, {.pad_token_id = a_id});
  EXPECT_EQ(b.attention_mask.row(1).sum(), static_cast<std::int32_t>(t.encode("a").size()));
  EXPECT_THROW(t.encode_batch(texts, {.pad_token_id = t.vocab_size()}), argument_error);
  EXPECT_THROW(t.encode_batch(texts, {.pad_token_id = -1}), argument_error);
  set_log_sink(nullptr);
}

TEST_F(TokenizerStories, DecodeRejectsBadIdsAndMasks) {
  const auto t = Tokenizer<>::from_file(stories_model());
  // An id the tokenizer has no piece for (>= its 512) decodes to nothing, as in Hugging Face
  // tokenizers; a negative id is refused.
  EXPECT_EQ(t.decode(Ids{1, 5, 512}), t.decode(Ids{1, 5}));
  const Ids bad = {1, 5, -512};
  try {
    t.decode(bad);
    FAIL();
  } catch (const argument_error& e) {
    EXPECT_NE(std::string(e.what()).find("ids[2] is -512"), std::string::npos) << e.what();
  }
  TokenMatrix ids(2, 2), mask(2, 2);
  ids << 1, 5, 1, -4;
  mask << 1, 1, 1, 1;
  try {
    t.decode_batch(ids, mask);
    FAIL();
  } catch (const argument_error& e) {
    EXPECT_NE(std::string(e.what()).find("ids[1, 1] is -4"), std::string::npos) << e.what();
  }
  ids(1, 1) = 6;
  mask(0, 1) = 2;
  EXPECT_THROW(t.decode_batch(ids, mask), argument_error);
  EXPECT_THROW(t.decode_batch(ids, TokenMatrix(2, 3)), argument_error);
  mask(0, 1) = 0;  // masked-out positions are not decoded, whatever id they hold
  ids(0, 1) = 100000;
  EXPECT_EQ(t.decode_batch(ids, mask)[0], "");
}

TEST_F(TokenizerStories, LoadsFromBytesAndRejectsCorruptModels) {
  const std::string bytes = test::read_bytes(stories_model());
  const auto t = Tokenizer<>::from_serialized(bytes);
  EXPECT_EQ(t.encode("Once upon a time"), Tokenizer<>::from_file(stories_model()).encode("Once upon a time"));
  EXPECT_THROW(Tokenizer<>::from_serialized(""), format_error);
  EXPECT_THROW(Tokenizer<>::from_serialized(bytes.substr(0, bytes.size() / 2)), format_error);
  EXPECT_THROW(Tokenizer<>::from_serialized("this is not a protobuf at all"), format_error);
  std::mt19937 rng(1);
  std::string noise(4096, '\0');
  for (auto& ch : noise) ch = static_cast<char>(rng());
  EXPECT_THROW(Tokenizer<>::from_serialized(noise), format_error);
  try {
    Tokenizer<>::from_file("/nonexistent/dir/tokenizer.model");
    FAIL();
  } catch (const io_error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos);
  }
  test::TempDir dir;
  EXPECT_THROW(Tokenizer<>::from_file(dir.path()), io_error);  // a folder, not a file
  {
    std::ofstream(dir.path() / "half.model", std::ios::binary) << bytes.substr(0, 100);
  }
  EXPECT_THROW(Tokenizer<>::from_file(dir.path() / "half.model"), format_error);
}

TEST_F(TokenizerStories, BadEncodeOptions) {
  const auto t = Tokenizer<>::from_file(stories_model());
  const std::vector<std::string> texts = {"one two three four five", "six"};
  EXPECT_THROW(t.encode_batch(texts, {.max_length = 1, .truncation = true, .add_eos = true}), argument_error);
  EXPECT_THROW(t.encode_batch(texts, {.max_length = 3}), argument_error);
  EXPECT_THROW(t.encode_batch(texts, {.pad_to_multiple_of = 0}), argument_error);
  EXPECT_THROW(t.encode_batch(texts, {.padding = PadTo::None}), argument_error);
  EXPECT_THROW(t.encode_batch(texts, {.num_threads = -2}), argument_error);
  // Initializer lists of literals work too.
  EXPECT_EQ(t.encode_batch({"six", "six"}, {.padding = PadTo::None}).input_ids.rows(), 2);
}

}  // namespace
}  // namespace maskgen

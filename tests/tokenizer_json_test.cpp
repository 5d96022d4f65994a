// The tokenizer.json backend against Hugging Face tokenizers and transformers, on the real Qwen3 and
// Llama 3 files in ../shared/tokenizers (tests/data/bpe/*.json, made by
// tests/reference/make_bpe_fixtures.py and make_bpe_node_fixtures.js), the streaming decoder, the
// refusals, and the Qwen3 pipeline end to end (tests/data/reference/qwen3_vocab.json).

#include <maskgen/maskgen.hpp>

#include <random>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

using Ids = std::vector<std::int32_t>;

std::filesystem::path tokenizer_dir(const std::string& name) { return test::shared_dir() / "tokenizers" / name; }

std::string unhex(const std::string& hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

const AutoTokenizer& loaded(const std::string& name) {
  static std::map<std::string, AutoTokenizer> cache;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, load_tokenizer(tokenizer_dir(name))).first;
  return it->second;
}

class TokenizerJson : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    MASKGEN_REQUIRE_SHARED(tokenizer_dir(GetParam()) / "tokenizer.json");
    fixture_ = test::read_json(test::data_dir() / "bpe" / ("bpe_" + GetParam() + ".json"));
  }
  const AutoTokenizer& tok() const { return loaded(GetParam()); }
  // The fixture's texts, then its invalid UTF-8 byte strings.
  std::vector<std::string> texts() const {
    std::vector<std::string> all = fixture_["texts"].get<std::vector<std::string>>();
    for (const auto& b : fixture_["bad_utf8"]) all.push_back(unhex(b["hex"].get<std::string>()));
    return all;
  }
  nlohmann::json fixture_;
};

TEST_P(TokenizerJson, LoadsTheFileAsTransformersDoes) {
  const auto& special = fixture_["special"];
  EXPECT_EQ(tok().backend().kind(), "tokenizer.json");
  EXPECT_EQ(tok().vocab_size(), special["vocab_size_with_added"].get<std::int32_t>());
  auto id_or_null = [](std::optional<std::int32_t> id) { return id ? nlohmann::json(*id) : nlohmann::json(nullptr); };
  EXPECT_EQ(id_or_null(tok().bos_id()), special["bos_token_id"]);
  EXPECT_EQ(id_or_null(tok().eos_id()), special["eos_token_id"]);
  EXPECT_EQ(id_or_null(tok().pad_id()), special["pad_token_id"]);
  EXPECT_EQ(id_or_null(tok().unk_id()), special["unk_token_id"]);
}

TEST_P(TokenizerJson, IdsEqualTokenizersAndTransformers) {
  const auto all = texts();
  ASSERT_EQ(all.size(), fixture_["encode"].size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto& e = fixture_["encode"][i];
    SCOPED_TRACE(nlohmann::json(unicode::repaired(all[i])).dump());
    EXPECT_EQ(tok().encode(all[i], {.add_bos = false, .add_eos = false}), e["ids"].get<Ids>());
    // The defaults are transformers' add_special_tokens=True.
    EXPECT_EQ(tok().encode(all[i]), e["transformers_ids"].get<Ids>());
    EXPECT_EQ(tok().encode(all[i]), e["ids_with_special"].get<Ids>());
  }
}

TEST_P(TokenizerJson, InvalidUtf8IsRepairedAsPythonReplaceDoes) {
  for (const auto& b : fixture_["bad_utf8"]) {
    const std::string bytes = unhex(b["hex"].get<std::string>());
    EXPECT_FALSE(unicode::is_valid_utf8(bytes)) << b["hex"];
    EXPECT_EQ(unicode::repaired(bytes), b["as_decoded"].get<std::string>()) << b["hex"];
  }
}

TEST_P(TokenizerJson, RandomTextsEqualTokenizers) {
  const auto f = test::read_json(test::data_dir() / "bpe" / ("random_" + GetParam() + ".json"));
  ASSERT_EQ(f["texts"].size(), 1000u);
  int wrong = 0;
  for (std::size_t i = 0; i < f["texts"].size(); ++i) {
    const auto text = f["texts"][i].get<std::string>();
    const Ids ids = tok().encode(text, {.add_bos = false, .add_eos = false});
    if (ids != f["ids"][i].get<Ids>() && ++wrong <= 5) {
      ADD_FAILURE() << nlohmann::json(text).dump() << "\n  ours " << nlohmann::json(ids).dump() << "\n  want "
                    << f["ids"][i].dump();
    }
  }
  EXPECT_EQ(wrong, 0);
}

TEST_P(TokenizerJson, DecodeEqualsTokenizersAndTransformers) {
  for (const auto& d : fixture_["decode"]) {
    const Ids ids = d["ids"].get<Ids>();
    SCOPED_TRACE(d["ids"].dump().substr(0, 120));
    EXPECT_EQ(tok().decode(ids, {.skip_special_tokens = true}), d["skip"].get<std::string>());
    EXPECT_EQ(tok().decode(ids, {.skip_special_tokens = false}), d["keep"].get<std::string>());
    EXPECT_EQ(tok().decode(ids, {.skip_special_tokens = true}), d["transformers_skip"].get<std::string>());
    EXPECT_EQ(tok().decode(ids, {.skip_special_tokens = false}), d["transformers_keep"].get<std::string>());
  }
}

TEST_P(TokenizerJson, DecodingRoundTrips) {
  // Qwen3 normalizes to NFC, so its round trip gives the NFC text; Llama 3 gives the text back.
  const bool nfc = GetParam() == "qwen3";
  for (const auto& text : texts()) {
    std::string want = unicode::repaired(text);
    if (nfc) unicode::to_nfc(std::string(want), want);
    EXPECT_EQ(tok().decode(tok().encode(text), {.skip_special_tokens = false}), want) << nlohmann::json(want).dump();
  }
}

TEST_P(TokenizerJson, StreamingNeverSplitsACharacterAndEqualsDecode) {
  for (const bool skip : {true, false}) {
    for (const auto& text : texts()) {
      const Ids ids = tok().encode(text);
      DecodeStream stream(tok(), {.skip_special_tokens = skip});
      std::string joined;
      for (const std::int32_t id : ids) {
        const std::string piece = stream.put(id);
        EXPECT_TRUE(unicode::is_valid_utf8(piece));
        if (unicode::is_valid_utf8(text)) {  // nothing is replaced in a valid text
          EXPECT_EQ(piece.find(unicode::replacement_character), std::string::npos) << nlohmann::json(text).dump();
        }
        joined += piece;
      }
      joined += stream.finish();
      EXPECT_EQ(joined, tok().decode(ids, {.skip_special_tokens = skip})) << nlohmann::json(text).dump();
    }
  }
}

TEST_P(TokenizerJson, StreamingHoldsBackAnUnfinishedCharacter) {
  // A single byte-level token that is the first byte of a CJK character decodes alone to U+FFFD;
  // the stream returns nothing for it, and the whole character with the next token.
  const Ids ids = tok().encode("患", {.add_bos = false, .add_eos = false});
  std::string joined;
  DecodeStream stream(tok());
  std::size_t empty_puts = 0;
  for (const std::int32_t id : ids) {
    const std::string piece = stream.put(id);
    empty_puts += piece.empty();
    joined += piece;
  }
  EXPECT_EQ(joined + stream.finish(), "患");
  if (ids.size() > 1) {
    EXPECT_GE(empty_puts, 1u);
  }
  // An unfinished character at the end becomes U+FFFD in finish(), as in decode().
  const Ids first_byte{tok().piece_to_id(byte_level::to_chars("\xE6")).value()};
  DecodeStream cut(tok());
  EXPECT_EQ(cut.put(first_byte[0]), "");
  EXPECT_EQ(cut.finish(), unicode::replacement_character);
  EXPECT_EQ(tok().decode(first_byte), unicode::replacement_character);
}

PaddingOptions layout_options(const nlohmann::json& s) {
  PaddingOptions o;
  o.padding_side = s["padding_side"] == "left" ? Side::Left : Side::Right;
  o.padding = s["padding"] == "longest" ? PadTo::Longest : PadTo::MaxLength;
  if (!s["max_length"].is_null()) o.max_length = s["max_length"].get<std::int32_t>();
  if (!s["pad_to_multiple_of"].is_null()) o.pad_to_multiple_of = s["pad_to_multiple_of"].get<std::int32_t>();
  o.truncation = s["truncation"].get<bool>();
  o.truncation_side = s["truncation_side"] == "left" ? Side::Left : Side::Right;
  if (!s["add_special_tokens"].get<bool>()) o.add_bos = o.add_eos = false;  // else: the tokenizer's default
  return o;
}

TEST_P(TokenizerJson, PaddedBatchesEqualTransformers) {
  std::vector<std::string> batch;
  for (const auto& i : fixture_["layout_texts"]) batch.push_back(fixture_["texts"][i.get<std::size_t>()].get<std::string>());
  const auto pad = fixture_["layout_pad_token_id"].get<std::int32_t>();
  EXPECT_EQ(tok().resolve_pad_id(std::nullopt), pad);  // Qwen3: its pad token; Llama 3: EOS
  int compared = 0;
  for (const auto& l : fixture_["layouts"]) {
    SCOPED_TRACE(l.dump().substr(0, 300));
    const PaddingOptions options = layout_options(l);
    bool ragged = false;  // transformers returns rows of different lengths where maskgen refuses
    for (const auto& row : l.value("input_ids", nlohmann::json::array())) ragged |= row.size() != l["input_ids"][0].size();
    if (l.contains("error") || ragged) {
      EXPECT_THROW(tok().encode_batch(batch, options), argument_error);
      continue;
    }
    const BatchEncoding b = tok().encode_batch(batch, options);
    EXPECT_EQ(b.input_ids, test::to_matrix(l["input_ids"]));
    EXPECT_EQ(b.attention_mask, test::to_matrix(l["attention_mask"]));
    ++compared;
  }
  EXPECT_GE(compared, 30);
}

TEST_P(TokenizerJson, PadFallsBackToEosWithOneWarning) {
  std::vector<std::string> warnings;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::Warning) warnings.emplace_back(m);
  });
  const auto fresh = load_tokenizer(tokenizer_dir(GetParam()));  // a new tokenizer has not warned yet
  for (int i = 0; i < 3; ++i) (void)fresh.encode_batch({"a", "a longer text"});
  set_log_sink({});
  if (fixture_["layout_pad_is_eos_fallback"].get<bool>()) {
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("eos_token_id"), std::string::npos) << warnings[0];
  } else {
    EXPECT_TRUE(warnings.empty());
  }
}

TEST_P(TokenizerJson, EncodingIsTheSameOnAnyThreadCount) {
  const auto all = texts();
  std::vector<std::string> many;
  for (int k = 0; k < 8; ++k) many.insert(many.end(), all.begin(), all.end());
  PaddingOptions one{.num_threads = 1}, two{.num_threads = 2}, four{.num_threads = 4};
  const auto a = tok().encode_batch(many, one), b = tok().encode_batch(many, two), c = tok().encode_batch(many, four);
  EXPECT_EQ(a.input_ids, b.input_ids);
  EXPECT_EQ(a.input_ids, c.input_ids);
  EXPECT_EQ(a.attention_mask, c.attention_mask);
}

TEST_P(TokenizerJson, ArbitraryBytesNeverFailAndRoundTrip) {
  std::mt19937 rng(GetParam() == "qwen3" ? 11 : 12);
  for (int n = 0; n < 300; ++n) {
    std::string bytes(rng() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() % 4 == 0 ? 0x80 + rng() % 0x80 : rng() % 0x100);
    const Ids ids = tok().encode(bytes, {.add_bos = false, .add_eos = false});
    std::string want = unicode::repaired(bytes);
    if (GetParam() == "qwen3") unicode::to_nfc(std::string(want), want);
    // Added tokens never come from random bytes of this length, so the round trip is exact.
    EXPECT_EQ(tok().decode(ids, {.skip_special_tokens = false}), want);
  }
}

TEST_P(TokenizerJson, LongRunsOfOneKindFinishAndRoundTrip) {
  // One long pre-tokenizer piece each: white space (regex backtracking, the JIT stack), one
  // letter (BPE merges over 200,000 symbols), digits, newlines, CJK, punctuation.
  for (const std::string unit : {" ", "a", "7", "\n", "患", " \t\n", "!?", "ab"}) {
    std::string text;
    while (text.size() < 200000) text += unit;
    const Ids ids = tok().encode(text, {.add_bos = false, .add_eos = false});
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tok().decode(ids, {.skip_special_tokens = false}), text) << nlohmann::json(unit).dump();
  }
}

INSTANTIATE_TEST_SUITE_P(RealFiles, TokenizerJson, ::testing::Values("qwen3", "llama3"));

// --- TemplateProcessing, tokenizer_config.json rules, refusals -------------------------------

std::string shared_llama3_json() { return test::read_bytes(tokenizer_dir("llama3") / "tokenizer.json"); }

TEST(TokenizerJsonFile, TemplateProcessingAddsBosAsTokenizersDoes) {
  MASKGEN_REQUIRE_SHARED(tokenizer_dir("llama3") / "tokenizer.json");
  const auto f = test::read_json(test::data_dir() / "bpe" / "llama3_template_processing.json");
  auto j = nlohmann::json::parse(shared_llama3_json());
  j["post_processor"] = f["post_processor"];
  const AutoTokenizer tok(TokenizerJsonBackend::from_json(j.dump()));
  EXPECT_TRUE(tok.adds_bos_by_default());
  EXPECT_EQ(tok.bos_id(), 128000);
  for (std::size_t i = 0; i < f["texts"].size(); ++i) {
    const auto text = f["texts"][i].get<std::string>();
    EXPECT_EQ(tok.encode(text), f["ids_with_special"][i].get<Ids>()) << text;
    EXPECT_EQ(tok.encode(text, {.add_bos = false}), f["ids"][i].get<Ids>()) << text;
  }
}

TEST(TokenizerJsonFile, PostProcessorAloneDecidesWhatIsAddedAsInTransformers) {
  MASKGEN_REQUIRE_SHARED(tokenizer_dir("llama3") / "tokenizer.json");
  const auto f = test::read_json(test::data_dir() / "bpe" / "bpe_add_bos_rules.json");
  const auto base = nlohmann::json::parse(shared_llama3_json());
  const auto config = test::read_json(tokenizer_dir("llama3") / "tokenizer_config.json");
  int cases = 0;
  for (const auto& [name, c] : f.items()) {
    if (!c.is_object() || !c.contains("default")) continue;
    SCOPED_TRACE(name);
    auto j = base;
    if (c["template"].get<bool>()) j["post_processor"] = f["template_post_processor"];
    auto cfg = config;
    cfg.update(c["config"]);
    const AutoTokenizer tok(TokenizerJsonBackend::from_json(j.dump(), cfg.dump()));
    EXPECT_EQ(tok.encode(f["text"].get<std::string>()), c["default"].get<Ids>());
    EXPECT_EQ(tok.encode(f["text"].get<std::string>(), {.add_bos = false, .add_eos = false}), c["no_special"].get<Ids>());
    ++cases;
  }
  EXPECT_EQ(cases, 5);
}

TEST(TokenizerJsonFile, TokenizerConfigNamesTheSpecialTokens) {
  MASKGEN_REQUIRE_SHARED(tokenizer_dir("llama3") / "tokenizer.json");
  const std::string json = shared_llama3_json();
  const auto tok = AutoTokenizer(TokenizerJsonBackend::from_json(
      json, R"({"bos_token": {"content": "<|begin_of_text|>"}, "eos_token": "<|eot_id|>",
               "pad_token": "<|reserved_special_token_2|>"})"));
  EXPECT_EQ(tok.bos_id(), 128000);
  EXPECT_EQ(tok.eos_id(), 128009);
  EXPECT_EQ(tok.pad_id(), 128004);
  EXPECT_EQ(tok.encode("Hi"), (Ids{13347}));  // this file's post-processor adds nothing
  EXPECT_EQ(tok.encode("Hi", {.add_bos = true}), (Ids{128000, 13347}));
  test::expect_error<format_error>(
      [&] { (void)TokenizerJsonBackend::from_json(json, R"({"pad_token": "<|no such token|>"})", "t.json", "c.json"); },
      {"c.json", "pad_token", "<|no such token|>"});
  test::expect_error<format_error>([&] { (void)TokenizerJsonBackend::from_json(json, R"({"eos_token": 5})", "t.json", "c.json"); },
                                   {"c.json", "eos_token"});
}

// A small byte-level tokenizer.json written here: bytes a, b, c, space, their merges, added tokens.
nlohmann::json tiny_json() {
  auto j = nlohmann::json::parse(R"({
    "version": "1.0", "added_tokens": [
      {"id": 7, "content": "<s>", "special": true, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false},
      {"id": 8, "content": "hi", "special": false, "lstrip": true, "rstrip": true, "single_word": true, "normalized": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "post_processor": null, "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "byte_fallback": false, "ignore_merges": false,
              "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "abc": 5, "Ġa": 6},
              "merges": [["a", "b"], "ab c", "Ġ a"]}})");
  return j;
}

TEST(TokenizerJsonFile, MergesAddedTokensAndWhiteSpaceRules) {
  const AutoTokenizer tok(TokenizerJsonBackend::from_json(tiny_json().dump()));
  EXPECT_FALSE(tok.adds_bos_by_default());
  EXPECT_EQ(tok.encode("abc"), (Ids{5}));
  EXPECT_EQ(tok.encode("abab c"), (Ids{4, 4, 3, 2}));
  EXPECT_EQ(tok.encode(" a"), (Ids{6}));
  // "<s>" is cut out of the text first; "hi" only as a whole word, taking the spaces around it.
  EXPECT_EQ(tok.encode("a<s>b"), (Ids{0, 7, 1}));
  EXPECT_EQ(tok.encode("a hi b"), (Ids{0, 8, 1}));
  EXPECT_EQ(tok.encode("ahi"), Ids({0}));  // "h" and "i" are not in this vocabulary: dropped, as tokenizers does
  EXPECT_EQ(tok.decode(Ids{0, 7, 8, 3, 1}, {.skip_special_tokens = true}), "ahi b");
  EXPECT_EQ(tok.decode(Ids{0, 7, 8, 3, 1}, {.skip_special_tokens = false}), "a<s>hi b");
}

TEST(TokenizerJsonFile, RefusesWhatItDoesNotImplementByName) {
  auto refused = [](const std::function<void(nlohmann::json&)>& edit, std::initializer_list<std::string_view> words) {
    auto j = tiny_json();
    edit(j);
    test::expect_error<unsupported_error>([&] { (void)TokenizerJsonBackend::from_json(j.dump()); }, words);
  };
  refused([](auto& j) { j["model"]["type"] = "WordPiece"; }, {"model", "WordPiece"});
  refused([](auto& j) { j["model"]["type"] = "Unigram"; }, {"model", "Unigram"});
  refused([](auto& j) { j["model"]["byte_fallback"] = true; }, {"model", "byte_fallback"});
  refused([](auto& j) { j["model"]["dropout"] = 0.1; }, {"dropout"});
  refused([](auto& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, {"normalizer", "Lowercase"});
  refused([](auto& j) { j["normalizer"] = {{"type", "NFKC"}}; }, {"normalizer", "NFKC"});
  refused([](auto& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }, {"pre_tokenizer", "Metaspace"});
  refused([](auto& j) { j["pre_tokenizer"] = nullptr; }, {"pre_tokenizer"});
  refused([](auto& j) {
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "a"}}},
                                                                     {"behavior", "Removed"}}, {{"type", "ByteLevel"}}}}};
  }, {"Split", "Isolated"});
  refused([](auto& j) { j["decoder"] = {{"type", "WordPiece"}}; }, {"decoder", "WordPiece"});
  refused([](auto& j) { j["post_processor"] = {{"type", "BertProcessing"}}; }, {"post_processor", "BertProcessing"});
}

TEST(TokenizerJsonFile, CorruptFilesAreFormatErrors) {
  auto corrupt = [](const std::function<void(nlohmann::json&)>& edit, std::initializer_list<std::string_view> words) {
    auto j = tiny_json();
    edit(j);
    test::expect_error<format_error>([&] { (void)TokenizerJsonBackend::from_json(j.dump(), {}, "x/tokenizer.json"); }, words);
  };
  test::expect_error<format_error>([] { (void)TokenizerJsonBackend::from_json("{\"model\": ", {}, "x/tokenizer.json"); },
                                   {"x/tokenizer.json", "not valid JSON"});
  corrupt([](auto& j) { j.erase("model"); }, {"model"});
  corrupt([](auto& j) { j["model"]["vocab"]["z"] = 2000000000; }, {"2000000000", "without gaps"});  // no huge allocation
  corrupt([](auto& j) { j["model"]["vocab"]["z"] = -1; }, {"vocab", "-1"});
  corrupt([](auto& j) { j["model"]["vocab"]["z"] = 2; }, {"id 2 twice"});
  corrupt([](auto& j) { j["model"]["merges"].push_back("a b c"); }, {"merge 3", "not two tokens"});
  corrupt([](auto& j) { j["model"]["merges"].push_back("c c"); }, {"merge 3", "not in the vocabulary"});
  corrupt([](auto& j) { j["added_tokens"][0]["id"] = "7"; }, {"added token"});
  corrupt([](auto& j) {
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}},
                                                                     {"behavior", "Isolated"}}, {{"type", "ByteLevel"}}}}};
  }, {"(unclosed", "does not compile"});
  test::expect_error<io_error>([] { (void)TokenizerJsonBackend::from_file("/nonexistent/tokenizer.json"); },
                               {"/nonexistent/tokenizer.json"});
}

// A small SentencePiece-style tokenizer.json written here (Llama 2's components): <unk> <s> </s>,
// the 256 byte pieces <0x00>..<0xFF> (ids 3..258), then ▁ a b ▁a ab ▁ab 𠀀 (259..265).
nlohmann::json tiny_sp_json() {
  auto j = nlohmann::json::parse(R"({
    "version": "1.0", "added_tokens": [
      {"id": 0, "content": "<unk>", "special": true, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false},
      {"id": 1, "content": "<s>", "special": true, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false},
      {"id": 2, "content": "</s>", "special": true, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                {"Sequence": {"id": "A", "type_id": 0}}],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                  {"type": "ByteFallback"}, {"type": "Fuse"},
                                                  {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
              "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2}, "merges": ["▁ a", ["a", "b"], "▁a b"]}})");
  auto& vocab = j["model"]["vocab"];
  for (int b = 0; b < 256; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof piece, "<0x%02X>", b);
    vocab[piece] = 3 + b;
  }
  int id = 259;
  for (const char* piece : {"▁", "a", "b", "▁a", "ab", "▁ab", "𠀀"}) vocab[piece] = id++;
  return j;
}

TEST(TokenizerJsonFile, SentencePieceStyleByHand) {
  const AutoTokenizer tok(TokenizerJsonBackend::from_json(tiny_sp_json().dump()));
  EXPECT_FALSE(tok.backend().tokenizer_json()->byte_level());
  EXPECT_EQ(tok.vocab_size(), 266);
  // "ab" is normalized to "▁ab": ▁ a b, then "▁ a" (rank 0) and "▁a b" (rank 2).
  EXPECT_EQ(tok.encode("ab"), (Ids{1, 264}));
  EXPECT_EQ(tok.encode("ab ab", {.add_bos = false}), (Ids{264, 264}));
  // "c" has no piece: its byte 0x63 is <0x63>, id 3 + 0x63; "é" is two bytes C3 A9.
  EXPECT_EQ(tok.encode("c", {.add_bos = false}), (Ids{259, 3 + 0x63}));
  EXPECT_EQ(tok.encode("é", {.add_bos = false}), (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok.encode("𠀀", {.add_bos = false}), (Ids{259, 265}));  // a piece: no fallback
  // Each piece between added tokens is normalized alone: "▁" comes back after <s>.
  EXPECT_EQ(tok.encode("<s>ab", {.add_bos = false}), (Ids{1, 264}));
  // Decoding: ▁ becomes a space, byte pieces join into their character, the first space goes.
  EXPECT_EQ(tok.decode(Ids{259, 3 + 0x63}), "c");
  EXPECT_EQ(tok.decode(Ids{264, 259, 3 + 0xC3, 3 + 0xA9}), "ab é");
  EXPECT_EQ(tok.decode(Ids{1, 264}, {.skip_special_tokens = false}), "<s> ab");
  // A run of byte pieces that is not UTF-8 as a whole: one U+FFFD per piece (tokenizers' rule).
  EXPECT_EQ(tok.decode(Ids{3 + 0xC3, 3 + 0xA9, 3 + 0xC3, 260}), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "a");
  EXPECT_EQ(tok.id_to_piece(262), "▁a");
  EXPECT_EQ(tok.piece_to_id("<0x41>"), 3 + 0x41);
  // Without byte fallback: the unknown token, fused over a run of unknown characters, or not.
  auto j = tiny_sp_json();
  j["model"]["byte_fallback"] = false;
  EXPECT_EQ(AutoTokenizer(TokenizerJsonBackend::from_json(j.dump())).encode("cd", {.add_bos = false}), (Ids{259, 0}));
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(AutoTokenizer(TokenizerJsonBackend::from_json(j.dump())).encode("cd", {.add_bos = false}), (Ids{259, 0, 0}));
}

TEST(TokenizerJsonFile, ScannerAndDocumentReadTheSameTables) {
  // The vocabulary and merges are read by a scanner of their own; the same file written with
  // every character escaped (surrogate pairs for 𠀀), indented, or with the tables in the other
  // order must give the same tokenizer.
  const auto j = tiny_sp_json();
  const std::vector<std::string> texts = {"ab ab", "c é 𠀀 x", "<s>a</s>b", ""};
  const AutoTokenizer plain(TokenizerJsonBackend::from_json(j.dump()));
  // nlohmann_json writes keys sorted, "merges" before "vocab"; the real files have vocab first.
  for (const std::string& text : {j.dump(-1, ' ', true), j.dump(2)}) {
    const AutoTokenizer tok(TokenizerJsonBackend::from_json(text));
    for (const auto& t : texts) EXPECT_EQ(tok.encode(t), plain.encode(t)) << t;
    EXPECT_EQ(tok.vocab_size(), plain.vocab_size());
  }
  auto model = nlohmann::ordered_json::parse(j["model"].dump());
  nlohmann::ordered_json model_vocab_first;
  model_vocab_first["vocab"] = model["vocab"];
  for (const auto& [key, value] : model.items()) {
    if (key != "vocab") model_vocab_first[key] = value;
  }
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(j.dump());
  doc["model"] = model_vocab_first;
  const AutoTokenizer tok(TokenizerJsonBackend::from_json(doc.dump()));
  for (const auto& t : texts) EXPECT_EQ(tok.encode(t), plain.encode(t)) << t;
}

TEST(TokenizerJsonFile, HostileSentencePieceStyleFilesAreTypedErrors) {
  const auto check = [](auto error, const std::function<void(nlohmann::json&)>& edit,
                        std::initializer_list<std::string_view> words) {
    auto j = tiny_sp_json();
    edit(j);
    test::expect_error<decltype(error)>([&] { (void)TokenizerJsonBackend::from_json(j.dump(), {}, "x/tokenizer.json"); }, words);
  };
  const format_error bad("");
  const unsupported_error refused("");
  // byte_fallback without all 256 byte pieces
  check(bad, [](auto& j) {
    auto& v = j["model"]["vocab"];
    v["<0x41>x"] = v["<0x41>"];
    v.erase("<0x41>");
  }, {"x/tokenizer.json", "byte_fallback", "<0x41>"});
  // pieces the ByteFallback decoder reads as a byte, but not written as byte fallback writes them
  check(bad, [](auto& j) { j["model"]["vocab"]["<0x0a>"] = 266; }, {"model.vocab", "<0x0a>", "<0x0A>"});
  check(bad, [](auto& j) { j["model"]["vocab"]["<0x+A>"] = 266; }, {"model.vocab", "<0x+A>"});
  // huge claims: ids past the file, an id past int32, a Strip count below zero
  check(bad, [](auto& j) { j["model"]["vocab"]["z"] = 2000000000; }, {"2000000000", "without gaps"});
  check(bad, [](auto& j) { j["model"]["vocab"]["z"] = 99999999999; }, {"model.vocab", "99999999999"});
  check(bad, [](auto& j) { j["decoder"]["decoders"][3]["start"] = -1; }, {"decoder Strip.start"});
  // an added token whose id is not the one tokenizers gives it
  check(bad, [](auto& j) { j["added_tokens"][1]["id"] = 5; }, {"added_tokens", "<s>", "tokenizers gives it 1"});
  // Metaspace's one-character fields and scheme
  check(bad, [](auto& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "ab"}}; },
        {"pre_tokenizer Metaspace.replacement", "one character"});
  check(bad, [](auto& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"prepend_scheme", "sometimes"}}; },
        {"prepend_scheme", "sometimes"});
  // components and combinations maskgen does not implement
  check(refused, [](auto& j) { j["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", " +"}}; }, {"normalizer Replace"});
  check(refused, [](auto& j) { j["normalizer"]["normalizers"][1]["pattern"] = {{"String", ""}}; }, {"normalizer Replace", "empty"});
  check(refused, [](auto& j) { j["normalizer"] = {{"type", "Precompiled"}}; }, {"normalizer", "Precompiled"});
  check(refused, [](auto& j) { j["decoder"] = nullptr; }, {"decoder"});
  check(refused, [](auto& j) { j["decoder"] = {{"type", "ByteLevel"}}; }, {"pre_tokenizer", "ByteLevel decoder"});
  check(refused, [](auto& j) { j["decoder"]["decoders"][1] = {{"type", "CTC"}}; }, {"decoder", "CTC"});
  check(refused, [](auto& j) {
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Contiguous"}};
  }, {"pre_tokenizer Split", "Contiguous"});
  check(refused, [](auto& j) { j["pre_tokenizer"] = {{"type", "ByteLevel"}}; }, {"decoder", "ByteLevel"});
  // malformed text inside the tables (read by the scanner): the document's errors
  const std::string text = tiny_sp_json().dump();
  const auto corrupt = [&](std::string_view from, std::string_view to, std::initializer_list<std::string_view> words) {
    std::string t = text;
    const auto at = t.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    t.replace(at, from.size(), to);
    test::expect_error<format_error>([&] { (void)TokenizerJsonBackend::from_json(t, {}, "x/tokenizer.json"); }, words);
  };
  corrupt("\"ab\":263", "\"a\\xb\":263", {"x/tokenizer.json", "not valid JSON"});
  corrupt("\"ab\":263", "\"\\ud800\":263", {"x/tokenizer.json", "not valid JSON"});
  corrupt("\"ab\":263", "\"ab\":263.0", {"model.vocab", "263.0"});
  corrupt("\"ab\":263", "\"a\":263", {"model.vocab", "twice"});  // a key given twice (the document keeps one)
  corrupt("\"▁a b\"", "\"▁a  b\"", {"merge 2", "not two tokens"});
  test::expect_error<format_error>([&] { (void)TokenizerJsonBackend::from_json(text.substr(0, text.size() / 2), {}, "x/tokenizer.json"); },
                                   {"x/tokenizer.json", "not valid JSON"});
  // A huge Strip count only bounds a loop (tokenizers itself would panic on a stop past the text).
  auto j = tiny_sp_json();
  j["decoder"]["decoders"][3]["start"] = 1000000000000;
  j["decoder"]["decoders"][3]["stop"] = 1000000000000;
  const AutoTokenizer tok(TokenizerJsonBackend::from_json(j.dump()));
  EXPECT_EQ(tok.decode(Ids{259, 259, 264, 259}), "ab");
  EXPECT_EQ(tok.decode(Ids{259}), "");
}

TEST(LoadTokenizer, PrefersASentencePieceStyleTokenizerJsonToTokenizerModel) {
  MASKGEN_REQUIRE_SHARED(test::shared_dir() / "tokenizers/llama2/tokenizer.model");
  MASKGEN_REQUIRE_SHARED(test::shared_dir() / "tokenizers/llama2-json/tokenizer.json");
  test::TempDir dir;
  std::filesystem::copy_file(test::shared_dir() / "tokenizers/llama2/tokenizer.model", dir.path() / "tokenizer.model");
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::copy_file(test::shared_dir() / "tokenizers/llama2-json" / name, dir.path() / name);
  }
  const auto tok = load_tokenizer(dir.path());
  EXPECT_EQ(tok.backend().kind(), "tokenizer.json");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_TRUE(tok.adds_bos_by_default());
}

TEST(LoadTokenizer, PrefersTokenizerJsonAndFallsBackToTokenizerModel) {
  MASKGEN_REQUIRE_SHARED(test::shared_dir() / "models/stories260K/tokenizer.model");
  test::TempDir dir;
  std::filesystem::copy_file(test::shared_dir() / "models/stories260K/tokenizer.model", dir.path() / "tokenizer.model");
  EXPECT_EQ(load_tokenizer(dir.path()).backend().kind(), "tokenizer.model");
  auto j = tiny_json();
  { std::ofstream(dir.path() / "tokenizer.json") << j.dump(); }
  EXPECT_EQ(load_tokenizer(dir.path()).backend().kind(), "tokenizer.json");
  // A tokenizer.json with a component maskgen does not implement: tokenizer.model, with a warning.
  j["normalizer"] = {{"type", "Lowercase"}};
  { std::ofstream(dir.path() / "tokenizer.json") << j.dump(); }
  std::vector<std::string> warnings;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::Warning) warnings.emplace_back(m);
  });
  EXPECT_EQ(load_tokenizer(dir.path()).backend().kind(), "tokenizer.model");
  set_log_sink({});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("Lowercase"), std::string::npos);
  std::filesystem::remove(dir.path() / "tokenizer.model");
  EXPECT_THROW((void)load_tokenizer(dir.path()), unsupported_error);
  std::filesystem::remove(dir.path() / "tokenizer.json");
  test::expect_error<io_error>([&] { (void)load_tokenizer(dir.path()); }, {"tokenizer.json", "tokenizer.model"});
}

TEST(LoadTokenizer, SentencePieceStreamsToo) {
  MASKGEN_REQUIRE_SHARED(test::shared_dir() / "tokenizers/llama2/tokenizer.model");
  test::TempDir dir;
  std::filesystem::copy_file(test::shared_dir() / "tokenizers/llama2/tokenizer.model", dir.path() / "tokenizer.model");
  const auto tok = load_tokenizer(dir.path());
  for (const std::string text : {"Hello world, 患者主诉头痛 😀👍🏽 done", "  two  spaces", "東京"}) {
    const Ids ids = tok.encode(text);
    DecodeStream stream(tok);
    std::string joined;
    for (const auto id : ids) {
      const std::string piece = stream.put(id);
      EXPECT_TRUE(unicode::is_valid_utf8(piece));
      EXPECT_EQ(piece.find(unicode::replacement_character), std::string::npos) << text;
      joined += piece;
    }
    EXPECT_EQ(joined + stream.finish(), tok.decode(ids)) << text;
  }
}

// A U+FFFD in the text itself (here from an invalid byte) followed by a character spelled in
// byte-fallback pieces: the stream used to treat the U+FFFD as an unfinished character, give up
// after 4 pieces and emit the half-spelled one as U+FFFDs (found by tests/fuzz/tokenizer_encode).
TEST(LoadTokenizer, SentencePieceStreamsPastARealReplacementCharacter) {
  MASKGEN_REQUIRE_SHARED(test::shared_dir() / "tokenizers/llama2/tokenizer.model");
  const auto tok = load_tokenizer(test::shared_dir() / "tokenizers/llama2");
  for (const std::string text : {"\x8f\xf0\x9f\x8f\xbd", "a\xff\xfe\xf0\x9f\x98\x80 \xe6\x82\xa3\xff\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd"}) {
    const Ids ids = tok.encode(text, {.add_bos = false});
    DecodeStream stream(tok, {.skip_special_tokens = false});
    std::string joined;
    for (const auto id : ids) joined += stream.put(id);
    EXPECT_EQ(joined + stream.finish(), tok.decode(ids, {.skip_special_tokens = false}));
  }
}

// --- Qwen3 end to end: text -> left-padded batch -> generate() -> text, against transformers ----

class Qwen3Pipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    MASKGEN_REQUIRE_SHARED(tokenizer_dir("qwen3") / "tokenizer.json");
    ref_ = test::read_json(test::data_dir() / "reference" / "qwen3_vocab.json");
  }
  template <class Scalar>
  void run() {
    const auto& tok = loaded("qwen3");
    const auto prompts = ref_["prompts"].get<std::vector<std::string>>();
    const auto batch = tok.encode_batch(prompts, {.padding_side = Side::Left});
    ASSERT_EQ(batch.input_ids, test::to_matrix(ref_["input_ids"]));
    ASSERT_EQ(batch.attention_mask, test::to_matrix(ref_["attention_mask"]));
    const auto model = Model<Scalar>::load(test::data_dir() / "models" / "qwen3_vocab");
    GenerationConfig gen{.max_new_tokens = ref_["max_new_tokens"].get<int>()};
    gen.pad_token_id = tok.resolve_pad_id(std::nullopt);  // <|endoftext|>, from tokenizer_config.json
    gen.eos_token_id = ref_["eos_token_id"].get<std::vector<std::int32_t>>();
    EXPECT_EQ(gen.pad_token_id, ref_["pad_token_id"].get<std::int32_t>());
    const auto out = generate(model, batch.input_ids, batch.attention_mask, gen);
    const auto& oracle = ref_["greedy"]["sequences"];
    for (std::size_t r = 0; r < oracle.size(); ++r) {
      Ids ours;
      for (Eigen::Index c = 0; c < out.sequences.cols(); ++c) ours.push_back(out.sequences(static_cast<Eigen::Index>(r), c));
      if constexpr (std::is_same_v<Scalar, double>) {
        EXPECT_EQ(ours, oracle[r].get<Ids>()) << "row " << r;
      } else {  // float32 may only differ at a near tie of the float64 oracle
        const Ids want = oracle[r].get<Ids>();
        for (std::size_t t = 0; t < want.size(); ++t) {
          if (ours[t] != want[t]) {
            EXPECT_LT(ref_["greedy"]["scores_top2_margin"][r][t].get<double>(), 1e-3) << "row " << r << " step " << t;
            break;
          }
        }
      }
    }
    if constexpr (std::is_same_v<Scalar, double>) {
      EXPECT_EQ(tok.decode_batch(out.sequences, out.sequences_mask()), ref_["decoded"].get<std::vector<std::string>>());
      EXPECT_EQ(tok.decode_batch(out.sequences, out.sequences_mask(), {.skip_special_tokens = false}),
                ref_["decoded_keep_special"].get<std::vector<std::string>>());
    }
  }
  nlohmann::json ref_;
};

TEST_F(Qwen3Pipeline, EqualsTransformersInDouble) { run<double>(); }
TEST_F(Qwen3Pipeline, EqualsTransformersInFloat) { run<float>(); }

}  // namespace
}  // namespace maskgen

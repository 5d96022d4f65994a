// DecodeStream in the context of a prefix, and ids without a piece, on both backends: the
// SentencePiece tokenizer.model of stories260K and Llama 2, and the byte-level tokenizer.json of
// Qwen3 and Llama 3. The reference is the library's own whole-sequence decode(), which the fixture
// suites tie to SentencePiece and Hugging Face tokenizers:
//   decode(prefix) + put()s + finish() == decode(prefix + ids), every piece valid UTF-8.

#include <maskgen/tokenizer.hpp>

#include <map>
#include <random>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

using Ids = std::vector<std::int32_t>;

std::filesystem::path tokenizer_dir(const std::string& name) {
  return name == "stories260K" ? test::shared_dir() / "models/stories260K" : test::shared_dir() / "tokenizers" / name;
}

std::filesystem::path tokenizer_file(const std::string& name) {
  const auto dir = tokenizer_dir(name);
  return std::filesystem::exists(dir / "tokenizer.json") ? dir / "tokenizer.json" : dir / "tokenizer.model";
}

Ids joined(Ids a, const Ids& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Warnings through maskgen's logger while it lives.
class Warnings {
 public:
  Warnings() {
    set_log_sink([this](LogLevel level, std::string_view m) {
      if (level == LogLevel::Warning) messages.emplace_back(m);
    });
  }
  ~Warnings() { set_log_sink(nullptr); }
  std::vector<std::string> messages;
};

class StreamOn : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    MASKGEN_REQUIRE_SHARED(tokenizer_file(GetParam()));
    static std::map<std::string, AutoTokenizer> loaded;  // loading Qwen3's takes a second
    tok_ = &loaded.try_emplace(GetParam(), load_tokenizer(tokenizer_dir(GetParam()))).first->second;
  }
  const AutoTokenizer& tok() const { return *tok_; }
  bool byte_level() const { return tok().backend().kind() == "tokenizer.json"; }

  // The pieces a stream that continues `prefix` gives for `ids`, each checked to be valid UTF-8,
  // joined.
  std::string streamed(const Ids& prefix, const Ids& ids, DecodeOptions options) const {
    DecodeStream stream(tok(), prefix, options);
    std::string text;
    for (const std::int32_t id : ids) {
      const std::string piece = stream.put(id);
      EXPECT_TRUE(unicode::is_valid_utf8(piece)) << nlohmann::json(piece).dump();
      text += piece;
    }
    const std::string rest = stream.finish();
    EXPECT_TRUE(unicode::is_valid_utf8(rest));
    return text + rest;
  }

  void expect_continues(const Ids& prefix, const Ids& ids) const {
    for (const bool skip : {true, false}) {
      const DecodeOptions options{.skip_special_tokens = skip};
      SCOPED_TRACE(::testing::Message() << "skip_special_tokens " << skip << ", prefix "
                                        << nlohmann::json(prefix).dump().substr(0, 200) << ", ids "
                                        << nlohmann::json(ids).dump().substr(0, 200));
      EXPECT_EQ(tok().decode(prefix, options) + streamed(prefix, ids, options), tok().decode(joined(prefix, ids), options));
    }
  }

  // Ids that spell `text`'s bytes one token each: byte-fallback pieces (<0xE4>) in SentencePiece,
  // single-byte tokens in a byte-level BPE.
  Ids byte_ids(std::string_view text) const {
    Ids ids;
    for (const char c : text) {
      std::string piece;
      if (byte_level()) {
        piece = byte_level::to_chars(std::string(1, c));
      } else {
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", static_cast<unsigned char>(c));
        piece = hex;
      }
      const auto id = tok().piece_to_id(piece);
      EXPECT_TRUE(id.has_value()) << piece;
      if (id) ids.push_back(*id);
    }
    return ids;
  }

  const AutoTokenizer* tok_ = nullptr;
};

const std::vector<std::string>& prompts() {
  static const std::vector<std::string> p = {"The dog", "Once upon a time", "患者主诉头痛", "x", " two  spaces ",
                                              "emoji 😀", "Hello\n"};
  return p;
}

const std::vector<std::string>& continuations() {
  static const std::vector<std::string> c = {" was a big dog.", "was", "，伴有发热和咳嗽。", " 😀👍🏽 done", "\n\nNew line",
                                              "  spaced", "東京", ",", "a"};
  return c;
}

TEST_P(StreamOn, ContinuesAPromptAsTheWholeDecodes) {
  const auto bos = tok().bos_id(), eos = tok().eos_id();
  const std::int32_t size = tok().vocab_size();
  for (const auto& prompt : prompts()) {
    const Ids prefix = tok().encode(prompt);
    for (const auto& continuation : continuations()) {
      const Ids ids = tok().encode(continuation, {.add_bos = false, .add_eos = false});
      expect_continues(prefix, ids);
      // The same with special ids, ids beyond the tokenizer's size, and characters spelled byte by
      // byte in between.
      Ids mixed = ids;
      if (eos) mixed.insert(mixed.begin() + static_cast<std::ptrdiff_t>(mixed.size() / 2), *eos);
      if (bos) mixed.insert(mixed.begin(), *bos);
      mixed.push_back(size);
      mixed.insert(mixed.begin() + static_cast<std::ptrdiff_t>(mixed.size() / 3), size + 267);
      const Ids spelled = byte_ids("患😀");
      mixed.insert(mixed.end(), spelled.begin(), spelled.end());
      mixed.insert(mixed.end() - 2, size + 1);  // inside the emoji's bytes: it is not there
      expect_continues(prefix, mixed);
      expect_continues(prefix, spelled);
    }
    expect_continues(prefix, {});
  }
  expect_continues({}, tok().encode("Once upon a time"));
}

TEST_P(StreamOn, ContinuesRandomIds) {
  // Random ids, a fifth of them byte pieces or beyond the tokenizer's size, after random prefixes
  // that end on a whole character (the ids of "x").
  const std::int32_t size = tok().vocab_size();
  const Ids x = tok().encode("x", {.add_bos = false, .add_eos = false});
  const Ids bytes = byte_ids("\xE4\xB8\xAD\xF0\x9F\x98\x80\xC3\xA9\x80\xFF");
  std::mt19937 rng(7);
  auto random_ids = [&](std::size_t n) {
    Ids ids;
    for (std::size_t i = 0; i < n; ++i) {
      const int kind = static_cast<int>(rng() % 10);
      if (kind == 0) ids.push_back(size + static_cast<std::int32_t>(rng() % 1000));
      else if (kind == 1) ids.push_back(bytes[rng() % bytes.size()]);
      else ids.push_back(static_cast<std::int32_t>(rng() % static_cast<std::uint32_t>(size)));
    }
    return ids;
  };
  for (int trial = 0; trial < 150; ++trial) {
    expect_continues(joined(random_ids(rng() % 6), x), random_ids(1 + rng() % 24));
  }
}

TEST_P(StreamOn, CharactersSplitAcrossTokensComeOutWhole) {
  const Ids prefix = tok().encode("The dog");
  const Ids spelled = byte_ids("中");  // three ids, one byte each
  ASSERT_EQ(spelled.size(), 3u);
  DecodeStream stream(tok(), prefix);
  EXPECT_EQ(stream.put(spelled[0]), "");
  EXPECT_EQ(stream.put(spelled[1]), "");
  EXPECT_EQ(stream.put(spelled[2]), "中");
  EXPECT_EQ(stream.finish(), "");
  // A prefix that ends inside a character: the character comes out whole with the id that ends it.
  DecodeStream cut(tok(), joined(prefix, {spelled[0], spelled[1]}));
  EXPECT_EQ(cut.put(spelled[2]), "中");
  // An unfinished character at the end becomes U+FFFD in finish(), as in decode().
  DecodeStream unfinished(tok(), prefix);
  EXPECT_EQ(unfinished.put(spelled[0]), "");
  EXPECT_EQ(unfinished.finish(), unicode::replacement_character);
}

TEST_P(StreamOn, IdsWithoutAPieceDecodeToNothingAndAreLoggedOnce) {
  Warnings warnings;
  const AutoTokenizer tok = load_tokenizer(tokenizer_dir(GetParam()));  // a tokenizer that has not warned yet
  const std::int32_t size = tok.vocab_size();
  const Ids text = tok.encode("Once upon a time", {.add_bos = false});
  Ids with = text;
  with.insert(with.begin() + 1, size);
  with.push_back(size + 213);
  with.push_back(std::numeric_limits<std::int32_t>::max());
  EXPECT_EQ(tok.decode(with), tok.decode(text));
  EXPECT_EQ(tok.decode(with, {.skip_special_tokens = false}), tok.decode(text, {.skip_special_tokens = false}));
  EXPECT_EQ(tok.decode(Ids{size}), "");
  // A row holding such an id keeps the rest of its text, and the other rows theirs.
  TokenMatrix ids = TokenMatrix::Constant(2, static_cast<Eigen::Index>(with.size()), size + 5);
  for (std::size_t j = 0; j < with.size(); ++j) ids(0, static_cast<Eigen::Index>(j)) = with[j];
  for (std::size_t j = 0; j < text.size(); ++j) ids(1, static_cast<Eigen::Index>(j)) = text[j];
  const auto texts = tok.decode_batch(ids);
  EXPECT_EQ(texts, (std::vector<std::string>{tok.decode(text), tok.decode(text)}));
  DecodeStream stream(tok, Ids{size, size + 1});
  EXPECT_EQ(stream.put(size + 2), "");
  ASSERT_EQ(warnings.messages.size(), 1u);  // once per tokenizer
  EXPECT_NE(warnings.messages[0].find(std::to_string(size)), std::string::npos) << warnings.messages[0];
  EXPECT_NE(warnings.messages[0].find("decode to nothing"), std::string::npos) << warnings.messages[0];
  // Negative ids are still refused, naming where.
  test::expect_error<argument_error>([&] { (void)tok.decode(Ids{5, -1}); }, {"ids[1] is -1"});
  test::expect_error<argument_error>([&] { (void)stream.put(-3); }, {"DecodeStream::put", "-3"});
  test::expect_error<argument_error>([&] { DecodeStream bad(tok, Ids{4, -2}); }, {"prefix[1] is -2"});
  ids(1, 0) = -7;
  test::expect_error<argument_error>([&] { (void)tok.decode_batch(ids); }, {"ids[1, 0] is -7"});
}

INSTANTIATE_TEST_SUITE_P(BothBackends, StreamOn, ::testing::Values("stories260K", "llama2", "qwen3", "llama3"));

// Hand-written: what the leading space of a SentencePiece continuation is.
TEST(DecodeStreamSentencePiece, KeepsTheLeadingSpaceAfterThePrompt) {
  MASKGEN_REQUIRE_SHARED(tokenizer_file("stories260K"));
  const auto tok = load_tokenizer(tokenizer_dir("stories260K"));
  const Ids prompt = tok.encode("The dog");
  const auto was = tok.piece_to_id("\xE2\x96\x81was");  // "▁was"
  ASSERT_TRUE(was.has_value());
  EXPECT_EQ(tok.decode(prompt), "The dog");
  EXPECT_EQ(DecodeStream(tok, prompt).put(*was), " was");
  EXPECT_EQ(DecodeStream(tok).put(*was), "was");  // with nothing before it, a text's first piece loses it
  const Ids big = tok.encode(" was a big", {.add_bos = false});
  DecodeStream stream(tok, prompt);
  std::string text;
  for (const auto id : big) text += stream.put(id);
  EXPECT_EQ(text + stream.finish(), " was a big");
  // After a prompt that is only BOS there is nothing to follow: the first piece loses its space.
  EXPECT_EQ(DecodeStream(tok, Ids{*tok.bos_id()}).put(*was), "was");
  // A lone "▁" piece (a space) after the prompt, then a word.
  const auto space = tok.piece_to_id("\xE2\x96\x81");
  if (space) {
    DecodeStream spaced(tok, prompt);
    EXPECT_EQ(spaced.put(*space), " ");
    EXPECT_EQ(spaced.put(*was), " was");
  }
}

TEST(DecodeStreamByteLevel, QwenTextAfterThePrompt) {
  MASKGEN_REQUIRE_SHARED(tokenizer_file("qwen3"));
  const auto tok = load_tokenizer(tokenizer_dir("qwen3"));
  const Ids prompt = tok.encode("The capital of France is");
  const Ids paris = tok.encode(" Paris.", {.add_bos = false});
  DecodeStream stream(tok, prompt);
  std::string text;
  for (const auto id : paris) text += stream.put(id);
  EXPECT_EQ(text + stream.finish(), " Paris.");
  // <|im_end|> is special: skipped by default, kept as its content when asked.
  const Ids im_end{*tok.piece_to_id("<|im_end|>")};
  EXPECT_EQ(DecodeStream(tok, prompt).put(im_end[0]), "");
  EXPECT_EQ(DecodeStream(tok, prompt, {.skip_special_tokens = false}).put(im_end[0]), "<|im_end|>");
}

}  // namespace
}  // namespace maskgen

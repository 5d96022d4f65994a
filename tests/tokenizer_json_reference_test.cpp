// The tokenizer.json backend against Hugging Face tokenizers 0.22 (through the npm package
// @anush008/tokenizers; tests/reference/make_json_node_fixtures.js wrote tests/data/bpe/json_*.json)
// on four real files and on variants of one of them:
//   llama2       ../shared/tokenizers/llama2-json: SentencePiece-style BPE with byte fallback,
//                Prepend("▁") + Replace(" ", "▁"), the Replace/ByteFallback/Fuse/Strip decoder.
//                (Its vocabulary is Mistral 7B's, "▁" = 28705, not that of
//                ../shared/tokenizers/llama2/tokenizer.model, "▁" = 29871.)
//   gemma3       Gemma 3 (262,144 pieces, 514,906 merges, 6,415 added tokens): Replace(" ", "▁"),
//                Split(" ", MergedWithPrevious), byte fallback, "\n" runs as added tokens
//   gptoss       gpt-oss (o200k): byte-level, one Split regex, ignore_merges
//   deepseek_v3  DeepSeek V3: byte-level, three Split regexes
//   llama2_*     llama2 with Metaspace (prepend_scheme first / always / never, split or not, its
//                decoder), Split MergedWithPrevious / MergedWithNext, or added tokens with
//                every flag (lstrip, rstrip, single_word, normalized, special or not)
// The tarballs of ../shared are extracted into the build folder at configure time
// (cmake/SharedTokenizers.cmake). Each fixture: ids with and without the post-processor's
// special tokens, decode with and without skip_special_tokens, and decoding random id sequences
// and runs of <0xHH> byte pieces; the streaming decoder's joined text must equal decode.

#include <maskgen/maskgen.hpp>

#include <map>
#include <mutex>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

using Ids = std::vector<std::int32_t>;

std::filesystem::path folder(const std::string& name) {
  if (name == "llama2") return test::shared_dir() / "tokenizers" / "llama2-json";
  return std::filesystem::path(MASKGEN_EXTRACTED_TOKENIZERS_DIR) / name;
}

// The tokenizer.json a fixture was made from; a variant names the real file it edits.
std::filesystem::path base_file(const std::string& fixture) {
  return folder(fixture.starts_with("llama2") ? "llama2" : fixture) / "tokenizer.json";
}

nlohmann::json fixture(const std::string& name) {
  return test::read_json(test::data_dir() / "bpe" / ("json_" + name + ".json"));
}

// Loaded once per fixture: a real file through load_tokenizer (its folder), a variant from
// llama2's tokenizer.json with the fixture's edit applied.
const AutoTokenizer& loaded(const std::string& name, const nlohmann::json& f) {
  static std::map<std::string, AutoTokenizer> cache;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  auto it = cache.find(name);
  if (it == cache.end()) {
    if (f.contains("edit")) {
      auto j = nlohmann::json::parse(test::read_bytes(base_file(name)));
      for (const auto& [key, value] : f["edit"].items()) j[key] = value;
      it = cache.emplace(name, AutoTokenizer(TokenizerJsonBackend::from_json(j.dump()))).first;
    } else {
      it = cache.emplace(name, load_tokenizer(folder(name))).first;
    }
  }
  return it->second;
}

class JsonReference : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    MASKGEN_REQUIRE_SHARED(base_file(GetParam()));
    f_ = fixture(GetParam());
  }
  const AutoTokenizer& tok() const { return loaded(GetParam(), f_); }
  nlohmann::json f_;
};

TEST_P(JsonReference, LoadsAsTokenizersDoes) {
  EXPECT_EQ(tok().backend().kind(), "tokenizer.json");
  EXPECT_EQ(tok().vocab_size(), f_["vocab_size_with_added"].get<std::int32_t>());
  const bool byte_level = GetParam() == "gptoss" || GetParam() == "deepseek_v3";
  EXPECT_EQ(tok().backend().tokenizer_json()->byte_level(), byte_level);
}

TEST_P(JsonReference, IdsEqualTokenizers) {
  const auto& texts = f_["texts"];
  ASSERT_GE(texts.size(), 250u);
  int wrong = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto text = texts[i].get<std::string>();
    const Ids plain = tok().encode(text, {.add_bos = false, .add_eos = false});
    const Ids with_special = tok().encode(text);  // the post-processor's defaults (BOS for Llama 2, Gemma 3)
    if ((plain != f_["ids"][i].get<Ids>() || with_special != f_["ids_with_special"][i].get<Ids>()) && ++wrong <= 5) {
      ADD_FAILURE() << "text " << i << " " << nlohmann::json(text).dump().substr(0, 300) << "\n  ours "
                    << nlohmann::json(with_special).dump().substr(0, 400) << "\n  want "
                    << f_["ids_with_special"][i].dump().substr(0, 400);
    }
  }
  EXPECT_EQ(wrong, 0);
}

TEST_P(JsonReference, DecodeEqualsTokenizers) {
  int wrong = 0;
  const auto check = [&](const Ids& ids, const std::string& skip, const std::string& keep) {
    const std::string ours_skip = tok().decode(ids, {.skip_special_tokens = true});
    const std::string ours_keep = tok().decode(ids, {.skip_special_tokens = false});
    if ((ours_skip != skip || ours_keep != keep) && ++wrong <= 5) {
      ADD_FAILURE() << nlohmann::json(ids).dump().substr(0, 200) << "\n  ours " << nlohmann::json(ours_keep).dump().substr(0, 300)
                    << " / " << nlohmann::json(ours_skip).dump().substr(0, 300) << "\n  want "
                    << nlohmann::json(keep).dump().substr(0, 300) << " / " << nlohmann::json(skip).dump().substr(0, 300);
    }
  };
  for (std::size_t i = 0; i < f_["texts"].size(); ++i) {
    check(f_["ids_with_special"][i].get<Ids>(), f_["decoded_skip"][i].get<std::string>(), f_["decoded_keep"][i].get<std::string>());
  }
  ASSERT_GE(f_["decode"].size(), 30u);
  for (const auto& d : f_["decode"]) check(d["ids"].get<Ids>(), d["skip"].get<std::string>(), d["keep"].get<std::string>());
  EXPECT_EQ(wrong, 0);
}

// Whether every run of <0xHH> pieces in `ids` (as the decoder sees them: skipped ids left out)
// is valid UTF-8 as a whole. Only then can a stream equal decode (see DecodeStream).
bool byte_runs_are_valid(const AutoTokenizer& tok, const Ids& ids, bool skip) {
  std::string run;
  for (const std::int32_t id : ids) {
    if (id >= tok.vocab_size() || (skip && tok.backend().is_special(id))) continue;
    const std::string piece = tok.id_to_piece(id);
    if (piece.size() == 6 && piece.starts_with("<0x") && piece.back() == '>') {
      run.push_back(static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
      continue;
    }
    if (!unicode::is_valid_utf8(run)) return false;
    run.clear();
  }
  return unicode::is_valid_utf8(run);
}

TEST_P(JsonReference, StreamingJoinedEqualsDecode) {
  std::vector<Ids> sequences;
  for (const auto& ids : f_["ids_with_special"]) sequences.push_back(ids.get<Ids>());
  for (const auto& d : f_["decode"]) sequences.push_back(d["ids"].get<Ids>());
  int wrong = 0, invalid_runs = 0;
  for (const bool skip : {true, false}) {
    for (const Ids& ids : sequences) {
      DecodeStream stream(tok(), {.skip_special_tokens = skip});
      std::string joined;
      for (const std::int32_t id : ids) {
        const std::string piece = stream.put(id);
        EXPECT_TRUE(unicode::is_valid_utf8(piece));
        joined += piece;
      }
      joined += stream.finish();
      EXPECT_TRUE(unicode::is_valid_utf8(joined));
      const bool byte_level = tok().backend().tokenizer_json()->byte_level();
      if (!byte_level && !byte_runs_are_valid(tok(), ids, skip)) {
        ++invalid_runs;  // decode() replaces the whole run; the stream showed its first characters
        continue;
      }
      const std::string want = tok().decode(ids, {.skip_special_tokens = skip});
      if (joined != want && ++wrong <= 5) {
        ADD_FAILURE() << nlohmann::json(ids).dump().substr(0, 200) << " skip " << skip << "\n  joined "
                      << nlohmann::json(joined).dump().substr(0, 300) << "\n  decode " << nlohmann::json(want).dump().substr(0, 300);
      }
    }
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_LE(invalid_runs, 40);  // only the crafted invalid runs and some random sequences
}

INSTANTIATE_TEST_SUITE_P(RealFiles, JsonReference, ::testing::Values("llama2", "gemma3", "gptoss", "deepseek_v3"));
INSTANTIATE_TEST_SUITE_P(Llama2Variants, JsonReference,
                         ::testing::Values("llama2_metaspace_first", "llama2_metaspace_always_split", "llama2_metaspace_never",
                                           "llama2_split", "llama2_added"));

}  // namespace
}  // namespace maskgen

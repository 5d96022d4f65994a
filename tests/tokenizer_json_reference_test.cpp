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
//   llama2_converted  ../shared/tokenizers/llama2/tokenizer.model converted to tokenizer.json as
//                transformers' LlamaConverter does (here through libsentencepiece, in the fixture
//                script from the protobuf): the two backends on one vocabulary
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
#include <unordered_map>

#include <sentencepiece_processor.h>

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

// --- SentencePiece and tokenizer.json on one vocabulary ---------------------------------------

std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Llama 2's tokenizer.model as transformers' LlamaConverter writes it to tokenizer.json (legacy):
// the pieces in order, merges from every split of a piece into two pieces, ordered by the merged
// piece's score (the first three count 0), then by the lengths of the parts, longest first.
std::string converted_tokenizer_json(const std::filesystem::path& model) {
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load(model.string()).ok()) throw io_error("cannot load " + model.string());
  const int n = sp.GetPieceSize();
  std::vector<std::string> pieces(static_cast<std::size_t>(n));
  std::unordered_map<std::string, int> ids;
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < n; ++i) {
    pieces[static_cast<std::size_t>(i)] = sp.IdToPiece(i);
    vocab[pieces[static_cast<std::size_t>(i)]] = i;
    ids.emplace(pieces[static_cast<std::size_t>(i)], i);
  }
  struct Merge {
    std::string left, right;
    float score;
    std::size_t left_length, right_length;
  };
  std::vector<Merge> merges;
  for (int i = 0; i < n; ++i) {
    const std::string& piece = pieces[static_cast<std::size_t>(i)];
    std::vector<Merge> local;
    for (std::size_t k = 1; k < piece.size(); ++k) {
      if ((static_cast<unsigned char>(piece[k]) & 0xC0) == 0x80) continue;  // not a character boundary
      std::string left = piece.substr(0, k), right = piece.substr(k);
      if (ids.count(left) && ids.count(right)) {
        local.push_back({left, right, i < 3 ? 0.0f : sp.GetScore(i), code_points(left), code_points(right)});
      }
    }
    std::sort(local.begin(), local.end(), [&](const Merge& a, const Merge& b) {
      return ids[a.left] != ids[b.left] ? ids[a.left] < ids[b.left] : ids[a.right] < ids[b.right];
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_length != b.left_length) return a.left_length > b.left_length;
    return a.right_length > b.right_length;
  });
  nlohmann::json merge_list = nlohmann::json::array();
  for (const Merge& m : merges) merge_list.push_back({m.left, m.right});
  nlohmann::json added = nlohmann::json::array();
  for (int i = 0; i < n; ++i) {
    // (User-defined pieces would be added too; this libsentencepiece cannot tell them, and
    // Llama 2 has none: the fixture script, which reads the protobuf, would differ otherwise.)
    if (i < 3 || sp.IsControl(i)) {
      added.push_back({{"id", i}, {"content", pieces[static_cast<std::size_t>(i)]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", i < 3 || sp.IsControl(i)}});
    }
  }
  nlohmann::json j = nlohmann::json::parse(R"({
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
              "ignore_merges": false}})");
  j["added_tokens"] = added;
  j["model"]["vocab"] = vocab;
  j["model"]["merges"] = merge_list;
  return j.dump();
}

class Llama2BothBackends : public ::testing::Test {
 protected:
  void SetUp() override {
    MASKGEN_REQUIRE_SHARED(model_);
    f_ = fixture("llama2_converted");
    json_ = std::make_unique<AutoTokenizer>(TokenizerJsonBackend::from_json(converted_tokenizer_json(model_)));
  }
  std::filesystem::path model_ = test::shared_dir() / "tokenizers/llama2/tokenizer.model";
  nlohmann::json f_;
  std::unique_ptr<AutoTokenizer> json_;
};

TEST_F(Llama2BothBackends, ConvertedFileEqualsTokenizers) {
  int wrong = 0;
  for (std::size_t i = 0; i < f_["texts"].size(); ++i) {
    const auto text = f_["texts"][i].get<std::string>();
    const Ids ids = json_->encode(text, {.add_bos = false});
    const Ids with_special = json_->encode(text);
    const std::string decoded = json_->decode(with_special, {.skip_special_tokens = false});
    if ((ids != f_["ids"][i].get<Ids>() || with_special != f_["ids_with_special"][i].get<Ids>() ||
         decoded != f_["decoded_keep"][i].get<std::string>()) && ++wrong <= 5) {
      ADD_FAILURE() << nlohmann::json(text).dump().substr(0, 200) << "\n  ours " << nlohmann::json(ids).dump().substr(0, 300)
                    << "\n  want " << f_["ids"][i].dump().substr(0, 300);
    }
  }
  EXPECT_EQ(wrong, 0);
}

TEST_F(Llama2BothBackends, BothBackendsGiveTheIdsWhereSentencePieceAndTokenizersAgree) {
  // tests/data/tokenizer_fixtures.json holds SentencePiece's own ids (EncodeAsIds) of its texts.
  const auto sp_fixture = test::read_json(test::data_dir() / "tokenizer_fixtures.json");
  const auto& sp_ids = sp_fixture["tokenizers"]["llama2"]["ids"];
  const auto sp = Tokenizer<>::from_file(model_);
  int agree = 0, compared = 0;
  for (std::size_t i = 0; i < sp_fixture["texts"].size(); ++i) {
    const auto text = sp_fixture["texts"][i].get<std::string>();
    std::size_t k = 0;
    while (k < f_["texts"].size() && f_["texts"][k] != text) ++k;
    ASSERT_LT(k, f_["texts"].size()) << text;
    ++compared;
    if (sp_ids[i] != f_["ids"][k]) continue;  // the two libraries differ here: nothing to compare
    ++agree;
    EXPECT_EQ(sp.encode(text, {.add_bos = false}), sp_ids[i].get<Ids>()) << text;
    EXPECT_EQ(json_->encode(text, {.add_bos = false}), sp_ids[i].get<Ids>()) << text;
    EXPECT_EQ(sp.encode(text), json_->encode(text)) << text;  // both add BOS by default
    const Ids ids = sp.encode(text);
    EXPECT_EQ(sp.decode(ids), json_->decode(ids)) << text;
  }
  EXPECT_EQ(compared, 16);
  EXPECT_EQ(agree, 16);  // on these texts SentencePiece and tokenizers give the same ids
}

TEST_F(Llama2BothBackends, AFolderWithBothFilesUsesTokenizerJson) {
  test::TempDir dir;
  std::filesystem::copy_file(model_, dir.path() / "tokenizer.model");
  { std::ofstream(dir.path() / "tokenizer.json") << converted_tokenizer_json(model_); }
  const auto tok = load_tokenizer(dir.path());
  EXPECT_EQ(tok.backend().kind(), "tokenizer.json");
  EXPECT_EQ(tok.encode(f_["texts"][16].get<std::string>()), f_["ids_with_special"][16].get<Ids>());
}

}  // namespace
}  // namespace maskgen

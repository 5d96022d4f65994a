// The engine's text: each request's text continues its prompt, so that
//   decode(prompt) + result.text == decode(prompt + tokens)
// (an EOS that ends the request left out), the on_text pieces joined equal result.text, every
// piece is valid UTF-8, and a token the tokenizer has no piece for (a model whose vocab_size is
// larger than its tokenizer, as Qwen3's) costs the request nothing but that token's (empty) text.
// The reference is the library's whole-sequence decode(), which the tokenizer suites tie to
// SentencePiece and Hugging Face tokenizers; the tokens themselves are generate()'s (engine_test.cpp).

#include <maskgen/engine.hpp>
#include <maskgen/model.hpp>

#include <algorithm>

#include <gtest/gtest.h>

#include "support/random_model.hpp"
#include "support/test_support.hpp"

namespace maskgen {
namespace {

using Ids = std::vector<std::int32_t>;
using Model = maskgen::Model<float>;

struct Finished {
  Ids prompt;
  RequestResult result;
  std::string streamed;  // the on_text pieces joined
};

// Runs every prompt through one engine, each with its own config and options.
std::vector<Finished> run_all(const Model& model, const AutoTokenizer& tok, const std::vector<Ids>& prompts,
                              const std::vector<GenerationConfig>& configs, RequestOptions options = {}) {
  Engine<Model> engine(model, tok, {.prefill_chunk = 5});
  std::vector<Finished> done(prompts.size() * configs.size());
  std::vector<RequestHandle> handles;
  for (std::size_t i = 0; i < done.size(); ++i) {
    Finished& f = done[i];
    f.prompt = prompts[i % prompts.size()];
    handles.push_back(engine.submit(f.prompt, configs[i / prompts.size()], options,
                                    {.on_text = [&f](std::string_view piece) {
                                      EXPECT_TRUE(unicode::is_valid_utf8(piece));
                                      EXPECT_FALSE(piece.empty());
                                      f.streamed += piece;
                                    }}));
  }
  for (std::size_t i = 0; i < done.size(); ++i) done[i].result = handles[i].wait();
  return done;
}

// The properties of the file comment, for the request's skip_special_tokens; `eos`: the ids that
// end a request.
void expect_text_follows_prompt(const AutoTokenizer& tok, const Finished& f, const Ids& eos, bool skip_special = true) {
  Ids tokens = f.result.tokens;
  if (f.result.finish_reason == FinishReason::Eos) {
    ASSERT_FALSE(tokens.empty());
    EXPECT_NE(std::find(eos.begin(), eos.end(), tokens.back()), eos.end());
    tokens.pop_back();  // never in the text
  }
  Ids all = f.prompt;
  all.insert(all.end(), tokens.begin(), tokens.end());
  const DecodeOptions options{.skip_special_tokens = skip_special};
  SCOPED_TRACE(nlohmann::json(all).dump());
  EXPECT_EQ(tok.decode(f.prompt, options) + f.result.text, tok.decode(all, options));
  EXPECT_EQ(f.streamed, f.result.text);
  EXPECT_TRUE(unicode::is_valid_utf8(f.result.text));
}

std::vector<GenerationConfig> greedy_and_sampled(int max_new_tokens, std::int32_t pad) {
  return {{.max_new_tokens = max_new_tokens, .pad_token_id = pad},
          {.max_new_tokens = max_new_tokens, .pad_token_id = pad, .do_sample = true, .temperature = 1.5, .top_k = 0, .seed = 11}};
}

TEST(EngineText, SentencePieceTextFollowsThePrompt) {
  const auto dir = test::model_dir("stories260K");
  MASKGEN_REQUIRE_SHARED(dir);
  const Model model = Model::load(dir);
  const AutoTokenizer tok = load_tokenizer(dir);
  std::vector<Ids> prompts;
  for (const char* p : {"The dog", "Once upon a time", "Lily and Ben went to the", "中"}) prompts.push_back(tok.encode(p));
  const auto done = run_all(model, tok, prompts, greedy_and_sampled(40, 0));
  for (const auto& f : done) expect_text_follows_prompt(tok, f, {2});
  // Greedy after "The dog" the model says "▁was ▁a ▁big ...": the text keeps the space before
  // "was" that the prompt's context gives it (decoded alone, "▁was" is "was").
  EXPECT_EQ(done[0].result.text.substr(0, 10), " was a big");
}

TEST(EngineText, ByteLevelTextFollowsThePrompt) {
  const auto tokenizer = test::shared_dir() / "tokenizers/qwen3";
  MASKGEN_REQUIRE_SHARED(tokenizer / "tokenizer.json");
  const Model model = Model::load(test::model_dir("qwen3_vocab"));  // random weights, Qwen3's 151,936-row vocabulary
  const AutoTokenizer tok = load_tokenizer(tokenizer);
  std::vector<Ids> prompts;
  for (const char* p : {"The capital of France is", "糖尿病患者应定期监测血糖水平", "emoji 😀"}) prompts.push_back(tok.encode(p));
  const Ids eos{151645};
  const auto done = run_all(model, tok, prompts, greedy_and_sampled(24, 151643));
  for (const auto& f : done) expect_text_follows_prompt(tok, f, eos);
  for (const auto& f : run_all(model, tok, prompts, greedy_and_sampled(24, 151643), {.skip_special_tokens = false})) {
    expect_text_follows_prompt(tok, f, eos, false);
  }
}

TEST(EngineText, AnEndingEosIsNeverInTheText) {
  // The request ends on an EOS id that is an ordinary word here (chosen from what the model says),
  // so skip_special_tokens would not drop it: the text still stops before it.
  const auto dir = test::model_dir("stories260K");
  MASKGEN_REQUIRE_SHARED(dir);
  const Model model = Model::load(dir);
  const AutoTokenizer tok = load_tokenizer(dir);
  const Ids prompt = tok.encode("The dog");
  const GenerationConfig gen{.max_new_tokens = 12, .pad_token_id = 0};
  const auto first = run_all(model, tok, {prompt}, {gen});
  const Ids& said = first[0].result.tokens;
  ASSERT_GE(said.size(), 5u);
  const std::int32_t word = said[3];
  ASSERT_FALSE(tok.backend().is_special(word));
  const auto at = static_cast<std::size_t>(std::find(said.begin(), said.end(), word) - said.begin());
  GenerationConfig ending = gen;
  ending.eos_token_id = {word};
  for (const bool skip : {true, false}) {
    const auto done = run_all(model, tok, {prompt}, {ending}, {.skip_special_tokens = skip});
    ASSERT_EQ(done[0].result.finish_reason, FinishReason::Eos);
    EXPECT_EQ(done[0].result.tokens, Ids(said.begin(), said.begin() + static_cast<std::ptrdiff_t>(at) + 1));
    expect_text_follows_prompt(tok, done[0], {word}, skip);
    EXPECT_EQ(done[0].result.text, first[0].result.text.substr(0, done[0].result.text.size()));
    EXPECT_LT(done[0].result.text.size(), first[0].result.text.size());
  }
}

TEST(EngineText, TokensWithoutAPieceDoNotCostTheRequest) {
  // A random Llama whose vocab_size (700) is larger than the tokenizer's 512 pieces: sampled near
  // uniformly, about a quarter of its tokens have no piece. Every request still finishes, with the
  // text of its other tokens.
  const auto dir = test::model_dir("stories260K");
  MASKGEN_REQUIRE_SHARED(dir);
  const AutoTokenizer tok = load_tokenizer(dir);
  test::TempDir tmp;
  tools::RandomModelShape shape;
  shape.vocab_size = 700;
  shape.hidden_size = 32;
  shape.intermediate_size = 64;
  shape.num_layers = 1;
  shape.num_heads = 4;
  shape.num_kv_heads = 2;
  shape.max_position_embeddings = 256;
  tools::write_random_model(tmp.path(), shape);
  const Model model = Model::load(tmp.path());
  ASSERT_GT(model.config().vocab_size, tok.vocab_size());
  std::vector<Ids> prompts;
  for (const char* p : {"The dog", "Once upon a time", "Lily"}) prompts.push_back(tok.encode(p));
  const GenerationConfig sampled{.max_new_tokens = 40, .pad_token_id = 0, .do_sample = true, .temperature = 20, .top_k = 0, .seed = 3};
  for (const bool skip : {true, false}) {
    const auto done = run_all(model, tok, prompts, {sampled}, {.skip_special_tokens = skip});
    std::size_t pieceless = 0, with_piece = 0;
    for (const auto& f : done) {
      EXPECT_TRUE(f.result.finish_reason == FinishReason::Length || f.result.finish_reason == FinishReason::Eos);
      expect_text_follows_prompt(tok, f, {2}, skip);
      for (const auto t : f.result.tokens) (t >= tok.vocab_size() ? pieceless : with_piece) += 1;
    }
    EXPECT_GT(pieceless, 0u);
    EXPECT_GT(with_piece, 0u);
  }
}

TEST(TextOutput, KeepsSpecialMarkersWhenAskedButNeverTheEndingEos) {
  // Hand-written, on Qwen3's tokenizer: <|im_start|> (151644) and <|im_end|> (151645) are special.
  const auto tokenizer = test::shared_dir() / "tokenizers/qwen3";
  MASKGEN_REQUIRE_SHARED(tokenizer / "tokenizer.json");
  const AutoTokenizer tok = load_tokenizer(tokenizer);
  const Ids prompt = tok.encode("Say hi");
  Ids tokens = tok.encode(" hi", {.add_bos = false});
  tokens.push_back(151644);
  const Ids more = tok.encode("there", {.add_bos = false});
  tokens.insert(tokens.end(), more.begin(), more.end());
  tokens.push_back(151645);  // the EOS that ends it
  auto text_of = [&](bool skip) {
    TextOutput<AnyTokenizerBackend> out(tok, prompt, {.decode = {.skip_special_tokens = skip}, .eos = {151645}});
    std::string shown;
    for (std::size_t i = 0; i < tokens.size(); ++i) shown += out.put(tokens[i], i + 1 == tokens.size()).text;
    shown += out.rest();
    EXPECT_EQ(shown, out.text());
    return out.text();
  };
  EXPECT_EQ(text_of(true), " hithere");
  EXPECT_EQ(text_of(false), " hi<|im_start|>there");
}

}  // namespace
}  // namespace maskgen

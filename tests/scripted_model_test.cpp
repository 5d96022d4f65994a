// The scripted model (tests/support/scripted_model.hpp) on the real Qwen3 tokenizer: after a chat
// prompt rendered by Qwen3's own template, greedy decoding, through generate() and through the
// Engine, emits exactly the scripted text and then EOS.

#include <maskgen/chat_template.hpp>
#include <maskgen/engine.hpp>
#include <maskgen/generate.hpp>
#include <maskgen/model.hpp>
#include <maskgen/tokenizer.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/scripted_model.hpp"
#include "support/test_support.hpp"

namespace {

using maskgen::FinishReason;
using maskgen::GenerationConfig;
using maskgen::tools::Script;
using json = nlohmann::ordered_json;
using Model = maskgen::Model<float>;

const std::filesystem::path& qwen3_tokenizer_dir() {
  static const std::filesystem::path dir = maskgen::test::shared_dir() / "tokenizers/qwen3";
  return dir;
}

// The texts of the brief, written out by hand: a reasoning block and a Hermes-style tool call, and
// the answer after the tool's result.
const std::string tool_call_text =
    "<think>\nThe user asks for the weather in Paris; I will call the tool.\n</think>\n\n<tool_call>\n"
    "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>";
const std::string answer_text = "It is 18 degrees and sunny in Paris.";

// Qwen3's token ids (its tokenizer.json): "\n" is 198, "\n\n" is 271, <|im_end|> is 151645.
constexpr std::int32_t newline = 198, two_newlines = 271, im_end = 151645;

const json& weather_tools() {
  static const json tools = json::parse(R"([{"type": "function", "function": {
      "name": "get_weather", "description": "The current weather of a city",
      "parameters": {"type": "object", "properties": {
          "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}}])");
  return tools;
}

// The user's question: the prompt ends with the generation prompt "<|im_start|>assistant\n".
json first_turn() { return json::parse(R"([{"role": "user", "content": "What is the weather in Paris?"}])"); }

// After the tool call and its result; rendered with enable_thinking=false the prompt ends with
// "<think>\n\n</think>\n\n".
json second_turn() {
  json messages = first_turn();
  messages.push_back(json::parse(R"({"role": "assistant", "content": "", "tool_calls": [{"type": "function",
      "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]})"));
  messages.push_back(json::parse(R"({"role": "tool", "content": "{\"temperature\": 18, \"sky\": \"sunny\"}"})"));
  return messages;
}

class ScriptedModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(qwen3_tokenizer_dir() / "tokenizer.json")) return;
    dir_ = new maskgen::test::TempDir();
    const std::vector<Script> scripts = {{newline, tool_call_text}, {two_newlines, answer_text}};
    written_ = new maskgen::tools::ScriptedModel(
        maskgen::tools::write_scripted_model(dir_->path(), qwen3_tokenizer_dir(), scripts));
  }
  static void TearDownTestSuite() {
    delete written_;
    delete dir_;
    written_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override { MASKGEN_REQUIRE_SHARED(qwen3_tokenizer_dir() / "tokenizer.json"); }

  static const std::filesystem::path& dir() { return dir_->path(); }
  static const maskgen::tools::ScriptedModel& written() { return *written_; }

  // The two chat prompts, rendered by the template in the written folder's tokenizer_config.json.
  static std::vector<std::string> prompts() {
    const auto chat = maskgen::ChatTemplate::from_tokenizer_config(dir());
    maskgen::ChatOptions options{.add_generation_prompt = true, .tools = weather_tools()};
    std::vector<std::string> out = {chat.apply(first_turn(), options)};
    options.variables["enable_thinking"] = false;
    out.push_back(chat.apply(second_turn(), options));
    return out;
  }

 private:
  static inline maskgen::test::TempDir* dir_ = nullptr;
  static inline maskgen::tools::ScriptedModel* written_ = nullptr;
};

TEST_F(ScriptedModelTest, SpellingDecodesToTheTextsWithEachPairOnce) {
  const auto tokenizer = maskgen::load_tokenizer(dir());
  ASSERT_EQ(written().ids.size(), 2u);
  EXPECT_EQ(tokenizer.decode(written().ids[0]), tool_call_text);
  EXPECT_EQ(tokenizer.decode(written().ids[1]), answer_text);
  // The next token is a function of (previous, current): each pair, (trigger, first) included,
  // occurs once; no script holds a trigger or EOS.
  std::set<std::pair<std::int32_t, std::int32_t>> pairs;
  std::size_t count = 0;
  const std::int32_t triggers[] = {newline, two_newlines};
  for (std::size_t s = 0; s < 2; ++s) {
    std::int32_t previous = triggers[s];
    for (const auto id : written().ids[s]) {
      EXPECT_NE(id, im_end);
      EXPECT_NE(id, newline);
      EXPECT_NE(id, two_newlines);
      pairs.insert({previous, id});
      ++count;
      previous = id;
    }
  }
  EXPECT_EQ(pairs.size(), count);
  // ">\n" twice ("<think>\n", "<tool_call>\n"): what a bigram could not do.
  const std::int32_t gt_newline = *tokenizer.piece_to_id(">\u010a");
  EXPECT_EQ(std::count(written().ids[0].begin(), written().ids[0].end(), gt_newline), 2);
  // The added token where a bare newline does not have to follow (Qwen3's only "\n" token is a trigger).
  EXPECT_EQ(written().ids[0].back(), *tokenizer.piece_to_id("</tool_call>"));
  EXPECT_EQ(written().eos_token_id, im_end);
  EXPECT_EQ(written().hidden_size % 64, 0);
  EXPECT_GE(written().attention_gap, 25.0);
}

TEST_F(ScriptedModelTest, FolderHoldsAQwen3ConfigAndTheTokenizer) {
  const auto config = maskgen::test::read_json(dir() / "config.json");
  EXPECT_EQ(config["model_type"], "qwen3");
  EXPECT_EQ(config["tie_word_embeddings"], false);
  EXPECT_EQ(config["max_position_embeddings"], 4096);
  EXPECT_EQ(config["num_attention_heads"], 2);
  EXPECT_EQ(config["num_key_value_heads"], 1);
  EXPECT_EQ(config["head_dim"], written().head_dim);
  EXPECT_EQ(config["eos_token_id"], im_end);
  const auto generation = maskgen::test::read_json(dir() / "generation_config.json");
  EXPECT_EQ(generation["do_sample"], false);
  EXPECT_EQ(generation["eos_token_id"], im_end);
  EXPECT_EQ(generation["pad_token_id"], 151643);  // <|endoftext|>, the tokenizer's pad token
  EXPECT_EQ(maskgen::test::read_bytes(dir() / "tokenizer.json"), maskgen::test::read_bytes(qwen3_tokenizer_dir() / "tokenizer.json"));
  EXPECT_EQ(maskgen::test::read_bytes(dir() / "tokenizer_config.json"),
            maskgen::test::read_bytes(qwen3_tokenizer_dir() / "tokenizer_config.json"));
  // Every tensor in bfloat16: the safetensors header is 8 bytes of length, then JSON.
  const std::string file = maskgen::test::read_bytes(dir() / "model.safetensors");
  ASSERT_GT(file.size(), 8u);
  std::uint64_t length = 0;
  std::memcpy(&length, file.data(), sizeof length);
  const auto header = nlohmann::json::parse(file.substr(8, length));
  EXPECT_EQ(header.size(), 3u + 11u);  // embed_tokens, norm, lm_head and one layer's 11 tensors
  for (const auto& [name, tensor] : header.items()) EXPECT_EQ(tensor["dtype"], "BF16") << name;
  EXPECT_EQ(header["lm_head.weight"]["shape"], json::array({151669, written().hidden_size}));
}

TEST_F(ScriptedModelTest, ChatPromptsEndWithTheTriggers) {
  const auto tokenizer = maskgen::load_tokenizer(dir());
  const auto p = prompts();
  EXPECT_TRUE(p[0].ends_with("<|im_start|>assistant\n"));
  EXPECT_TRUE(p[1].ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  EXPECT_NE(p[0].find("get_weather"), std::string::npos);  // the tools are in the system prompt
  EXPECT_EQ(tokenizer.encode(p[0]).back(), newline);
  EXPECT_EQ(tokenizer.encode(p[1]).back(), two_newlines);
}

TEST_F(ScriptedModelTest, GreedyGenerateEmitsEachScriptThenEos) {
  const Model model = Model::load(dir());
  const auto tokenizer = maskgen::load_tokenizer(dir());
  const std::vector<std::string> p = prompts();
  const auto batch = tokenizer.encode_batch(p);  // left padded: the two prompts differ in length
  const GenerationConfig gen{.max_new_tokens = 200, .output_scores = true, .num_threads = 1};
  const auto out = maskgen::generate(model, batch.input_ids, batch.attention_mask, gen);
  const auto texts = tokenizer.decode_batch(out.sequences, out.sequences_mask());
  EXPECT_EQ(texts[0], tool_call_text);
  EXPECT_EQ(texts[1], answer_text);
  for (std::size_t r = 0; r < 2; ++r) {
    SCOPED_TRACE(r);
    EXPECT_EQ(out.finish_reasons[r], FinishReason::Eos);
    ASSERT_EQ(out.lengths[r], written().ids[r].size() + 1);
    for (std::size_t i = 0; i < written().ids[r].size(); ++i) {
      EXPECT_EQ(out.sequences(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(i)), written().ids[r][i]);
    }
    EXPECT_EQ(out.sequences(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(out.lengths[r] - 1)), im_end);
    // The margin, from the arithmetic in scripted_model.hpp: the chosen logit leads every other by
    // at least scale sqrt(H/4) (8 for H = 256), up to the 1% that bfloat16 weights and the
    // attention's and MLP's near-ones move it.
    for (Eigen::Index step = 0; step < out.scores[r].rows(); ++step) {
      std::vector<float> row(out.scores[r].row(step).data(), out.scores[r].row(step).data() + out.scores[r].cols());
      std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<>());
      EXPECT_GE(row[0] - row[1], 0.95 * written().min_margin) << "step " << step;
    }
  }
}

TEST_F(ScriptedModelTest, EngineEmitsEachScriptThenEos) {
  const Model model = Model::load(dir());
  const auto tokenizer = maskgen::load_tokenizer(dir());
  const std::vector<std::string> p = prompts();
  maskgen::Engine<Model> engine(model, tokenizer, {.prefill_chunk = 64, .num_threads = 1});
  const GenerationConfig gen{.max_new_tokens = 200, .num_threads = 1};
  const auto first = engine.submit(tokenizer.encode(p[0]), gen);
  const auto second = engine.submit(tokenizer.encode(p[1]), gen);
  const auto& a = first.wait();
  const auto& b = second.wait();
  EXPECT_EQ(a.text, tool_call_text);
  EXPECT_EQ(b.text, answer_text);
  EXPECT_EQ(a.finish_reason, FinishReason::Eos);
  EXPECT_EQ(b.finish_reason, FinishReason::Eos);
  auto with_eos = [](std::vector<std::int32_t> ids) {
    ids.push_back(im_end);
    return ids;
  };
  EXPECT_EQ(a.tokens, with_eos(written().ids[0]));
  EXPECT_EQ(b.tokens, with_eos(written().ids[1]));
}

TEST_F(ScriptedModelTest, APromptEndingOutsideTheScriptsGetsEosAtOnce) {
  const Model model = Model::load(dir());
  const auto tokenizer = maskgen::load_tokenizer(dir());
  const auto prompt = tokenizer.encode("<|im_start|>user\nHello<|im_end|>");  // ends with <|im_end|>, no script's token
  maskgen::TokenMatrix ids(1, static_cast<Eigen::Index>(prompt.size())), mask = maskgen::TokenMatrix::Ones(1, ids.cols());
  for (std::size_t i = 0; i < prompt.size(); ++i) ids(0, static_cast<Eigen::Index>(i)) = prompt[i];
  const auto out = maskgen::generate(model, ids, mask, {.max_new_tokens = 5, .num_threads = 1});
  EXPECT_EQ(out.lengths[0], 1u);
  EXPECT_EQ(out.sequences(0, 0), im_end);
  EXPECT_EQ(out.finish_reasons[0], FinishReason::Eos);
}

TEST(ScriptedModel, RefusesScriptsItCannotSpell) {
  MASKGEN_REQUIRE_SHARED(qwen3_tokenizer_dir() / "tokenizer.json");
  const maskgen::test::TempDir dir;
  const auto tokenizer = maskgen::load_tokenizer(qwen3_tokenizer_dir());
  auto write = [&](std::vector<Script> scripts, maskgen::tools::ScriptedModelOptions options = {}) {
    return [&dir, &tokenizer, scripts, options] {
      maskgen::tools::write_scripted_model(dir.path(), qwen3_tokenizer_dir(), tokenizer, scripts, options);
    };
  };
  // "\n" has one token in Qwen3's vocabulary, 198, and it is the trigger.
  maskgen::test::expect_error<maskgen::argument_error>(write({{newline, "\n"}}),
                                                       {"scripts[0].text cannot be spelled", "at byte 0"});
  // U+0001 has one token and no longer piece holds it: "\x01\x01\x01" needs the pair (U+0001, U+0001) twice.
  maskgen::test::expect_error<maskgen::argument_error>(write({{newline, "\x01\x01\x01"}}),
                                                       {"scripts[0].text cannot be spelled", "at byte 2"});
  // The same, over two scripts: the second may not repeat the first one's pair.
  maskgen::test::expect_error<maskgen::argument_error>(write({{newline, "\x01\x01"}, {two_newlines, "b\x01\x01"}}),
                                                       {"scripts[1].text cannot be spelled", "at byte 2"});
  maskgen::test::expect_error<maskgen::argument_error>(write({{newline, "a"}, {newline, "b"}}),
                                                       {"scripts[1].trigger 198", "earlier script"});
  maskgen::test::expect_error<maskgen::argument_error>(write({{200000, "a"}}), {"scripts[0].trigger is 200000", "[0, 151669)"});
  maskgen::test::expect_error<maskgen::argument_error>(write({{newline, "a"}}, {.hidden_size = 2}),
                                                       {"options.hidden_size is 2", "at least 7"});
  maskgen::test::expect_error<maskgen::argument_error>(write({{newline, "\xff"}}), {"scripts[0].text is not valid UTF-8"});
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "model.safetensors"));  // nothing was written
  maskgen::test::expect_error<maskgen::unsupported_error>(
      [&] { maskgen::tools::write_scripted_model(dir.path(), dir.path(), std::vector<Script>{}); }, {"tokenizer.json"});
}

}  // namespace

// Tool calls and reasoning as the template families write them (include/maskgen/chat/tool_calls.hpp,
// reasoning.hpp), against tests/data/chat/tool_call_fixtures.json (written by
// tests/reference/make_tool_fixtures.py): assistant turns cut from jinja2 renderings of Qwen3,
// Qwen2.5, Llama 3.1, 3.2 and Mistral conversations, whose expected parse is the message that went
// into the template, and hand-written texts. Streaming must give the same content and calls for
// every way of cutting the text into chunks.

#include <maskgen/chat/reasoning.hpp>
#include <maskgen/chat/tool_calls.hpp>

#include <cctype>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::ordered_json;
using maskgen::ToolCallFormat;

const json& fixtures() {
  static const json data = [] {
    std::ifstream in(std::string(MASKGEN_TEST_DATA_DIR) + "/chat/tool_call_fixtures.json");
    return json::parse(in);
  }();
  return data;
}

ToolCallFormat format_named(const std::string& name) {
  if (name == "hermes") return ToolCallFormat::Hermes;
  if (name == "llama3_json") return ToolCallFormat::Llama3Json;
  if (name == "mistral") return ToolCallFormat::Mistral;
  if (name == "none") return ToolCallFormat::None;
  throw std::runtime_error("unknown format " + name);
}

// Deterministic ids: "id0", "id1", ... per parser.
maskgen::ToolCallIdGenerator counting_ids() {
  return [n = 0]() mutable { return "id" + std::to_string(n++); };
}

maskgen::ReasoningOptions reasoning_options(const json& c) {
  maskgen::ReasoningOptions o;
  o.starts_in_reasoning = c.value("starts_in_reasoning", false);
  if (c.contains("options")) {
    o.split = c["options"].value("split", true);
    o.keep_newlines = c["options"].value("keep_newlines", false);
  }
  return o;
}

// What a whole output gives: reasoning (Qwen3 cases), content and calls.
struct Outcome {
  std::string reasoning, content;
  std::vector<maskgen::ToolCall> calls;
};

bool has_reasoning(const json& c) { return c["expected"].contains("reasoning"); }

Outcome parse_whole(const json& c) {
  Outcome o;
  std::string text = c["text"].get<std::string>();
  if (has_reasoning(c)) {
    auto split = maskgen::split_reasoning(text, reasoning_options(c));
    o.reasoning = split.reasoning;
    text = split.content;
  }
  auto parsed = maskgen::parse_tool_calls(text, format_named(c["format"]), counting_ids());
  o.content = parsed.content;
  o.calls = parsed.tool_calls;
  return o;
}

// The same text in chunks cut at `cuts` (ascending byte offsets), through the streaming parsers:
// reasoning first where the case has it, its content piece by piece into the tool-call parser.
Outcome parse_streamed(const json& c, const std::vector<std::size_t>& cuts) {
  const std::string text = c["text"].get<std::string>();
  const bool reasoning = has_reasoning(c);
  maskgen::ReasoningParser think(reasoning_options(c));
  maskgen::ToolCallParser tools(format_named(c["format"]), counting_ids());
  Outcome o;
  auto take_tools = [&](maskgen::ToolCallDelta d) {
    o.content += d.content;
    for (auto& x : d.tool_calls) {
      EXPECT_EQ(x.index, o.calls.size());
      o.calls.push_back(x.call);
    }
  };
  auto take = [&](std::string_view piece) {
    if (!reasoning) return take_tools(tools.feed(piece));
    auto d = think.feed(piece);
    o.reasoning += d.reasoning;
    take_tools(tools.feed(d.content));
  };
  std::size_t at = 0;
  for (std::size_t cut : cuts) {
    take(std::string_view(text).substr(at, cut - at));
    at = cut;
  }
  take(std::string_view(text).substr(at));
  if (reasoning) {
    auto d = think.finish();
    o.reasoning += d.reasoning;
    take_tools(tools.feed(d.content));
  }
  take_tools(tools.finish());
  return o;
}

void expect_same(const Outcome& got, const Outcome& want, const std::string& how) {
  EXPECT_EQ(got.reasoning, want.reasoning) << how;
  EXPECT_EQ(got.content, want.content) << how;
  EXPECT_EQ(got.calls, want.calls) << how;
}

TEST(ToolCalls, DetectsTheFormatOfEveryTemplate) {
  std::ifstream in(std::string(MASKGEN_TEST_DATA_DIR) + "/chat/chat_fixtures.json");
  const json chat = json::parse(in);
  int checked = 0;
  for (const auto& [name, entry] : chat["templates"].items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(fixtures()["formats"].contains(name));
    EXPECT_EQ(maskgen::detect_tool_call_format(entry["text"].get<std::string>()),
              format_named(fixtures()["formats"][name].get<std::string>()));
    ++checked;
  }
  EXPECT_EQ(checked, 11);  // Gemma 3 and the Phi templates render no tool calls: none
  EXPECT_EQ(maskgen::detect_tool_call_format("{{ messages[0].content }}"), ToolCallFormat::None);
}

TEST(ToolCalls, ParsesWhatTheTemplatesRenderAndTheHandWrittenCases) {
  int rendered = 0, hand = 0, errors = 0;
  std::set<std::string> families;
  for (const auto& c : fixtures()["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    if (c.contains("error")) {  // jinja2 refused the conversation: nothing to parse
      ++errors;
      continue;
    }
    const Outcome got = parse_whole(c);
    const json& want = c["expected"];
    if (has_reasoning(c)) {
      EXPECT_EQ(got.reasoning, want["reasoning"].get<std::string>());
    }
    EXPECT_EQ(got.content, want["content"].get<std::string>());
    ASSERT_EQ(got.calls.size(), want["tool_calls"].size());
    for (std::size_t i = 0; i < got.calls.size(); ++i) {
      EXPECT_EQ(got.calls[i].id, "id" + std::to_string(i));
      EXPECT_EQ(got.calls[i].name, want["tool_calls"][i]["name"].get<std::string>());
      EXPECT_EQ(got.calls[i].arguments, want["tool_calls"][i]["arguments"].get<std::string>());
    }
    if (c["kind"] == "rendered") {
      ++rendered;
      families.insert(c["family"].get<std::string>());
    } else {
      ++hand;
    }
  }
  EXPECT_EQ(families, (std::set<std::string>{"qwen3", "qwen2_5", "llama3_1", "llama3_2", "mistral_instruct"}));
  EXPECT_GE(rendered, 13);
  EXPECT_GE(hand, 20);
  EXPECT_EQ(errors, 3);  // Llama 3.x with two calls, Qwen3 with content None
}

// Every split point into two chunks, every pair of split points on a stride, and one byte at a time.
template <class Case, class Whole, class Streamed>
void check_every_split(const Case& c, Whole whole, Streamed streamed) {
  const auto want = whole(c);
  const std::size_t n = c["text"].template get<std::string>().size();
  for (std::size_t k = 0; k <= n; ++k) expect_same(streamed(c, {k}), want, "cut at " + std::to_string(k));
  const std::size_t stride = n > 120 ? 7 : 1;
  for (std::size_t i = 0; i <= n; i += stride) {
    for (std::size_t j = i; j <= n; j += stride) {
      expect_same(streamed(c, {i, j}), want, "cuts at " + std::to_string(i) + ", " + std::to_string(j));
    }
  }
  std::vector<std::size_t> bytes;
  for (std::size_t k = 1; k < n; ++k) bytes.push_back(k);
  expect_same(streamed(c, bytes), want, "one byte at a time");
}

TEST(ToolCalls, StreamingGivesTheSameResultForEverySplit) {
  int checked = 0;
  for (const auto& c : fixtures()["cases"]) {
    if (c.contains("error")) continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    check_every_split(c, parse_whole, parse_streamed);
    if (::testing::Test::HasFailure()) return;  // one case's failures are plenty
    ++checked;
  }
  EXPECT_GE(checked, 35);
}

TEST(ToolCalls, StreamingHoldsBackOnlyWhatMayBeAMarker) {
  maskgen::ToolCallParser p(ToolCallFormat::Hermes, counting_ids());
  auto d = p.feed("Hello, wor");
  EXPECT_EQ(d.content, "Hello, wor");  // nothing here can start a call
  d = p.feed("ld\n<tool");
  EXPECT_EQ(d.content, "ld");  // "\n<tool" may be the whitespace and marker of a call
  d = p.feed("_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_");
  EXPECT_EQ(d.content, "");
  EXPECT_TRUE(d.tool_calls.empty());  // not closed yet
  d = p.feed("call>\n");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(d.tool_calls[0].index, 0u);
  EXPECT_EQ(d.tool_calls[0].call, (maskgen::ToolCall{"id0", "f", "{\"x\":1}"}));
  d = p.feed("<tool_x");
  EXPECT_EQ(d.content, "<tool_x");  // diverged from the marker: shown at once
  EXPECT_EQ(p.finish().content, "");

  maskgen::ToolCallParser m(ToolCallFormat::Mistral, counting_ids());
  EXPECT_EQ(m.feed("Sure [TOOL_").content, "Sure");
  d = m.feed("CALLS] [{\"name\": \"g\", \"arguments\": {}}, {\"name\": \"h\", \"arguments\": {\"s\": \"]}\"}}");
  EXPECT_TRUE(d.tool_calls.empty());  // the array is still open ("]}" inside a string does not close it)
  d = m.feed("]");
  ASSERT_EQ(d.tool_calls.size(), 2u);
  EXPECT_EQ(d.tool_calls[1].index, 1u);
  EXPECT_EQ(d.tool_calls[1].call.arguments, "{\"s\":\"]}\"}");

  maskgen::ToolCallParser l(ToolCallFormat::Llama3Json, counting_ids());
  EXPECT_EQ(l.feed("  ").content, "");  // could still be the whitespace before a call
  EXPECT_EQ(l.feed("Hi").content, "  Hi");
}

TEST(ToolCalls, CallIds) {
  const auto is_alnum = [](const std::string& s) {
    for (unsigned char ch : s) {
      if (!std::isalnum(ch)) return false;
    }
    return true;
  };
  const auto openai = maskgen::random_tool_call_ids();
  const std::string a = openai(), b = openai();
  ASSERT_EQ(a.size(), 29u);
  EXPECT_EQ(a.substr(0, 5), "call_");
  EXPECT_TRUE(is_alnum(a.substr(5)));
  EXPECT_NE(a, b);
  const std::string m = maskgen::mistral_tool_call_ids()();
  EXPECT_EQ(m.size(), 9u);
  EXPECT_TRUE(is_alnum(m));
  // The default generator follows the format: Mistral's template accepts only 9-character ids back.
  const auto mistral = maskgen::parse_tool_calls("[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {}}]", ToolCallFormat::Mistral);
  ASSERT_EQ(mistral.tool_calls.size(), 1u);
  EXPECT_EQ(mistral.tool_calls[0].id.size(), 9u);
  const auto hermes = maskgen::parse_tool_calls("<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", ToolCallFormat::Hermes);
  ASSERT_EQ(hermes.tool_calls.size(), 1u);
  EXPECT_EQ(hermes.tool_calls[0].id.substr(0, 5), "call_");
  EXPECT_EQ(hermes.tool_calls[0].arguments, "{}");
}

TEST(ToolCalls, NoFormatMeansPlainContentAndMisuseIsAnError) {
  const auto plain = maskgen::parse_tool_calls("<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", ToolCallFormat::None);
  EXPECT_EQ(plain.content, "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>");
  EXPECT_TRUE(plain.tool_calls.empty());
  maskgen::ToolCallParser p(ToolCallFormat::Hermes);
  p.finish();
  EXPECT_THROW(p.feed("x"), maskgen::argument_error);
  EXPECT_THROW(p.finish(), maskgen::argument_error);
  maskgen::ReasoningParser r;
  r.finish();
  EXPECT_THROW(r.feed("x"), maskgen::argument_error);
}

TEST(ToolCalls, InvalidUtf8InsideACallLeavesItContent) {
  const std::string text = "<tool_call>{\"name\": \"f\", \"arguments\": {\"s\": \"\xFF\"}}</tool_call>";
  const auto parsed = maskgen::parse_tool_calls(text, ToolCallFormat::Hermes);
  EXPECT_EQ(parsed.content, text);  // not valid JSON (RFC 8259 requires UTF-8)
  EXPECT_TRUE(parsed.tool_calls.empty());
}

// ---------------------------------------------------------------------------------------------
// Reasoning

Outcome reasoning_whole(const json& c) {
  auto s = maskgen::split_reasoning(c["text"].get<std::string>(), reasoning_options(c));
  return {s.reasoning, s.content, {}};
}

Outcome reasoning_streamed(const json& c, const std::vector<std::size_t>& cuts) {
  const std::string text = c["text"].get<std::string>();
  maskgen::ReasoningParser p(reasoning_options(c));
  Outcome o;
  auto take = [&](maskgen::ReasoningSplit d) {
    o.reasoning += d.reasoning;
    o.content += d.content;
  };
  std::size_t at = 0;
  for (std::size_t cut : cuts) {
    take(p.feed(std::string_view(text).substr(at, cut - at)));
    at = cut;
  }
  take(p.feed(std::string_view(text).substr(at)));
  take(p.finish());
  return o;
}

TEST(Reasoning, SplitsAsTheFixturesSay) {
  int checked = 0;
  for (const auto& c : fixtures()["reasoning_cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const Outcome got = reasoning_whole(c);
    EXPECT_EQ(got.reasoning, c["expected"]["reasoning"].get<std::string>());
    EXPECT_EQ(got.content, c["expected"]["content"].get<std::string>());
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(Reasoning, StreamingGivesTheSameResultForEverySplit) {
  for (const auto& c : fixtures()["reasoning_cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    check_every_split(c, reasoning_whole, reasoning_streamed);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(Reasoning, HoldsBackOnlyWhatMayBeAMarkerOrItsNewlines) {
  maskgen::ReasoningParser p({.starts_in_reasoning = true});
  auto d = p.feed("\nLet me th");
  EXPECT_EQ(d.reasoning, "Let me th");
  d = p.feed("ink.\n</th");
  EXPECT_EQ(d.reasoning, "ink.");  // "\n</th" may be the newline before the closing marker
  d = p.feed("ink>\n\nHi");
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "Hi");
  d = p.feed(" there\n");
  EXPECT_EQ(d.content, " there\n");  // content is never held
  EXPECT_EQ(p.finish().content, "");
}

TEST(Reasoning, PromptOpensReasoning) {
  EXPECT_TRUE(maskgen::prompt_opens_reasoning("<|im_start|>assistant\n<think>\n"));
  EXPECT_TRUE(maskgen::prompt_opens_reasoning("<|im_start|>assistant\n<think>"));
  EXPECT_FALSE(maskgen::prompt_opens_reasoning("<|im_start|>assistant\n"));
  // Qwen3 with enable_thinking=false closes the block in the prompt.
  EXPECT_FALSE(maskgen::prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
}

}  // namespace

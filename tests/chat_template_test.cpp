// Chat templates against Python's jinja2 with transformers' settings (tests/data/chat, written by
// tests/reference/make_chat_fixtures.py): the published templates of Qwen3, Qwen2.5, Llama 3,
// 3.1 and 3.2, Mistral Instruct, Llama 2, Gemma 3, Phi-3-mini, Phi-3.5-mini and Phi-4-mini over many
// conversations, and small templates that exercise one construct each. Every case renders to jinja2's exact output, or fails where jinja2
// fails (with the template's own message for raise_exception), or, for the constructs listed in
// kUnsupported, is refused with unsupported_template_error: never a silently different prompt.

#include <maskgen/chat_template.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace {

using maskgen::ChatTemplate;
using json = nlohmann::ordered_json;

const json& fixtures() {
  static const json data = [] {
    std::ifstream in(std::string(MASKGEN_TEST_DATA_DIR) + "/chat/chat_fixtures.json");
    return json::parse(in);
  }();
  return data;
}

// Cases whose construct maskgen's interpreter refuses by design (each must throw
// unsupported_template_error): integers past 64 bits, recursive loops, {% call %}, and the
// printf-style and str.format formatting that no chat template we know of uses.
const std::map<std::string, std::string> kUnsupported = {
    {"synthetic/arithmetic_big", "integers beyond 64 bits"},
    {"synthetic/filter_tojson_basic", "integers beyond 64 bits (a variable holds 12345678901234567890)"},
    {"synthetic/loop_recursive", "recursive for loops"},
    {"synthetic/macro_caller", "{% call %} blocks"},
    {"synthetic/filter_format", "the format filter"},
    {"synthetic/str_format_method", "str.format"},
};

std::chrono::system_clock::time_point fixture_now() {
  using namespace std::chrono;
  return sys_days(year(2024) / July / 26);  // the fixtures' fixed strftime_now time, 2024-07-26T00:00:00
}

std::string template_text(const json& c) {
  if (c.contains("template_text")) return c["template_text"].get<std::string>();
  return fixtures()["templates"][c["template"].get<std::string>()]["text"].get<std::string>();
}

TEST(ChatTemplate, FixturesCoverEveryPublishedTemplate) {
  std::set<std::string> names;
  for (const auto& c : fixtures()["cases"]) {
    if (c.contains("template")) names.insert(c["template"].get<std::string>());
  }
  for (const char* t : {"qwen3", "qwen2_5", "llama3", "llama3_1", "llama3_2", "mistral_instruct", "llama2", "gemma3",
                        "phi3_mini", "phi3_5_mini", "phi4_mini"}) {
    EXPECT_TRUE(names.count(t)) << t;
  }
  EXPECT_GT(fixtures()["cases"].size(), 250u);
}

TEST(ChatTemplate, RendersAsJinja2) {
  int passed = 0, errors = 0;
  for (const auto& c : fixtures()["cases"]) {
    const std::string name = c["name"].get<std::string>();
    SCOPED_TRACE(name);
    maskgen::ChatOptions options;
    options.now = fixture_now();
    if (kUnsupported.count(name)) {
      EXPECT_THROW(
          {
            ChatTemplate t(template_text(c));
            t.render(c["variables"], options);
          },
          maskgen::unsupported_template_error);
      continue;
    }
    try {
      const ChatTemplate t(template_text(c));
      const std::string got = t.render(c["variables"], options);
      if (c.contains("error")) {
        ADD_FAILURE() << "rendered where jinja2 fails with: " << c["error"].get<std::string>() << "\ngot: " << got;
      } else {
        EXPECT_EQ(got, c["expected"].get<std::string>());
        ++passed;
      }
    } catch (const maskgen::unsupported_template_error& e) {
      // Refusing a construct is right only where jinja2 fails too (say, calling a method str lacks).
      EXPECT_TRUE(c.contains("error") && c["error_type"] != "TemplateError") << "unsupported: " << e.what();
      ++errors;
    } catch (const maskgen::template_raised_error& e) {
      ASSERT_TRUE(c.contains("error")) << "raised: " << e.what();
      EXPECT_EQ(c["error_type"].get<std::string>(), "TemplateError");
      EXPECT_EQ(std::string(e.what()), c["error"].get<std::string>());  // the template's own message
      ++errors;
    } catch (const maskgen::template_error& e) {
      ASSERT_TRUE(c.contains("error")) << "failed: " << e.what();
      EXPECT_NE(c["error_type"].get<std::string>(), "TemplateError") << "jinja2 raised the template's message: "
                                                                     << c["error"].get<std::string>() << "; maskgen: " << e.what();
      ++errors;
    }
  }
  EXPECT_GT(passed, 200);
  EXPECT_GT(errors, 10);
}

// The OpenAI tool round trip as a server hands it to each tool-using template
// (tests/data/chat/tool_roundtrip_fixtures.json, written by tests/reference/make_tool_fixtures.py):
// system, user, an assistant message with tool_calls (arguments as a dict, as vLLM passes them)
// and content null or "", the tool's answer, then the generation prompt. Where jinja2 fails (Qwen3
// on null content: "'</think>' in None"), maskgen fails too, with Python's message.
TEST(ChatTemplate, RendersTheToolRoundTripAsJinja2) {
  std::ifstream in(std::string(MASKGEN_TEST_DATA_DIR) + "/chat/tool_roundtrip_fixtures.json");
  const json roundtrip = json::parse(in);
  int rendered = 0, failed = 0;
  for (const auto& c : roundtrip["cases"]) {
    const std::string name = c["name"].get<std::string>();
    SCOPED_TRACE(name);
    maskgen::ChatOptions options;
    options.now = fixture_now();
    const ChatTemplate t(template_text(c));
    if (c.contains("expected")) {
      EXPECT_EQ(t.render(c["variables"], options), c["expected"].get<std::string>());
      ++rendered;
      continue;
    }
    try {
      t.render(c["variables"], options);
      ADD_FAILURE() << "rendered where jinja2 fails with: " << c["error"].get<std::string>();
    } catch (const maskgen::template_raised_error& e) {
      ADD_FAILURE() << "raised: " << e.what();
    } catch (const maskgen::template_error& e) {
      EXPECT_EQ(c["error_type"].get<std::string>(), "TypeError");
      EXPECT_NE(std::string(e.what()).find(c["error"].get<std::string>()), std::string::npos) << e.what();
      ++failed;
    }
  }
  EXPECT_EQ(rendered, 22);
  EXPECT_EQ(failed, 4);  // Qwen3 with content null, one and two calls, with and without reasoning_content
}

TEST(ChatTemplate, Qwen3FromTokenizerConfigMatchesTheFixtures) {
  const auto chat = ChatTemplate::from_tokenizer_config(std::string(MASKGEN_SHARED_DIR) + "/tokenizers/qwen3");
  EXPECT_EQ(chat.special_tokens()["eos_token"], "<|im_end|>");
  EXPECT_FALSE(chat.special_tokens().contains("bos_token"));  // null in the config: not passed, as transformers
  int checked = 0;
  for (const auto& c : fixtures()["cases"]) {
    if (!c.contains("template") || c["template"] != "qwen3" || !c.contains("expected")) continue;
    const json& v = c["variables"];
    maskgen::ChatOptions options;
    options.add_generation_prompt = v["add_generation_prompt"].get<bool>();
    options.tools = v["tools"];
    options.documents = v["documents"];
    for (const auto& [k, x] : v.items()) {
      if (k != "messages" && k != "tools" && k != "documents" && k != "add_generation_prompt" && k != "eos_token" &&
          k != "pad_token") {
        options.variables[k] = x;
      }
    }
    EXPECT_EQ(chat.apply(v["messages"], options), c["expected"].get<std::string>()) << c["name"];
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

// Gemma 3's tokenizer_config.json, unpacked from the shared archive (with tar, as a user would):
// the template and special tokens that from_tokenizer_config reads give jinja2's renderings through
// apply(), and the template's own raise_exception messages come back as template_raised_error.
TEST(ChatTemplate, Gemma3FromTokenizerConfigMatchesTheFixtures) {
  const std::string archive = std::string(MASKGEN_SHARED_DIR) + "/tokenizers/gemma3.tar.xz";
  MASKGEN_REQUIRE_SHARED(archive);
  const maskgen::test::TempDir tmp;
  const std::string command = "tar -xJf '" + archive + "' -C '" + tmp.path().string() + "' ./tokenizer_config.json";
  if (std::system(command.c_str()) != 0) GTEST_SKIP() << "could not unpack " << archive << " with tar";
  const auto chat = ChatTemplate::from_tokenizer_config(tmp.path());
  const json& entry = fixtures()["templates"]["gemma3"];
  EXPECT_EQ(chat.source(), entry["text"].get<std::string>());
  EXPECT_EQ(chat.special_tokens(), entry["special_tokens_passed"]);  // bos, eos, unk, pad, as transformers passes them
  EXPECT_EQ(chat.special_tokens()["bos_token"], "<bos>");
  EXPECT_EQ(chat.special_tokens()["eos_token"], "<end_of_turn>");
  int rendered = 0, raised = 0;
  for (const auto& c : fixtures()["cases"]) {
    if (!c.contains("template") || c["template"] != "gemma3") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const json& v = c["variables"];
    const maskgen::ChatOptions options{.add_generation_prompt = v["add_generation_prompt"].get<bool>()};
    if (c.contains("expected")) {
      EXPECT_EQ(chat.apply(v["messages"], options), c["expected"].get<std::string>());
      ++rendered;
    } else if (c["error_type"] == "TemplateError") {
      try {
        chat.apply(v["messages"], options);
        ADD_FAILURE() << "rendered where jinja2 raises " << c["error"].get<std::string>();
      } catch (const maskgen::template_raised_error& e) {
        EXPECT_EQ(std::string(e.what()), c["error"].get<std::string>());
        ++raised;
      }
    } else {
      EXPECT_THROW(chat.apply(v["messages"], options), maskgen::template_error);
    }
  }
  EXPECT_EQ(rendered, 23);
  EXPECT_EQ(raised, 7);  // roles not alternating (system after the first turn, user twice, ...), content not text
}

TEST(ChatTemplate, ApplyBatchRendersEachConversationAsAlone) {
  const auto chat = ChatTemplate::from_tokenizer_config(std::string(MASKGEN_SHARED_DIR) + "/tokenizers/qwen3");
  std::vector<json> conversations;
  for (int i = 0; i < 9; ++i) {
    conversations.push_back(json::array({{{"role", "user"}, {"content", "question " + std::to_string(i)}}}));
  }
  const maskgen::ChatOptions options{.add_generation_prompt = true};
  const auto batch = chat.apply_batch(conversations, options, 2);
  ASSERT_EQ(batch.size(), conversations.size());
  for (std::size_t i = 0; i < batch.size(); ++i) EXPECT_EQ(batch[i], chat.apply(conversations[i], options));
  EXPECT_EQ(batch[3], "<|im_start|>user\nquestion 3<|im_end|>\n<|im_start|>assistant\n");
}

// Token ids against transformers' apply_chat_template(tokenize=True) on the real Qwen3 and
// Llama 3 tokenizers (tests/data/chat/chat_token_fixtures.json, written by
// tests/reference/make_chat_token_fixtures.py): the rendering, its ids, and encode_chats' row.
const json& token_fixtures() {
  static const json data = [] {
    std::ifstream in(std::string(MASKGEN_TEST_DATA_DIR) + "/chat/chat_token_fixtures.json");
    return json::parse(in);
  }();
  return data;
}

maskgen::ChatOptions token_case_options(const json& c) {
  maskgen::ChatOptions options;
  options.add_generation_prompt = c["add_generation_prompt"].get<bool>();
  if (c.contains("tools")) options.tools = c["tools"];
  if (c.contains("variables")) options.variables = c["variables"];
  return options;
}

std::vector<std::int32_t> row_ids(const maskgen::BatchEncoding& batch, Eigen::Index row) {
  std::vector<std::int32_t> ids;
  for (Eigen::Index j = 0; j < batch.input_ids.cols(); ++j) {
    if (batch.attention_mask(row, j) == 1) ids.push_back(batch.input_ids(row, j));
  }
  return ids;
}

TEST(ChatTemplate, TokenIdsMatchTransformersApplyChatTemplate) {
  int checked = 0;
  for (const char* name : {"qwen3", "llama3"}) {
    const std::string dir = std::string(MASKGEN_SHARED_DIR) + "/tokenizers/" + name;
    if (!std::filesystem::exists(dir + "/tokenizer.json")) GTEST_SKIP() << "needs " << dir;
    const auto tokenizer = maskgen::load_tokenizer(dir);
    const auto chat = ChatTemplate::from_tokenizer_config(dir);
    for (const auto& c : token_fixtures()["tokenizers"][name]["cases"]) {
      SCOPED_TRACE(std::string(name) + "/" + c["name"].get<std::string>());
      const auto options = token_case_options(c);
      const std::string text = chat.apply(c["messages"], options);
      EXPECT_EQ(text, c["text"].get<std::string>());
      const auto expected = c["ids"].get<std::vector<std::int32_t>>();
      EXPECT_EQ(tokenizer.encode(text, {.add_bos = false, .add_eos = false}), expected);
      const std::vector<json> one = {c["messages"]};
      const auto batch = maskgen::encode_chats(tokenizer, chat, one, options);
      ASSERT_EQ(batch.input_ids.rows(), 1);
      EXPECT_EQ(row_ids(batch, 0), expected);  // no BOS added on top of the template's own
      ++checked;
    }
  }
  EXPECT_EQ(checked, 12);
}

TEST(ChatTemplate, EncodeChatsEqualsTransformersPaddedBatch) {
  const std::string dir = std::string(MASKGEN_SHARED_DIR) + "/tokenizers/qwen3";
  if (!std::filesystem::exists(dir + "/tokenizer.json")) GTEST_SKIP() << "needs " << dir;
  const auto tokenizer = maskgen::load_tokenizer(dir);
  const auto chat = ChatTemplate::from_tokenizer_config(dir);
  const json& fixture = token_fixtures()["tokenizers"]["qwen3"];
  std::map<std::string, json> by_name;
  for (const auto& c : fixture["cases"]) by_name[c["name"].get<std::string>()] = c["messages"];
  std::vector<json> conversations;
  for (const auto& n : fixture["batch"]["cases"]) conversations.push_back(by_name.at(n.get<std::string>()));
  const auto batch = maskgen::encode_chats(tokenizer, chat, conversations, {.add_generation_prompt = true},
                                           {.num_threads = 2});
  const auto& want_ids = fixture["batch"]["input_ids"];
  const auto& want_mask = fixture["batch"]["attention_mask"];
  ASSERT_EQ(batch.input_ids.rows(), static_cast<Eigen::Index>(want_ids.size()));
  ASSERT_EQ(batch.input_ids.cols(), static_cast<Eigen::Index>(want_ids[0].size()));
  for (Eigen::Index i = 0; i < batch.input_ids.rows(); ++i) {
    for (Eigen::Index j = 0; j < batch.input_ids.cols(); ++j) {
      EXPECT_EQ(batch.input_ids(i, j), want_ids[i][j].get<std::int32_t>()) << i << "," << j;
      EXPECT_EQ(batch.attention_mask(i, j), want_mask[i][j].get<std::int32_t>()) << i << "," << j;
    }
  }
}

// Strings come in as Python's would after bytes.decode("utf-8", errors="replace"): each
// ill-formed part of a message or of the template becomes U+FFFD, so the output is valid UTF-8.
TEST(ChatTemplate, InvalidUtf8IsRepairedOnTheWayIn) {
  const ChatTemplate chat("{% for m in messages %}[{{ m.content|upper }}|{{ m.content[1:] }}]{% endfor %}\xC3");
  const json messages = json::array({{{"role", "user"}, {"content", "a\xFF\xE6\x82" "b"}}});
  // b"a\xff\xe6\x82b".decode(errors="replace") == "a\ufffd\ufffdb"; a lone \xC3 is one U+FFFD.
  EXPECT_EQ(chat.apply(messages), "[A\uFFFD\uFFFDB|\uFFFD\uFFFDb]\uFFFD");
}

TEST(ChatTemplate, ErrorsNameTheLineAndTheConstruct) {
  try {
    ChatTemplate("line one\n{% if x %}\n{% include 'other.jinja' %}\n{% endif %}");
    FAIL() << "compiled";
  } catch (const maskgen::unsupported_template_error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("include"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ChatTemplate("{{ x | no_such_filter }}"), maskgen::template_error);
  EXPECT_THROW(ChatTemplate("{% if x %}unclosed"), maskgen::template_error);
  EXPECT_THROW(ChatTemplate("{{ 'unterminated }}"), maskgen::template_error);
  // raise_exception's message comes through exactly, as a typed error.
  try {
    ChatTemplate("{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}")
        .render(json::object());
    FAIL() << "rendered";
  } catch (const maskgen::template_raised_error& e) {
    EXPECT_STREQ(e.what(), "Conversation roles must alternate user/assistant/user/assistant/...");
  }
}

TEST(ChatTemplate, HostileTemplatesHitLimitsInsteadOfRunningAway) {
  const json none = json::object();
  EXPECT_THROW(ChatTemplate("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}")
                   .render(none),
               maskgen::template_error);  // step limit
  EXPECT_THROW(ChatTemplate("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").render(none),
               maskgen::template_error);  // call depth
  EXPECT_THROW(ChatTemplate("{{ 'x' * 100000000 }}").render(none), maskgen::template_error);  // output size
  EXPECT_THROW(ChatTemplate("{{ " + std::string(1000, '(') + "1" + std::string(1000, ')') + " }}"), maskgen::template_error);  // nesting
  std::string nested_ifs;
  for (int i = 0; i < 300; ++i) nested_ifs = "{% if true %}" + nested_ifs + "{% endif %}";
  EXPECT_THROW(ChatTemplate{nested_ifs}, maskgen::template_error);
  EXPECT_THROW(ChatTemplate("{{ range(100000000) | length }}").render(none), maskgen::template_error);
}

// Templates the fuzzer (tests/fuzz/chat_template.cpp) and a read of the interpreter turned up: each
// used to crash, hang, overflow a 64-bit integer, leak, or let a non-maskgen exception escape. Each
// must now fail with a template_error, quickly (the whole test takes well under a second).
TEST(ChatTemplate, FuzzFindingsFailCleanly) {
  const json none = json::object();
  std::string tildes = "{{ 1", pipes = "{{ ''", chained_macro = "{% macro m(n) %}{{ (m(n-1) if n else '')";
  for (int i = 0; i < 4000; ++i) tildes += " ~ 1";
  for (int i = 0; i < 4000; ++i) pipes += "|e";
  for (int i = 0; i < 150; ++i) chained_macro += "|e";
  const std::vector<std::string> cases = {
      "{{''|indent(s)}}",                                 // an undefined width (std::bad_variant_access)
      "{{ 'x'|tojson(indent=[]) }}", "{{ 'x'|float('a') }}",
      "{%for m in m.66666666666666666666%}{%endfor%}",    // x.<digits> past 64 bits (std::out_of_range)
      "{{ [1]|map(attribute='99999999999999999999')|list }}",
      "{{ 2 ** 63 }}",                                     // overflow, found by squaring
      "{{ ''|indent(9223372036854775807) }}", "{{ ''|indent(100000000000) }}",
      "{{ 'x'|tojson(indent=100000000000) }}",
      "{{ [0]|slice(1000000000000)|list }}", "{{ [0]|batch(1000000000000, 0)|list }}",
      "{% set ns = namespace() %}{% set ns.s = ns %}{{ ns }}",  // a namespace holding itself
      "{% set a = namespace() %}{% set b = namespace() %}{% set a.x = b %}{% set b.x = a %}{{ a == b }}",
      tildes + " }}", pipes + " }}",                       // chains deeper than the parser allows
      chained_macro + " }}{% endmacro %}{{ m(99) }}",      // macros multiplying a template's nesting
      "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}",
      "{{ range(100000)|unique|length }}",                  // quadratic work, charged as steps
      "{% set r = range(100000) %}{% for i in r %}{% if -1 in r %}{% endif %}{% endfor %}",
      "{% set a = 'x' * 1000000 %}{{ (a|replace('', a))|length }}",
      "{{ ([[0]*100000]*100000)|tojson|length }}",
  };
  for (const auto& source : cases) {
    SCOPED_TRACE(source.substr(0, 120));
    EXPECT_THROW(ChatTemplate(source).render(none), maskgen::template_error);
  }
  // Overflow at the ends of 64 bits is not an error where Python's result fits.
  EXPECT_EQ(ChatTemplate("{{ 'abc'|truncate(9223372036854775807) }}").render(none), "abc");
  EXPECT_EQ(ChatTemplate("{{ 'ab'[1::9223372036854775807] }}").render(none), "b");
  EXPECT_EQ(ChatTemplate("{% for i in range(9223372036854775806, 9223372036854775807, 5) %}{{ i }}{% endfor %}").render(none),
            "9223372036854775806");
  EXPECT_EQ(ChatTemplate("{{ (-9223372036854775807 - 1) is divisibleby(-1) }}").render(none), "True");
  EXPECT_EQ(ChatTemplate("{{ '' * 9223372036854775807 }}|{{ ([] * 9223372036854775807)|length }}").render(none), "|0");
  EXPECT_EQ(ChatTemplate("{{ (-1) ** 9223372036854775807 }}").render(none), "-1");  // was a loop per unit of the exponent
  EXPECT_EQ(ChatTemplate("{{ (-1) ** 3 }} {{ 3 ** 4 }} {{ 2 ** 62 }}").render(none), "-1 81 4611686018427387904");
  // loop.changed(loop) stores the loop in itself: no leak once the loop ends (LeakSanitizer checks).
  EXPECT_EQ(ChatTemplate("{% for x in [1] %}{{ loop.changed(loop) }}{% endfor %}").render(none), "True");
}

}  // namespace

// The padded layout against Hugging Face transformers' layout of the same SentencePiece ids
// (tests/data/tokenizer_fixtures.json), and the rules of DESIGN 2.1 that arithmetic can show.

#include <maskgen/padding.hpp>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace maskgen {
namespace {

using Rows = std::vector<std::vector<std::int32_t>>;

TokenMatrix matrix(const Rows& rows) { return test::to_matrix(nlohmann::json(rows)); }

}  // namespace

// Converts one fixture case's settings to PaddingOptions (shared with tokenizer_test.cpp).
PaddingOptions options_from_fixture(const nlohmann::json& c) {
  const auto& s = c["settings"];
  PaddingOptions o;
  o.padding_side = s["padding_side"] == "left" ? Side::Left : Side::Right;
  o.padding = s["padding"] == "longest" ? PadTo::Longest : PadTo::MaxLength;
  if (!c["max_length"].is_null()) o.max_length = c["max_length"].get<std::int32_t>();
  if (!s["pad_to_multiple_of"].is_null()) o.pad_to_multiple_of = s["pad_to_multiple_of"].get<std::int32_t>();
  o.truncation = s["truncation"].get<bool>();
  o.truncation_side = s["truncation_side"] == "left" ? Side::Left : Side::Right;
  o.add_bos = s["add_bos"].get<bool>();
  o.add_eos = s["add_eos"].get<bool>();
  if (c.contains("pad_token_id")) o.pad_token_id = c["pad_token_id"].get<std::int32_t>();
  return o;
}

namespace {

TEST(Padding, MatchesTransformersLayoutOfSentencePieceIds) {
  const auto fixture = test::read_json(test::data_dir() / "tokenizer_fixtures.json");
  int checked = 0, errors = 0;
  for (const auto& [name, tok] : fixture["tokenizers"].items()) {
    for (const auto& c : tok["cases"]) {
      SCOPED_TRACE(name + " " + c.dump());
      const PaddingOptions options = options_from_fixture(c);
      const SpecialIds special{*options.add_bos ? std::optional(tok["bos_id"].get<std::int32_t>()) : std::nullopt,
                               *options.add_eos ? std::optional(tok["eos_id"].get<std::int32_t>()) : std::nullopt};
      auto layout = [&] {
        Rows rows;
        for (const auto& i : c["rows"]) {
          rows.push_back(add_special_tokens(tok["ids"][i.get<std::size_t>()].get<std::vector<std::int32_t>>(),
                                            options, special));
        }
        return pad_rows(rows, options, options.pad_token_id);
      };
      if (c.contains("error")) {  // transformers refused these settings; so must maskgen
        EXPECT_THROW(layout(), argument_error);
        ++errors;
        continue;
      }
      const BatchEncoding batch = layout();
      EXPECT_EQ(batch.input_ids, test::to_matrix(c["input_ids"]));
      EXPECT_EQ(batch.attention_mask, test::to_matrix(c["attention_mask"]));
      ++checked;
    }
  }
  EXPECT_GT(checked, 400);
  EXPECT_GT(errors, 100);
}

TEST(Padding, LeftAndRightPlaceTheSameTokens) {
  const Rows rows = {{1, 5, 6, 7}, {1, 8}, {1}};
  PaddingOptions left{.padding_side = Side::Left, .pad_token_id = 0};
  PaddingOptions right{.padding_side = Side::Right, .pad_token_id = 0};
  const auto l = pad_rows(rows, left, 0), r = pad_rows(rows, right, 0);
  EXPECT_EQ(l.input_ids, matrix(Rows{{1, 5, 6, 7}, {0, 0, 1, 8}, {0, 0, 0, 1}}));
  EXPECT_EQ(l.attention_mask, matrix(Rows{{1, 1, 1, 1}, {0, 0, 1, 1}, {0, 0, 0, 1}}));
  EXPECT_EQ(r.input_ids, matrix(Rows{{1, 5, 6, 7}, {1, 8, 0, 0}, {1, 0, 0, 0}}));
  EXPECT_EQ(r.attention_mask, matrix(Rows{{1, 1, 1, 1}, {1, 1, 0, 0}, {1, 0, 0, 0}}));
}

TEST(Padding, PadToMultipleRoundsUp) {
  const Rows rows = {{1, 2, 3, 4, 5}, {1}};
  PaddingOptions o{.pad_to_multiple_of = 4};
  EXPECT_EQ(pad_rows(rows, o, 9).input_ids.cols(), 8);
  o.pad_to_multiple_of = 5;
  EXPECT_EQ(pad_rows(rows, o, 9).input_ids.cols(), 5);
  o.padding = PadTo::MaxLength;
  o.max_length = 6;  // 6 rounded up to a multiple of 5
  EXPECT_EQ(pad_rows(rows, o, 9).input_ids.cols(), 10);
}

TEST(Padding, TruncationKeepsBosAndEosOnEitherSide) {
  const std::vector<std::int32_t> content = {10, 11, 12, 13, 14, 15};
  const SpecialIds special{1, 2};
  PaddingOptions o{.max_length = 4, .truncation = true, .add_eos = true};
  o.truncation_side = Side::Right;
  EXPECT_EQ(add_special_tokens(content, o, special), (std::vector<std::int32_t>{1, 10, 11, 2}));
  o.truncation_side = Side::Left;
  EXPECT_EQ(add_special_tokens(content, o, special), (std::vector<std::int32_t>{1, 14, 15, 2}));
  o.max_length = 2;  // only the special tokens fit
  EXPECT_EQ(add_special_tokens(content, o, special), (std::vector<std::int32_t>{1, 2}));
  o.max_length = 1;
  EXPECT_THROW(add_special_tokens(content, o, special), argument_error);
  o.truncation = false;  // without truncation nothing is cut here; padding checks the length
  EXPECT_EQ(add_special_tokens(content, o, special).size(), 8u);
}

TEST(Padding, EmptyBatchAndEmptyRows) {
  const Rows none;
  EXPECT_EQ(pad_rows(none, {}, 0).input_ids.rows(), 0);
  const Rows rows = {{}, {7, 8}};
  const auto b = pad_rows(rows, {.padding_side = Side::Left}, 3);
  EXPECT_EQ(b.input_ids, matrix(Rows{{3, 3}, {7, 8}}));
  EXPECT_EQ(b.attention_mask, matrix(Rows{{0, 0}, {1, 1}}));
}

TEST(Padding, BadOptionsNameTheField) {
  const Rows rows = {{1, 2, 3}, {1}};
  test::expect_error<argument_error>([&] { pad_rows(rows, {.pad_to_multiple_of = 0}, 0); }, {"pad_to_multiple_of", "> 0"});
  test::expect_error<argument_error>([&] { pad_rows(rows, {.pad_to_multiple_of = -3}, 0); }, {"pad_to_multiple_of"});
  test::expect_error<argument_error>([&] { pad_rows(rows, {.padding = PadTo::MaxLength}, 0); }, {"max_length"});
  test::expect_error<argument_error>([&] { pad_rows(rows, {.max_length = -1}, 0); }, {"max_length", ">= 0"});
  test::expect_error<argument_error>([&] { pad_rows(rows, {.truncation = true}, 0); }, {"max_length", "truncation"});
  test::expect_error<argument_error>([&] { pad_rows(rows, {.num_threads = -1}, 0); }, {"num_threads"});
  test::expect_error<argument_error>([&] { pad_rows(rows, {.padding = PadTo::None}, 0); },
                        {"row 1", "1 tokens", "row 0", "PadTo::None"});
  test::expect_error<argument_error>([&] { pad_rows(rows, {.max_length = 2}, 0); }, {"row 0", "3 tokens", "max_length is 2"});
  test::expect_error<argument_error>([&] { pad_rows(rows, {.max_length = 2, .padding = PadTo::MaxLength}, 0); },
                        {"row 0", "max_length"});
  test::expect_error<argument_error>([&] { pad_rows(rows, {}, std::nullopt); }, {"row 1", "pad id"});
  test::expect_error<argument_error>(
      [&] { pad_rows(rows, {.max_length = 12, .pad_to_multiple_of = 8, .truncation = true}, 0); },
      {"max_length (12)", "multiple", "(8)"});
  // Equal rows need no pad id and no padding.
  EXPECT_EQ(pad_rows(Rows{{1, 2}, {3, 4}}, {.padding = PadTo::None}, std::nullopt).input_ids.cols(), 2);
}

}  // namespace
}  // namespace maskgen

// Prints input_ids and attention_mask of a batch of texts under the given padding options: the
// tokenizer alone, as transformers' tokenizer(texts, padding=..., return_tensors=...) gives them.
//
//   tokenize_batch [--tokenizer PATH] [OPTIONS] TEXT...   (tokenize_batch --help)
//     PATH: a model folder (tokenizer.json or tokenizer.model inside), a tokenizer.json or a
//     tokenizer.model file; the bundled model's tokenizer by default.

#include <maskgen/maskgen.hpp>

#include "support/cli.hpp"

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

// A model folder, a tokenizer.json (with tokenizer_config.json beside it, when there) or a
// SentencePiece tokenizer.model.
maskgen::AutoTokenizer open_tokenizer(const std::filesystem::path& path) {
  if (std::filesystem::is_directory(path)) return maskgen::load_tokenizer(path);
  if (path.extension() == ".json") {
    return maskgen::AutoTokenizer(maskgen::TokenizerJsonBackend::from_file(path, path.parent_path() / "tokenizer_config.json"));
  }
  return maskgen::AutoTokenizer(maskgen::SentencePieceBackend::from_file(path));
}

std::string tokenizer_problem(const std::string& text) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(text, ec)) return "'" + text + "' does not exist (expected a model folder, a tokenizer.json or a tokenizer.model)";
  if (fs::is_directory(text, ec) && !fs::is_regular_file(fs::path(text) / "tokenizer.json", ec) &&
      !fs::is_regular_file(fs::path(text) / "tokenizer.model", ec)) {
    return "the folder '" + text + "' has no tokenizer.json (nor tokenizer.model)";
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Prints the input_ids and attention_mask of a padded batch of texts.", "tokenize_batch"};
  maskgen_cli::set_up(app,
                      "  tokenize_batch --padding-side right \"sort 1 =\" \"reverse 1 2 3 =\"\n"
                      "  tokenize_batch --tokenizer Qwen3-0.6B --padding max_length --max-length 16 \"Hello\" \"你好\"\n"
                      "  tokenize_batch --tokenizer models/sort-reverse/tokenizer.model --truncation --max-length 4 \"sort 9 8 7 6 5 =\"\n"
                      "A text that begins with '-' goes after '--'.");
  std::string tokenizer = MASKGEN_DEMO_MODEL_DIR;
  std::vector<std::string> texts;
  maskgen::PaddingOptions options;
  std::string padding_side = "left", padding = "longest", truncation_side = "right";
  bool add_bos = false, no_add_bos = false, add_eos = false, no_add_eos = false;

  app.add_option("TEXT", texts, "Texts to tokenize, one row each")->type_name("")->default_str("");
  app.add_option("--tokenizer", tokenizer, "A model folder, a tokenizer.json or a tokenizer.model. Default: the bundled model's")
      ->type_name("PATH")
      ->check(CLI::Validator(tokenizer_problem, "", "tokenizer"));
  const char* group = "Padding and truncation (as transformers' tokenizer call)";
  app.add_option("--padding-side", padding_side, "Where pads go")->type_name("SIDE")->check(maskgen_cli::one_of({"left", "right"}))->group(group);
  app.add_option("--padding", padding, "longest: to the longest row; max_length: to --max-length; do_not_pad")
      ->type_name("HOW")
      ->check(maskgen_cli::one_of({"longest", "max_length", "do_not_pad"}))
      ->group(group);
  app.add_option("--max-length", options.max_length, "Length of --padding max_length, and the cap of --truncation")
      ->type_name("N")
      ->check(maskgen_cli::whole_number(0, 1 << 24))
      ->group(group);
  app.add_option("--pad-to-multiple-of", options.pad_to_multiple_of, "Round the padded length up to a multiple of N")
      ->type_name("N")
      ->check(maskgen_cli::whole_number(1, 1 << 24))
      ->group(group);
  CLI::Option* truncation = app.add_flag("--truncation", options.truncation, "Cut rows longer than --max-length (special tokens kept)")->group(group);
  app.add_option("--truncation-side", truncation_side, "With --truncation: which end of the text it cuts")
      ->type_name("SIDE")
      ->check(maskgen_cli::one_of({"left", "right"}))
      ->needs(truncation)
      ->group(group);
  const char* specials = "Special tokens (default: the tokenizer's own settings)";
  CLI::Option* bos = app.add_flag("--add-bos-token", add_bos, "Prepend BOS")->group(specials);
  app.add_flag("--no-add-bos-token", no_add_bos, "Do not prepend BOS")->excludes(bos)->group(specials);
  CLI::Option* eos = app.add_flag("--add-eos-token", add_eos, "Append EOS")->group(specials);
  app.add_flag("--no-add-eos-token", no_add_eos, "Do not append EOS")->excludes(eos)->group(specials);
  app.add_option("--pad-token-id", options.pad_token_id, "Id the pads hold (default: the tokenizer's pad id, else EOS)")
      ->type_name("N")
      ->check(maskgen_cli::whole_number<std::int32_t>(0))
      ->group(specials);
  maskgen_cli::add_threads_flag(app, options.num_threads)->description("Threads for encoding; 0 uses every core");

  return maskgen_cli::run(app, argc, argv, [&] {
    if (texts.empty()) throw maskgen_cli::usage_error("no texts: give one or more TEXT arguments to tokenize");
    options.padding_side = padding_side == "right" ? maskgen::Side::Right : maskgen::Side::Left;
    options.padding = padding == "max_length" ? maskgen::PadTo::MaxLength
                      : padding == "do_not_pad" ? maskgen::PadTo::None
                                                : maskgen::PadTo::Longest;
    options.truncation_side = truncation_side == "left" ? maskgen::Side::Left : maskgen::Side::Right;
    if (add_bos || no_add_bos) options.add_bos = add_bos;
    if (add_eos || no_add_eos) options.add_eos = add_eos;
    if (options.padding == maskgen::PadTo::MaxLength && !options.max_length) {
      throw maskgen_cli::usage_error("--padding max_length needs --max-length");
    }
    if (options.truncation && !options.max_length) throw maskgen_cli::usage_error("--truncation needs --max-length");
    if (options.padding == maskgen::PadTo::None && options.pad_to_multiple_of) {
      throw maskgen_cli::usage_error("--pad-to-multiple-of pads, but --padding is do_not_pad");
    }
    if (options.truncation && options.padding != maskgen::PadTo::None && options.pad_to_multiple_of &&
        *options.max_length % *options.pad_to_multiple_of != 0) {
      throw maskgen_cli::usage_error("--max-length " + std::to_string(*options.max_length) + " must be a multiple of --pad-to-multiple-of " +
                                     std::to_string(*options.pad_to_multiple_of) +
                                     " with --truncation: padding up to the multiple would make rows longer than the truncation length");
    }
    maskgen::validate(options);  // what is left to check is the library's (none of it reachable from these flags)
    const auto tok = open_tokenizer(tokenizer);
    if (options.pad_token_id && *options.pad_token_id >= tok.vocab_size()) {
      throw maskgen_cli::usage_error("--pad-token-id: expected an id below the vocabulary size " + std::to_string(tok.vocab_size()) +
                                     ", got " + std::to_string(*options.pad_token_id));
    }
    const auto batch = tok.encode_batch(texts, options);
    std::cout << "input_ids [" << batch.input_ids.rows() << ", " << batch.input_ids.cols() << "]:\n"
              << batch.input_ids << "\nattention_mask:\n" << batch.attention_mask << "\n";
    return 0;
  });
}

// Prints input_ids and attention_mask for texts under the given padding options.
//   PATH: a model folder (tokenizer.json or tokenizer.model inside), or a tokenizer.model file.
//   tokenize_batch --tokenizer PATH [--right] [--max-length N] [--pad-to max] [--multiple N]
//                  [--truncate left|right] [--no-bos] [--eos] [--pad-id N] TEXT...

#include <maskgen/maskgen.hpp>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) try {
  std::string tokenizer_path;
  maskgen::PaddingOptions options;
  std::vector<std::string> texts;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw maskgen::argument_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--tokenizer") tokenizer_path = value();
    else if (arg == "--right") options.padding_side = maskgen::Side::Right;
    else if (arg == "--max-length") options.max_length = std::stoi(value());
    else if (arg == "--pad-to") options.padding = value() == "max" ? maskgen::PadTo::MaxLength : maskgen::PadTo::Longest;
    else if (arg == "--multiple") options.pad_to_multiple_of = std::stoi(value());
    else if (arg == "--truncate") {
      options.truncation = true;
      options.truncation_side = value() == "left" ? maskgen::Side::Left : maskgen::Side::Right;
    } else if (arg == "--no-bos") options.add_bos = false;
    else if (arg == "--eos") options.add_eos = true;
    else if (arg == "--pad-id") options.pad_token_id = std::stoi(value());
    else texts.push_back(arg);
  }
  if (tokenizer_path.empty() || texts.empty()) {
    std::cerr << "usage: tokenize_batch --tokenizer PATH [options] TEXT...\n";
    return 2;
  }
  const auto tok = std::filesystem::is_directory(tokenizer_path)
                       ? maskgen::load_tokenizer(tokenizer_path)
                       : maskgen::AutoTokenizer(maskgen::SentencePieceBackend::from_file(tokenizer_path));
  const auto batch = tok.encode_batch(texts, options);
  std::cout << "input_ids [" << batch.input_ids.rows() << ", " << batch.input_ids.cols() << "]:\n"
            << batch.input_ids << "\nattention_mask:\n" << batch.attention_mask << "\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "tokenize_batch: " << e.what() << "\n";
  return 1;
}

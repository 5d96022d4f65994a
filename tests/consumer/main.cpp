// Encodes a small batch with the installed maskgen and checks the layout.
#include <maskgen/maskgen.hpp>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer TOKENIZER_MODEL\n";
    return 2;
  }
  if (!std::filesystem::exists(argv[1])) {
    std::cout << "no tokenizer model at " << argv[1] << ": built and linked only\n";
    return 77;  // ctest: skipped
  }
  const auto tok = maskgen::Tokenizer<>::from_file(argv[1]);
  const std::vector<std::string> prompts = {"Once upon a time", "Hi"};
  const auto batch = tok.encode_batch(prompts, {.padding_side = maskgen::Side::Left, .pad_token_id = 0});
  std::cout << "input_ids:\n" << batch.input_ids << "\nattention_mask:\n" << batch.attention_mask << "\n";
  const auto texts = tok.decode_batch(batch.input_ids, batch.attention_mask);
  const bool ok = batch.input_ids.rows() == 2 && batch.attention_mask(1, 0) == 0 &&
                  batch.attention_mask(0, 0) == 1 && texts[0] == prompts[0] && texts[1] == prompts[1];
  std::cout << (ok ? "consumer ok" : "consumer FAILED") << "\n";
  return ok ? 0 : 1;
}

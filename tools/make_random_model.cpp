// make_random_model --out DIR [--vocab N] [--hidden N] [--intermediate N] [--layers N] [--heads N]
//                   [--kv-heads N] [--max-positions N] [--tied] [--seed N]
// Writes a Llama-architecture model folder with random float32 weights (defaults: the 110M shape
// of hidden 768, 12 layers, 12 heads, intermediate 2048, vocab 32000).

#include "random_model.hpp"

#include <iostream>

int main(int argc, char** argv) try {
  maskgen::tools::RandomModelShape shape;
  std::filesystem::path out;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) throw maskgen::argument_error(arg + " needs a value");
      return std::stoll(argv[++i]);
    };
    if (arg == "--out" && i + 1 < argc) out = argv[++i];
    else if (arg == "--vocab") shape.vocab_size = value();
    else if (arg == "--hidden") shape.hidden_size = value();
    else if (arg == "--intermediate") shape.intermediate_size = value();
    else if (arg == "--layers") shape.num_layers = value();
    else if (arg == "--heads") shape.num_heads = value();
    else if (arg == "--kv-heads") shape.num_kv_heads = value();
    else if (arg == "--max-positions") shape.max_position_embeddings = value();
    else if (arg == "--tied") shape.tie_word_embeddings = true;
    else if (arg == "--seed") shape.seed = static_cast<std::uint32_t>(value());
    else throw maskgen::argument_error("unknown argument " + arg);
  }
  if (out.empty()) throw maskgen::argument_error("--out DIR is required");
  maskgen::tools::write_random_model(out, shape);
  std::cout << "wrote " << out << ": " << maskgen::tools::parameter_count(shape) << " parameters\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "make_random_model: " << e.what() << "\n";
  return 1;
}

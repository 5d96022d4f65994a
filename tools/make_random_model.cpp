// make_random_model --out DIR [--qwen3-0.6b] [--family llama|qwen3] [--dtype F32|BF16|F16]
//                   [--vocab N] [--hidden N] [--intermediate N] [--layers N] [--heads N]
//                   [--kv-heads N] [--head-dim N] [--max-positions N] [--tied] [--seed N]
// Writes a model folder with random weights (defaults: a Llama of the 110M shape, hidden 768, 12
// layers, 12 heads, intermediate 2048, vocab 32000, float32). --qwen3-0.6b starts from Qwen3-0.6B's
// shape (bfloat16, tied); later flags change it.

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
    auto text = [&] {
      if (i + 1 >= argc) throw maskgen::argument_error(arg + " needs a value");
      return std::string(argv[++i]);
    };
    if (arg == "--out") out = text();
    else if (arg == "--qwen3-0.6b") shape = maskgen::tools::qwen3_06b_shape();
    else if (arg == "--family") shape.model_type = text();
    else if (arg == "--dtype") {
      const std::string d = text();
      if (d == "F32") shape.dtype = maskgen::DType::F32;
      else if (d == "BF16") shape.dtype = maskgen::DType::BF16;
      else if (d == "F16") shape.dtype = maskgen::DType::F16;
      else throw maskgen::argument_error("--dtype must be F32, BF16 or F16, got " + d);
    }
    else if (arg == "--head-dim") shape.head_dim = value();
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

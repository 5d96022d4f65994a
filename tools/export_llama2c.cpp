// export_llama2c --model DIR --out FILE
// Writes a Llama-architecture folder's float32 weights in llama2.c's legacy .bin format (run.c,
// and llama.cpp's llama-convert-llama2c-to-ggml read it), so that the peers of the benchmarks run
// exactly the weights maskgen runs. llama2.c rotates interleaved pairs where Hugging Face rotates
// the two halves of each head, so the rows of q_proj and k_proj are reordered as llama2.c's own
// export reorders them; the models then compute the same function.

#include <maskgen/config.hpp>
#include <maskgen/safetensors.hpp>

#include "support/cli.hpp"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <vector>

namespace {

void write(std::ofstream& out, const std::vector<float>& v) {
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
}

// Hugging Face's q/k row order (per head: first halves, then second halves) to llama2.c's
// (interleaved pairs): row h*d + 2i + j of the result is row h*d + j*d/2 + i of w.  w: [heads*d, cols]
std::vector<float> interleave_heads(const std::vector<float>& w, std::int64_t heads, std::int64_t cols) {
  const std::int64_t d = static_cast<std::int64_t>(w.size()) / cols / heads;
  std::vector<float> out(w.size());
  for (std::int64_t h = 0; h < heads; ++h)
    for (std::int64_t i = 0; i < d / 2; ++i)
      for (std::int64_t j = 0; j < 2; ++j)
        std::copy_n(w.begin() + (h * d + j * d / 2 + i) * cols, cols, out.begin() + (h * d + 2 * i + j) * cols);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Writes a Llama-architecture folder's weights in llama2.c's .bin format.", "export_llama2c"};
  maskgen_cli::set_up(app, "  export_llama2c --model /tmp/random-110m --out random110m.bin");
  std::string dir, file;
  app.add_option("--model", dir, "A Llama folder: config.json and model.safetensors")
      ->type_name("DIR")
      ->required()
      ->check(CLI::Validator([](std::string& text) { return maskgen_cli::model_folder_problem(text, false); }, "", "model folder"));
  app.add_option("--out", file, "The .bin file to write")->type_name("FILE")->required();

  return maskgen_cli::run(app, argc, argv, [&] {
    const auto c = maskgen::ModelConfig::load(dir);
    if (c.architecture != maskgen::Architecture::Llama || c.head_dim * c.num_heads != c.hidden_size) {
      throw maskgen::argument_error("export_llama2c writes Llama models whose head_dim is hidden_size / heads");
    }
    const auto ckpt = maskgen::SafetensorsCheckpoint::open(dir);
    auto get = [&](const std::string& name) {
      std::vector<float> v(static_cast<std::size_t>(ckpt.info(name).numel()));
      ckpt.read(name, std::span<float>(v));
      return v;
    };
    std::ofstream out(file, std::ios::binary);
    if (!out) throw maskgen::io_error("cannot write " + file);
    const std::int32_t header[7] = {static_cast<std::int32_t>(c.hidden_size), static_cast<std::int32_t>(c.intermediate_size),
                                    static_cast<std::int32_t>(c.num_layers), static_cast<std::int32_t>(c.num_heads),
                                    static_cast<std::int32_t>(c.num_kv_heads),
                                    static_cast<std::int32_t>(c.tie_word_embeddings ? c.vocab_size : -c.vocab_size),
                                    static_cast<std::int32_t>(c.max_position_embeddings)};
    out.write(reinterpret_cast<const char*>(header), sizeof header);
    write(out, get("model.embed_tokens.weight"));
    auto per_layer = [&](const std::string& suffix, auto transform) {
      for (std::int64_t l = 0; l < c.num_layers; ++l) write(out, transform(get("model.layers." + std::to_string(l) + "." + suffix)));
    };
    const auto same = [](std::vector<float> v) { return v; };
    per_layer("input_layernorm.weight", same);
    per_layer("self_attn.q_proj.weight", [&](std::vector<float> v) { return interleave_heads(v, c.num_heads, c.hidden_size); });
    per_layer("self_attn.k_proj.weight", [&](std::vector<float> v) { return interleave_heads(v, c.num_kv_heads, c.hidden_size); });
    per_layer("self_attn.v_proj.weight", same);
    per_layer("self_attn.o_proj.weight", same);
    per_layer("post_attention_layernorm.weight", same);
    per_layer("mlp.gate_proj.weight", same);  // w1
    per_layer("mlp.down_proj.weight", same);  // w2
    per_layer("mlp.up_proj.weight", same);    // w3
    write(out, get("model.norm.weight"));
    // The legacy format's RoPE tables [max_seq_len, head_dim / 2], cos then sin (run.c skips them).
    const auto inv = c.rope.inverse_frequencies(c.head_dim);
    std::vector<float> cos_table, sin_table;
    for (std::int64_t p = 0; p < c.max_position_embeddings; ++p) {
      for (const double f : inv) {
        cos_table.push_back(static_cast<float>(std::cos(static_cast<double>(p) * f)));
        sin_table.push_back(static_cast<float>(std::sin(static_cast<double>(p) * f)));
      }
    }
    write(out, cos_table);
    write(out, sin_table);
    if (!c.tie_word_embeddings) write(out, get("lm_head.weight"));
    std::cout << "wrote " << file << "\n";
    return 0;
  });
}

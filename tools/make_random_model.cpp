// make_random_model --out DIR [--qwen3-0.6b | --qwen3-1.7b | --qwen3-30b-a3b | --tinyllama | --gemma3-1b
//                   | --phi3-mini] [--family llama|qwen3|qwen3_moe|gemma3_text|phi3] [--dtype F32|BF16|F16]
//                   [--vocab N] [--hidden N] [--intermediate N] [--layers N] [--heads N]
//                   [--kv-heads N] [--head-dim N] [--max-positions N] [--tied] [--seed N]
//                   [--experts N] [--experts-per-token N] [--expert-intermediate N]
// Writes a model folder with random weights (defaults: a Llama of the 110M shape, hidden 768, 12
// layers, 12 heads, intermediate 2048, vocab 32000, float32). --qwen3-0.6b, --qwen3-1.7b,
// --qwen3-30b-a3b, --tinyllama, --gemma3-1b and --phi3-mini start from those models' shapes
// (bfloat16; the dense Qwen3 and Gemma ones tied); the other flags change it. --qwen3-30b-a3b is
// the Qwen3-MoE of the published Qwen/Qwen3-30B-A3B (its config.json, its tensor names: 128
// experts a layer, each its own gate_proj/up_proj/down_proj), about 1.25 GB a layer: take a few
// with --layers.

#include "support/random_model.hpp"

#include "support/cli.hpp"

#include <iostream>
#include <optional>

int main(int argc, char** argv) {
  CLI::App app{"Writes a model folder (config.json, model.safetensors) with random weights.", "make_random_model"};
  maskgen_cli::set_up(app,
                      "  make_random_model --out /tmp/random-110m\n"
                      "  make_random_model --out /tmp/qwen3-shape --qwen3-0.6b --layers 4\n"
                      "  make_random_model --out /tmp/qwen3-moe-3l --qwen3-30b-a3b --layers 3");
  const maskgen::tools::RandomModelShape llama;  // the defaults shown
  std::string out, family, dtype;
  bool qwen3 = false, qwen3_17b = false, qwen3_moe = false, tinyllama = false, gemma3 = false, phi3 = false, tied = false;
  std::optional<std::int64_t> vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, max_positions;
  std::optional<std::int64_t> experts, experts_per_token, expert_intermediate;
  std::optional<std::uint32_t> seed;
  const auto size = maskgen_cli::whole_number<std::int64_t>(1, std::int64_t{1} << 24);
  app.add_option("--out", out, "The folder to write")->type_name("DIR")->required();
  auto* q06 = app.add_flag("--qwen3-0.6b", qwen3, "Start from Qwen3-0.6B's shape (qwen3, BF16, tied)");
  auto* q17 = app.add_flag("--qwen3-1.7b", qwen3_17b, "Start from Qwen3-1.7B's shape (qwen3, BF16, tied)")->excludes(q06);
  auto* q30 = app.add_flag("--qwen3-30b-a3b", qwen3_moe,
                           "Start from Qwen3-30B-A3B's shape (qwen3_moe: 128 experts of 768, top-8, GQA 32/4, BF16)")
                  ->excludes(q06)->excludes(q17);
  auto* tl = app.add_flag("--tinyllama", tinyllama, "Start from TinyLlama-1.1B's shape (llama, GQA 32/4, BF16)")
                 ->excludes(q06)->excludes(q17)->excludes(q30);
  auto* g3 = app.add_flag("--gemma3-1b", gemma3, "Start from Gemma 3 1B's shape (gemma3_text, BF16, tied)")
                 ->excludes(q06)->excludes(q17)->excludes(q30)->excludes(tl);
  app.add_flag("--phi3-mini", phi3, "Start from Phi-3-mini's shape (phi3, BF16, LongRoPE)")
      ->excludes(q06)->excludes(q17)->excludes(q30)->excludes(tl)->excludes(g3);
  app.add_option("--family", family, "Architecture (default llama)")->type_name("NAME")
      ->check(maskgen_cli::one_of({"llama", "qwen3", "qwen3_moe", "gemma3_text", "phi3"}));
  app.add_option("--dtype", dtype, "Element type of the weights (default F32)")->type_name("TYPE")->check(maskgen_cli::one_of({"F32", "BF16", "F16"}));
  app.add_option("--vocab", vocab, "vocab_size (default " + std::to_string(llama.vocab_size) + ")")->type_name("N")->check(size);
  app.add_option("--hidden", hidden, "hidden_size (default " + std::to_string(llama.hidden_size) + ")")->type_name("N")->check(size);
  app.add_option("--intermediate", intermediate, "intermediate_size (default " + std::to_string(llama.intermediate_size) + ")")
      ->type_name("N")->check(size);
  app.add_option("--layers", layers, "num_hidden_layers (default " + std::to_string(llama.num_layers) + ")")->type_name("N")->check(size);
  app.add_option("--heads", heads, "num_attention_heads (default " + std::to_string(llama.num_heads) + ")")->type_name("N")->check(size);
  app.add_option("--kv-heads", kv_heads, "num_key_value_heads (default " + std::to_string(llama.num_kv_heads) + ")")->type_name("N")->check(size);
  app.add_option("--head-dim", head_dim, "head_dim (default hidden / heads)")->type_name("N")->check(size);
  app.add_option("--max-positions", max_positions,
                 "max_position_embeddings (default " + std::to_string(llama.max_position_embeddings) + ")")
      ->type_name("N")->check(size);
  app.add_flag("--tied", tied, "Tie the output projection to the embeddings");
  app.add_option("--experts", experts, "qwen3_moe: num_experts (default 128)")->type_name("N")->check(size);
  app.add_option("--experts-per-token", experts_per_token, "qwen3_moe: num_experts_per_tok (default 8)")
      ->type_name("N")->check(size);
  app.add_option("--expert-intermediate", expert_intermediate, "qwen3_moe: moe_intermediate_size (default 768)")
      ->type_name("N")->check(size);
  app.add_option("--seed", seed, "Seed of the weights (default " + std::to_string(llama.seed) + ")")
      ->type_name("N")->check(maskgen_cli::whole_number<std::uint32_t>(0));

  return maskgen_cli::run(app, argc, argv, [&] {
    maskgen::tools::RandomModelShape shape = qwen3       ? maskgen::tools::qwen3_06b_shape()
                                             : qwen3_17b ? maskgen::tools::qwen3_17b_shape()
                                             : qwen3_moe ? maskgen::tools::qwen3_30b_a3b_shape()
                                             : tinyllama ? maskgen::tools::tinyllama_shape()
                                             : gemma3    ? maskgen::tools::gemma3_1b_shape()
                                             : phi3      ? maskgen::tools::phi3_mini_shape()
                                                         : llama;
    if (!family.empty()) shape.model_type = family;
    if (shape.moe() && !qwen3_moe) {  // --family qwen3_moe on another shape: Qwen3-30B-A3B's experts
      const auto moe = maskgen::tools::qwen3_30b_a3b_shape();
      shape.num_experts = moe.num_experts;
      shape.experts_per_token = moe.experts_per_token;
      shape.moe_intermediate_size = moe.moe_intermediate_size;
    }
    shape.num_experts = experts.value_or(shape.num_experts);
    shape.experts_per_token = experts_per_token.value_or(shape.experts_per_token);
    shape.moe_intermediate_size = expert_intermediate.value_or(shape.moe_intermediate_size);
    if (dtype == "F32") shape.dtype = maskgen::DType::F32;
    if (dtype == "BF16") shape.dtype = maskgen::DType::BF16;
    if (dtype == "F16") shape.dtype = maskgen::DType::F16;
    shape.vocab_size = vocab.value_or(shape.vocab_size);
    shape.hidden_size = hidden.value_or(shape.hidden_size);
    shape.intermediate_size = intermediate.value_or(shape.intermediate_size);
    shape.num_layers = layers.value_or(shape.num_layers);
    shape.num_heads = heads.value_or(shape.num_heads);
    shape.num_kv_heads = kv_heads.value_or(shape.num_kv_heads);
    shape.head_dim = head_dim.value_or(shape.head_dim);
    shape.max_position_embeddings = max_positions.value_or(shape.max_position_embeddings);
    shape.tie_word_embeddings = shape.tie_word_embeddings || tied;
    shape.seed = seed.value_or(shape.seed);
    maskgen::tools::write_random_model(out, shape);
    std::cout << "wrote " << out << ": " << maskgen::tools::parameter_count(shape) << " parameters\n";
    return 0;
  });
}

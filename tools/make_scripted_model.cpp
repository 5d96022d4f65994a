// make_scripted_model --tokenizer DIR --out DIR --scripts FILE [--hidden N] [--layers N] [--max-positions N] [--vocab-size N]
// Writes a Qwen3-architecture model folder (tests/support/scripted_model.hpp) whose greedy
// continuation is fixed: after a prompt that ends with a script's trigger, it emits the script's
// text and then EOS. FILE is a JSON list of scripts:
//   [{"trigger": "<|im_start|>assistant\n", "text": "<tool_call>\n{...}\n</tool_call>"},
//    {"trigger_id": 271, "text": "It is sunny."}]
// "trigger" is a text whose last token (as the tokenizer encodes it) is the trigger; "trigger_id"
// gives the id itself. The tokenizer folder must hold tokenizer.json (and tokenizer_config.json,
// copied too, for the chat template).

#include "support/scripted_model.hpp"

#include "support/cli.hpp"

#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

// The scripts of `path`, with each "trigger" text turned into its last token.
std::vector<maskgen::tools::Script> read_scripts(const std::string& path, const maskgen::AutoTokenizer& tokenizer) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json list;
  try {
    list = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw maskgen_cli::usage_error("--scripts " + path + " is not valid JSON (" + e.what() + ")");
  }
  const std::string shape = "; expected a list of {\"trigger\": TEXT or \"trigger_id\": N, \"text\": TEXT}";
  if (!list.is_array()) throw maskgen_cli::usage_error("--scripts " + path + " is not a JSON list" + shape);
  std::vector<maskgen::tools::Script> scripts;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& entry = list[i];
    const std::string where = "--scripts " + path + ": entry " + std::to_string(i);
    if (!entry.is_object() || !entry.contains("text") || !entry["text"].is_string()) {
      throw maskgen_cli::usage_error(where + " has no \"text\" string" + shape);
    }
    maskgen::tools::Script script;
    script.text = entry["text"].get<std::string>();
    if (entry.contains("trigger") && entry["trigger"].is_string() && !entry.contains("trigger_id")) {
      script.trigger = maskgen::tools::last_token_of(tokenizer, entry["trigger"].get<std::string>());
    } else if (entry.contains("trigger_id") && entry["trigger_id"].is_number_integer() && !entry.contains("trigger")) {
      script.trigger = entry["trigger_id"].get<std::int32_t>();
    } else {
      throw maskgen_cli::usage_error(where + " needs one of \"trigger\" (a string) and \"trigger_id\" (a whole number)" + shape);
    }
    scripts.push_back(std::move(script));
  }
  return scripts;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Writes a Qwen3 model folder whose greedy continuation after each script's trigger token is the "
               "script's text, then EOS (a model that says what a test needs).",
               "make_scripted_model"};
  maskgen_cli::set_up(app,
                      "  make_scripted_model --tokenizer ../shared/tokenizers/qwen3 --out /tmp/scripted --scripts scripts.json\n"
                      "  where scripts.json holds\n"
                      "  [{\"trigger\": \"<|im_start|>assistant\\n\", \"text\": \"<tool_call>\\n{...}\\n</tool_call>\"},\n"
                      "   {\"trigger_id\": 271, \"text\": \"It is sunny.\"}]");
  const maskgen::tools::ScriptedModelOptions defaults;
  std::string tokenizer_dir, out, scripts_file;
  std::optional<std::int64_t> hidden, layers, max_positions, vocab_size;
  const auto size = maskgen_cli::whole_number<std::int64_t>(1, std::int64_t{1} << 16);
  app.add_option("--tokenizer", tokenizer_dir, "Folder with tokenizer.json and tokenizer_config.json (both are copied)")
      ->type_name("DIR")->required();
  app.add_option("--out", out, "The folder to write")->type_name("DIR")->required();
  app.add_option("--scripts", scripts_file,
                 "JSON list of {\"trigger\": TEXT, \"text\": TEXT}: after a prompt whose last token is TEXT's last "
                 "token, the model says \"text\"; \"trigger_id\": N gives the token id instead")
      ->type_name("FILE")->required()->check(maskgen_cli::existing_file());
  app.add_option("--hidden", hidden, "hidden_size (default: the smallest multiple of 64 that the scripts need)")
      ->type_name("N")->check(size);
  app.add_option("--layers", layers, "num_hidden_layers (default " + std::to_string(defaults.num_layers) + ")")
      ->type_name("N")->check(maskgen_cli::whole_number<std::int64_t>(1, 64));
  app.add_option("--max-positions", max_positions,
                 "max_position_embeddings (default " + std::to_string(defaults.max_position_embeddings) + ")")
      ->type_name("N")->check(maskgen_cli::whole_number<std::int64_t>(2, std::int64_t{1} << 20));

  app.add_option("--vocab-size", vocab_size,
                 "config.json's vocab_size (default: the tokenizer's ids); larger as Qwen's configs are, the ids "
                 "past the tokenizer decoding to nothing")
      ->type_name("N")->check(maskgen_cli::whole_number<std::int64_t>(1, (std::int64_t{1} << 31) - 1));

  return maskgen_cli::run(app, argc, argv, [&] {
    if (!std::filesystem::is_regular_file(std::filesystem::path(tokenizer_dir) / "tokenizer.json")) {
      throw maskgen_cli::usage_error("--tokenizer " + tokenizer_dir + " has no tokenizer.json");
    }
    const auto tokenizer = maskgen::load_tokenizer(tokenizer_dir);
    const auto scripts = read_scripts(scripts_file, tokenizer);
    maskgen::tools::ScriptedModelOptions options;
    options.hidden_size = hidden.value_or(0);
    options.num_layers = layers.value_or(options.num_layers);
    options.max_position_embeddings = max_positions.value_or(options.max_position_embeddings);
    options.vocab_size = vocab_size.value_or(0);
    const auto written = maskgen::tools::write_scripted_model(out, tokenizer_dir, tokenizer, scripts, options);
    std::cout << "wrote " << out << ": hidden " << written.hidden_size << ", head_dim " << written.head_dim << ", EOS "
              << written.eos_token_id << "\n";
    for (std::size_t s = 0; s < scripts.size(); ++s) {
      std::cout << "script " << s << ": trigger " << scripts[s].trigger << ", " << written.ids[s].size() << " tokens:";
      for (const auto id : written.ids[s]) std::cout << " " << id;
      std::cout << "\n";
    }
    return 0;
  });
}

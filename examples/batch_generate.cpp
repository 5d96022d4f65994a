// Generates continuations for a batch of prompts with any supported model folder: each prompt
// and its continuation, and at the end the new tokens per second. `batch_generate --help` lists
// the flags; the generation flags are transformers' GenerationConfig fields (--max-new-tokens,
// --do-sample, --temperature, --top-p, --num-beams, ...).
//
//   batch_generate [--model DIR] [OPTIONS] [PROMPT...]
//     prompts: PROMPT arguments, --file F (one per line), or standard input (one per line)

#include <maskgen/maskgen.hpp>

#include "support/cli.hpp"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include "support/sort_reverse_task.hpp"

namespace {

std::vector<std::string> read_lines(std::istream& in) {
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!demo::trim(line).empty()) lines.push_back(line);
  }
  return lines;
}

// Prints each row's text as its tokens arrive, whole characters only (a token may end inside a
// character). One row: plain running text; several: a line per step with each row's new text.
class Printer {
 public:
  // Output row r belongs to prompt first + r / per (per: sequences per prompt).
  Printer(const maskgen::AutoTokenizer& tok, std::size_t rows, std::size_t first, std::size_t per)
      : streams_(std::make_shared<std::vector<maskgen::DecodeStream<maskgen::AnyTokenizerBackend>>>()),
        first_(first),
        per_(per) {
    for (std::size_t r = 0; r < rows; ++r) streams_->emplace_back(tok);
  }

  void operator()(maskgen::StreamStep& step) {
    auto& streams = *streams_;
    if (streams.size() > 1) std::cout << "step " << step.step() << ":";
    for (std::size_t i = 0; i < step.rows().size(); ++i) {
      const std::size_t r = step.rows()[i];
      std::string fresh = streams[r].put(step.tokens()[i]);
      if (step.finished(i)) fresh += streams[r].finish();
      if (streams.size() > 1) std::cout << "  " << label(r) << fresh;
      else std::cout << fresh;
    }
    if (streams.size() > 1) std::cout << "\n";
    std::cout.flush();
  }

  // What the streams still hold once generation is over (rows that ended by length).
  void finish() const {
    for (std::size_t r = 0; r < streams_->size(); ++r) {
      const std::string rest = (*streams_)[r].finish();
      if (rest.empty()) continue;
      if (streams_->size() > 1) std::cout << "  " << label(r);
      std::cout << rest;
    }
  }

 private:
  // "[3]", or "[3.1]" for the second sequence of prompt 3.
  std::string label(std::size_t r) const {
    const std::string prompt = std::to_string(first_ + r / per_);
    return "[" + (per_ > 1 ? prompt + "." + std::to_string(r % per_) : prompt) + "]";
  }

  std::shared_ptr<std::vector<maskgen::DecodeStream<maskgen::AnyTokenizerBackend>>> streams_;  // shared by copies
  std::size_t first_;
  std::size_t per_;
};

// How batch_generate runs, from its flags.
struct Run {
  std::size_t batch_size = 16;
  bool right = false;     // pad on the right
  bool stream = false;    // print text as it is generated
  bool check = false;     // mark the bundled task's answers
  bool chat = false;      // prompts go through the chat template
  bool thinking = true;   // enable_thinking for the template
  std::optional<std::string> system;  // a system message before each prompt
};

int generate_all(const std::filesystem::path& dir, maskgen::GenerationConfig gen, const std::vector<std::string>& prompts,
                 const Run& how) {
  const auto tok = maskgen::load_tokenizer(dir);  // tokenizer.json, else tokenizer.model
  const auto model = maskgen::Model<float>::load(dir);
  gen.pad_token_id = tok.resolve_pad_id(std::nullopt);
  const maskgen::PaddingOptions padding{.padding_side = how.right ? maskgen::Side::Right : maskgen::Side::Left};
  std::optional<maskgen::ChatTemplate> chat_template;
  maskgen::ChatOptions chat_options{.add_generation_prompt = true};
  if (how.chat) {
    chat_template = maskgen::ChatTemplate::from_tokenizer_config(dir);
    if (!how.thinking) chat_options.variables["enable_thinking"] = false;
  }
  // One conversation per prompt: [system], user.
  auto conversation = [&](const std::string& prompt) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (how.system) messages.push_back({{"role", "system"}, {"content", *how.system}});
    messages.push_back({{"role", "user"}, {"content", prompt}});
    return messages;
  };

  std::size_t new_tokens = 0, right_answers = 0, checked = 0;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t first = 0; first < prompts.size(); first += how.batch_size) {
    const std::vector<std::string> chunk(prompts.begin() + static_cast<std::ptrdiff_t>(first),
                                         prompts.begin() + static_cast<std::ptrdiff_t>(std::min(prompts.size(), first + how.batch_size)));
    maskgen::BatchEncoding batch;
    if (chat_template) {
      std::vector<nlohmann::ordered_json> conversations;
      for (const auto& prompt : chunk) conversations.push_back(conversation(prompt));
      batch = maskgen::encode_chats(tok, *chat_template, conversations, chat_options, padding);
    } else {
      batch = tok.encode_batch(chunk, padding);
    }
    maskgen::Streamer streamer;
    const auto per = static_cast<std::size_t>(gen.num_return_sequences);  // sequences per prompt
    const Printer printer(tok, chunk.size() * per, first, per);
    if (how.stream) {
      if (chunk.size() * per == 1) std::cout << chunk[0] << " " << std::flush;
      streamer = printer;
    }
    const auto out = maskgen::generate(model, batch.input_ids, batch.attention_mask, gen, streamer);
    if (how.stream) {
      printer.finish();
      std::cout << "\n";
    }
    const auto texts = tok.decode_batch(out.sequences, out.sequences_mask());
    for (std::size_t r = 0; r < out.lengths.size(); ++r) {
      new_tokens += out.lengths[r];
      const std::string& prompt = chunk[r / per];
      std::string mark;
      if (how.check) {
        const auto expected = demo::expected_answer(prompt);
        const bool ok = expected && demo::trim(texts[r]) == *expected;
        right_answers += ok;
        ++checked;
        mark = ok ? "  [right]" : "  [wrong: expected " + expected.value_or("?") + "]";
      }
      if (!how.stream || how.check || per > 1) std::cout << "[" << first + r / per << "] " << prompt << " -> " << texts[r] << mark << "\n";
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (prompts.size() > how.batch_size) {
      std::cerr << "progress: " << std::min(prompts.size(), first + how.batch_size) << " of " << prompts.size()
                << " prompts, " << new_tokens << " new tokens, " << static_cast<int>(new_tokens / seconds)
                << " tokens/s\n";
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (how.check) std::cout << "right answers: " << right_answers << " of " << checked << "\n";
  std::cerr << new_tokens << " new tokens for " << prompts.size() << " prompts in " << seconds << " s: "
            << static_cast<int>(new_tokens / seconds) << " tokens/s\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generates continuations for a batch of prompts, left-padded and masked.", "batch_generate"};
  maskgen_cli::set_up(app,
                      "  batch_generate --check --file examples/demo_prompts.txt\n"
                      "  batch_generate --stream \"reverse 3 1 4 1 5 =\"\n"
                      "  batch_generate --model Qwen3-0.6B --chat --no-thinking --max-new-tokens 64 \"What is the capital of France?\"\n"
                      "  batch_generate --model Qwen3-0.6B --do-sample --temperature 0.7 --top-p 0.9 --seed 1 \"Once upon a time\"\n"
                      "A prompt that begins with '-' goes after '--'.");
  std::string dir = MASKGEN_DEMO_MODEL_DIR;
  maskgen::GenerationConfig gen{.max_new_tokens = 32};
  std::vector<std::string> prompts;
  std::string prompt_file;
  std::size_t batch_size = 16;
  std::string padding_side = "left";
  bool stream = false, check = false, chat = false, no_thinking = false;
  std::optional<std::string> system;

  app.add_option("PROMPT", prompts, "Prompts; with none (and no --file), one per line from standard input")
      ->type_name("")
      ->default_str("");
  maskgen_cli::add_model_flag(app, dir);
  app.add_option("--file", prompt_file, "Read prompts from a file, one per line (blank lines skipped)")
      ->type_name("FILE")
      ->check(maskgen_cli::existing_file());
  maskgen_cli::add_generation_flags(app, gen);
  maskgen_cli::add_threads_flag(app, gen.num_threads);
  app.add_option("--batch-size", batch_size, "Prompts per generate() call; a progress line follows each")
      ->type_name("N")
      ->check(maskgen_cli::whole_number<std::size_t>(1, 1 << 20));
  app.add_option("--padding-side", padding_side, "Where pads go; the continuations are the same either way")
      ->type_name("SIDE")
      ->check(maskgen_cli::one_of({"left", "right"}));
  app.add_flag("--stream", stream, "Print text as it is generated");
  app.add_flag("--check", check, "For the bundled task: mark each answer right or wrong and count them");
  const char* chat_group = "Chat";
  CLI::Option* chat_flag =
      app.add_flag("--chat", chat, "Send each prompt as a user message through the model's chat template (tokenizer_config.json)")
          ->group(chat_group);
  app.add_option("--system", system, "With --chat: a system message before each prompt")->type_name("TEXT")->needs(chat_flag)->group(chat_group);
  app.add_flag("--no-thinking", no_thinking, "With --chat: pass enable_thinking=false to the template (Qwen3)")->needs(chat_flag)->group(chat_group);

  return maskgen_cli::run(app, argc, argv, [&] {
    maskgen_cli::check_generation_flags(gen, stream);
    if (!prompt_file.empty()) {
      std::ifstream in(prompt_file);
      if (!in) throw maskgen::io_error("cannot read the prompt file " + prompt_file);
      auto lines = read_lines(in);
      prompts.insert(prompts.end(), lines.begin(), lines.end());
    }
    if (prompts.empty() && !isatty(STDIN_FILENO)) prompts = read_lines(std::cin);
    if (prompts.empty()) {
      throw maskgen_cli::usage_error("no prompts: give them as arguments, with --file F, or one per line on standard input");
    }
    if (chat && !std::filesystem::exists(std::filesystem::path(dir) / "tokenizer_config.json")) {
      throw maskgen_cli::usage_error("--chat needs the model's chat template, but " +
                                     (std::filesystem::path(dir) / "tokenizer_config.json").string() + " does not exist");
    }
    return generate_all(dir, gen, prompts, {.batch_size = batch_size,
                                            .right = padding_side == "right",
                                            .stream = stream,
                                            .check = check,
                                            .chat = chat,
                                            .thinking = !no_thinking,
                                            .system = system});
  });
}

// Generates continuations for a batch of prompts with any supported model folder: each prompt
// and its continuation (decoded after the prompt, so it keeps the space before its first word),
// and at the end the new tokens per second. `batch_generate --help` lists the flags; the
// generation flags are transformers' GenerationConfig fields (--max-new-tokens, --do-sample,
// --temperature, --top-p, --num-beams, ...), and llama.cpp's -m, -p, -n, -t work too.
//
//   batch_generate [-m DIR] [OPTIONS] [PROMPT...]
//     prompts: -p PROMPT (repeatable), PROMPT arguments, --file F (one per line), or standard
//     input (one per line)

#include <maskgen/maskgen.hpp>

#include "support/cli.hpp"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
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

using Ids = std::vector<std::int32_t>;

// The real ids of row r of a padded batch.
Ids row_ids(const maskgen::TokenMatrix& ids, const maskgen::TokenMatrix& mask, Eigen::Index r) {
  Ids out;
  for (Eigen::Index j = 0; j < ids.cols(); ++j) {
    if (mask(r, j) == 1) out.push_back(ids(r, j));
  }
  return out;
}

// What `tokens` add to the text of `prompt`: decode(prompt + tokens) minus decode(prompt), so a
// SentencePiece continuation keeps the space before its first word.
std::string continuation(const maskgen::AutoTokenizer& tok, const Ids& prompt, std::span<const std::int32_t> tokens) {
  maskgen::DecodeStream stream(tok, prompt);
  std::string text;
  for (const std::int32_t id : tokens) text += stream.put(id);
  return text + stream.finish();
}

// Prints text as it is generated, each row decoded after its own prompt, whole characters only
// (a token may end inside a character). One row: running text. Several: rows never interleave;
// each row's line is printed whole, by `line`, as soon as the row is done.
class Printer {
 public:
  using Line = std::function<std::string(std::size_t row, const std::string& text)>;

  // prompts[r]: the ids output row r continues.
  Printer(const maskgen::AutoTokenizer& tok, const std::vector<Ids>& prompts, Line line)
      : rows_(std::make_shared<std::vector<Row>>()), line_(std::move(line)) {
    for (const Ids& prompt : prompts) rows_->push_back({maskgen::DecodeStream(tok, prompt), {}, false});
  }

  void operator()(maskgen::StreamStep& step) {
    auto& rows = *rows_;
    for (std::size_t i = 0; i < step.rows().size(); ++i) {
      Row& row = rows[step.rows()[i]];
      std::string fresh = row.stream.put(step.tokens()[i]);
      if (rows.size() > 1) {
        row.text += fresh;
        if (step.finished(i)) done(step.rows()[i]);
        continue;
      }
      if (step.finished(i)) fresh += row.stream.finish();
      std::cout << fresh << std::flush;
    }
  }

  // Once generation is over: what is still held (rows that made no token at all).
  void finish() const {
    auto& rows = *rows_;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      if (rows.size() == 1) std::cout << rows[r].stream.finish();
      else if (!rows[r].printed) done(r);
    }
  }

 private:
  struct Row {
    maskgen::DecodeStream<maskgen::AnyTokenizerBackend> stream;
    std::string text;  // several rows: the text so far, printed when the row is done
    bool printed = false;
  };

  void done(std::size_t r) const {
    Row& row = (*rows_)[r];
    row.text += row.stream.finish();
    row.printed = true;
    std::cout << line_(r, row.text) << std::flush;
  }

  std::shared_ptr<std::vector<Row>> rows_;  // shared by copies
  Line line_;
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
    const auto per = static_cast<std::size_t>(gen.num_return_sequences);  // sequences per prompt
    const std::size_t rows = chunk.size() * per;
    std::vector<Ids> prompt_ids(rows);  // what each output row continues
    for (std::size_t r = 0; r < rows; ++r) {
      prompt_ids[r] = row_ids(batch.input_ids, batch.attention_mask, static_cast<Eigen::Index>(r / per));
    }
    // --check: whether row r's text is the task's answer.
    auto right = [&](std::size_t r, const std::string& text) {
      const auto expected = demo::expected_answer(chunk[r / per]);
      return std::pair(expected && demo::trim(text) == *expected, expected.value_or("?"));
    };
    // "[3] prompt -> text": the continuation as it follows the prompt (its leading space kept).
    auto line = [&](std::size_t r, const std::string& text) {
      std::string mark;
      if (how.check) {
        const auto [ok, expected] = right(r, text);
        mark = ok ? "  [right]" : "  [wrong: expected " + expected + "]";
      }
      return "[" + std::to_string(first + r / per) + "] " + chunk[r / per] + " -> " + text + mark + "\n";
    };
    const bool running_text = how.stream && rows == 1;  // else --stream prints each row's line when it is done
    maskgen::Streamer streamer;
    const Printer printer(tok, prompt_ids, line);
    if (how.stream) {
      if (running_text) std::cout << chunk[0] << (how.chat ? "\n" : "") << std::flush;
      streamer = printer;
    }
    const auto out = maskgen::generate(model, batch.input_ids, batch.attention_mask, gen, streamer);
    if (how.stream) {
      printer.finish();
      if (running_text) std::cout << "\n";
    }
    for (std::size_t r = 0; r < out.lengths.size(); ++r) {
      new_tokens += out.lengths[r];
      const std::span<const std::int32_t> tokens =
          out.lengths[r] == 0 ? std::span<const std::int32_t>()
                              : std::span<const std::int32_t>(&out.sequences(static_cast<Eigen::Index>(r), 0), out.lengths[r]);
      const std::string text = continuation(tok, prompt_ids[r], tokens);
      if (how.check) {
        right_answers += right(r, text).first;
        ++checked;
      }
      if (!how.stream || (running_text && how.check)) std::cout << line(r, text);
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
                      "  batch_generate -m Qwen3-0.6B -n 64 -t 2 -p \"Once upon a time\"   (llama.cpp's short flags)\n"
                      "A prompt that begins with '-' goes after '--'.");
  std::string dir = MASKGEN_DEMO_MODEL_DIR;
  maskgen::GenerationConfig gen{.max_new_tokens = 32};
  std::vector<std::string> prompts, flag_prompts;
  std::string prompt_file;
  std::size_t batch_size = 16;
  std::string padding_side = "left";
  bool stream = false, check = false, chat = false, no_thinking = false;
  std::optional<std::string> system;

  app.add_option("PROMPT", prompts, "Prompts; with none (and no --file), one per line from standard input")
      ->type_name("")
      ->default_str("");
  maskgen_cli::add_model_flag(app, dir);
  app.add_option("-p,--prompt", flag_prompts, "A prompt, as llama.cpp's -p; may be given several times (before the PROMPT arguments)")
      ->type_name("TEXT")
      ->default_str("")
      ->allow_extra_args(false);  // -p takes one value each time, as llama.cpp's
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
  app.add_flag("--stream", stream,
               "Print text as it is generated. One prompt: its text runs on after the prompt as it comes. Several: "
               "rows never interleave; each row's line (as without --stream) is printed whole as soon as that row is done");
  app.add_flag("--check", check, "For the bundled task: mark each answer right or wrong and count them");
  const char* chat_group = "Chat";
  CLI::Option* chat_flag =
      app.add_flag("--chat", chat, "Send each prompt as a user message through the model's chat template (tokenizer_config.json)")
          ->group(chat_group);
  app.add_option("--system", system, "With --chat: a system message before each prompt")->type_name("TEXT")->needs(chat_flag)->group(chat_group);
  app.add_flag("--no-thinking", no_thinking, "With --chat: pass enable_thinking=false to the template (Qwen3)")->needs(chat_flag)->group(chat_group);

  return maskgen_cli::run(app, argc, argv, [&] {
    maskgen_cli::check_generation_flags(gen, stream);
    maskgen_cli::draw_seed_unless_given(app, gen, std::cerr);
    prompts.insert(prompts.begin(), flag_prompts.begin(), flag_prompts.end());
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

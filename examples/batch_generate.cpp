// Generates continuations for a batch of prompts with any supported model folder.
//
//   batch_generate [--model DIR] [options] [PROMPT...]
//     prompts:   PROMPT arguments, or --file F (one per line), or standard input (one per line)
//     --model DIR             a Hugging Face style folder (default: the bundled demo model): config.json,
//                             *.safetensors, and tokenizer.json (Qwen2/2.5/3, Llama 3) or tokenizer.model
//     --max-new-tokens N      default 32
//     --sample                sample instead of greedy search, with --temperature T, --top-k K
//                             (default 50; 0 disables), --top-p P, --min-p P, --seed S
//     --beams N               beam search with N beams
//     --repetition-penalty R  --no-repeat-ngram N  --min-new-tokens N
//     --batch-size N          prompts per generate() call (default 16); a progress line follows each
//     --right                 pad on the right (the tokens are the same: the mask decides)
//     --stream                print text as it is generated
//     --threads N             default: every core
//     --check                 for the bundled task: mark each answer right or wrong and count them
//     --chat                  send each prompt as a user message through the model's chat template
//                             (tokenizer_config.json), with --system TEXT as a system message and
//                             --no-thinking to pass enable_thinking=false (Qwen3)
//
// Prints each prompt and its continuation, and at the end the new tokens per second.

#include <maskgen/maskgen.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include "sort_reverse_task.hpp"

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
  Printer(const maskgen::AutoTokenizer& tok, std::size_t rows, std::size_t first)
      : streams_(std::make_shared<std::vector<maskgen::DecodeStream<maskgen::AnyTokenizerBackend>>>()), first_(first) {
    for (std::size_t r = 0; r < rows; ++r) streams_->emplace_back(tok);
  }

  void operator()(maskgen::StreamStep& step) {
    auto& streams = *streams_;
    if (streams.size() > 1) std::cout << "step " << step.step() << ":";
    for (std::size_t i = 0; i < step.rows().size(); ++i) {
      const std::size_t r = step.rows()[i];
      std::string fresh = streams[r].put(step.tokens()[i]);
      if (step.finished(i)) fresh += streams[r].finish();
      if (streams.size() > 1) std::cout << "  [" << first_ + r << "]" << fresh;
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
      if (streams_->size() > 1) std::cout << "  [" << first_ + r << "]";
      std::cout << rest;
    }
  }

 private:
  std::shared_ptr<std::vector<maskgen::DecodeStream<maskgen::AnyTokenizerBackend>>> streams_;  // shared by copies
  std::size_t first_;
};

}  // namespace

int main(int argc, char** argv) try {
  std::filesystem::path dir = MASKGEN_DEMO_MODEL_DIR;
  maskgen::GenerationConfig gen{.max_new_tokens = 32};
  std::vector<std::string> prompts;
  std::size_t batch_size = 16;
  bool right = false, stream = false, check = false, chat = false, thinking = true;
  std::optional<std::string> system;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw maskgen::argument_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--model") dir = value();
    else if (arg == "--file") {
      std::ifstream in(value());
      if (!in) throw maskgen::io_error("cannot read the prompt file " + std::string(argv[i]));
      for (auto& line : read_lines(in)) prompts.push_back(line);
    } else if (arg == "--max-new-tokens") gen.max_new_tokens = std::stoi(value());
    else if (arg == "--min-new-tokens") gen.min_new_tokens = std::stoi(value());
    else if (arg == "--sample") gen.do_sample = true;
    else if (arg == "--temperature") gen.temperature = std::stod(value());
    else if (arg == "--top-k") gen.top_k = std::stoi(value());
    else if (arg == "--top-p") gen.top_p = std::stod(value());
    else if (arg == "--min-p") gen.min_p = std::stod(value());
    else if (arg == "--seed") gen.seed = std::stoull(value());
    else if (arg == "--beams") gen.num_beams = std::stoi(value());
    else if (arg == "--repetition-penalty") gen.repetition_penalty = std::stod(value());
    else if (arg == "--no-repeat-ngram") gen.no_repeat_ngram_size = std::stoi(value());
    else if (arg == "--batch-size") batch_size = std::max<std::size_t>(1, std::stoul(value()));
    else if (arg == "--threads") gen.num_threads = std::stoi(value());
    else if (arg == "--right") right = true;
    else if (arg == "--stream") stream = true;
    else if (arg == "--check") check = true;
    else if (arg == "--chat") chat = true;
    else if (arg == "--system") system = value();
    else if (arg == "--no-thinking") thinking = false;
    else if (arg.rfind("--", 0) == 0) throw maskgen::argument_error("unknown option " + arg + " (see the comment at the top of batch_generate.cpp)");
    else prompts.push_back(arg);
  }
  if (prompts.empty() && !isatty(STDIN_FILENO)) prompts = read_lines(std::cin);
  if (prompts.empty()) {
    std::cerr << "usage: batch_generate [--model DIR] [options] PROMPT...  (or --file F, or prompts on stdin)\n";
    return 2;
  }

  const auto tok = maskgen::load_tokenizer(dir);  // tokenizer.json, else tokenizer.model
  const auto model = maskgen::Model<float>::load(dir);
  gen.pad_token_id = tok.resolve_pad_id(std::nullopt);
  const maskgen::PaddingOptions padding{.padding_side = right ? maskgen::Side::Right : maskgen::Side::Left};
  if ((system || !thinking) && !chat) throw maskgen::argument_error("--system and --no-thinking need --chat");
  std::optional<maskgen::ChatTemplate> chat_template;
  maskgen::ChatOptions chat_options{.add_generation_prompt = true};
  if (chat) {
    if (!std::filesystem::exists(dir / "tokenizer_config.json")) {
      throw maskgen::argument_error("--chat needs the model's chat template, but " + (dir / "tokenizer_config.json").string() +
                                    " does not exist");
    }
    chat_template = maskgen::ChatTemplate::from_tokenizer_config(dir);
    if (!thinking) chat_options.variables["enable_thinking"] = false;
  }
  // One conversation per prompt: [system], user.
  auto conversation = [&](const std::string& prompt) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (system) messages.push_back({{"role", "system"}, {"content", *system}});
    messages.push_back({{"role", "user"}, {"content", prompt}});
    return messages;
  };

  std::size_t new_tokens = 0, right_answers = 0, checked = 0;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t first = 0; first < prompts.size(); first += batch_size) {
    const std::vector<std::string> chunk(prompts.begin() + static_cast<std::ptrdiff_t>(first),
                                         prompts.begin() + static_cast<std::ptrdiff_t>(std::min(prompts.size(), first + batch_size)));
    maskgen::BatchEncoding batch;
    if (chat_template) {
      std::vector<nlohmann::ordered_json> conversations;
      for (const auto& prompt : chunk) conversations.push_back(conversation(prompt));
      batch = maskgen::encode_chats(tok, *chat_template, conversations, chat_options, padding);
    } else {
      batch = tok.encode_batch(chunk, padding);
    }
    maskgen::Streamer streamer;
    const Printer printer(tok, chunk.size(), first);
    if (stream) {
      if (chunk.size() == 1) std::cout << chunk[0] << " " << std::flush;
      streamer = printer;
    }
    const auto out = maskgen::generate(model, batch.input_ids, batch.attention_mask, gen, streamer);
    if (stream) {
      printer.finish();
      std::cout << "\n";
    }
    const auto texts = tok.decode_batch(out.sequences, out.sequences_mask());
    const std::size_t per = out.lengths.size() / chunk.size();  // num_return_sequences
    for (std::size_t r = 0; r < out.lengths.size(); ++r) {
      new_tokens += out.lengths[r];
      const std::string& prompt = chunk[r / per];
      std::string mark;
      if (check) {
        const auto expected = demo::expected_answer(prompt);
        const bool ok = expected && demo::trim(texts[r]) == *expected;
        right_answers += ok;
        ++checked;
        mark = ok ? "  [right]" : "  [wrong: expected " + expected.value_or("?") + "]";
      }
      if (!stream || check || per > 1) std::cout << "[" << first + r / per << "] " << prompt << " -> " << texts[r] << mark << "\n";
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (prompts.size() > batch_size) {
      std::cerr << "progress: " << std::min(prompts.size(), first + batch_size) << " of " << prompts.size()
                << " prompts, " << new_tokens << " new tokens, " << static_cast<int>(new_tokens / seconds)
                << " tokens/s\n";
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (check) std::cout << "right answers: " << right_answers << " of " << checked << "\n";
  std::cerr << new_tokens << " new tokens for " << prompts.size() << " prompts in " << seconds << " s: "
            << static_cast<int>(new_tokens / seconds) << " tokens/s\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "batch_generate: " << e.what() << "\n";
  return 1;
}

// The command line of the example programs, on CLI11 (a dependency of the examples only).
//
// One set of flag names where flags mean the same thing: --model, --threads, and the generation
// flags named after transformers' GenerationConfig fields (max_new_tokens is --max-new-tokens),
// with llama.cpp's short names beside the long ones: -m (--model), -t (--threads), -n
// (--max-new-tokens); batch_generate adds -p (--prompt).
// Every value is checked as it is parsed, and a bad one is reported with the flag, the value and
// what was expected. Every program ends the same way:
//   0  it did its work, or printed --help or --version
//   1  the work failed (a model that does not load, an error while generating)
//   2  the command line is wrong: a bad value, an unknown flag, flags that do not go together,
//      a model folder that is missing or lacks a file
#pragma once

#include <maskgen/maskgen.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace maskgen_cli {

// "maskgen 0.1.0": the version of the maskgen headers the program was built with (the build
// checks that they agree with the CMake package's version).
inline std::string version() {
  return "maskgen " + std::to_string(MASKGEN_VERSION_MAJOR) + "." + std::to_string(MASKGEN_VERSION_MINOR) + "." +
         std::to_string(MASKGEN_VERSION_PATCH);
}

// A mistake in the command line found after parsing (flags that do not go together, a folder
// without the file a flag needs): reported as a parse error is, with exit code 2.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// CLI11's help with the descriptions wrapped to 100 columns, and without the "Needs:" and
// "Excludes:" labels (the descriptions say it in words).
class HelpFormatter : public CLI::Formatter {
 public:
  static constexpr std::size_t name_width = 32, line_width = 100;

  HelpFormatter() { column_width(name_width); }

  std::string make_option_opts(const CLI::Option* opt) const override {
    std::string out;
    if (opt->get_type_size() == 0) return out;  // a flag
    if (!opt->get_type_name().empty()) out += " " + opt->get_type_name();
    if (!opt->get_default_str().empty()) out += "=" + opt->get_default_str();
    if (opt->get_expected_max() == CLI::detail::expected_max_vector_size) out += " ...";
    if (opt->get_required()) out += " (required)";
    return out;
  }

  std::string make_option_desc(const CLI::Option* opt) const override {
    std::string out, line;
    std::istringstream words(opt->get_description());
    for (std::string word; words >> word;) {
      if (!line.empty() && line.size() + 1 + word.size() > line_width - name_width) {
        out += line + "\n";
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
    }
    return out + line;
  }
};

// Gives an app the examples' conventions: the defaults shown in --help, --version, and the
// examples shown under the options. (The app is made with the program's name, not argv[0],
// which may be a long path: CLI::App app{"what it does", "batch_generate"}.)
inline void set_up(CLI::App& app, const std::string& examples) {
  app.formatter(std::make_shared<HelpFormatter>());
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", version(), "Print maskgen's version and exit");
  app.footer("Examples:\n" + examples + "\nExit status: 0 done, 1 the work failed, 2 the command line is wrong.");
}

// ---------------------------------------------------------------------------------------------
// Value checks. Each answers "" for a good value, else "expected <what>, got '<value>'"; CLI11
// puts the flag in front.

namespace detail {

inline std::string expected(const std::string& what, const std::string& value) {
  return "expected " + what + ", got '" + value + "'";
}

// Edit distance, for "did you mean".
inline std::size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The flag of `app` closest to `given` ("--temprature" -> "--temperature"), or "" when none is close.
inline std::string closest_flag(const CLI::App& app, const std::string& given) {
  const std::string name = given.substr(0, given.find('='));
  const std::size_t start = name.find_first_not_of('-');
  const std::string bare = start == std::string::npos ? "" : name.substr(start);  // without the dashes
  if (bare.size() < 2) return "";
  std::string best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& long_name : option->get_lnames()) {
      const std::string flag = "--" + long_name;
      std::size_t d = distance(name, flag);
      // A flag that contains what was typed, or is contained in it, is a near miss too.
      if (bare.size() >= 3 && (flag.find(bare) != std::string::npos || bare.find(flag.substr(2)) != std::string::npos)) {
        d = std::min<std::size_t>(d, 2);
      }
      if (d < best_distance) best_distance = d, best = flag;
    }
  }
  return best_distance <= std::max<std::size_t>(2, name.size() / 4) ? best : "";
}

}  // namespace detail

// A whole number from lo to hi.
template <class Int>
CLI::Validator whole_number(Int lo, Int hi = std::numeric_limits<Int>::max()) {
  const std::string what = hi == std::numeric_limits<Int>::max()
                               ? "a whole number >= " + std::to_string(lo)
                               : "a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        Int value{};
        const char* end = text.data() + text.size();
        const auto [stop, error] = std::from_chars(text.data(), end, value);
        if (error != std::errc{} || stop != end || value < lo || value > hi) return detail::expected(what, text);
        return "";
      },
      "", "whole number");
}

// A finite number that `ok` accepts; `what` says which ("a number > 0").
inline CLI::Validator real_number(const std::string& what, std::function<bool(double)> ok) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        const char* end = text.data() + text.size();
        const auto [stop, error] = std::from_chars(text.data(), end, value);
        if (error != std::errc{} || stop != end || !std::isfinite(value) || !ok(value)) {
          return detail::expected(what, text);
        }
        return "";
      },
      "", "number");
}

// One of a few words.
inline CLI::Validator one_of(const std::vector<std::string>& words) {
  std::string what = "one of";
  for (std::size_t i = 0; i < words.size(); ++i) what += (i ? ", " : " ") + words[i];
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        for (const auto& word : words) {
          if (text == word) return "";
        }
        return detail::expected(what, text);
      },
      "", "word");
}

// A file that exists.
inline CLI::Validator existing_file() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::error_code ec;
        if (!std::filesystem::exists(text, ec)) return detail::expected("a file", text) + ", which does not exist";
        if (std::filesystem::is_directory(text, ec)) return detail::expected("a file", text) + ", which is a folder";
        return "";
      },
      "", "file");
}

// What a model folder lacks, in the words of an error message, or "" when it has what
// load_tokenizer and Model::load read: config.json, model.safetensors (or the index of a sharded
// checkpoint, model.safetensors.index.json), and tokenizer.json or tokenizer.model (unless the
// program needs no tokenizer).
inline std::string model_folder_problem(const std::filesystem::path& dir, bool needs_tokenizer = true) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string quoted = "'" + dir.string() + "'";
  if (!fs::exists(dir, ec)) return "the model folder " + quoted + " does not exist";
  if (!fs::is_directory(dir, ec)) {
    return quoted + " is not a folder (a model folder holds config.json, model.safetensors and tokenizer.json or tokenizer.model)";
  }
  auto has = [&](const char* name) { return fs::is_regular_file(dir / name, ec); };
  if (!has("config.json")) return "the model folder " + quoted + " has no config.json";
  if (!has("model.safetensors") && !has("model.safetensors.index.json")) {
    return "the model folder " + quoted + " has no model.safetensors (nor model.safetensors.index.json for a sharded checkpoint)";
  }
  if (needs_tokenizer && !has("tokenizer.json") && !has("tokenizer.model")) {
    return "the model folder " + quoted + " has no tokenizer.json (nor tokenizer.model)";
  }
  return "";
}

inline CLI::Validator model_folder() {
  return CLI::Validator([](std::string& text) { return model_folder_problem(text); }, "", "model folder");
}

// ---------------------------------------------------------------------------------------------
// The flags several programs share.

inline CLI::Option* add_model_flag(CLI::App& app, std::string& dir) {
  return app
      .add_option("-m,--model", dir,
                  "Model folder as Hugging Face publishes it: config.json, model.safetensors (or a sharded "
                  "checkpoint's index), tokenizer.json or tokenizer.model, and tokenizer_config.json for a chat "
                  "template")
      ->type_name("DIR")
      ->check(model_folder());
}

inline CLI::Option* add_threads_flag(CLI::App& app, int& threads) {
  return app.add_option("-t,--threads", threads, "Threads for the forward pass; 0 uses every core")
      ->type_name("N")
      ->check(whole_number(0, 4096));
}

// The generation flags, each a GenerationConfig field of the same name: --max-new-tokens sets
// max_new_tokens. Sampling flags need --do-sample (greedy search would ignore them silently).
inline void add_generation_flags(CLI::App& app, maskgen::GenerationConfig& gen) {
  const int most = std::numeric_limits<int>::max();
  const char* group = "Generation (GenerationConfig)";
  app.add_option("-n,--max-new-tokens", gen.max_new_tokens, "New tokens per prompt at most")
      ->type_name("N")->check(whole_number(0, most))->group(group);
  app.add_option("--min-new-tokens", gen.min_new_tokens, "End of sequence is suppressed until a row has this many")
      ->type_name("N")->check(whole_number(0, most))->group(group);
  app.add_option("--repetition-penalty", gen.repetition_penalty, "Above 1 discourages tokens already in the row")
      ->type_name("X")->check(real_number("a number > 0", [](double x) { return x > 0; }))->group(group);
  app.add_option("--no-repeat-ngram-size", gen.no_repeat_ngram_size, "No n-gram of this size occurs twice in a row; 0: off")
      ->type_name("N")->check(whole_number(0, most))->group(group);
  app.add_option("--num-return-sequences", gen.num_return_sequences,
                 "Sequences per prompt (sampling, or beam search with at least as many beams)")
      ->type_name("N")->check(whole_number(1, 1 << 16))->group(group);

  const char* sampling = "Sampling (GenerationConfig; needs --do-sample)";
  CLI::Option* do_sample = app.add_flag("--do-sample", gen.do_sample, "Sample the next token instead of taking the best")->group(sampling);
  app.add_option("--temperature", gen.temperature, "Scores are divided by it")
      ->type_name("X")->check(real_number("a number > 0", [](double x) { return x > 0; }))->needs(do_sample)->group(sampling);
  app.add_option("--top-k", gen.top_k, "Keep the k most likely tokens; 0 keeps all")
      ->type_name("N")->check(whole_number(0, most))->needs(do_sample)->group(sampling);
  app.add_option("--top-p", gen.top_p, "Keep the most likely tokens whose probabilities add up to p")
      ->type_name("X")->check(real_number("a number in (0, 1]", [](double x) { return x > 0 && x <= 1; }))
      ->needs(do_sample)->group(sampling);
  app.add_option("--min-p", gen.min_p, "Drop tokens below min-p times the best one's probability; 0: off")
      ->type_name("X")->check(real_number("a number from 0 to 1", [](double x) { return x >= 0 && x <= 1; }))
      ->needs(do_sample)->group(sampling);
  app.add_option("--seed", gen.seed,
                 "Row b of the batch draws from a stream seeded by (seed, b). Without it a random seed is drawn and "
                 "printed to standard error (seed: N), so that the run can be repeated")
      ->type_name("N")->check(whole_number<std::uint64_t>(0))->needs(do_sample)->group(sampling)->default_str("");

  const char* beams = "Beam search (GenerationConfig)";
  CLI::Option* num_beams = app.add_option("--num-beams", gen.num_beams, "Beams per prompt; 1: no beam search")
      ->type_name("N")->check(whole_number(1, 1 << 16))->group(beams);
  app.add_option("--length-penalty", gen.length_penalty, "With --num-beams: beam scores are sum(log p) / length^length-penalty")
      ->type_name("X")->check(real_number("a finite number", [](double) { return true; }))->needs(num_beams)->group(beams);
}

// With --do-sample and no --seed: a seed drawn from std::random_device, said on `log` as
// "seed: N" so that the run can be repeated with --seed N.
inline void draw_seed_unless_given(const CLI::App& app, maskgen::GenerationConfig& gen, std::ostream& log) {
  if (!gen.do_sample || app.count("--seed") > 0) return;
  std::random_device device;
  gen.seed = (static_cast<std::uint64_t>(device()) << 32 | device()) % 1'000'000'000;  // short enough to retype
  log << "seed: " << gen.seed << "\n";
}

// The library's own check of a GenerationConfig, in the words of the flags: what the parse alone
// cannot see (--do-sample with --num-beams 4, --num-return-sequences 3 with greedy search).
inline void check_generation_flags(const maskgen::GenerationConfig& gen, bool streaming) {
  if (streaming && gen.num_beams > 1) {
    throw usage_error("--stream cannot follow beam search (--num-beams " + std::to_string(gen.num_beams) +
                      "): the beams' tokens change until the end");
  }
  try {
    maskgen::step::validate_generation(gen, 1, false);
  } catch (const maskgen::argument_error& e) {
    static const std::regex field(
        R"(\b(max_new_tokens|min_new_tokens|do_sample|temperature|top_k|top_p|min_p|repetition_penalty|)"
        R"(no_repeat_ngram_size|num_beams|length_penalty|num_return_sequences|seed)\b)");
    const std::string text = e.what();
    std::string message;
    std::size_t done = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), field); it != std::sregex_iterator(); ++it) {
      std::string flag = "--" + it->str();
      std::replace(flag.begin(), flag.end(), '_', '-');
      message += text.substr(done, static_cast<std::size_t>(it->position()) - done) + flag;
      done = static_cast<std::size_t>(it->position() + it->length());
    }
    message += text.substr(done);
    throw usage_error(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Running a program.

namespace detail {

inline int report_usage(const CLI::App& app, const std::string& message) {
  std::cerr << app.get_name() << ": " << message << "\nRun '" << app.get_name() << " --help' for the options.\n";
  return 2;
}

// Flags the examples had before they shared one set of names, and what replaced them.
inline std::string renamed_flag(const CLI::App& app, const std::string& given) {
  static const std::pair<const char*, const char*> renamed[] = {
      {"--sample", "--do-sample"},        {"--beams", "--num-beams"},
      {"--no-repeat-ngram", "--no-repeat-ngram-size"}, {"--right", "--padding-side right"},
      {"--pad-to", "--padding max_length"}, {"--multiple", "--pad-to-multiple-of"},
      {"--truncate", "--truncation --truncation-side"}, {"--pad-id", "--pad-token-id"},
      {"--no-bos", "--no-add-bos-token"},  {"--eos", "--add-eos-token"}};
  const std::string name = given.substr(0, given.find('='));
  for (const auto& [old_name, new_name] : renamed) {
    const std::string new_flag = std::string(new_name).substr(0, std::string(new_name).find(' '));
    if (name == old_name && app.get_option_no_throw(new_flag) != nullptr) return new_name;
  }
  return "";
}

inline std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e) {
  const std::string what = e.what();
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr) {
    // CLI11 says "--max-new-tokens: 1 required N missing" or "At Most 1 required but received 2".
    const std::string flag = what.substr(0, what.find(':'));
    if (what.find("missing") != std::string::npos) return flag + ": expected a value after it";
    if (what.find("received") != std::string::npos) return flag + " was given more than once";
    return what;
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e) == nullptr) return what;
  // CLI11 says "The following argument was not expected"; say which flag was meant.
  std::string message;
  for (const std::string& arg : app.remaining()) {
    if (!message.empty()) message += "; ";
    if (arg.rfind("--", 0) == 0 || (arg.size() > 1 && arg[0] == '-')) {
      message += "unknown option " + arg;
      if (const std::string now = renamed_flag(app, arg); !now.empty()) {
        message += " (renamed: use " + now + ")";
      } else if (const std::string meant = closest_flag(app, arg); !meant.empty()) {
        message += " (did you mean " + meant + "?)";
      }
    } else {
      message += "unexpected argument '" + arg + "'";
    }
  }
  return message.empty() ? e.what() : message;
}

}  // namespace detail

// Parses the command line and runs `body`, ending as the comment at the top says. `body` returns
// the exit status of work that ran.
template <class Body>
int run(CLI::App& app, int argc, char** argv, Body&& body) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return detail::report_usage(app, detail::parse_error_message(app, e));
  }
  try {
    return body();
  } catch (const usage_error& e) {
    return detail::report_usage(app, e.what());
  } catch (const std::bad_alloc&) {
    std::cerr << app.get_name() << ": out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << app.get_name() << ": " << e.what() << "\n";
  } catch (...) {
    std::cerr << app.get_name() << ": an unknown error ended the program\n";
  }
  return 1;
}

}  // namespace maskgen_cli

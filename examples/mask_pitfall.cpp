// The failure maskgen exists to prevent, side by side. A batch of prompts of very different
// lengths is generated four ways on the same model:
//   1. maskgen, left padding, with the mask
//   2. maskgen, right padding, with the mask       (the same tokens as 1: the mask decides)
//   3. the mask dropped, left padding              (pads are attended to and shift positions)
//   4. the mask dropped, right padding             (the answer is written after the pads)
// and on the bundled model each answer is checked, so the damage is a number.
//
//   mask_pitfall [--model DIR] [--prompts N] [--seed N] [--threads N]   (mask_pitfall --help)
//
// Exits with 1 unless every masked answer is right, left and right padding agree, and the runs
// without the mask get fewer right: so running it is also a check.

#include <maskgen/maskgen.hpp>

#include "support/cli.hpp"

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "support/sort_reverse_task.hpp"

namespace {

struct Way {
  const char* name;
  std::vector<std::string> answers;
  int right = 0;
};

std::string shorten(const std::string& s, std::size_t width) {
  return s.size() <= width ? s : s.substr(0, width - 3) + "...";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generates one batch four ways (with the mask, left and right padded; without it, left and\nright padded) "
               "and counts the right answers of the bundled task.", "mask_pitfall"};
  maskgen_cli::set_up(app,
                      "  mask_pitfall\n"
                      "  mask_pitfall --prompts 32 --seed 7");
  std::string dir = MASKGEN_DEMO_MODEL_DIR;
  std::size_t count = 12;
  std::uint32_t seed = 2026;
  int threads = 0;
  maskgen_cli::add_model_flag(app, dir);
  app.add_option("--prompts", count, "Prompts in the batch (lists of 1 to 20 digits)")
      ->type_name("N")
      ->check(maskgen_cli::whole_number<std::size_t>(1, 4096));
  app.add_option("--seed", seed, "Seed of the prompts' digits")->type_name("N")->check(maskgen_cli::whole_number<std::uint32_t>(0));
  maskgen_cli::add_threads_flag(app, threads);

  return maskgen_cli::run(app, argc, argv, [&] {
    const auto tok = maskgen::load_tokenizer(dir);
    const auto model = maskgen::Model<float>::load(dir);
    // Lists of 1 to 20 digits: the shortest prompts get 19 pads in a left-padded batch.
    const auto prompts = demo::make_prompts(count, seed, {1, 20, 3, 14, 2, 9, 20, 5, 1, 17, 7, 12});

    const auto left = tok.encode_batch(prompts, {.padding_side = maskgen::Side::Left});
    const auto right = tok.encode_batch(prompts, {.padding_side = maskgen::Side::Right});
    const maskgen::GenerationConfig gen{.max_new_tokens = 24, .pad_token_id = tok.resolve_pad_id(std::nullopt),
                                        .num_threads = threads};

    auto decode = [&](const maskgen::GenerationResult<float>& out) {
      auto texts = tok.decode_batch(out.sequences, out.sequences_mask());
      for (auto& t : texts) t = demo::trim(t);
      return texts;
    };
    std::vector<Way> ways = {
        {"with mask, left-padded", decode(maskgen::generate(model, left.input_ids, left.attention_mask, gen))},
        {"with mask, right-padded", decode(maskgen::generate(model, right.input_ids, right.attention_mask, gen))},
        {"no mask, left-padded", decode(maskgen::pitfalls::generate_ignoring_mask(model, left.input_ids, gen))},
        {"no mask, right-padded", decode(maskgen::pitfalls::generate_ignoring_mask(model, right.input_ids, gen))},
    };

    std::cout << "Model " << dir << ", " << count << " prompts padded to " << left.input_ids.cols()
              << " tokens (x marks a wrong answer)\n\n";
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      const std::string expected = demo::expected_answer(prompts[i]).value_or("?");
      std::cout << prompts[i] << "\n";
      std::cout << "    " << std::left << std::setw(26) << "expected" << expected << "\n";
      for (auto& way : ways) {
        const bool ok = way.answers[i] == expected;
        way.right += ok;
        std::cout << "  " << (ok ? "  " : "x ") << std::setw(26) << way.name << shorten(way.answers[i], 60) << "\n";
      }
    }
    std::cout << "\nRight answers:\n";
    for (const auto& way : ways) {
      std::cout << "  " << std::setw(26) << way.name << way.right << " of " << count << "\n";
    }

    const bool masked_all_right = ways[0].right == static_cast<int>(count) && ways[1].answers == ways[0].answers;
    const bool unmasked_worse = ways[2].right < ways[0].right && ways[3].right < ways[0].right;
    if (!masked_all_right || !unmasked_worse) {
      std::cerr << "mask_pitfall: expected every masked answer right (left = right padding) and fewer without the mask\n";
      return 1;
    }
    return 0;
  });
}

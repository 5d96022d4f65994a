#pragma once
// Writes a Qwen3-architecture model folder whose greedy continuation is fixed by construction: a
// "scripted" model, for tests that need a model to say a given thing (a tool call, a reasoning
// block) rather than whatever random weights happen to say.
//
// Each Script is (trigger token id, text). After any prompt whose last token is the trigger,
// greedy decoding emits token ids that decode exactly to the text, then the EOS id. After a
// prompt that ends with a token of no script (and no trigger), the model emits EOS at once.
//
// Why not a bigram (next token from the current token alone): on Qwen3's byte-level vocabulary
// "\n" has one token, 198, which is also the last token of the chat generation prompt, and a
// Hermes tool call needs ">\n" twice ("<think>\n", "<tool_call>\n"); a bigram gives each token
// one successor, so it cannot say that text. The model below is a trigram machine instead: the
// next token is a function of (previous token, current token), one decoder layer, all of it
// arithmetic (H = hidden_size, D = head_dim, every RMSNorm weight 1 unless stated):
//   Residual stream: dim 0 "bias", a "current" block with one code per script token and trigger
//   (code 0: every other token), a "previous" block with one slot per script token and trigger,
//   a "pair" block with one dim per (previous, current) pair that occurs in a script.
//   1. embed_tokens[t] = e_bias + e_cur(code(t)).
//   2. Attention reads the previous token: q and k come from the bias dim only, so they are the
//      same at every position; q_norm (weight w = 8) and k_norm make each of the D/2 rotary pairs
//      of q and k of length sqrt(2) w, k's pair i turned by theta_i ahead of q's, so the score at
//      distance d (query position - key position) is (2 w^2 / sqrt(D)) sum_i cos(theta_i (d - 1)):
//      the largest at d = 1. With rope_theta 100 and D = 64 the smallest gap over d in [0, 4096)
//      is sum_i (1 - cos(theta_i (d - 1))) >= 1.906 (at d = 0), times 2 w^2 / sqrt(D) = 16: a
//      score gap of 30.5, so the previous token gets all but e^-30.5 (about 6e-14) of the weight per
//      other key. (At position 0 there is only the token itself.) v carries the slot of the key's
//      token and o_proj writes it into the previous block: the stream gains e_prev(slot(previous)).
//   3. The MLP has one unit per pair j = (p, c): gate = G (x_cur[c] + x_prev[p] - 1.5 x_bias) / s
//      with s the normalized stream's value of a one (sqrt(H/3)), up = 1, G = 40: gate = +20 when
//      both match, -20 or -60 otherwise; silu(20) = 20, silu(-20) = -4e-8. down_proj (2/G) writes
//      about 1 into the pair dim j when the pair matches and at most 2e-9 otherwise.
//   4. lm_head: for each pair j, lm_head[successor(j)][pair j] = 2 scale; for each trigger,
//      lm_head[first token][cur(trigger)] = scale; for every other code c, lm_head[EOS][cur c] = scale.
//      After the final norm (every component about sqrt(H/4) when four ones are set, more when
//      fewer), the pair's successor gets 2 scale sqrt(H/4), the current token's fallback scale
//      sqrt(H/4), everything else about 0: the greedy margin is at least scale sqrt(H/4) (8 for
//      H = 256, scale 1).
// A prompt that ends with a trigger has no pair (no script holds a trigger), so the trigger's
// fallback starts the script; each later step is a pair of the script. So a script is spelled with
// ids that are not triggers, not EOS and not special (skip_special_tokens would drop them), and
// whose (previous, current) pairs, counting (trigger, first), occur once over all scripts; the
// spelling need not be the tokenizer's own encoding, only the decoded text is fixed. It prefers
// the tokenizer's non-special added tokens (<tool_call>, <think>) where they fit, then the longest
// vocabulary pieces, and backtracks when a choice leaves nothing for what follows. (On Qwen3 the
// added tokens that a newline follows in the text are spelled in pieces: "<" "think" ">\n".)
// A prompt that happens to end with two consecutive tokens of a script continues that script.

#include <maskgen/error.hpp>
#include <maskgen/safetensors.hpp>
#include <maskgen/tokenizer.hpp>

#include "random_model.hpp"  // append_encoded
#include "safetensors_writer.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

namespace maskgen::tools {

// One scripted continuation.
struct Script {
  std::int32_t trigger = 0;  // the prompt's last token id that starts the script
  std::string text;          // what greedy decoding then emits (valid UTF-8), followed by EOS
};

struct ScriptedModelOptions {
  std::int64_t hidden_size = 0;  // H; 0: the smallest multiple of 64 that holds every dim the scripts need
  std::int64_t num_layers = 1;   // decoder layers; those after the first add exactly 0 to the stream
  std::int64_t max_position_embeddings = 4096;  // chat prompts with tool schemas are long
  std::optional<std::int32_t> eos_token_id{};   // unset: the tokenizer's EOS (Qwen3: <|im_end|>, 151645)
  float scale = 1.0f;  // lm_head's fallback entries (pairs get 2 scale); the margin is at least scale sqrt(H/4)
  // config.json's vocab_size; 0: the tokenizer's. Larger, as Qwen's configs are (151,936 against
  // 151,669 tokens): the ids past the tokenizer have embeddings and logits as unscripted ids do.
  std::int64_t vocab_size = 0;
};

// What write_scripted_model wrote.
struct ScriptedModel {
  std::vector<std::vector<std::int32_t>> ids;  // [scripts][tokens] each script's spelling (EOS not included)
  std::int32_t eos_token_id = 0;
  std::int64_t hidden_size = 0;  // H
  std::int64_t head_dim = 0;     // D
  std::int64_t vocab_size = 0;
  double min_margin = 0;         // scale sqrt(H/4): the least gap between the chosen logit and any other
  double attention_gap = 0;      // the least score gap between the previous token and any other key
};

inline constexpr std::int64_t scripted_num_heads = 2, scripted_num_kv_heads = 1;
inline constexpr double scripted_rms_norm_eps = 1e-6, scripted_rope_theta = 100.0;

// The last token id of `text` as `tokenizer` encodes it without added BOS/EOS: the trigger of a
// script meant to follow prompts that end with `text` ("<|im_start|>assistant\n" ends with "\n",
// 198 on Qwen3). Throws argument_error when `text` has no tokens.
inline std::int32_t last_token_of(const AutoTokenizer& tokenizer, std::string_view text) {
  const auto ids = tokenizer.encode(text, {.add_bos = false, .add_eos = false});
  if (ids.empty()) throw argument_error("last_token_of: the trigger text \"" + std::string(text) + "\" has no tokens");
  return ids.back();
}

namespace detail {

inline std::uint64_t pair_key(std::int32_t previous, std::int32_t current) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(previous)) << 32) | static_cast<std::uint32_t>(current);
}

// Spells a text with usable ids whose (previous, current) pairs are not in `pairs` yet (and adds
// them): non-special added tokens first where they match, then vocabulary pieces longest first,
// backtracking when a position has no piece left. `bytes[id]` is what id decodes to.
class ScriptSpeller {
 public:
  ScriptSpeller(const std::vector<std::string>& bytes, const std::vector<std::int32_t>& added_ids,
                const std::vector<char>& usable)
      : bytes_(bytes), added_ids_(added_ids) {
    for (std::size_t id = 0; id < bytes.size(); ++id) {
      if (!usable[id] || bytes[id].empty()) continue;
      if (std::find(added_ids.begin(), added_ids.end(), static_cast<std::int32_t>(id)) != added_ids.end()) continue;
      pieces_[bytes[id]].push_back(static_cast<std::int32_t>(id));
      longest_ = std::max(longest_, bytes[id].size());
    }
    std::sort(added_ids_.begin(), added_ids_.end(), [&](std::int32_t a, std::int32_t b) {
      const auto la = bytes_[static_cast<std::size_t>(a)].size(), lb = bytes_[static_cast<std::size_t>(b)].size();
      return la != lb ? la > lb : a < b;
    });
  }

  // The ids, or nullopt when there is no spelling (or the search gave up); `stuck_at` then holds
  // the furthest byte offset reached.
  std::optional<std::vector<std::int32_t>> spell(std::string_view text, std::int32_t trigger,
                                                 std::unordered_set<std::uint64_t>& pairs, std::size_t& stuck_at) {
    text_ = text;
    steps_ = 0;
    furthest_ = 0;
    std::vector<std::int32_t> out;
    const bool ok = search(0, trigger, pairs, out);
    stuck_at = furthest_;
    if (!ok) return std::nullopt;
    return out;
  }

 private:
  static constexpr std::size_t max_steps = 1'000'000;  // pieces tried before giving up

  bool search(std::size_t pos, std::int32_t previous, std::unordered_set<std::uint64_t>& pairs,
              std::vector<std::int32_t>& out) {
    furthest_ = std::max(furthest_, pos);
    if (pos == text_.size()) return true;
    auto attempt = [&](std::int32_t id) {
      const std::uint64_t key = pair_key(previous, id);
      if (pairs.count(key) || ++steps_ > max_steps) return false;
      pairs.insert(key);
      out.push_back(id);
      if (search(pos + bytes_[static_cast<std::size_t>(id)].size(), id, pairs, out)) return true;
      out.pop_back();
      pairs.erase(key);
      return false;
    };
    const std::string_view rest = text_.substr(pos);
    for (const std::int32_t id : added_ids_) {
      if (rest.starts_with(bytes_[static_cast<std::size_t>(id)]) && attempt(id)) return true;
    }
    for (std::size_t length = std::min(longest_, rest.size()); length > 0; --length) {
      const auto it = pieces_.find(std::string(rest.substr(0, length)));
      if (it == pieces_.end()) continue;
      for (const std::int32_t id : it->second) {
        if (attempt(id)) return true;
      }
    }
    return false;
  }

  const std::vector<std::string>& bytes_;
  std::vector<std::int32_t> added_ids_;                                // usable added tokens, longest first
  std::unordered_map<std::string, std::vector<std::int32_t>> pieces_;  // bytes -> usable vocabulary ids
  std::size_t longest_ = 0;
  std::string_view text_;
  std::size_t steps_ = 0, furthest_ = 0;
};

// The least of sum_i (1 - cos(theta_i (d - 1))) over distances d in [0, positions), d != 1: how
// much lower than the previous token's any other key's attention score is, in units of 2 w^2 / sqrt(D).
inline double previous_token_gap(std::int64_t head_dim, double rope_theta, std::int64_t positions) {
  double least = std::numeric_limits<double>::infinity();
  for (std::int64_t d = 0; d < positions; ++d) {
    if (d == 1) continue;
    double g = 0;
    for (std::int64_t i = 0; i < head_dim / 2; ++i) {
      g += 1.0 - std::cos(std::pow(rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim)) * static_cast<double>(d - 1));
    }
    least = std::min(least, g);
  }
  return least;
}

// A [rows, cols] bfloat16 tensor, zero but for `entries` ((row, col), value).
struct SparseTensor {
  SparseTensor(std::int64_t r, std::int64_t c) : rows(r), cols(c) {}
  std::int64_t rows = 0, cols = 0;
  std::vector<std::pair<std::pair<std::int64_t, std::int64_t>, float>> entries;
  void set(std::int64_t r, std::int64_t c, float x) { entries.push_back({{r, c}, x}); }
  std::vector<std::byte> bytes() const {
    std::vector<std::byte> data(static_cast<std::size_t>(rows * cols) * 2, std::byte{0});
    std::vector<std::byte> one;
    for (const auto& [at, x] : entries) {
      one.clear();
      append_encoded(x, DType::BF16, one);
      std::copy(one.begin(), one.end(), data.begin() + static_cast<std::ptrdiff_t>((at.first * cols + at.second) * 2));
    }
    return data;
  }
};

}  // namespace detail

// Writes `dir` (created if needed): config.json, generation_config.json (greedy, EOS as chosen),
// model.safetensors in bfloat16, and copies of tokenizer.json and tokenizer_config.json from
// `tokenizer_dir`. Throws argument_error for a trigger outside the vocabulary, a repeated trigger,
// text that is not UTF-8, a hidden_size too small, or a script that cannot be spelled (see the top
// of this file); unsupported_error when `tokenizer_dir` has no tokenizer.json.
// `tokenizer` is load_tokenizer(tokenizer_dir), loaded once by a caller that writes several folders.
inline ScriptedModel write_scripted_model(const std::filesystem::path& dir, const std::filesystem::path& tokenizer_dir,
                                          const AutoTokenizer& tokenizer, std::span<const Script> scripts,
                                          const ScriptedModelOptions& options = {}) {
  using maskgen::detail::cat;
  const TokenizerJsonBackend* json = tokenizer.backend().tokenizer_json();
  if (!json || !json->byte_level() || !std::filesystem::is_regular_file(tokenizer_dir / "tokenizer.json")) {
    throw unsupported_error(cat("write_scripted_model: the tokenizer of ", tokenizer_dir,
                                " must be a tokenizer.json (byte-level BPE); a scripted model needs each token's bytes"));
  }
  const std::int32_t vocab = tokenizer.vocab_size();
  const auto eos = options.eos_token_id ? options.eos_token_id : tokenizer.eos_id();
  if (!eos) throw argument_error("write_scripted_model: options.eos_token_id is unset and the tokenizer has no EOS token");
  if (*eos < 0 || *eos >= vocab) {
    throw argument_error(cat("write_scripted_model: options.eos_token_id is ", *eos, "; expected an id in [0, ", vocab, ")"));
  }
  if (options.num_layers < 1) throw argument_error(cat("write_scripted_model: options.num_layers is ", options.num_layers, "; expected >= 1"));
  const std::int64_t model_vocab = options.vocab_size ? options.vocab_size : vocab;
  if (model_vocab < vocab || model_vocab > (std::int64_t{1} << 31) - 1) {
    throw argument_error(cat("write_scripted_model: options.vocab_size is ", options.vocab_size, "; expected 0 or at least the tokenizer's ",
                             vocab, " ids"));
  }
  if (options.max_position_embeddings < 2) {
    throw argument_error(cat("write_scripted_model: options.max_position_embeddings is ", options.max_position_embeddings, "; expected >= 2"));
  }
  if (!(options.scale > 0.0f) || !std::isfinite(options.scale)) {
    throw argument_error(cat("write_scripted_model: options.scale is ", options.scale, "; expected a finite number > 0"));
  }

  // Which ids a script may use: not special, not EOS, not a trigger.
  std::vector<std::string> bytes(static_cast<std::size_t>(vocab));
  std::vector<char> usable(static_cast<std::size_t>(vocab), 1);
  for (std::int32_t id = 0; id < vocab; ++id) {
    const std::int32_t one[] = {id};
    bytes[static_cast<std::size_t>(id)] = *json->decode_bytes(one, false);
    if (json->is_special(id)) usable[static_cast<std::size_t>(id)] = 0;
  }
  usable[static_cast<std::size_t>(*eos)] = 0;
  std::unordered_set<std::int32_t> triggers;
  for (std::size_t s = 0; s < scripts.size(); ++s) {
    const std::int32_t t = scripts[s].trigger;
    if (t < 0 || t >= vocab) throw argument_error(cat("write_scripted_model: scripts[", s, "].trigger is ", t, "; expected an id in [0, ", vocab, ")"));
    if (!triggers.insert(t).second) throw argument_error(cat("write_scripted_model: scripts[", s, "].trigger ", t, " is the trigger of an earlier script; each trigger starts one script"));
    if (!unicode::is_valid_utf8(scripts[s].text)) throw argument_error(cat("write_scripted_model: scripts[", s, "].text is not valid UTF-8"));
    usable[static_cast<std::size_t>(t)] = 0;
  }
  std::vector<std::int32_t> added;
  for (const AddedToken& t : json->added_tokens()) {
    if (usable[static_cast<std::size_t>(t.id)]) added.push_back(t.id);
  }
  detail::ScriptSpeller speller(bytes, added, usable);

  ScriptedModel result;
  result.eos_token_id = *eos;
  result.vocab_size = model_vocab;
  std::unordered_set<std::uint64_t> pairs;
  for (std::size_t s = 0; s < scripts.size(); ++s) {
    std::size_t stuck_at = 0;
    auto ids = speller.spell(scripts[s].text, scripts[s].trigger, pairs, stuck_at);
    if (!ids) {
      throw argument_error(cat("write_scripted_model: scripts[", s, "].text cannot be spelled with token ids that are not triggers, EOS or "
                               "special and whose (previous, current) pairs occur once over all scripts; nothing continues it at byte ",
                               stuck_at, " (\"", scripts[s].text.substr(stuck_at, 16), "\")"));
    }
    if (tokenizer.decode(*ids, {.skip_special_tokens = true}) != scripts[s].text) {
      throw argument_error(cat("write_scripted_model: scripts[", s, "]: the spelled ids do not decode to the text (this tokenizer's decoder "
                               "changes the concatenated pieces)"));
    }
    result.ids.push_back(std::move(*ids));
  }

  // Codes of the current block (0: every other token), slots of the previous block (code - 1), pairs.
  std::unordered_map<std::int32_t, std::int64_t> code;
  std::vector<std::int32_t> fallback = {*eos};  // [codes] the token the current token alone leads to
  auto code_of = [&](std::int32_t id, std::int32_t next) {
    if (const auto it = code.find(id); it != code.end()) return it->second;
    code.emplace(id, static_cast<std::int64_t>(fallback.size()));
    fallback.push_back(next);
    return static_cast<std::int64_t>(fallback.size()) - 1;
  };
  struct Pair {
    std::int64_t previous_slot, current_code;
    std::int32_t next;
  };
  std::vector<Pair> table;
  for (std::size_t s = 0; s < scripts.size(); ++s) {
    const auto& ids = result.ids[s];
    code_of(scripts[s].trigger, ids.empty() ? *eos : ids.front());
    std::int32_t previous = scripts[s].trigger;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const std::int64_t c = code_of(ids[i], *eos);
      table.push_back({code.at(previous) - 1, c, i + 1 < ids.size() ? ids[i + 1] : *eos});
      previous = ids[i];
    }
  }
  const auto codes = static_cast<std::int64_t>(fallback.size()), slots = codes - 1, n_pairs = static_cast<std::int64_t>(table.size());
  const std::int64_t cur0 = 1, prev0 = cur0 + codes, pair0 = prev0 + slots, needed = pair0 + n_pairs;
  const std::int64_t h = options.hidden_size ? options.hidden_size : std::max<std::int64_t>(64, (needed + 63) / 64 * 64);
  if (h < needed) {
    throw argument_error(cat("write_scripted_model: options.hidden_size is ", h, "; these scripts need at least ", needed,
                             " (a bias dim, ", codes, " token codes, ", slots, " previous-token slots and ", n_pairs, " pairs)"));
  }
  const std::int64_t d = std::max<std::int64_t>(64, (slots + 15) / 16 * 16);  // head_dim: v carries a slot
  const std::int64_t inter = std::max<std::int64_t>(16, (n_pairs + 15) / 16 * 16);
  constexpr double w = 8.0, G = 40.0;  // q_norm/k_norm weight; the MLP's gate gain
  result.hidden_size = h;
  result.head_dim = d;
  result.attention_gap = 2.0 * w * w / std::sqrt(static_cast<double>(d)) *
                         detail::previous_token_gap(d, scripted_rope_theta, options.max_position_embeddings);
  if (result.attention_gap < 25.0) {
    throw unsupported_error(cat("write_scripted_model: the previous-token attention's score gap is only ", result.attention_gap,
                                " over ", options.max_position_embeddings, " positions (head_dim ", d, "); lower max_position_embeddings"));
  }
  result.min_margin = options.scale * std::sqrt(static_cast<double>(h) / 4.0);

  std::filesystem::create_directories(dir);
  nlohmann::ordered_json config = {
      {"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}, {"vocab_size", model_vocab},
      {"hidden_size", h}, {"intermediate_size", inter}, {"num_hidden_layers", options.num_layers},
      {"num_attention_heads", scripted_num_heads}, {"num_key_value_heads", scripted_num_kv_heads},
      {"head_dim", d}, {"max_position_embeddings", options.max_position_embeddings},
      {"rms_norm_eps", scripted_rms_norm_eps}, {"tie_word_embeddings", false}, {"hidden_act", "silu"},
      {"eos_token_id", *eos}, {"torch_dtype", "bfloat16"},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", scripted_rope_theta}}}};
  nlohmann::ordered_json generation = {{"do_sample", false}, {"eos_token_id", *eos}};
  if (const auto bos = tokenizer.bos_id()) {
    config["bos_token_id"] = *bos;
    generation["bos_token_id"] = *bos;
  }
  if (const auto pad = tokenizer.pad_id()) generation["pad_token_id"] = *pad;
  std::ofstream(dir / "config.json") << config.dump(2) << "\n";
  std::ofstream(dir / "generation_config.json") << generation.dump(2) << "\n";
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    if (std::filesystem::exists(tokenizer_dir / name)) {
      std::filesystem::copy_file(tokenizer_dir / name, dir / name, std::filesystem::copy_options::overwrite_existing);
    }
  }

  // The values a one takes after each RMSNorm: two ones set (bias, current) before attention,
  // three (and the previous slot) before the MLP.
  const double one_in = std::sqrt(static_cast<double>(h) / 2.0), one_mlp = std::sqrt(static_cast<double>(h) / 3.0);
  const std::int64_t q_rows = scripted_num_heads * d, kv_rows = scripted_num_kv_heads * d, half = d / 2;
  detail::SparseTensor embed{model_vocab, h}, lm_head{model_vocab, h};
  for (std::int32_t t = 0; t < model_vocab; ++t) {
    const auto it = code.find(t);
    embed.set(t, 0, 1.0f);
    embed.set(t, cur0 + (it == code.end() ? 0 : it->second), 1.0f);
  }
  detail::SparseTensor q{q_rows, h}, k{kv_rows, h}, v{kv_rows, h}, o{h, q_rows};
  for (std::int64_t head = 0; head < scripted_num_heads; ++head) {
    for (std::int64_t i = 0; i < half; ++i) q.set(head * d + i, 0, 1.0f);  // every rotary pair at angle 0
  }
  for (std::int64_t i = 0; i < half; ++i) {  // pair i at angle theta_i: the score peaks one position back
    const double theta = std::pow(scripted_rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
    k.set(i, 0, static_cast<float>(std::cos(theta)));
    k.set(i + half, 0, static_cast<float>(std::sin(theta)));
  }
  for (std::int64_t c = 1; c < codes; ++c) {
    v.set(c - 1, cur0 + c, static_cast<float>(1.0 / one_in));  // the key's slot, as a one
    o.set(prev0 + c - 1, c - 1, 1.0f);                          // head 0's output into the previous block
  }
  detail::SparseTensor gate{inter, h}, up{inter, h}, down{h, inter};
  for (std::int64_t j = 0; j < n_pairs; ++j) {
    gate.set(j, cur0 + table[static_cast<std::size_t>(j)].current_code, static_cast<float>(G / one_mlp));
    gate.set(j, prev0 + table[static_cast<std::size_t>(j)].previous_slot, static_cast<float>(G / one_mlp));
    gate.set(j, 0, static_cast<float>(-1.5 * G / one_mlp));
    up.set(j, 0, static_cast<float>(1.0 / one_mlp));
    down.set(pair0 + j, j, static_cast<float>(2.0 / G));
    lm_head.set(table[static_cast<std::size_t>(j)].next, pair0 + j, 2.0f * options.scale);
  }
  for (std::int64_t c = 0; c < codes; ++c) lm_head.set(fallback[static_cast<std::size_t>(c)], cur0 + c, options.scale);

  std::vector<std::vector<std::byte>> storage;  // keeps the encoded data alive until written
  std::vector<TensorData> tensors;
  auto add = [&](std::string name, const detail::SparseTensor& t) {
    storage.push_back(t.bytes());
    tensors.push_back({std::move(name), DType::BF16, {t.rows, t.cols}, std::span<const std::byte>(storage.back())});
  };
  auto ones = [](std::int64_t n, float x) {
    detail::SparseTensor t{1, n};
    for (std::int64_t i = 0; i < n; ++i) t.set(0, i, x);
    return t;
  };
  auto vector = [&](std::string name, const detail::SparseTensor& t) {
    add(std::move(name), t);
    tensors.back().shape = {t.cols};
  };
  const detail::SparseTensor zero_o{h, q_rows}, zero_down{h, inter};
  add("model.embed_tokens.weight", embed);
  for (std::int64_t i = 0; i < options.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const bool first = i == 0;  // later layers add 0: zero o_proj and down_proj
    vector(p + "input_layernorm.weight", ones(h, 1.0f));
    add(p + "self_attn.q_proj.weight", q);
    add(p + "self_attn.k_proj.weight", k);
    add(p + "self_attn.v_proj.weight", v);
    add(p + "self_attn.o_proj.weight", first ? o : zero_o);
    vector(p + "self_attn.q_norm.weight", ones(d, static_cast<float>(w)));
    vector(p + "self_attn.k_norm.weight", ones(d, static_cast<float>(w)));
    vector(p + "post_attention_layernorm.weight", ones(h, 1.0f));
    add(p + "mlp.gate_proj.weight", gate);
    add(p + "mlp.up_proj.weight", up);
    add(p + "mlp.down_proj.weight", first ? down : zero_down);
  }
  vector("model.norm.weight", ones(h, 1.0f));
  add("lm_head.weight", lm_head);
  write_safetensors(dir / "model.safetensors", tensors);
  return result;
}

inline ScriptedModel write_scripted_model(const std::filesystem::path& dir, const std::filesystem::path& tokenizer_dir,
                                          std::span<const Script> scripts, const ScriptedModelOptions& options = {}) {
  if (!std::filesystem::is_regular_file(tokenizer_dir / "tokenizer.json")) {
    throw unsupported_error(maskgen::detail::cat("write_scripted_model: tokenizer_dir ", tokenizer_dir,
                                                 " must hold a tokenizer.json (byte-level BPE); a scripted model needs each token's bytes"));
  }
  return write_scripted_model(dir, tokenizer_dir, load_tokenizer(tokenizer_dir), scripts, options);
}

}  // namespace maskgen::tools

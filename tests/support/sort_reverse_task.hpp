#pragma once
// The bundled demo model's task (models/sort-reverse, made by tools/train_demo_model.py): a prompt
// is "sort" or "reverse" and a list of digits, then "="; the answer is the list sorted or reversed.
//   "sort 5 2 9 2 ="  ->  "2 2 5 9"        "reverse 5 2 9 2 ="  ->  "2 9 2 5"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace demo {

// `count` prompts with seeded random digits; list lengths cycle through `lengths`, tasks alternate.
inline std::vector<std::string> make_prompts(std::size_t count, std::uint32_t seed, const std::vector<int>& lengths) {
  std::mt19937 rng(seed);  // its output is fixed by the C++ standard; `% 10` keeps digits portable
  std::vector<std::string> prompts;
  for (std::size_t i = 0; i < count; ++i) {
    std::string p = i % 2 == 0 ? "sort" : "reverse";
    for (int k = 0; k < lengths[i % lengths.size()]; ++k) {
      p += ' ';
      p += static_cast<char>('0' + rng() % 10);
    }
    p += " =";
    prompts.push_back(p);
  }
  return prompts;
}

// The right answer to a task prompt, or nothing if `prompt` is not one.
inline std::optional<std::string> expected_answer(const std::string& prompt) {
  std::istringstream in(prompt);
  std::string task, word;
  in >> task;
  if (task != "sort" && task != "reverse") return std::nullopt;
  std::vector<std::string> items;
  bool closed = false;
  while (in >> word) {
    if (word == "=") {
      closed = true;
      break;
    }
    if (word.size() != 1 || word[0] < '0' || word[0] > '9') return std::nullopt;
    items.push_back(word);
  }
  if (!closed || items.empty() || (in >> word)) return std::nullopt;
  if (task == "sort") std::sort(items.begin(), items.end());
  else std::reverse(items.begin(), items.end());
  std::string answer;
  for (const auto& item : items) {
    if (!answer.empty()) answer += ' ';
    answer += item;
  }
  return answer;
}

inline std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\n") - begin + 1);
}

}  // namespace demo

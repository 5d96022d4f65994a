#pragma once
// TextOutput: a request's text as its tokens arrive. Tokens are decoded with a DecodeStream in the
// context of the request's prompt (only complete characters come out, and the first one keeps the
// leading space SentencePiece gives a word after the prompt), so that
//   decode(prompt) + text() == decode(prompt + tokens)
// for the request's DecodeOptions. An EOS id that ends the request is not decoded (nor shown with
// skip_special_tokens off). The text is held back where it may be the start of a stop string, so
// a caller never sees text that a stop string later cuts off.

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../tokenizer.hpp"

namespace maskgen {

struct TextOutputOptions {
  std::vector<std::string> stop{};  // the text is cut before the first of these to appear
  DecodeOptions decode{};           // skip_special_tokens: as Tokenizer::decode
  std::vector<std::int32_t> eos{};  // ids that end a request; such an id is never put in the text
};

template <TokenizerBackend Backend>
class TextOutput {
 public:
  // `prompt`: the ids the tokens continue (copied where needed). `tokenizer` must outlive this.
  TextOutput(const Tokenizer<Backend>& tokenizer, std::span<const std::int32_t> prompt, TextOutputOptions options = {})
      : stream_(tokenizer, prompt, options.decode), stop_(std::move(options.stop)), eos_(std::move(options.eos)) {}

  // What one new token adds.
  struct Piece {
    std::string_view text;  // new text that can be shown (valid until the next call)
    bool stopped = false;   // a stop string has appeared: the text is cut before it
  };

  // Adds `token`; `last` when no token follows (the stream's held-back bytes are flushed; an EOS
  // id that comes last is not decoded).
  Piece put(std::int32_t token, bool last) {
    if (!last || std::find(eos_.begin(), eos_.end(), token) == eos_.end()) text_ += stream_.put(token);
    if (last) text_ += stream_.finish();
    bool stopped = false;
    std::size_t safe = text_.size();  // bytes that can be shown: none can start a stop string
    for (const std::string& s : stop_) {
      const std::size_t from = sent_ >= s.size() ? sent_ - s.size() + 1 : 0;
      const std::size_t at = text_.find(s, from);
      if (at != std::string::npos) {
        stopped = true;
        safe = std::min(safe, at);
        continue;
      }
      // Hold back a tail that may be the start of `s`.
      for (std::size_t k = std::min(s.size() - 1, text_.size()); k > 0; --k) {
        if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
          safe = std::min(safe, text_.size() - k);
          break;
        }
      }
    }
    if (stopped) text_.resize(safe);
    else if (last) safe = text_.size();
    const std::size_t from = sent_;
    sent_ = std::max(sent_, safe);
    return {safe > from ? std::string_view(text_).substr(from, safe - from) : std::string_view(), stopped};
  }

  // The text not shown yet (held back for a stop string that did not come), marked as shown.
  std::string_view rest() {
    const std::size_t from = std::min(sent_, text_.size());
    sent_ = text_.size();
    return std::string_view(text_).substr(from);
  }

  // All text so far.
  const std::string& text() const { return text_; }

 private:
  DecodeStream<Backend> stream_;
  std::vector<std::string> stop_;
  std::vector<std::int32_t> eos_;
  std::string text_;
  std::size_t sent_ = 0;  // bytes of text_ shown
};

}  // namespace maskgen

#pragma once
// Chat templates: the Jinja template of a model's tokenizer_config.json, rendered as transformers'
// apply_chat_template renders it, for one conversation or a batch, and encoded straight into a
// left-padded batch for generate().
//
//   const auto chat = maskgen::ChatTemplate::from_tokenizer_config(model_dir);
//   const auto batch = maskgen::encode_chats(tokenizer, chat, conversations, {.add_generation_prompt = true});
//
// encode_chats takes a Tokenizer of either backend (load_tokenizer(model_dir) gives one).
// The template runs on maskgen's own Jinja interpreter (chat/*.hpp), with transformers' settings:
// trim_blocks and lstrip_blocks, `tojson` that keeps non-ASCII, raise_exception(), strftime_now(),
// `{% generation %}`, loop controls. Templates are compiled once; rendering is thread-safe.

#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/interpreter.hpp"
#include "detail/files.hpp"
#include "detail/parallel.hpp"
#include "error.hpp"
#include "tokenizer.hpp"

namespace maskgen {

// What apply_chat_template takes besides the messages.
struct ChatOptions {
  bool add_generation_prompt = false;  // end with the assistant's header (transformers' default: false)
  nlohmann::ordered_json tools = nullptr;      // tool (function) schemas, or null
  nlohmann::ordered_json documents = nullptr;  // retrieval documents, or null
  // Further variables the template reads: {"enable_thinking": false}, {"date_string": "..."}.
  // They win over the special tokens on a clash, as in transformers.
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
  // The time strftime_now() formats, in UTC; unset: the current local time, as transformers.
  std::optional<std::chrono::system_clock::time_point> now{};
  jinja::RenderLimits limits{};
};

class ChatTemplate {
 public:
  // Compiles `source`; `special_tokens` are the variables bos_token, eos_token... (only those
  // set). Throws template_error on a syntax error and unsupported_template_error on a construct
  // the interpreter does not implement, each naming the line.
  explicit ChatTemplate(std::string_view source, nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object())
  {
    if (!special_tokens.is_object()) throw argument_error("ChatTemplate: special_tokens must be a JSON object");
    auto compiled = std::make_shared<Compiled>();
    compiled->source = unicode::is_valid_utf8(source) ? std::string(source) : unicode::repaired(source);
    compiled->special_tokens = std::move(special_tokens);
    compiled->body = jinja::Parser(jinja::lex(compiled->source)).parse();
    compiled_ = std::move(compiled);
  }

  // The template in tokenizer_config.json (a file, or the folder that holds it): its
  // `chat_template` is a string, or a list of {"name", "template"} from which `name` is taken
  // ("default" unless asked otherwise). Special tokens come from the same file.
  static ChatTemplate from_tokenizer_config(const std::filesystem::path& path, std::string_view name = "default") {
    const auto file = std::filesystem::is_directory(path) ? path / "tokenizer_config.json" : path;
    const std::string text = detail::read_file(file, "tokenizer config file");
    nlohmann::ordered_json config;
    try {
      config = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw format_error(detail::cat(file, ": not valid JSON (", e.what(), ")"));
    }
    if (!config.is_object()) throw format_error(detail::cat(file, ": expected a JSON object"));
    // transformers 4.43+ may keep the template in chat_template.jinja beside the config.
    std::string source;
    const auto beside = file.parent_path() / "chat_template.jinja";
    std::error_code ec;
    if (!config.contains("chat_template") && std::filesystem::is_regular_file(beside, ec)) {
      source = detail::read_file(beside, "chat template file");
    } else {
      source = pick_template(config, file, name);
    }
    nlohmann::ordered_json special = nlohmann::ordered_json::object();
    for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
      const auto it = config.find(key);
      if (it == config.end() || it->is_null()) continue;
      if (it->is_string()) special[key] = *it;
      else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) special[key] = (*it)["content"];
      else throw format_error(detail::cat(file, ": ", key, " must be a string or {\"content\": string}"));
    }
    return ChatTemplate(source, std::move(special));
  }

  const std::string& source() const { return compiled_->source; }
  const nlohmann::ordered_json& special_tokens() const { return compiled_->special_tokens; }

  // Renders with exactly `variables` (a JSON object: messages, add_generation_prompt, ...) and
  // the globals raise_exception, strftime_now, range, namespace, dict.
  std::string render(const nlohmann::ordered_json& variables, const ChatOptions& options = {}) const {
    if (!variables.is_object()) throw argument_error("ChatTemplate::render: variables must be a JSON object");
    jinja::Interpreter::Globals globals = builtins(options);
    for (const auto& [k, v] : variables.items()) globals[jinja::valid_utf8(k)] = jinja::from_json(v);
    return jinja::Interpreter(compiled_->body, options.limits).render(std::move(globals));
  }

  // transformers' apply_chat_template(messages, tokenize=False, ...): messages (a JSON array of
  // {"role", "content", ...}), tools, documents and add_generation_prompt passed as transformers
  // passes them, then the special tokens, then options.variables.
  std::string apply(const nlohmann::ordered_json& messages, const ChatOptions& options = {}) const {
    check_messages(messages, "messages");
    if (!options.variables.is_object()) throw argument_error("ChatOptions::variables must be a JSON object");
    // Straight into the interpreter's variables: no copy of the conversation as JSON.
    jinja::Interpreter::Globals globals = builtins(options);
    globals["messages"] = jinja::from_json(messages);
    globals["tools"] = jinja::from_json(options.tools);
    globals["documents"] = jinja::from_json(options.documents);
    globals["add_generation_prompt"] = jinja::Value(options.add_generation_prompt);
    for (const auto& [k, v] : compiled_->special_tokens.items()) globals[k] = jinja::from_json(v);
    for (const auto& [k, v] : options.variables.items()) globals[k] = jinja::from_json(v);
    return jinja::Interpreter(compiled_->body, options.limits).render(std::move(globals));
  }

  // One rendering per conversation, on up to `threads` threads (0: every core).
  std::vector<std::string> apply_batch(std::span<const nlohmann::ordered_json> conversations, const ChatOptions& options = {},
                                       int threads = 0) const {
    for (std::size_t i = 0; i < conversations.size(); ++i) check_messages(conversations[i], detail::cat("conversations[", i, "]"));
    std::vector<std::string> out(conversations.size());
    std::vector<std::exception_ptr> errors(conversations.size());
    detail::parallel_for_dynamic(conversations.size(), detail::resolve_thread_count(threads, "apply_batch threads"), 1,
                                 [&](std::size_t b, std::size_t e) {
                                   for (std::size_t i = b; i < e; ++i) {
                                     try {
                                       out[i] = apply(conversations[i], options);
                                     } catch (...) {
                                       errors[i] = std::current_exception();
                                     }
                                   }
                                 });
    for (std::size_t i = 0; i < errors.size(); ++i) {
      if (!errors[i]) continue;
      try {
        std::rethrow_exception(errors[i]);
      } catch (const template_raised_error& e) {
        throw template_raised_error(detail::cat("conversations[", i, "]: ", e.what()));
      } catch (const template_error& e) {
        throw template_error(detail::cat("conversations[", i, "]: ", e.what()));
      }
    }
    return out;
  }

 private:
  struct Compiled {
    std::string source;
    nlohmann::ordered_json special_tokens;
    jinja::Body body;
  };
  std::shared_ptr<const Compiled> compiled_;

  static void check_messages(const nlohmann::ordered_json& messages, const std::string& what) {
    if (!messages.is_array()) throw argument_error(detail::cat(what, " must be a JSON array of messages"));
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (!messages[i].is_object()) throw argument_error(detail::cat(what, "[", i, "] must be a JSON object with a role"));
    }
  }

  static std::string pick_template(const nlohmann::ordered_json& config, const std::filesystem::path& file, std::string_view name) {
    const auto it = config.find("chat_template");
    if (it == config.end() || it->is_null()) throw format_error(detail::cat(file, " has no chat_template"));
    if (it->is_string()) return it->get<std::string>();
    if (!it->is_array()) throw format_error(detail::cat(file, ": chat_template must be a string or a list of {name, template}"));
    std::string names;
    for (const auto& entry : *it) {
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") || !entry["name"].is_string() ||
          !entry["template"].is_string()) {
        throw format_error(detail::cat(file, ": each chat_template entry must be {\"name\": string, \"template\": string}"));
      }
      if (entry["name"].get<std::string>() == name) return entry["template"].get<std::string>();
      names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
    }
    throw argument_error(detail::cat(file, " has no chat template named '", name, "' (it has: ", names, ")"));
  }

  static jinja::Interpreter::Globals builtins(const ChatOptions& options) {
    using jinja::CallArgs;
    using jinja::Value;
    jinja::Interpreter::Globals g;
    g["raise_exception"] = Value::function("raise_exception", [](CallArgs& a) -> Value {
      throw template_raised_error(a.positional.empty() ? std::string() : jinja::to_string(a.positional[0]));
    });
    g["strftime_now"] = Value::function("strftime_now", [now = options.now](CallArgs& a) -> Value {
      if (a.positional.empty() || !a.positional[0].is_string()) throw template_error("strftime_now needs a format string");
      std::tm tm{};
      const std::time_t t = std::chrono::system_clock::to_time_t(now.value_or(std::chrono::system_clock::now()));
      if (now) gmtime_r(&t, &tm);
      else localtime_r(&t, &tm);
      const std::string& format = a.positional[0].as_string();
      if (format.size() > 256) throw template_error("strftime_now: format longer than 256 characters");
      std::string out(format.size() * 16 + 64, '\0');
      out.resize(std::strftime(out.data(), out.size(), format.c_str(), &tm));
      return Value(std::move(out));
    });
    const std::int64_t max_range = options.limits.max_range;
    g["range"] = Value::function("range", [max_range](CallArgs& a) -> Value {
      std::int64_t start = 0, stop = 0, step = 1;
      auto get = [&](std::size_t i) {
        if (!a.positional[i].is_int() && !a.positional[i].is_bool()) throw template_error("range() takes integers");
        return a.positional[i].integer();
      };
      if (a.positional.size() == 1) stop = get(0);
      else if (a.positional.size() == 2 || a.positional.size() == 3) {
        start = get(0);
        stop = get(1);
        if (a.positional.size() == 3) step = get(2);
      } else {
        throw template_error("range expected 1 to 3 arguments");
      }
      if (step == 0) throw template_error("range() arg 3 must not be zero");
      jinja::List items;
      for (std::int64_t i = start; step > 0 ? i < stop : i > stop;) {
        if (static_cast<std::int64_t>(items.size()) >= max_range) {
          throw template_error(detail::cat("range() of more than ", max_range, " items"));
        }
        items.emplace_back(i);
        if (__builtin_add_overflow(i, step, &i)) break;  // past the end: stop is within 64 bits
      }
      return Value::list(std::move(items), false,
                         step == 1 ? detail::cat("range(", start, ", ", stop, ")") : detail::cat("range(", start, ", ", stop, ", ", step, ")"));
    });
    g["namespace"] = Value::function("namespace", [](CallArgs& a) -> Value {
      Value ns = Value::dict({}, true);
      for (const auto& p : a.positional) {
        if (!p.is_dict()) throw template_error("namespace() takes a mapping or keyword arguments");
        for (const auto& [k, v] : p.as_dict().items) ns.as_dict().set(k, v);
      }
      for (auto& [k, v] : a.named) ns.as_dict().set(k, v);
      return ns;
    });
    g["dict"] = Value::function("dict", [](CallArgs& a) -> Value {
      Value d = Value::dict();
      for (const auto& p : a.positional) {
        if (!p.is_dict()) throw template_error("dict() takes a mapping or keyword arguments");
        for (const auto& [k, v] : p.as_dict().items) d.as_dict().set(k, v);
      }
      for (auto& [k, v] : a.named) d.as_dict().set(k, v);
      return d;
    });
    return g;
  }
};

// transformers' apply_chat_template(conversations, tokenize=True, padding=True) in one call: each
// conversation rendered by `chat` (on padding.num_threads threads), the renderings encoded and
// laid out as one padded batch, left-padded by default, ready for generate().
// The template writes the special tokens it wants (Llama 3's <|begin_of_text|>), so BOS and EOS
// are not added unless padding.add_bos / add_eos ask for them, as transformers encodes the
// rendering with add_special_tokens=False.
template <TokenizerBackend Backend>
BatchEncoding encode_chats(const Tokenizer<Backend>& tokenizer, const ChatTemplate& chat,
                           std::span<const nlohmann::ordered_json> conversations, const ChatOptions& options = {},
                           PaddingOptions padding = {}) {
  if (!padding.add_bos) padding.add_bos = false;
  if (!padding.add_eos) padding.add_eos = false;
  const std::vector<std::string> texts = chat.apply_batch(conversations, options, padding.num_threads);
  return tokenizer.encode_batch(texts, padding);
}

}  // namespace maskgen

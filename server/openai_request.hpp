#pragma once
// The OpenAI request bodies the server reads: every field of /v1/completions and
// /v1/chat/completions either works (with OpenAI's semantics) or is refused with a 400 that
// names it; a field OpenAI does not define is refused too, as OpenAI itself does ("Unrecognized
// request argument"). Extensions that vLLM and llama-server read as well: top_k, min_p,
// repetition_penalty, min_tokens, ignore_eos, chat_template_kwargs.

#include <maskgen/maskgen.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace maskgen_server {

using json = nlohmann::ordered_json;

// A request the server refuses: 400 (or `status`) with this message; `param` names the field.
struct BadRequest {
  std::string message;
  std::string param;
  int status = 400;
  std::string type = "invalid_request_error";
};

// What a chat request asks of tool calls.
enum class ToolChoice { None, Auto };

// One parsed /v1/completions or /v1/chat/completions body.
struct ParsedRequest {
  std::vector<std::int32_t> prompt;
  std::string prompt_text;  // the chat template's output (chat), or the prompt as text (echo)
  maskgen::GenerationConfig gen;
  std::vector<std::string> stop;
  int n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
  bool chat = false;
  bool echo = false;  // completions: the prompt's text comes first
  // Log-probabilities: -1 none; chat: 0..20 top alternatives with logprobs: true; completions:
  // logprobs N (0..5) alternatives.
  int logprobs = -1;
  bool tools = false;  // the request lists tools
  ToolChoice tool_choice = ToolChoice::None;
  bool parallel_tool_calls = true;  // false: at most one call per answer
};

namespace detail {

inline const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

inline double number_field(const json& body, const char* name, double fallback, double lo, double hi) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) throw BadRequest{std::string("'") + name + "' must be a number", name};
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) {
    throw BadRequest{std::string("'") + name + "' must be between " + json(lo).dump() + " and " + json(hi).dump() +
                         ", got " + v->dump(),
                     name};
  }
  return x;
}

inline std::int64_t int_field(const json& body, const char* name, std::int64_t fallback, std::int64_t lo, std::int64_t hi) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) throw BadRequest{std::string("'") + name + "' must be an integer", name};
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) {
    throw BadRequest{std::string("'") + name + "' must be at most " + std::to_string(hi) + ", got " + v->dump(), name};
  }
  const std::int64_t x = v->get<std::int64_t>();
  if (x < lo || x > hi) {
    throw BadRequest{std::string("'") + name + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                         ", got " + v->dump(),
                     name};
  }
  return x;
}

inline bool bool_field(const json& body, const char* name, bool fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) throw BadRequest{std::string("'") + name + "' must be true or false", name};
  return v->get<bool>();
}

inline std::string string_field(const json& body, const char* name, const std::string& fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_string()) throw BadRequest{std::string("'") + name + "' must be a string", name};
  return v->get<std::string>();
}

// The fields each endpoint reads (OpenAI's, then the extensions).
inline const std::set<std::string>& known_fields(bool chat) {
  static const std::set<std::string> common = {
      "model", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop", "seed",
      "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "user", "metadata",
      "top_k", "min_p", "repetition_penalty", "min_tokens", "ignore_eos"};
  static const std::set<std::string> completions = [] {
    auto s = common;
    s.insert({"prompt", "echo", "suffix", "best_of"});
    return s;
  }();
  static const std::set<std::string> chat_fields = [] {
    auto s = common;
    s.insert({"messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls",
              "response_format", "chat_template_kwargs", "store", "service_tier", "modalities", "audio", "prediction",
              "reasoning_effort", "web_search_options", "functions", "function_call"});
    return s;
  }();
  return chat ? chat_fields : completions;
}

// A non-negative integer token id inside [0, vocab), or nullopt.
inline std::optional<std::int32_t> token_id(const json& x, std::int64_t vocab) {
  if (!x.is_number_integer()) return std::nullopt;
  if (x.is_number_unsigned() && x.get<std::uint64_t>() >= static_cast<std::uint64_t>(vocab)) return std::nullopt;
  const std::int64_t id = x.get<std::int64_t>();
  if (id < 0 || id >= vocab) return std::nullopt;
  return static_cast<std::int32_t>(id);
}

}  // namespace detail

// Reads request bodies for one model: its tokenizer, its chat template (if any) and its config.
class RequestParser {
 public:
  RequestParser(const maskgen::AutoTokenizer& tokenizer, const maskgen::ChatTemplate* chat, const maskgen::ModelConfig& config)
      : tokenizer_(tokenizer), chat_(chat), config_(config) {}

  // The request a body asks for; throws BadRequest.
  ParsedRequest parse(const std::string& text, bool chat) const {
    json body;
    try {
      body = json::parse(text);
    } catch (const json::exception& e) {
      throw BadRequest{text.empty() ? std::string("the body is empty; a JSON object is expected")
                                    : std::string("the body is not valid JSON: ") + e.what(),
                       ""};
    }
    if (!body.is_object()) throw BadRequest{"the body must be a JSON object", ""};
    for (const auto& [key, value] : body.items()) {
      if (!detail::known_fields(chat).contains(key)) {
        throw BadRequest{"unrecognized request argument '" + key + "'" +
                             (chat ? "" : (key == "messages" ? " (use /v1/chat/completions)" : "")),
                         key};
      }
    }
    ParsedRequest r;
    r.chat = chat;
    refuse_unsupported(body, chat);
    if (const json* model = detail::field(body, "model"); model && !model->is_string()) {
      throw BadRequest{"'model' must be a string", "model"};
    }
    if (const json* user = detail::field(body, "user"); user && !user->is_string()) throw BadRequest{"'user' must be a string", "user"};
    if (const json* meta = detail::field(body, "metadata"); meta && !meta->is_object()) {
      throw BadRequest{"'metadata' must be an object", "metadata"};
    }

    if (chat) {
      read_tools(body, r);
      r.prompt = chat_prompt(body, r);
    } else {
      r.prompt = completion_prompt(body, r);
    }
    const auto context = config_.max_position_embeddings;
    if (r.prompt.empty()) throw BadRequest{"the prompt has no tokens", chat ? "messages" : "prompt"};
    if (static_cast<std::int64_t>(r.prompt.size()) >= context) {
      throw BadRequest{"the prompt has " + std::to_string(r.prompt.size()) + " tokens; the model's context is " +
                           std::to_string(context),
                       chat ? "messages" : "prompt"};
    }
    const std::int64_t room = context - static_cast<std::int64_t>(r.prompt.size());
    const char* max_name = chat && detail::field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    r.gen.max_new_tokens = static_cast<int>(std::min<std::int64_t>(detail::int_field(body, max_name, chat ? room : 16, 0, 1 << 30), room));
    read_sampling(body, r);
    r.n = static_cast<int>(detail::int_field(body, "n", 1, 1, 16));
    r.stream = detail::bool_field(body, "stream", false);
    if (const json* options = detail::field(body, "stream_options")) {
      if (!options->is_object()) throw BadRequest{"'stream_options' must be an object", "stream_options"};
      if (!r.stream) throw BadRequest{"'stream_options' is only allowed with 'stream': true", "stream_options"};
      for (const auto& [key, value] : options->items()) {
        if (key != "include_usage") throw BadRequest{"'stream_options." + key + "' is not supported", "stream_options"};
      }
      r.include_usage = detail::bool_field(*options, "include_usage", false);
    }
    read_stop(body, r);
    read_logprobs(body, r);
    return r;
  }

 private:
  const maskgen::AutoTokenizer& tokenizer_;
  const maskgen::ChatTemplate* chat_;
  const maskgen::ModelConfig& config_;

  // Fields OpenAI defines that this server does not implement: refused unless they ask for the
  // default behaviour.
  static void refuse_unsupported(const json& body, bool chat) {
    auto refuse = [](const std::string& name, const std::string& why) { throw BadRequest{"'" + name + "' " + why, name}; };
    if (!chat) {
      if (const json* suffix = detail::field(body, "suffix"); suffix && !(suffix->is_string() && suffix->get<std::string>().empty())) {
        refuse("suffix", "is not supported (this server has no fill-in-the-middle)");
      }
      if (detail::int_field(body, "best_of", 1, 1, 1 << 20) != 1) refuse("best_of", "must be 1 (submit n requests instead)");
      return;
    }
    if (const json* format = detail::field(body, "response_format")) {
      if (!format->is_object() || !format->contains("type") || !(*format)["type"].is_string()) {
        refuse("response_format", "must be an object with a string 'type'");
      }
      const std::string type = (*format)["type"].get<std::string>();
      if (type == "json_object" || type == "json_schema") {
        refuse("response_format", "of type '" + type + "' is not supported yet (structured output); only 'text' is");
      }
      if (type != "text") refuse("response_format", "has an unknown type '" + type + "'; only 'text' is supported");
    }
    if (detail::bool_field(body, "store", false)) refuse("store", "is not supported (this server keeps no completions)");
    if (const json* modalities = detail::field(body, "modalities");
        modalities && !(modalities->is_array() && modalities->size() == 1 && (*modalities)[0] == "text")) {
      refuse("modalities", "must be [\"text\"]");
    }
    if (const json* tier = detail::field(body, "service_tier"); tier && !(*tier == "auto" || *tier == "default")) {
      refuse("service_tier", "must be \"auto\" or \"default\"");
    }
    for (const char* name : {"audio", "prediction", "web_search_options", "functions", "function_call", "reasoning_effort"}) {
      if (detail::field(body, name)) {
        refuse(name, std::string("is not supported by this server") +
                         (std::string(name).starts_with("function") ? " (use 'tools' and 'tool_choice')" : ""));
      }
    }
  }

  void read_sampling(const json& body, ParsedRequest& r) const {
    const double temperature = detail::number_field(body, "temperature", 1.0, 0.0, 100.0);
    r.gen.do_sample = temperature > 0;
    if (r.gen.do_sample) r.gen.temperature = temperature;
    r.gen.top_p = detail::number_field(body, "top_p", 1.0, 0.0, 1.0);
    if (r.gen.top_p <= 0) throw BadRequest{"'top_p' must be greater than 0", "top_p"};
    r.gen.top_k = static_cast<int>(detail::int_field(body, "top_k", 0, 0, 1 << 30));
    r.gen.min_p = detail::number_field(body, "min_p", 0.0, 0.0, 1.0);
    r.gen.repetition_penalty = detail::number_field(body, "repetition_penalty", 1.0, 1e-6, 100.0);
    r.gen.frequency_penalty = detail::number_field(body, "frequency_penalty", 0.0, -2.0, 2.0);
    r.gen.presence_penalty = detail::number_field(body, "presence_penalty", 0.0, -2.0, 2.0);
    if (const json* bias = detail::field(body, "logit_bias")) {
      if (!bias->is_object()) throw BadRequest{"'logit_bias' must be an object of token id to bias", "logit_bias"};
      if (bias->size() > 300) throw BadRequest{"'logit_bias' holds " + std::to_string(bias->size()) + " entries; at most 300", "logit_bias"};
      for (const auto& [key, value] : bias->items()) {
        std::int64_t id = -1;
        const bool digits = !key.empty() && key.size() <= 10 && std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (digits) id = std::stoll(key);
        if (!digits || id >= config_.vocab_size) {
          throw BadRequest{"'logit_bias' key \"" + key + "\" is not a token id in [0, " + std::to_string(config_.vocab_size) + ")",
                           "logit_bias"};
        }
        if (!value.is_number() || !(value.get<double>() >= -100.0 && value.get<double>() <= 100.0)) {
          throw BadRequest{"'logit_bias' value for token " + key + " must be a number between -100 and 100, got " + value.dump(),
                           "logit_bias"};
        }
        r.gen.logit_bias[static_cast<std::int32_t>(id)] = value.get<double>();
      }
    }
    if (const json* seed = detail::field(body, "seed")) {
      if (!seed->is_number_integer()) throw BadRequest{"'seed' must be an integer", "seed"};
      r.gen.seed = seed->is_number_unsigned() ? seed->get<std::uint64_t>() : static_cast<std::uint64_t>(seed->get<std::int64_t>());
    } else {
      r.gen.seed = std::random_device{}();
    }
    // min_tokens (as vLLM): no end-of-sequence before that many; ignore_eos (as vLLM, llama.cpp):
    // none at all, so every answer is max_tokens long (benchmarks).
    r.gen.min_new_tokens = static_cast<int>(std::min<std::int64_t>(detail::int_field(body, "min_tokens", 0, 0, 1 << 30), r.gen.max_new_tokens));
    if (detail::bool_field(body, "ignore_eos", false)) r.gen.min_new_tokens = r.gen.max_new_tokens;
    r.gen.pad_token_id = 0;  // unused by the engine; set so nothing warns
  }

  static void read_stop(const json& body, ParsedRequest& r) {
    const json* stop = detail::field(body, "stop");
    if (!stop) return;
    if (stop->is_string()) {
      r.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array() && stop->size() <= 4) {
      for (const auto& s : *stop) {
        if (!s.is_string()) throw BadRequest{"'stop' must be a string or a list of up to 4 strings", "stop"};
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      throw BadRequest{"'stop' must be a string or a list of up to 4 strings", "stop"};
    }
    for (const auto& s : r.stop) {
      if (s.empty()) throw BadRequest{"'stop' strings must not be empty", "stop"};
    }
  }

  static void read_logprobs(const json& body, ParsedRequest& r) {
    if (r.chat) {
      const bool on = detail::bool_field(body, "logprobs", false);
      const json* top = detail::field(body, "top_logprobs");
      if (top && !on) throw BadRequest{"'top_logprobs' needs 'logprobs': true", "top_logprobs"};
      r.logprobs = on ? static_cast<int>(detail::int_field(body, "top_logprobs", 0, 0, 20)) : -1;
    } else {
      const json* v = detail::field(body, "logprobs");
      if (v && v->is_boolean()) throw BadRequest{"'logprobs' must be an integer from 0 to 5 on /v1/completions", "logprobs"};
      r.logprobs = v ? static_cast<int>(detail::int_field(body, "logprobs", 0, 0, 5)) : -1;
      if (r.echo && r.logprobs >= 0) {
        throw BadRequest{"'echo' with 'logprobs' is not supported (the prompt's log-probabilities are not computed)", "echo"};
      }
    }
  }

  void read_tools(const json& body, ParsedRequest& r) const {
    const json* tools = detail::field(body, "tools");
    if (tools) {
      if (!tools->is_array()) throw BadRequest{"'tools' must be a list of tools", "tools"};
      for (std::size_t i = 0; i < tools->size(); ++i) {
        const json& t = (*tools)[i];
        const std::string where = "tools[" + std::to_string(i) + "]";
        if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") || !t["function"].is_object() ||
            !t["function"].contains("name") || !t["function"]["name"].is_string()) {
          throw BadRequest{where + " must be {\"type\": \"function\", \"function\": {\"name\": ..., ...}}", "tools"};
        }
      }
      r.tools = !tools->empty();
    }
    r.tool_choice = r.tools ? ToolChoice::Auto : ToolChoice::None;
    if (const json* choice = detail::field(body, "tool_choice")) {
      if (*choice == "none") {
        r.tool_choice = ToolChoice::None;
      } else if (*choice == "auto") {
        if (!r.tools) throw BadRequest{"'tool_choice' \"auto\" needs 'tools'", "tool_choice"};
      } else if (*choice == "required" || choice->is_object()) {
        throw BadRequest{"'tool_choice' " + (choice->is_object() ? std::string("naming a function") : std::string("\"required\"")) +
                             " is not supported yet (it needs structured output); use \"auto\" or \"none\"",
                         "tool_choice"};
      } else {
        throw BadRequest{"'tool_choice' must be \"none\", \"auto\", \"required\" or an object", "tool_choice"};
      }
    }
    r.parallel_tool_calls = detail::bool_field(body, "parallel_tool_calls", true);
  }

  std::vector<std::int32_t> completion_prompt(const json& body, ParsedRequest& r) const {
    r.echo = detail::bool_field(body, "echo", false);
    const json* p = detail::field(body, "prompt");
    if (!p) throw BadRequest{"'prompt' is required", "prompt"};
    std::vector<std::int32_t> ids;
    if (p->is_string() || (p->is_array() && p->size() == 1 && (*p)[0].is_string())) {
      r.prompt_text = p->is_string() ? p->get<std::string>() : (*p)[0].get<std::string>();
      return tokenizer_.encode(r.prompt_text);
    }
    if (p->is_array() && !p->empty() && std::all_of(p->begin(), p->end(), [](const json& x) { return x.is_number_integer(); })) {
      for (const auto& x : *p) {
        const auto id = detail::token_id(x, config_.vocab_size);
        if (!id) {
          throw BadRequest{"'prompt' holds the id " + x.dump() + ", outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")",
                           "prompt"};
        }
        ids.push_back(*id);
      }
      if (r.echo) r.prompt_text = tokenizer_.decode(ids);
      return ids;
    }
    throw BadRequest{"'prompt' must be a string, a list of one string, or a list of token ids", "prompt"};
  }

  // The messages as the template gets them, as vLLM hands them over: content parts joined into
  // one string, null content as "", `developer` as `system`, an assistant's tool calls with their
  // arguments parsed from OpenAI's JSON string into an object (templates print them with tojson).
  static json template_messages(const json& m) {
    json messages = json::array();
    for (std::size_t i = 0; i < m.size(); ++i) {
      const json& msg = m[i];
      const std::string where = "messages[" + std::to_string(i) + "]";
      if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string()) {
        throw BadRequest{where + " must be an object with a string 'role'", "messages"};
      }
      std::string role = msg["role"].get<std::string>();
      static const std::set<std::string> roles = {"system", "developer", "user", "assistant", "tool"};
      if (!roles.contains(role)) {
        throw BadRequest{where + ".role is \"" + role + "\"; expected system, developer, user, assistant or tool", "messages"};
      }
      json copy = msg;
      if (role == "developer") copy["role"] = "system";
      const json* content = detail::field(msg, "content");
      if (content && content->is_array()) {  // content parts: text only
        std::string text;
        for (const auto& part : *content) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
            throw BadRequest{where + ".content: only parts of type 'text' are supported", "messages"};
          }
          text += part["text"].get<std::string>();
        }
        copy["content"] = text;
      } else if (content && !content->is_string()) {
        throw BadRequest{where + ".content must be a string, null or a list of text parts", "messages"};
      } else if (!content && role != "assistant") {
        throw BadRequest{where + ".content is required for a " + role + " message", "messages"};
      } else if (!content) {
        // An assistant message that only calls tools: content null, which templates such as
        // Qwen3's cannot take ('</think>' in None); vLLM hands them "" instead.
        copy["content"] = "";
      }
      if (role == "tool" && !(msg.contains("tool_call_id") && msg["tool_call_id"].is_string())) {
        throw BadRequest{where + ": a tool message needs a string 'tool_call_id'", "messages"};
      }
      if (const json* calls = detail::field(msg, "tool_calls")) {
        if (role != "assistant") throw BadRequest{where + ": only assistant messages have 'tool_calls'", "messages"};
        if (!calls->is_array()) throw BadRequest{where + ".tool_calls must be a list", "messages"};
        json fixed = json::array();
        for (std::size_t k = 0; k < calls->size(); ++k) {
          json call = (*calls)[k];
          const std::string at = where + ".tool_calls[" + std::to_string(k) + "]";
          if (!call.is_object() || !call.contains("function") || !call["function"].is_object() ||
              !call["function"].contains("name") || !call["function"]["name"].is_string()) {
            throw BadRequest{at + " must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}", "messages"};
          }
          json& arguments = call["function"]["arguments"];
          if (arguments.is_string()) {
            try {
              arguments = json::parse(arguments.get<std::string>());
            } catch (const json::exception&) {
              throw BadRequest{at + ".function.arguments is not valid JSON", "messages"};
            }
          }
          if (!arguments.is_object()) throw BadRequest{at + ".function.arguments must be a JSON object (or its text)", "messages"};
          fixed.push_back(std::move(call));
        }
        copy["tool_calls"] = std::move(fixed);
      }
      messages.push_back(std::move(copy));
    }
    return messages;
  }

  std::vector<std::int32_t> chat_prompt(const json& body, ParsedRequest& r) const {
    if (!chat_) throw BadRequest{"this model has no chat template (tokenizer_config.json); use /v1/completions", "messages"};
    const json* m = detail::field(body, "messages");
    if (!m || !m->is_array() || m->empty()) throw BadRequest{"'messages' must be a non-empty list of messages", "messages"};
    const json messages = template_messages(*m);
    maskgen::ChatOptions options{.add_generation_prompt = true};
    if (r.tools) options.tools = body["tools"];
    if (const json* kwargs = detail::field(body, "chat_template_kwargs")) {
      if (!kwargs->is_object()) throw BadRequest{"'chat_template_kwargs' must be an object", "chat_template_kwargs"};
      options.variables = *kwargs;
    }
    try {
      r.prompt_text = chat_->apply(messages, options);
    } catch (const maskgen::template_raised_error& e) {
      throw BadRequest{std::string("the chat template refused the conversation: ") + e.what(), "messages"};
    } catch (const maskgen::template_error& e) {
      throw BadRequest{std::string("the chat template failed: ") + e.what(), "messages"};
    }
    return tokenizer_.encode(r.prompt_text, {.add_bos = false, .add_eos = false});
  }
};

}  // namespace maskgen_server

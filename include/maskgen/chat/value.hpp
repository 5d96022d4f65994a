#pragma once
// The values a chat template computes with, as Python's jinja2 sees them: undefined, None, bool,
// int, float, str, list (or tuple), dict (insertion-ordered, string keys) and callables; how they
// print (str() and repr()), compare, test true, and serialise (`tojson`, as json.dumps).
//
// Lists and dicts are shared and never modified once built (jinja2's sandbox forbids it), except
// a namespace()'s attributes, which `{% set ns.x = ... %}` assigns.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "../error.hpp"
#include "../tokenizers/unicode.hpp"

namespace maskgen {

// A chat template failed: at compile time (syntax, or a construct maskgen does not implement:
// unsupported_template_error) or while rendering (a type error, an undefined value used, a limit).
class template_error : public error {
 public:
  using error::error;
};

// The template called raise_exception(message): what() is the template's own message, exactly.
class template_raised_error : public template_error {
 public:
  using template_error::template_error;
};

// A construct of Jinja that maskgen's interpreter does not implement, named with its line.
class unsupported_template_error : public template_error {
 public:
  using template_error::template_error;
};

namespace jinja {

class Value;
using List = std::vector<Value>;

// Lists and dicts nest at most this deep (so printing, comparing and freeing them stay within the
// stack); a namespace can still hold itself, so the recursive functions below count depth too.
inline constexpr int max_value_depth = 512;

struct ListData {
  List items;
  bool tuple = false;       // prints as (a, b)
  std::string python_repr;  // how it prints when not as a list: range(0, 3)
  int depth = 1;            // 1 + the deepest item's depth
};

struct DictData {
  std::vector<std::pair<std::string, Value>> items;  // insertion order, keys unique
  bool is_namespace = false;                          // namespace(): attributes may be set
  int depth = 1;                                      // at least 1 + each item's depth when set
  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;
};

struct FunctionData {
  std::string name;
  std::function<Value(CallArgs&)> call;
};

struct Undefined {
  std::string hint;  // why it is undefined, for the error when it is used: "'x' is undefined"
};

class Value {
 public:
  // Strings, lists and dicts are shared, so copying a Value never copies its contents.
  using Storage = std::variant<Undefined, std::monostate, bool, std::int64_t, double, std::shared_ptr<const std::string>,
                               std::shared_ptr<const ListData>, std::shared_ptr<DictData>,
                               std::shared_ptr<const FunctionData>>;

  Value() : v_(Undefined{}) {}
  static Value undefined(std::string hint) { return Value(Storage(Undefined{std::move(hint)})); }
  static Value none() { return Value(Storage(std::monostate{})); }
  Value(bool b) : v_(b) {}
  Value(std::int64_t i) : v_(i) {}
  Value(int i) : v_(static_cast<std::int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::make_shared<const std::string>(std::move(s))) {}
  Value(const char* s) : v_(std::make_shared<const std::string>(s)) {}
  static Value list(List items, bool tuple = false, std::string python_repr = {}) {
    int depth = 1;
    for (const auto& item : items) depth = std::max(depth, 1 + item.depth());
    if (depth > max_value_depth) throw template_error(detail::cat("a list nested deeper than ", max_value_depth, " levels"));
    return Value(Storage(std::make_shared<const ListData>(ListData{std::move(items), tuple, std::move(python_repr), depth})));
  }
  static Value dict(std::vector<std::pair<std::string, Value>> items = {}, bool is_namespace = false) {
    auto d = std::make_shared<DictData>();
    for (auto& [k, v] : items) d->set(std::move(k), std::move(v));
    d->is_namespace = is_namespace;
    return Value(Storage(std::move(d)));
  }
  static Value function(std::string name, std::function<Value(CallArgs&)> call) {
    return Value(Storage(std::make_shared<const FunctionData>(FunctionData{std::move(name), std::move(call)})));
  }

  bool is_undefined() const { return v_.index() == 0; }
  bool is_none() const { return v_.index() == 1; }
  bool is_bool() const { return v_.index() == 2; }
  bool is_int() const { return v_.index() == 3; }
  bool is_float() const { return v_.index() == 4; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return v_.index() == 5; }
  bool is_list() const { return v_.index() == 6; }
  bool is_dict() const { return v_.index() == 7; }
  bool is_function() const { return v_.index() == 8; }

  // The accessors throw template_error (not std::bad_variant_access) on a value of another type.
  const std::string& undefined_hint() const { return get<Undefined>("Undefined").hint; }
  bool as_bool() const { return get<bool>("bool"); }
  std::int64_t as_int() const { return get<std::int64_t>("int"); }
  double as_float() const { return get<double>("float"); }
  const std::string& as_string() const { return *get<std::shared_ptr<const std::string>>("str"); }
  const ListData& as_list() const { return *get<std::shared_ptr<const ListData>>("list"); }
  DictData& as_dict() const { return *get<std::shared_ptr<DictData>>("dict"); }
  const std::shared_ptr<DictData>& dict_ptr() const { return get<std::shared_ptr<DictData>>("dict"); }
  const FunctionData& as_function() const { return *get<std::shared_ptr<const FunctionData>>("function"); }
  // A number as double (bool as 0/1).
  double number() const {
    if (!is_number()) throw template_error(detail::cat("expected a number, got ", type_name()));
    return is_float() ? as_float() : static_cast<double>(is_bool() ? as_bool() : as_int());
  }
  // An int or bool as int64.
  std::int64_t integer() const {
    if (!is_int() && !is_bool()) throw template_error(detail::cat("expected an integer, got ", type_name()));
    return is_bool() ? static_cast<std::int64_t>(as_bool()) : as_int();
  }
  // How deeply lists and dicts nest inside this value (0 for anything else).
  int depth() const;

  // Python's name of the type, for error messages.
  std::string_view type_name() const {
    static constexpr std::string_view names[] = {"Undefined", "NoneType", "bool", "int", "float", "str", "list", "dict", "function"};
    if (is_list() && as_list().tuple) return "tuple";
    if (is_dict() && as_dict().is_namespace) return "Namespace";
    return names[v_.index()];
  }

  bool truthy() const;

 private:
  explicit Value(Storage v) : v_(std::move(v)) {}
  template <class T>
  const T& get(const char* expected) const {
    const T* p = std::get_if<T>(&v_);
    if (!p) throw template_error(detail::cat("expected ", expected, ", got ", type_name()));
    return *p;
  }
  Storage v_;
};

inline const Value* DictData::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

inline int Value::depth() const {
  if (is_list()) return as_list().depth;
  if (is_dict()) return as_dict().depth;
  return 0;
}

inline void DictData::set(std::string key, Value value) {
  depth = std::max(depth, 1 + value.depth());
  if (depth > max_value_depth) throw template_error(detail::cat("a dict nested deeper than ", max_value_depth, " levels"));
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

inline bool Value::truthy() const {
  switch (v_.index()) {
    case 0:
    case 1: return false;
    case 2: return as_bool();
    case 3: return as_int() != 0;
    case 4: return as_float() != 0;
    case 5: return !as_string().empty();
    case 6: return !as_list().items.empty();
    case 7: return !as_dict().items.empty();
    default: return true;
  }
}

// ---- UTF-8 code points (Python strings index, slice and measure by code point) ----

// Byte offsets of each code point of s, plus s.size() at the end.
inline std::vector<std::size_t> code_point_offsets(std::string_view s) {
  std::vector<std::size_t> offsets;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) offsets.push_back(i);
  }
  offsets.push_back(s.size());
  return offsets;
}

inline std::size_t code_point_count(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// The code point starting at s[i] (s is valid UTF-8: the template source and every string from
// JSON are repaired on entry; never reads past the end either way).
inline char32_t decode_at(std::string_view s, std::size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  const int extra = b < 0x80 ? 0 : b < 0xE0 ? 1 : b < 0xF0 ? 2 : 3;
  char32_t c = extra == 0 ? b : extra == 1 ? (b & 0x1F) : extra == 2 ? (b & 0x0F) : (b & 0x07);
  ++i;
  for (int k = 0; k < extra && i < s.size(); ++k, ++i) c = (c << 6) | (static_cast<unsigned char>(s[i]) & 0x3F);
  return c;
}

inline void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// ---- printing ----

// Python's repr() of a float: the shortest digits that read back the same, in fixed notation for
// exponents -4 to 15 (with ".0" when integral), else d.ddde+XX.
inline std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // like -1.2345e+06
  const auto e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exponent = std::stoi(sci.substr(e + 1));
  const bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
    } else if (static_cast<std::size_t>(exponent) + 1 >= digits.size()) {
      out += digits + std::string(static_cast<std::size_t>(exponent) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<std::size_t>(exponent) + 1) + "." +
             digits.substr(static_cast<std::size_t>(exponent) + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  out += exponent < 0 ? "e-" : "e+";
  const int a = exponent < 0 ? -exponent : exponent;
  if (a < 10) out += '0';
  out += std::to_string(a);
  return out;
}

inline std::string repr(const Value& v, int depth = 0);

// Python's repr() of a str: single quotes unless it holds ' and no ", escapes for \\, the quote,
// \n, \r, \t and other control characters.
inline std::string string_repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos, has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\') out += "\\\\";
    else if (c == quote) out += std::string("\\") + quote;
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (u < 0x20 || u == 0x7F) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  out += quote;
  return out;
}

// str(): what {{ v }} prints.
inline std::string to_string(const Value& v) {
  if (v.is_undefined()) return "";
  if (v.is_none()) return "None";
  if (v.is_bool()) return v.as_bool() ? "True" : "False";
  if (v.is_int()) return std::to_string(v.as_int());
  if (v.is_float()) return float_repr(v.as_float());
  if (v.is_string()) return v.as_string();
  return repr(v);
}

inline std::string repr(const Value& v, int depth) {
  if (depth > max_value_depth) throw template_error(detail::cat("a value nested deeper than ", max_value_depth, " levels (or holding itself)"));
  if (v.is_string()) return string_repr(v.as_string());
  if (v.is_list()) {
    const auto& l = v.as_list();
    if (!l.python_repr.empty()) return l.python_repr;
    std::string out = l.tuple ? "(" : "[";
    for (std::size_t i = 0; i < l.items.size(); ++i) {
      if (i) out += ", ";
      out += repr(l.items[i], depth + 1);
    }
    if (l.tuple && l.items.size() == 1) out += ",";
    out += l.tuple ? ")" : "]";
    return out;
  }
  if (v.is_dict()) {
    const auto& d = v.as_dict();
    std::string out = d.is_namespace ? "<Namespace {" : "{";
    bool first = true;
    for (const auto& [k, x] : d.items) {
      if (!first) out += ", ";
      first = false;
      out += string_repr(k) + ": " + repr(x, depth + 1);
    }
    out += d.is_namespace ? "}>" : "}";
    return out;
  }
  if (v.is_function()) return "<function " + v.as_function().name + ">";
  return to_string(v);
}

// ---- equality and order, as Python compares ----

inline bool equal(const Value& a, const Value& b, int depth = 0) {
  if (depth > max_value_depth) throw template_error(detail::cat("a value nested deeper than ", max_value_depth, " levels (or holding itself)"));
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.number() == b.number();
    return a.integer() == b.integer();
  }
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if (a.is_none() || b.is_none()) return a.is_none() && b.is_none();
  if (a.is_undefined() || b.is_undefined()) return a.is_undefined() && b.is_undefined();
  if (a.is_list() && b.is_list()) {
    const auto &x = a.as_list().items, &y = b.as_list().items;
    if (x.size() != y.size() || a.as_list().tuple != b.as_list().tuple) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (!equal(x[i], y[i], depth + 1)) return false;
    }
    return true;
  }
  if (a.is_dict() && b.is_dict()) {
    const auto &x = a.as_dict(), &y = b.as_dict();
    if (&x == &y) return true;
    if (x.items.size() != y.items.size()) return false;
    for (const auto& [k, v] : x.items) {
      const Value* w = y.find(k);
      if (!w || !equal(v, *w, depth + 1)) return false;
    }
    return true;
  }
  if (a.is_function() && b.is_function()) return &a.as_function() == &b.as_function();
  return false;
}

// a < b for numbers, strings (by code point) and lists; anything else is Python's TypeError.
inline bool less(const Value& a, const Value& b, std::string_view op = "<") {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.number() < b.number();
    return a.integer() < b.integer();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 bytes order = code point order
  if (a.is_list() && b.is_list()) {
    const auto &x = a.as_list().items, &y = b.as_list().items;
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equal(x[i], y[i])) return less(x[i], y[i], op);
    }
    return x.size() < y.size();
  }
  throw template_error(detail::cat("'", op, "' not supported between instances of '", a.type_name(), "' and '",
                                   b.type_name(), "'"));
}

// ---- JSON ----

// `s` as it is when it is well-formed UTF-8, else with each ill-formed part replaced by U+FFFD (as
// the tokenizers do): Python strings are always valid Unicode, and so are the interpreter's.
inline std::string valid_utf8(const std::string& s) {
  return unicode::is_valid_utf8(s) ? s : unicode::repaired(s);
}

// A JSON value as the template sees it; strings are made valid UTF-8 on the way in.
inline Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<std::int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) {
        throw unsupported_template_error(detail::cat("the integer ", u, " in a template variable (template integers are 64-bit)"));
      }
      return Value(static_cast<std::int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(valid_utf8(j.get_ref<const std::string&>()));
    case nlohmann::ordered_json::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      std::vector<std::pair<std::string, Value>> items;
      items.reserve(j.size());
      for (const auto& [k, e] : j.items()) items.emplace_back(valid_utf8(k), from_json(e));
      return Value::dict(std::move(items));
    }
    default: throw template_error("a template variable holds a JSON value of an unsupported kind (binary)");
  }
}

struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // the indentation of one level; none: one line
  std::string item_separator = ", ", key_separator = ": ";
  bool sort_keys = false;
  std::size_t max_bytes = std::size_t{16} << 20;  // longer output fails (a small value can print as gigabytes)
};

inline void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  static constexpr char hex[] = "0123456789abcdef";
  auto u4 = [&](unsigned v) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out += hex[(v >> shift) & 15];
  };
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    const auto u = static_cast<unsigned char>(c);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\b') out += "\\b";
    else if (c == '\f') out += "\\f";
    else if (u < 0x20 || (ensure_ascii && u == 0x7F)) u4(u);
    else if (u >= 0x80 && ensure_ascii) {
      const char32_t cp = decode_at(s, i);
      if (cp >= 0x10000) {
        u4(0xD800 + ((cp - 0x10000) >> 10));
        u4(0xDC00 + ((cp - 0x10000) & 0x3FF));
      } else {
        u4(static_cast<unsigned>(cp));
      }
      continue;
    } else {
      out += c;
    }
    ++i;
  }
  out += '"';
}

// json.dumps(v, ...) as transformers' tojson calls it.
inline void to_json(std::string& out, const Value& v, const JsonOptions& o, int depth = 0) {
  if (depth > 512) throw template_error("tojson: value nested deeper than 512 levels");
  auto newline = [&](int level) {
    if (!o.indent) return;
    out += '\n';
    for (int i = 0; i < level; ++i) out += *o.indent;
  };
  if (v.is_undefined()) throw template_error("Object of type Undefined is not JSON serializable");
  if (v.is_none()) out += "null";
  else if (v.is_bool()) out += v.as_bool() ? "true" : "false";
  else if (v.is_int()) out += std::to_string(v.as_int());
  else if (v.is_float()) {
    const double d = v.as_float();
    out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : float_repr(d);
  } else if (v.is_string()) json_string(out, v.as_string(), o.ensure_ascii);
  else if (v.is_list()) {
    const auto& items = v.as_list().items;
    if (items.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i) out += o.item_separator;
      newline(depth + 1);
      to_json(out, items[i], o, depth + 1);
      if (out.size() > o.max_bytes) throw template_error(detail::cat("tojson: output of more than ", o.max_bytes, " bytes"));
    }
    newline(depth);
    out += ']';
  } else if (v.is_dict()) {
    std::vector<const std::pair<std::string, Value>*> items;
    for (const auto& item : v.as_dict().items) items.push_back(&item);
    if (o.sort_keys) std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
    if (items.empty()) {
      out += "{}";
      return;
    }
    out += '{';
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i) out += o.item_separator;
      newline(depth + 1);
      json_string(out, items[i]->first, o.ensure_ascii);
      out += o.key_separator;
      to_json(out, items[i]->second, o, depth + 1);
      if (out.size() > o.max_bytes) throw template_error(detail::cat("tojson: output of more than ", o.max_bytes, " bytes"));
    }
    newline(depth);
    out += '}';
  } else {
    throw template_error(detail::cat("Object of type ", v.type_name(), " is not JSON serializable"));
  }
}

}  // namespace jinja
}  // namespace maskgen

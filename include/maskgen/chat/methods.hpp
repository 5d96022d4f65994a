#pragma once
// Methods called on values (`s.strip()`, `d.items()`, `xs.index(x)`): one function each, in a
// table per type from name to function, and the names jinja2's sandbox refuses because they
// would modify a value. The parser checks calls against these names; the interpreter calls
// through call_method. Adding a method is one function and one row.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "context.hpp"
#include "text.hpp"

namespace maskgen::jinja {

// A method called: `self.name(a...)`.
struct MethodCall {
  Context& cx;
  std::string_view name;  // as written: related methods (strip, lstrip) share a function
  const Value& self;
  CallArgs& a;
};

// ---- dict ----

inline Value dict_get(const MethodCall& m) {
  const Value* key = arg(m.a, 0, "key");
  if (!key) throw template_error("get expected at least 1 argument, got 0");
  if (key->is_string()) {
    if (const Value* v = m.self.as_dict().find(key->as_string())) return *v;
  }
  const Value* fallback = arg(m.a, 1, "default");
  return fallback ? *fallback : Value::none();
}
inline Value dict_keys(const MethodCall& m) {
  List out;
  for (const auto& kv : m.self.as_dict().items) out.emplace_back(kv.first);
  return Value::list(std::move(out));
}
inline Value dict_values(const MethodCall& m) {
  List out;
  for (const auto& kv : m.self.as_dict().items) out.push_back(kv.second);
  return Value::list(std::move(out));
}
inline Value dict_items(const MethodCall& m) {
  List out;
  for (const auto& [k, v] : m.self.as_dict().items) out.push_back(Value::list({Value(k), v}, true));
  return Value::list(std::move(out));
}

// ---- list ----

inline const Value& list_operand(const MethodCall& m) {
  const Value* x = arg(m.a, 0, "value");
  if (!x) throw template_error(detail::cat(m.name, " expected 1 argument"));
  return *x;
}
inline Value list_count(const MethodCall& m) {
  const Value& x = list_operand(m);
  std::int64_t count = 0;
  for (const auto& item : m.self.as_list().items) count += equal(item, x);
  return Value(count);
}
inline Value list_index(const MethodCall& m) {
  const Value& x = list_operand(m);
  const auto& items = m.self.as_list().items;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (equal(items[i], x)) return Value(static_cast<std::int64_t>(i));
  }
  throw template_error(detail::cat(repr(x), " is not in list"));
}

// ---- str ----

// startswith and endswith: the argument may be a tuple of strings, any of which matches.
inline Value str_startswith(const MethodCall& m) {
  const std::string& s = m.self.as_string();
  const Value* p = arg(m.a, 0, "prefix");
  if (!p) throw template_error(detail::cat(m.name, " takes at least 1 argument"));
  const List options = p->is_list() ? p->as_list().items : List{*p};
  for (const auto& o : options) {
    if (!o.is_string()) throw template_error(detail::cat(m.name, " first arg must be str or a tuple of str"));
    const auto& x = o.as_string();
    if (m.name == "startswith" ? s.rfind(x, 0) == 0 : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0) {
      return Value(true);
    }
  }
  return Value(false);
}
inline Value str_split(const MethodCall& m) {
  List out;
  for (auto& part : text::split(m.self.as_string(), optional_string(m.a, 0, "sep"), int_arg(m.a, 1, "maxsplit", -1),
                                m.name == "rsplit")) {
    out.emplace_back(std::move(part));
  }
  return Value::list(std::move(out));
}
// Lines end at \n, \r or \r\n (Python also splits at rarer separators, such as \v and U+2028).
inline Value str_splitlines(const MethodCall& m) {
  const std::string& s = m.self.as_string();
  List out;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' || s[i] == '\r') {
      out.emplace_back(s.substr(start, i - start));
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return Value::list(std::move(out));
}
inline Value str_strip(const MethodCall& m) {
  return Value(text::strip(m.self.as_string(), m.name != "rstrip", m.name != "lstrip", optional_string(m.a, 0, "chars")));
}
inline Value str_upper(const MethodCall& m) { return Value(text::to_upper(m.self.as_string())); }
inline Value str_lower(const MethodCall& m) { return Value(text::to_lower(m.self.as_string())); }
inline Value str_title(const MethodCall& m) { return Value(text::title(m.self.as_string())); }
inline Value str_capitalize(const MethodCall& m) { return Value(text::capitalize(m.self.as_string())); }
inline Value str_swapcase(const MethodCall& m) {
  return Value(text::map_chars(m.self.as_string(), [](char32_t c) { return text::is_cased_upper(c) ? text::lower(c) : text::upper(c); }));
}
inline Value str_replace(const MethodCall& m) {
  return Value(text::replace(m.self.as_string(), string_arg(m.a, 0, "old", "replace"), string_arg(m.a, 1, "new", "replace"),
                             int_arg(m.a, 2, "count", -1), m.cx.limits().max_output));
}
// count of "" is one more than the code points, as in Python.
inline Value str_count(const MethodCall& m) {
  const std::string& s = m.self.as_string();
  const std::string sub = string_arg(m.a, 0, "sub", m.name);
  if (sub.empty()) return Value(static_cast<std::int64_t>(code_point_count(s) + 1));
  std::int64_t n = 0;
  for (std::size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
  return Value(n);
}
// find, rfind and index: the position in code points; index fails where find gives -1.
inline Value str_find(const MethodCall& m) {
  const std::string& s = m.self.as_string();
  const std::string sub = string_arg(m.a, 0, "sub", m.name);
  const std::size_t at = m.name == "rfind" ? s.rfind(sub) : s.find(sub);
  if (at == std::string::npos) {
    if (m.name == "index") throw template_error("substring not found");
    return Value(std::int64_t{-1});
  }
  return Value(static_cast<std::int64_t>(code_point_count(std::string_view(s).substr(0, at))));
}
inline Value str_join(const MethodCall& m) {
  const Value* items = arg(m.a, 0, "iterable");
  if (!items) throw template_error("join takes exactly one argument");
  const std::string& s = m.self.as_string();
  const std::size_t max_output = m.cx.limits().max_output;
  std::string out;
  bool first = true;
  for (const auto& item : iterate(*items, 0)) {
    if (!item.is_string()) throw template_error(detail::cat("sequence item: expected str instance, ", item.type_name(), " found"));
    if (!first) out += s;
    first = false;
    out += item.as_string();
    if (out.size() > max_output) throw template_error(detail::cat("join: a result of more than ", max_output, " bytes"));
  }
  return Value(std::move(out));
}

// isdigit, isalpha, isalnum, isspace: true when s is not empty and every code point is one.
template <class Pred>
Value all_chars(const std::string& s, Pred pred) {
  const auto cps = text::decode(s);
  if (cps.empty()) return Value(false);
  for (char32_t c : cps) {
    if (!pred(c)) return Value(false);
  }
  return Value(true);
}
inline Value str_isdigit(const MethodCall& m) { return all_chars(m.self.as_string(), text::is_digit); }
inline Value str_isalpha(const MethodCall& m) { return all_chars(m.self.as_string(), text::is_alpha); }
inline Value str_isalnum(const MethodCall& m) {
  return all_chars(m.self.as_string(), [](char32_t c) { return text::is_alpha(c) || text::is_digit(c); });
}
inline Value str_isspace(const MethodCall& m) { return all_chars(m.self.as_string(), text::is_space); }
// islower and isupper: some cased code point, and none of the other case.
inline Value str_islower(const MethodCall& m) {
  bool any_cased = false;
  for (char32_t c : text::decode(m.self.as_string())) {
    if (m.name == "islower" ? text::is_cased_upper(c) : text::is_cased_lower(c)) return Value(false);
    any_cased = any_cased || text::is_cased_upper(c) || text::is_cased_lower(c);
  }
  return Value(any_cased);
}

// ---- the tables ----

struct Method {
  std::string_view name;
  Value (*call)(const MethodCall&);
};

inline constexpr Method dict_method_table[] = {
    {"get", dict_get},
    {"items", dict_items},
    {"keys", dict_keys},
    {"values", dict_values},
};
inline constexpr Method list_method_table[] = {
    {"count", list_count},
    {"index", list_index},
};
inline constexpr Method string_method_table[] = {
    {"capitalize", str_capitalize},
    {"count", str_count},
    {"endswith", str_startswith},
    {"find", str_find},
    {"index", str_find},
    {"isalnum", str_isalnum},
    {"isalpha", str_isalpha},
    {"isdigit", str_isdigit},
    {"islower", str_islower},
    {"isspace", str_isspace},
    {"isupper", str_islower},
    {"join", str_join},
    {"lower", str_lower},
    {"lstrip", str_strip},
    {"replace", str_replace},
    {"rfind", str_find},
    {"rsplit", str_split},
    {"rstrip", str_strip},
    {"split", str_split},
    {"splitlines", str_splitlines},
    {"startswith", str_startswith},
    {"strip", str_strip},
    {"swapcase", str_swapcase},
    {"title", str_title},
    {"upper", str_upper},
};
// What jinja2's sandbox refuses to call, as it would modify the value.
struct RefusedMethod {
  std::string_view name;
};
inline constexpr RefusedMethod unsafe_dict_methods[] = {
    {"clear"}, {"copy"}, {"fromkeys"}, {"pop"}, {"popitem"}, {"setdefault"}, {"update"}};
inline constexpr RefusedMethod unsafe_list_methods[] = {
    {"append"}, {"clear"}, {"copy"}, {"extend"}, {"insert"}, {"pop"}, {"remove"}, {"reverse"}, {"sort"}};
static_assert(sorted_by_name(dict_method_table) && sorted_by_name(list_method_table) && sorted_by_name(string_method_table));
static_assert(sorted_by_name(unsafe_dict_methods) && sorted_by_name(unsafe_list_methods));

// Of which types a name is a method, as bits: looked up once, when an attribute is parsed.
enum MethodOf : std::uint8_t { string_method = 1, dict_method = 2, list_method = 4, unsafe_dict_method = 8, unsafe_list_method = 16 };
inline std::uint8_t method_kinds(std::string_view name) {
  std::uint8_t bits = 0;
  if (find_by_name(string_method_table, name)) bits |= string_method;
  if (find_by_name(dict_method_table, name)) bits |= dict_method;
  if (find_by_name(list_method_table, name)) bits |= list_method;
  if (find_by_name(unsafe_dict_methods, name)) bits |= unsafe_dict_method;
  if (find_by_name(unsafe_list_methods, name)) bits |= unsafe_list_method;
  return bits;
}

// Whether calling `.name(...)` can mean anything here (loop.cycle and loop.changed included);
// calling any other name is refused at compile time.
inline bool is_known_method(std::string_view name) { return method_kinds(name) != 0 || name == "cycle" || name == "changed"; }

// self.name(a...) on a str, a dict (not a namespace) or a list, whose method `name` is.
inline Value call_method(Context& cx, const Value& self, std::string_view name, CallArgs& a) {
  const Method* m = self.is_dict()   ? find_by_name(dict_method_table, name)
                    : self.is_list() ? find_by_name(list_method_table, name)
                                     : find_by_name(string_method_table, name);
  if (!m) throw template_error(detail::cat("'", self.type_name(), " object' has no attribute '", name, "'"));
  return m->call(MethodCall{cx, name, self, a});
}

// self.name as a value, to be called later.
inline Value bound_method(Context& cx, const Value& self, const std::string& name) {
  return Value::function(name, [cx = &cx, self, name](CallArgs& a) -> Value { return call_method(*cx, self, name, a); });
}

}  // namespace maskgen::jinja

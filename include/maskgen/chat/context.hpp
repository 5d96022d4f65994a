#pragma once
// What the builtins (filters.hpp, tests.hpp, methods.hpp) share with the interpreter: the limits
// of a render; Context, the interface through which a builtin reaches the interpreter running it;
// errors that name their line; readers of call arguments; iteration and `in` as jinja2 does them;
// and the lookup of a name in a table of builtins.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include "value.hpp"

namespace maskgen::jinja {

struct RenderLimits {
  std::size_t max_steps = 1'000'000;
  std::size_t max_output = std::size_t{16} << 20;
  int max_call_depth = 100;
  std::int64_t max_range = 1'000'000;
};

// The interpreter, as a builtin sees it.
class Context {
 public:
  virtual const RenderLimits& limits() const = 0;
  // Charges `n` steps at once: the items a filter, `in` or a repetition works through.
  virtual void charge(std::size_t n, int line) = 0;
  // obj.name and obj[key], as the template's `.` and `[]` read them.
  virtual Value attribute(const Value& obj, const std::string& name, int line) = 0;
  virtual Value subscript(const Value& obj, const Value& key, int line) = 0;
  // a + b, as the template's `+` computes it.
  virtual Value add(const Value& a, const Value& b, int line) = 0;
  // `x is name(args...)`, as select() and reject() run a test given by name.
  virtual bool test(const std::string& name, const Value& x, const List& args, int line) = 0;

 protected:
  ~Context() = default;
};

[[noreturn]] inline void fail(int line, const std::string& what) {
  throw template_error(detail::cat("template line ", line, ": ", what));
}

[[noreturn]] inline void overflow(int line) {
  throw unsupported_template_error(detail::cat("template line ", line, ": an integer beyond 64 bits (Python's are unbounded)"));
}

// ---- call arguments ----

inline const Value* named_arg(const CallArgs& a, std::string_view name) {
  for (auto& [k, v] : a.named) {
    if (k == name) return &v;
  }
  return nullptr;
}
// Argument `index` by position, or `name` by keyword, or nullptr.
inline const Value* arg(const CallArgs& a, std::size_t index, std::string_view name) {
  if (index < a.positional.size()) return &a.positional[index];
  return named_arg(a, name);
}
inline std::string string_arg(const CallArgs& a, std::size_t index, std::string_view name, std::string_view what) {
  const Value* v = arg(a, index, name);
  if (!v || !v->is_string()) throw template_error(detail::cat(what, ": argument '", name, "' must be a string"));
  return v->as_string();
}
inline std::optional<std::string> optional_string(const CallArgs& a, std::size_t index, std::string_view name) {
  const Value* v = arg(a, index, name);
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) throw template_error(detail::cat("argument '", name, "' must be a string or None"));
  return v->as_string();
}
inline std::int64_t int_arg(const CallArgs& a, std::size_t index, std::string_view name, std::int64_t fallback) {
  const Value* v = arg(a, index, name);
  if (!v || v->is_none()) return fallback;
  if (!v->is_int() && !v->is_bool()) throw template_error(detail::cat("argument '", name, "' must be an integer"));
  return v->integer();
}
// Whether the argument is given and true.
inline bool flag_arg(const CallArgs& a, std::size_t index, std::string_view name) {
  const Value* v = arg(a, index, name);
  return v && v->truthy();
}

// ---- iteration and `in` ----

// The items a for loop (or list()) sees: a list's items, a dict's keys, a string's characters;
// nothing for undefined.
inline List iterate(const Value& v, int line) {
  if (v.is_list()) return v.as_list().items;
  if (v.is_undefined()) return {};
  if (v.is_dict()) {
    List keys;
    for (const auto& kv : v.as_dict().items) keys.emplace_back(kv.first);
    return keys;
  }
  if (v.is_string()) {
    List chars;
    const auto& s = v.as_string();
    for (std::size_t i = 0; i < s.size();) {
      const std::size_t b = i;
      decode_at(s, i);
      chars.emplace_back(s.substr(b, i - b));
    }
    return chars;
  }
  fail(line, detail::cat("'", v.type_name(), "' object is not iterable"));
}

// `item in container`: a substring, an equal item, a key; each item compared is a step.
inline bool contains(Context& cx, const Value& container, const Value& item, int line) {
  if (container.is_string()) {
    if (!item.is_string()) fail(line, detail::cat("'in <string>' requires string as left operand, not ", item.type_name()));
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_list()) {
    cx.charge(container.as_list().items.size(), line);
    for (const auto& x : container.as_list().items) {
      if (equal(x, item)) return true;
    }
    return false;
  }
  if (container.is_dict()) return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
  if (container.is_undefined()) return false;
  fail(line, detail::cat("argument of type '", container.type_name(), "' is not iterable"));
}

// ---- tables of builtins ----

// A table is an array of entries with a `name`, sorted by name with no name twice (checked at
// compile time with sorted_by_name), and searched by halving.
template <class Table>
constexpr bool sorted_by_name(const Table& table) {
  for (auto it = std::begin(table); it != std::end(table); ++it) {
    if (it != std::begin(table) && !(std::prev(it)->name < it->name)) return false;
  }
  return true;
}
template <class Table>
constexpr auto find_by_name(const Table& table, std::string_view name) -> decltype(&*std::begin(table)) {
  const auto it = std::lower_bound(std::begin(table), std::end(table), name,
                                   [](const auto& entry, std::string_view n) { return entry.name < n; });
  return it != std::end(table) && it->name == name ? &*it : nullptr;
}

}  // namespace maskgen::jinja

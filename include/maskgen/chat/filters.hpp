#pragma once
// Jinja's filters (`x | tojson`, `xs | map(attribute='name')`...): one function each, and
// filter_table, from name to function, which the parser checks names against and the interpreter
// looks them up in. Adding a filter is one function and one row. Argument names and defaults
// are jinja2's; errors without a line get the filter's line from the interpreter.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "context.hpp"
#include "methods.hpp"
#include "text.hpp"

namespace maskgen::jinja {

// A filter applied: `v | name(a...)`.
struct FilterCall {
  Context& cx;
  std::string_view name;  // as written: aliases (d, default) and related filters share a function
  const Value& v;
  CallArgs& a;
  int line;
};

struct Filter {
  std::string_view name;
  Value (*apply)(const FilterCall&);
};
inline const Filter* find_filter(std::string_view name);

// `attribute` of x as filters read it: "a.b" walks dicts; a number indexes lists.
inline Value attribute_path(Context& cx, const Value& x, const std::string& path, int line) {
  Value cur = x;
  std::size_t start = 0;
  while (true) {
    const auto dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      std::int64_t index = 0;
      if (std::from_chars(part.data(), part.data() + part.size(), index).ec != std::errc()) {
        fail(line, detail::cat("the index ", part, " is beyond 64 bits"));
      }
      cur = cx.subscript(cur, Value(index), line);
    } else {
      cur = cx.subscript(cur, Value(part), line);
    }
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// The `attribute` argument at `index` applied to x, or x itself when there is none.
inline Value key_of(const FilterCall& f, const Value* attribute, const Value& x) {
  return attribute ? attribute_path(f.cx, x, to_string(*attribute), f.line) : x;
}

// An indent width: at most the output limit (a wider one could only fail later, after allocating).
inline std::size_t indent_width(const Context& cx, std::int64_t w, int line) {
  if (w > static_cast<std::int64_t>(cx.limits().max_output)) fail(line, detail::cat("an indent of ", w, " spaces"));
  return static_cast<std::size_t>(std::max<std::int64_t>(0, w));
}

// A stable sort by key(item), strings compared in lower case unless case_sensitive.
template <class Key>
void sort_values(List& items, bool case_sensitive, bool reverse, Key key, int line) {
  std::vector<std::pair<Value, std::size_t>> keyed;
  for (std::size_t i = 0; i < items.size(); ++i) {
    Value k = key(items[i]);
    if (k.is_string() && !case_sensitive) k = Value(text::to_lower(k.as_string()));
    keyed.emplace_back(std::move(k), i);
  }
  try {
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
      return reverse ? less(y.first, x.first) : less(x.first, y.first);
    });
  } catch (const template_error& err) {
    fail(line, err.what());
  }
  List out;
  for (const auto& [k, i] : keyed) out.push_back(items[i]);
  items = std::move(out);
}

// ---- values and strings ----

// default(value, boolean=false): the fallback for an undefined value, or for any false one.
inline Value filter_default(const FilterCall& f) {
  const Value* fallback = arg(f.a, 0, "default_value");
  const bool use = flag_arg(f.a, 1, "boolean") ? !f.v.truthy() : f.v.is_undefined();
  return use ? (fallback ? *fallback : Value("")) : f.v;
}

// tojson(ensure_ascii, indent, separators, sort_keys): json.dumps as transformers calls it; an
// indent makes the item separator "," (no trailing space), as json.dumps does.
inline Value filter_tojson(const FilterCall& f) {
  JsonOptions o;
  o.max_bytes = f.cx.limits().max_output;
  if (const Value* x = arg(f.a, 0, "ensure_ascii")) o.ensure_ascii = x->truthy();
  if (const Value* x = arg(f.a, 1, "indent"); x && !x->is_none()) {
    if (x->is_string()) o.indent = x->as_string();
    else o.indent = std::string(indent_width(f.cx, x->integer(), f.line), ' ');
    o.item_separator = ",";
  }
  if (const Value* x = arg(f.a, 2, "separators"); x && !x->is_none()) {
    if (!x->is_list() || x->as_list().items.size() != 2 || !x->as_list().items[0].is_string() ||
        !x->as_list().items[1].is_string()) {
      fail(f.line, "tojson: separators must be a pair of strings");
    }
    o.item_separator = x->as_list().items[0].as_string();
    o.key_separator = x->as_list().items[1].as_string();
  }
  if (const Value* x = arg(f.a, 3, "sort_keys")) o.sort_keys = x->truthy();
  std::string out;
  to_json(out, f.v, o);
  return Value(std::move(out));
}

inline Value filter_safe(const FilterCall& f) { return f.v; }

inline Value filter_escape(const FilterCall& f) {
  std::string out;
  for (char c : to_string(f.v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value(std::move(out));
}

inline Value filter_string(const FilterCall& f) { return Value(to_string(f.v)); }

// length (and count): code points of a string, items of a list or dict, 0 for undefined.
inline Value filter_length(const FilterCall& f) {
  const Value& v = f.v;
  if (v.is_string()) return Value(static_cast<std::int64_t>(code_point_count(v.as_string())));
  if (v.is_list()) return Value(static_cast<std::int64_t>(v.as_list().items.size()));
  if (v.is_dict()) return Value(static_cast<std::int64_t>(v.as_dict().items.size()));
  if (v.is_undefined()) return Value(std::int64_t{0});
  fail(f.line, detail::cat("object of type '", v.type_name(), "' has no len()"));
}

inline Value filter_trim(const FilterCall& f) {
  return Value(text::strip(to_string(f.v), true, true, optional_string(f.a, 0, "chars")));
}
inline Value filter_lower(const FilterCall& f) { return Value(text::to_lower(to_string(f.v))); }
inline Value filter_upper(const FilterCall& f) { return Value(text::to_upper(to_string(f.v))); }
inline Value filter_capitalize(const FilterCall& f) { return Value(text::capitalize(to_string(f.v))); }

// jinja2's title, not Python's: words start after whitespace, '-', '(', '[', '{', '<'.
inline Value filter_title(const FilterCall& f) {
  std::string out;
  bool start = true;
  const std::string s = to_string(f.v);
  for (std::size_t i = 0; i < s.size();) {
    const char32_t c = decode_at(s, i);
    append_utf8(out, start ? text::upper(c) : text::lower(c));
    start = text::is_space(c) || c == '-' || c == '(' || c == '[' || c == '{' || c == '<';
  }
  return Value(std::move(out));
}

inline Value filter_replace(const FilterCall& f) {
  return Value(text::replace(to_string(f.v), string_arg(f.a, 0, "old", "replace"), string_arg(f.a, 1, "new", "replace"),
                             int_arg(f.a, 2, "count", -1), f.cx.limits().max_output));
}

// indent(width=4, first=false, blank=false): width may be a string, the padding itself.
inline Value filter_indent(const FilterCall& f) {
  const Value* width = arg(f.a, 0, "width");
  const std::string pad =
      width && width->is_string() ? width->as_string() : std::string(indent_width(f.cx, width ? width->integer() : 4, f.line), ' ');
  const bool first = flag_arg(f.a, 1, "first");
  const bool blank = flag_arg(f.a, 2, "blank");
  const std::string s = to_string(f.v);
  std::string out;
  std::size_t start = 0;
  bool is_first = true;
  while (true) {
    const auto nl = s.find('\n', start);
    const std::string line_text = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if ((!is_first || first) && (blank || !line_text.empty())) out += pad;
    out += line_text;
    if (nl == std::string::npos) break;
    out += '\n';
    start = nl + 1;
    is_first = false;
  }
  return Value(std::move(out));
}

// Words are runs of letters, digits and '_' (jinja2's regex \w+).
inline Value filter_wordcount(const FilterCall& f) {
  std::int64_t words = 0;
  bool in_word = false;
  const std::string s = to_string(f.v);
  for (std::size_t i = 0; i < s.size();) {
    const char32_t c = decode_at(s, i);
    const bool word = text::is_alpha(c) || text::is_digit(c) || c == '_';
    if (word && !in_word) ++words;
    in_word = word;
  }
  return Value(words);
}

// truncate(length=255, killwords=false, end='...', leeway=5): strings within length + leeway are
// kept whole; else cut to length less end's length, at the last space unless killwords.
inline Value filter_truncate(const FilterCall& f) {
  const auto cps = text::decode(to_string(f.v));
  const std::int64_t length = int_arg(f.a, 0, "length", 255);
  const bool killwords = flag_arg(f.a, 1, "killwords");
  const std::string end = arg(f.a, 2, "end") ? to_string(*arg(f.a, 2, "end")) : "...";
  const std::int64_t leeway = int_arg(f.a, 3, "leeway", 5);
  std::int64_t limit = 0;
  if (__builtin_add_overflow(length, leeway, &limit) || static_cast<std::int64_t>(cps.size()) <= limit) {
    return Value(text::encode(cps));
  }
  const auto keep = static_cast<std::size_t>(std::max<std::int64_t>(0, length - static_cast<std::int64_t>(code_point_count(end))));
  std::string head = text::encode(cps, 0, keep);
  if (!killwords) {
    const auto sp = head.rfind(' ');
    if (sp != std::string::npos) head.erase(sp);
  }
  return Value(head + end);
}

// ---- sequences ----

// first and last: undefined (not an error) for an empty sequence.
inline Value filter_first(const FilterCall& f) {
  const List items = iterate(f.v, f.line);
  if (items.empty()) return Value::undefined(detail::cat("No ", f.name, " item, sequence was empty."));
  return f.name == "first" ? items.front() : items.back();
}

inline Value filter_list(const FilterCall& f) { return Value::list(iterate(f.v, f.line)); }

inline Value filter_reverse(const FilterCall& f) {
  if (f.v.is_string()) {
    auto cps = text::decode(f.v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value(text::encode(cps));
  }
  List items = iterate(f.v, f.line);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

// join(d='', attribute=none): items printed with str(), unlike str.join.
inline Value filter_join(const FilterCall& f) {
  const std::string sep = arg(f.a, 0, "d") ? to_string(*arg(f.a, 0, "d")) : "";
  const Value* attribute = arg(f.a, 1, "attribute");
  const std::size_t max_output = f.cx.limits().max_output;
  std::string out;
  bool first = true;
  for (const auto& item : iterate(f.v, f.line)) {
    if (!first) out += sep;
    first = false;
    out += to_string(key_of(f, attribute, item));
    if (out.size() > max_output) fail(f.line, detail::cat("join: a result of more than ", max_output, " bytes"));
  }
  return Value(std::move(out));
}

inline Value filter_items(const FilterCall& f) {
  if (f.v.is_undefined()) return Value::list({});
  if (!f.v.is_dict()) fail(f.line, "Can only get item pairs from a mapping.");
  List out;
  for (const auto& [k, x] : f.v.as_dict().items) out.push_back(Value::list({Value(k), x}, true));
  return Value::list(std::move(out));
}

// dictsort(case_sensitive=false, by='key', reverse=false): (key, value) pairs.
inline Value filter_dictsort(const FilterCall& f) {
  if (!f.v.is_dict()) fail(f.line, "dictsort needs a mapping");
  const bool case_sensitive = flag_arg(f.a, 0, "case_sensitive");
  const bool by_value = arg(f.a, 1, "by") && to_string(*arg(f.a, 1, "by")) == "value";
  const bool rev = flag_arg(f.a, 2, "reverse");
  List out;
  for (const auto& [k, x] : f.v.as_dict().items) out.push_back(Value::list({Value(k), x}, true));
  sort_values(out, case_sensitive, rev, [&](const Value& p) { return p.as_list().items[by_value ? 1 : 0]; }, f.line);
  return Value::list(std::move(out));
}

// map(attribute=..., default=...) reads an attribute of each item; map('name', args...) applies
// the filter `name` to each.
inline Value filter_map(const FilterCall& f) {
  List out;
  if (const Value* attribute = named_arg(f.a, "attribute")) {
    const Value* fallback = named_arg(f.a, "default");
    for (const auto& item : iterate(f.v, f.line)) {
      Value x = attribute_path(f.cx, item, to_string(*attribute), f.line);
      out.push_back(x.is_undefined() && fallback ? *fallback : x);
    }
    return Value::list(std::move(out));
  }
  if (f.a.positional.empty() || !f.a.positional[0].is_string()) fail(f.line, "map needs a filter name or attribute=");
  const std::string name = f.a.positional[0].as_string();
  const Filter* inner = find_filter(name);
  if (!inner) fail(f.line, detail::cat("No filter named '", name, "'."));
  CallArgs rest;
  rest.positional.assign(f.a.positional.begin() + 1, f.a.positional.end());
  rest.named = f.a.named;
  for (const auto& item : iterate(f.v, f.line)) {
    CallArgs copy = rest;
    out.push_back(inner->apply(FilterCall{f.cx, name, item, copy, f.line}));
  }
  return Value::list(std::move(out));
}

// select(test, args...) and reject keep the items that pass (fail) the test, or are true
// (false) without one; selectattr(attribute, test, args...) and rejectattr test an attribute.
inline Value filter_select(const FilterCall& f) {
  const bool attr = f.name == "selectattr" || f.name == "rejectattr";
  const bool keep_if = f.name == "select" || f.name == "selectattr";
  const List& given = f.a.positional;
  std::size_t next = 0;
  std::string path;
  if (attr) {
    if (given.empty()) fail(f.line, detail::cat(f.name, " needs an attribute"));
    path = to_string(given[next++]);
  }
  std::optional<std::string> test;
  if (next < given.size()) test = to_string(given[next++]);
  const List extra(given.begin() + static_cast<std::ptrdiff_t>(std::min(next, given.size())), given.end());
  List out;
  for (const auto& item : iterate(f.v, f.line)) {
    const Value x = attr ? attribute_path(f.cx, item, path, f.line) : item;
    const bool pass = test ? f.cx.test(*test, x, extra, f.line) : x.truthy();
    if (pass == keep_if) out.push_back(item);
  }
  return Value::list(std::move(out));
}

// sort(reverse=false, case_sensitive=false, attribute=none): stable, as Python's sorted().
inline Value filter_sort(const FilterCall& f) {
  const bool rev = flag_arg(f.a, 0, "reverse");
  const bool case_sensitive = flag_arg(f.a, 1, "case_sensitive");
  const Value* attribute = arg(f.a, 2, "attribute");
  List items = iterate(f.v, f.line);
  sort_values(items, case_sensitive, rev, [&](const Value& x) { return key_of(f, attribute, x); }, f.line);
  return Value::list(std::move(items));
}

// unique(case_sensitive=false, attribute=none): the first item of each key, in order.
inline Value filter_unique(const FilterCall& f) {
  const bool case_sensitive = flag_arg(f.a, 0, "case_sensitive");
  const Value* attribute = arg(f.a, 1, "attribute");
  List out;
  std::vector<Value> seen;
  for (const auto& x : iterate(f.v, f.line)) {
    Value k = key_of(f, attribute, x);
    if (k.is_string() && !case_sensitive) k = Value(text::to_lower(k.as_string()));
    f.cx.charge(seen.size(), f.line);  // quadratic: each comparison is a step
    bool dup = false;
    for (const auto& s : seen) dup = dup || equal(s, k);
    if (!dup) {
      seen.push_back(k);
      out.push_back(x);
    }
  }
  return Value::list(std::move(out));
}

// min and max(case_sensitive=false, attribute=none): undefined for an empty sequence; of equal
// keys, min gives the first and max the last.
inline Value filter_min(const FilterCall& f) {
  const bool case_sensitive = flag_arg(f.a, 0, "case_sensitive");
  const Value* attribute = arg(f.a, 1, "attribute");
  List items = iterate(f.v, f.line);
  if (items.empty()) return Value::undefined(detail::cat("No aggregated item, sequence was empty."));
  sort_values(items, case_sensitive, false, [&](const Value& x) { return key_of(f, attribute, x); }, f.line);
  return f.name == "min" ? items.front() : items.back();
}

inline Value filter_sum(const FilterCall& f) {
  const Value* attribute = arg(f.a, 0, "attribute");
  Value total = arg(f.a, 1, "start") ? *arg(f.a, 1, "start") : Value(std::int64_t{0});
  for (const auto& x : iterate(f.v, f.line)) total = f.cx.add(total, key_of(f, attribute, x), f.line);
  return total;
}

// batch(linecount, fill_with) makes groups of n, the last padded with fill_with; slice(slices,
// fill_with) makes n groups, the first ones one longer, the shorter ones padded. Either way n items
// or groups are made, so n is bounded as range() is and charged as steps.
inline Value filter_batch(const FilterCall& f) {
  const bool batch = f.name == "batch";
  const std::int64_t n = int_arg(f.a, 0, batch ? "linecount" : "slices", 0);
  if (n <= 0) fail(f.line, detail::cat(f.name, " needs a positive count"));
  const Value* fill = arg(f.a, 1, "fill_with");
  const List items = iterate(f.v, f.line);
  const std::int64_t max_range = f.cx.limits().max_range;
  if ((!batch || fill) && n > max_range) fail(f.line, detail::cat(f.name, "(", n, ") is larger than ", max_range));
  f.cx.charge(!batch || fill ? static_cast<std::size_t>(n) : items.size(), f.line);
  const auto size = static_cast<std::size_t>(n);
  List out;
  if (batch) {
    for (std::size_t i = 0; i < items.size(); i += size) {
      List group(items.begin() + static_cast<std::ptrdiff_t>(i),
                 items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), i + size)));
      while (fill && group.size() < size) group.push_back(*fill);
      out.push_back(Value::list(std::move(group)));
    }
    return Value::list(std::move(out));
  }
  const std::size_t per = items.size() / size, extra = items.size() % size;
  std::size_t offset = 0;
  for (std::size_t s = 0; s < size; ++s) {
    const std::size_t length = per + (s < extra ? 1 : 0);
    List group(items.begin() + static_cast<std::ptrdiff_t>(offset), items.begin() + static_cast<std::ptrdiff_t>(offset + length));
    offset += length;
    if (fill && s >= extra && extra > 0) group.push_back(*fill);
    out.push_back(Value::list(std::move(group)));
  }
  return Value::list(std::move(out));
}

// attr(name): a Python attribute only; of a dict, its methods, never its keys.
inline Value filter_attr(const FilterCall& f) {
  const std::string name = string_arg(f.a, 0, "name", "attr");
  if (f.v.is_dict() && !f.v.as_dict().is_namespace) {
    if (find_by_name(dict_method_table, name)) return bound_method(f.cx, f.v, name);
    return Value::undefined(detail::cat("'dict object' has no attribute '", name, "'"));
  }
  return f.cx.attribute(f.v, name, f.line);
}

// ---- numbers ----

// int(default=0): numbers truncate toward zero; strings are read as Python's int() or float()
// would (surrounding whitespace, a sign); anything else, or out of range, gives the default.
inline Value filter_int(const FilterCall& f) {
  const Value& v = f.v;
  const std::int64_t fallback = int_arg(f.a, 0, "default", 0);
  if (v.is_int() || v.is_bool()) return Value(v.integer());
  if (v.is_float()) {
    if (!std::isfinite(v.as_float()) || std::abs(v.as_float()) >= 9.2e18) return Value(fallback);
    return Value(static_cast<std::int64_t>(v.as_float()));
  }
  if (v.is_string()) {
    const std::string s = text::strip(v.as_string(), true, true, std::nullopt);
    std::int64_t i = 0;
    auto r = std::from_chars(s.data() + (!s.empty() && s[0] == '+'), s.data() + s.size(), i);
    if (r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty()) return Value(i);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(d) && std::abs(d) < 9.2e18) {
      return Value(static_cast<std::int64_t>(d));
    }
  }
  return Value(fallback);
}

inline Value filter_float(const FilterCall& f) {
  const Value* fallback = arg(f.a, 0, "default");
  if (f.v.is_number()) return Value(f.v.number());
  if (f.v.is_string()) {
    const std::string s = text::strip(f.v.as_string(), true, true, std::nullopt);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return Value(d);
  }
  return fallback ? Value(fallback->number()) : Value(0.0);
}

inline Value filter_abs(const FilterCall& f) {
  const Value& v = f.v;
  if (v.is_int() || v.is_bool()) {
    if (v.integer() == std::numeric_limits<std::int64_t>::min()) overflow(f.line);
    return Value(v.integer() < 0 ? -v.integer() : v.integer());
  }
  if (v.is_float()) return Value(std::abs(v.as_float()));
  fail(f.line, detail::cat("bad operand type for abs(): '", v.type_name(), "'"));
}

// round(precision=0, method='common'): an int stays an int under 'common'.
inline Value filter_round(const FilterCall& f) {
  const Value& v = f.v;
  const std::int64_t precision = int_arg(f.a, 0, "precision", 0);
  const std::string method = arg(f.a, 1, "method") ? to_string(*arg(f.a, 1, "method")) : "common";
  if (!v.is_number()) fail(f.line, "round needs a number");
  if (method == "common") {
    if (v.is_int() || v.is_bool()) return Value(v.integer());
    // Python's round(x, n): the exact binary value rounded to n decimals, ties to even,
    // which is what printf's conversion does.
    if (precision < 0 || precision > 300 || !std::isfinite(v.as_float())) fail(f.line, "round: precision out of range");
    char buf[400];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), v.as_float());
    return Value(std::strtod(buf, nullptr));
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  if (method == "floor") return Value(std::floor(v.number() * scale) / scale);
  if (method == "ceil") return Value(std::ceil(v.number() * scale) / scale);
  fail(f.line, "method must be common, ceil or floor");
}

// ---- the table ----

inline constexpr Filter filter_table[] = {
    {"abs", filter_abs},
    {"attr", filter_attr},
    {"batch", filter_batch},
    {"capitalize", filter_capitalize},
    {"count", filter_length},
    {"d", filter_default},
    {"default", filter_default},
    {"dictsort", filter_dictsort},
    {"e", filter_escape},
    {"escape", filter_escape},
    {"first", filter_first},
    {"float", filter_float},
    {"indent", filter_indent},
    {"int", filter_int},
    {"items", filter_items},
    {"join", filter_join},
    {"last", filter_first},
    {"length", filter_length},
    {"list", filter_list},
    {"lower", filter_lower},
    {"map", filter_map},
    {"max", filter_min},
    {"min", filter_min},
    {"reject", filter_select},
    {"rejectattr", filter_select},
    {"replace", filter_replace},
    {"reverse", filter_reverse},
    {"round", filter_round},
    {"safe", filter_safe},
    {"select", filter_select},
    {"selectattr", filter_select},
    {"slice", filter_batch},
    {"sort", filter_sort},
    {"string", filter_string},
    {"sum", filter_sum},
    {"title", filter_title},
    {"tojson", filter_tojson},
    {"trim", filter_trim},
    {"truncate", filter_truncate},
    {"unique", filter_unique},
    {"upper", filter_upper},
    {"wordcount", filter_wordcount},
};
static_assert(sorted_by_name(filter_table));

inline const Filter* find_filter(std::string_view name) { return find_by_name(filter_table, name); }

}  // namespace maskgen::jinja

#pragma once
// Jinja's tests (`x is defined`, `x is divisibleby 3`, `x is sameas y`...): one function each,
// and test_table, from name to function, which the parser checks names against and the
// interpreter looks them up in. Adding a test is one function and one row.

#include <string_view>

#include "context.hpp"
#include "text.hpp"

namespace maskgen::jinja {

// A test applied: `v is name(args...)`.
struct TestCall {
  Context& cx;
  std::string_view name;  // as written: aliases (eq, ==) share a function
  const Value& v;
  const List& args;       // the positional arguments (keywords are evaluated but not read)
  int line;

  const Value& other() const {
    if (args.empty()) fail(line, detail::cat("test '", name, "' needs an argument"));
    return args[0];
  }
};

inline bool test_defined(const TestCall& t) { return !t.v.is_undefined(); }
inline bool test_undefined(const TestCall& t) { return t.v.is_undefined(); }
inline bool test_none(const TestCall& t) { return t.v.is_none(); }
inline bool test_string(const TestCall& t) { return t.v.is_string(); }
inline bool test_mapping(const TestCall& t) { return t.v.is_dict(); }
// Also the test `sequence`: a dict is one too, as jinja2 asks only for len() and [].
inline bool test_iterable(const TestCall& t) { return t.v.is_list() || t.v.is_dict() || t.v.is_string(); }
inline bool test_number(const TestCall& t) { return t.v.is_number(); }
inline bool test_integer(const TestCall& t) { return t.v.is_int(); }
inline bool test_float(const TestCall& t) { return t.v.is_float(); }
inline bool test_boolean(const TestCall& t) { return t.v.is_bool(); }
inline bool test_true(const TestCall& t) { return t.v.is_bool() && t.v.as_bool(); }
inline bool test_false(const TestCall& t) { return t.v.is_bool() && !t.v.as_bool(); }
inline bool test_callable(const TestCall& t) { return t.v.is_function(); }
inline bool test_eq(const TestCall& t) { return equal(t.v, t.other()); }
inline bool test_ne(const TestCall& t) { return !equal(t.v, t.other()); }

// Python's `is`: None and booleans are singletons, lists and dicts compare by identity; numbers
// and strings never count as the same object here.
inline bool test_sameas(const TestCall& t) {
  const Value& v = t.v;
  const Value& o = t.other();
  if (v.is_none() || o.is_none()) return v.is_none() && o.is_none();
  if (v.is_bool() || o.is_bool()) return v.is_bool() && o.is_bool() && v.as_bool() == o.as_bool();
  if (v.is_dict() && o.is_dict()) return &v.as_dict() == &o.as_dict();
  if (v.is_list() && o.is_list()) return &v.as_list() == &o.as_list();
  return false;
}

inline bool test_in(const TestCall& t) { return contains(t.cx, t.other(), t.v, t.line); }

inline std::int64_t integer_operand(const TestCall& t) {
  if (!t.v.is_int() && !t.v.is_bool()) fail(t.line, detail::cat("test '", t.name, "' needs an integer"));
  return t.v.integer();
}
inline bool test_odd(const TestCall& t) { return integer_operand(t) % 2 != 0; }
inline bool test_even(const TestCall& t) { return integer_operand(t) % 2 == 0; }
inline bool test_divisibleby(const TestCall& t) {
  const std::int64_t v = integer_operand(t);
  const Value& d = t.other();
  if (!d.is_int() || d.as_int() == 0) fail(t.line, "divisibleby needs a non-zero integer");
  return d.as_int() == -1 || v % d.as_int() == 0;  // (INT64_MIN % -1 overflows)
}

inline bool test_lower(const TestCall& t) {
  const std::string s = to_string(t.v);
  return text::to_lower(s) == s;
}
inline bool test_upper(const TestCall& t) {
  const std::string s = to_string(t.v);
  return text::to_upper(s) == s;
}

// The order tests, with a TypeError (even a missing argument's) reported at the test's line.
template <class F>
bool ordered(const TestCall& t, F compare) {
  try {
    return compare();
  } catch (const template_error& err) {
    fail(t.line, err.what());
  }
}
inline bool test_gt(const TestCall& t) { return ordered(t, [&] { return less(t.other(), t.v, ">"); }); }
inline bool test_ge(const TestCall& t) { return ordered(t, [&] { return !less(t.v, t.other(), ">="); }); }
inline bool test_lt(const TestCall& t) { return ordered(t, [&] { return less(t.v, t.other(), "<"); }); }
inline bool test_le(const TestCall& t) { return ordered(t, [&] { return !less(t.other(), t.v, "<="); }); }

struct Test {
  std::string_view name;
  bool (*run)(const TestCall&);
};

inline constexpr Test test_table[] = {
    {"!=", test_ne},
    {"<", test_lt},
    {"<=", test_le},
    {"==", test_eq},
    {">", test_gt},
    {">=", test_ge},
    {"boolean", test_boolean},
    {"callable", test_callable},
    {"defined", test_defined},
    {"divisibleby", test_divisibleby},
    {"eq", test_eq},
    {"equalto", test_eq},
    {"even", test_even},
    {"false", test_false},
    {"float", test_float},
    {"ge", test_ge},
    {"greaterthan", test_gt},
    {"gt", test_gt},
    {"in", test_in},
    {"integer", test_integer},
    {"iterable", test_iterable},
    {"le", test_le},
    {"lessthan", test_lt},
    {"lower", test_lower},
    {"lt", test_lt},
    {"mapping", test_mapping},
    {"ne", test_ne},
    {"none", test_none},
    {"number", test_number},
    {"odd", test_odd},
    {"sameas", test_sameas},
    {"sequence", test_iterable},
    {"string", test_string},
    {"true", test_true},
    {"undefined", test_undefined},
    {"upper", test_upper},
};
static_assert(sorted_by_name(test_table));

inline const Test* find_test(std::string_view name) { return find_by_name(test_table, name); }

}  // namespace maskgen::jinja

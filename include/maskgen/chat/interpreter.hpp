#pragma once
// The Jinja interpreter: runs a parsed template against variables, with the semantics of
// jinja2's ImmutableSandboxedEnvironment as transformers configures it: undefined values print
// as nothing and fail when used further, dict keys read as attributes, loops have their own
// scope (a {% set %} inside one does not leak out), namespace() objects carry values out, and
// methods that would modify a value are refused.
//
// Limits keep a hostile template from running away: a million steps (statements and loop turns), 16 MiB of output, calls
// nested 100 deep, range() of at most a million items.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>
#include <ctime>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "parser.hpp"
#include "text.hpp"

namespace maskgen::jinja {

struct RenderLimits {
  std::size_t max_steps = 1'000'000;
  std::size_t max_output = std::size_t{16} << 20;
  int max_call_depth = 100;
  std::int64_t max_range = 1'000'000;
};

class Interpreter {
 public:
  using Globals = std::unordered_map<std::string, Value>;

  Interpreter(const Body& body, RenderLimits limits) : body_(body), limits_(limits) {}

  std::string render(Globals variables) {
    scopes_.clear();
    scopes_.push_back(std::make_shared<Scope>(std::move(variables)));
    std::string out;
    out_ = &out;
    // Namespaces assigned to may hold themselves (ns.self = ns): emptied when rendering ends, so
    // no reference cycle outlives it (nothing but the output string leaves a render).
    struct ClearNamespaces {
      std::vector<std::shared_ptr<DictData>>& touched;
      ~ClearNamespaces() {
        for (auto& d : touched) d->items.clear();
        touched.clear();
      }
    } clear{touched_namespaces_};
    run(body_);
    if (flow_ != Flow::Normal) throw template_error("{% break %} or {% continue %} outside a loop");
    scopes_.clear();
    return out;
  }

 private:
  using Scope = std::unordered_map<std::string, Value>;
  enum class Flow { Normal, Break, Continue };

  const Body& body_;
  RenderLimits limits_;
  std::vector<std::shared_ptr<Scope>> scopes_;
  std::vector<std::shared_ptr<DictData>> touched_namespaces_;
  std::string* out_ = nullptr;
  std::size_t steps_ = 0;
  int call_depth_ = 0;
  int nesting_ = 0;  // eval() and exec() frames on the stack now
  // The parser bounds one template's nesting; macros calling macros multiply it, so the frames
  // of a render are bounded too (well within a thread's stack, sanitizers included).
  static constexpr int max_nesting = 1000;
  struct Nest {
    Interpreter& in;
    Nest(Interpreter& interpreter, int line) : in(interpreter) {
      if (++in.nesting_ > max_nesting) {
        --in.nesting_;
        fail(line, detail::cat("the template nests deeper than ", max_nesting, " levels while rendering (macros calling macros)"));
      }
    }
    ~Nest() { --in.nesting_; }
  };
  Flow flow_ = Flow::Normal;

  [[noreturn]] static void fail(int line, const std::string& what) {
    throw template_error(detail::cat("template line ", line, ": ", what));
  }
  void step(int line) {
    if (++steps_ > limits_.max_steps) fail(line, detail::cat("the template ran more than ", limits_.max_steps, " steps"));
  }
  // Charges `n` steps at once: the items a filter, `in` or a repetition works through.
  void charge(std::size_t n, int line) {
    steps_ += n;
    if (steps_ > limits_.max_steps) fail(line, detail::cat("the template ran more than ", limits_.max_steps, " steps"));
  }
  // A string result, checked against the output limit before anyone copies it further.
  Value bounded(std::string s, int line) const {
    if (s.size() > limits_.max_output) fail(line, detail::cat("a string of more than ", limits_.max_output, " bytes"));
    return Value(std::move(s));
  }
  // An indent width: at most the output limit (a wider one could only fail later, after allocating).
  std::size_t width(std::int64_t w, int line) const {
    if (w > static_cast<std::int64_t>(limits_.max_output)) fail(line, detail::cat("an indent of ", w, " spaces"));
    return static_cast<std::size_t>(std::max<std::int64_t>(0, w));
  }
  void emit(std::string_view s, int line) {
    if (out_->size() + s.size() > limits_.max_output) {
      fail(line, detail::cat("the template's output passed ", limits_.max_output, " bytes"));
    }
    out_->append(s);
  }

  // ---- variables ----
  Value lookup(const std::string& name) const {
    for (auto s = scopes_.rbegin(); s != scopes_.rend(); ++s) {
      const auto it = (*s)->find(name);
      if (it != (*s)->end()) return it->second;
    }
    return Value::undefined("'" + name + "' is undefined");
  }
  void assign(const std::string& name, Value v) { (*scopes_.back())[name] = std::move(v); }

  // Renders `body` into a string of its own.
  std::string capture(const Body& body) {
    std::string inner;
    std::string* outer = out_;
    out_ = &inner;
    try {
      run(body);
    } catch (...) {
      out_ = outer;
      throw;
    }
    out_ = outer;
    if (outer->size() + inner.size() > limits_.max_output) fail(0, "the template's output is too large");
    return inner;
  }

  // ---- statements ----
  void run(const Body& body) {
    for (const auto& s : body) {
      exec(*s);
      if (flow_ != Flow::Normal) return;
    }
  }

  void exec(const Stmt& s) {
    const Nest nest(*this, s.line);
    step(s.line);
    switch (s.kind) {
      case Stmt::Kind::Text: emit(s.text, s.line); return;
      case Stmt::Kind::Output: {
        const Value v = eval(*s.expr);
        emit(to_string(v), s.line);
        return;
      }
      case Stmt::Kind::If:
        run(eval(*s.condition).truthy() ? s.body : s.else_body);
        return;
      case Stmt::Kind::For: exec_for(s); return;
      case Stmt::Kind::Set: {
        Value v = eval(*s.expr);
        if (!s.text.empty()) {  // set ns.attr = v
          const Value target = lookup(s.targets[0]);
          if (!target.is_dict() || !target.as_dict().is_namespace) {
            fail(s.line, "cannot assign attribute on non-namespace object");
          }
          touched_namespaces_.push_back(target.dict_ptr());
          target.as_dict().set(s.text, std::move(v));
        } else if (s.targets.size() == 1) {
          assign(s.targets[0], std::move(v));
        } else {
          unpack(s.targets, v, s.line);
        }
        return;
      }
      case Stmt::Kind::SetBlock: assign(s.targets[0], Value(capture(s.body))); return;
      case Stmt::Kind::Macro: assign(s.text, make_macro(s)); return;
      case Stmt::Kind::FilterBlock: {
        std::string inner = capture(s.body);
        scopes_.push_back(std::make_shared<Scope>());
        (*scopes_.back())[""] = Value(std::move(inner));
        Value v;
        try {
          v = eval(*s.filter);
        } catch (...) {
          scopes_.pop_back();
          throw;
        }
        scopes_.pop_back();
        emit(to_string(v), s.line);
        return;
      }
      case Stmt::Kind::Block: run(s.body); return;
      case Stmt::Kind::Break: flow_ = Flow::Break; return;
      case Stmt::Kind::Continue: flow_ = Flow::Continue; return;
    }
  }

  void unpack(const std::vector<std::string>& targets, const Value& v, int line) {
    const List items = iterate(v, line);
    if (items.size() != targets.size()) {
      fail(line, detail::cat(items.size() < targets.size() ? "not enough" : "too many", " values to unpack (expected ",
                             targets.size(), ", got ", items.size(), ")"));
    }
    for (std::size_t i = 0; i < targets.size(); ++i) assign(targets[i], items[i]);
  }

  // The items a for loop (or list()) sees: a list's items, a dict's keys, a string's characters;
  // nothing for undefined.
  static List iterate(const Value& v, int line) {
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

  void exec_for(const Stmt& s) {
    List all = iterate(eval(*s.expr), s.line);
    List items;
    if (s.condition) {  // `for x in xs if cond`: filtered before the loop (loop.length counts what is left)
      for (const auto& item : all) {
        scopes_.push_back(std::make_shared<Scope>());
        try {
          bind_targets(s, item);
          const bool keep = eval(*s.condition).truthy();
          scopes_.pop_back();
          if (keep) items.push_back(item);
        } catch (...) {
          scopes_.pop_back();
          throw;
        }
      }
    } else {
      items = std::move(all);
    }
    if (items.empty()) {
      run(s.else_body);
      return;
    }
    const auto n = static_cast<std::int64_t>(items.size());
    Value loop = Value::dict({}, false);
    DictData& l = loop.as_dict();
    auto position = std::make_shared<std::int64_t>(0);  // what loop.cycle() reads
    auto last_changed = std::make_shared<std::optional<Value>>();
    l.set("length", Value(n));
    l.set("depth", Value(1));
    l.set("depth0", Value(0));
    l.set("cycle", Value::function("loop.cycle", [position](CallArgs& a) -> Value {
            if (a.positional.empty()) throw template_error("no items for cycling given");
            return a.positional[static_cast<std::size_t>(*position) % a.positional.size()];
          }));
    l.set("changed", Value::function("loop.changed", [last_changed](CallArgs& a) -> Value {
            const Value now = Value::list(a.positional);
            if (*last_changed && equal(**last_changed, now)) return Value(false);
            *last_changed = now;
            return Value(true);
          }));
    // The per-turn attributes, in a fixed order after the ones above, updated in place.
    const std::size_t turn = l.items.size();
    for (const char* key : {"index0", "index", "revindex", "revindex0", "first", "last", "previtem", "nextitem"}) l.set(key, Value());
    // One scope for the body, emptied at each turn (nothing keeps a loop body's scope: macros
    // capture only the template's top scope).
    scopes_.push_back(std::make_shared<Scope>());
    // At the end: the body's scope goes, and loop.changed() forgets its last value (which may hold
    // `loop` itself: a reference cycle that would outlive the render).
    struct EndLoop {
      std::vector<std::shared_ptr<Scope>>& scopes;
      std::shared_ptr<std::optional<Value>>& last_changed;
      ~EndLoop() {
        scopes.pop_back();
        last_changed->reset();
      }
    } end{scopes_, last_changed};
    for (std::int64_t i = 0; i < n; ++i) {
      step(s.line);
      *position = i;
      auto* at = &l.items[turn];
      at[0].second = Value(i);
      at[1].second = Value(i + 1);
      at[2].second = Value(n - i);
      at[3].second = Value(n - i - 1);
      at[4].second = Value(i == 0);
      at[5].second = Value(i == n - 1);
      at[6].second = i > 0 ? items[static_cast<std::size_t>(i - 1)] : Value::undefined("there is no previous item");
      at[7].second = i + 1 < n ? items[static_cast<std::size_t>(i + 1)] : Value::undefined("there is no next item");
      scopes_.back()->clear();
      assign("loop", loop);
      bind_targets(s, items[static_cast<std::size_t>(i)]);
      run(s.body);
      if (flow_ == Flow::Break) {
        flow_ = Flow::Normal;
        break;
      }
      flow_ = Flow::Normal;
    }
  }

  void bind_targets(const Stmt& s, const Value& item) {
    if (s.targets.size() == 1) {
      assign(s.targets[0], item);
    } else {
      unpack(s.targets, item, s.line);
    }
  }

  Value make_macro(const Stmt& s) {
    const Stmt* macro = &s;
    std::weak_ptr<Scope> weak_root = scopes_.front();  // weak: the macro is stored in that scope
    return Value::function(s.text, [this, macro, weak_root](CallArgs& args) -> Value {
      const auto root = weak_root.lock();
      if (!root) throw template_error("a macro called after its template finished");
      if (args.positional.size() > macro->params.size()) {
        throw template_error(detail::cat("macro '", macro->text, "' takes not more than ", macro->params.size(),
                                         " argument(s)"));
      }
      auto scope = std::make_shared<Scope>();
      for (std::size_t p = 0; p < macro->params.size(); ++p) {
        const auto& [name, fallback] = macro->params[p];
        if (p < args.positional.size()) {
          (*scope)[name] = args.positional[p];
          continue;
        }
        bool found = false;
        for (auto& [k, v] : args.named) {
          if (k == name) {
            (*scope)[name] = v;
            found = true;
          }
        }
        if (!found) (*scope)[name] = Value::undefined(detail::cat("'", name, "' is undefined"));
      }
      for (auto& [k, v] : args.named) {
        bool known = false;
        for (const auto& param : macro->params) known = known || param.first == k;
        if (!known) throw template_error(detail::cat("macro '", macro->text, "' takes no keyword argument '", k, "'"));
      }
      if (++call_depth_ > limits_.max_call_depth) {
        --call_depth_;
        throw template_error(detail::cat("macro calls nested deeper than ", limits_.max_call_depth));
      }
      auto saved = std::move(scopes_);
      scopes_ = {root, scope};
      // Defaults are evaluated in the macro's scope, after the arguments before them.
      for (std::size_t p = args.positional.size(); p < macro->params.size(); ++p) {
        const auto& [name, fallback] = macro->params[p];
        if (fallback && (*scope)[name].is_undefined()) {
          bool named = false;
          for (auto& kv : args.named) named = named || kv.first == name;
          if (!named) (*scope)[name] = eval(*fallback);
        }
      }
      std::string result;
      try {
        result = capture(macro->body);
      } catch (...) {
        scopes_ = std::move(saved);
        --call_depth_;
        throw;
      }
      scopes_ = std::move(saved);
      --call_depth_;
      return Value(std::move(result));
    });
  }

  // ---- expressions ----
  Value eval(const Expr& e) {
    const Nest nest(*this, e.line);
    switch (e.kind) {
      case Expr::Kind::Literal: return e.literal;
      case Expr::Kind::Name: return lookup(e.name);
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        List items;
        for (const auto& i : e.items) items.push_back(eval(*i));
        return Value::list(std::move(items), e.kind == Expr::Kind::Tuple);
      }
      case Expr::Kind::Dict: {
        std::vector<std::pair<std::string, Value>> items;
        for (std::size_t i = 0; i + 1 < e.items.size(); i += 2) {
          const Value k = eval(*e.items[i]);
          if (!k.is_string()) {
            throw unsupported_template_error(detail::cat("template line ", e.line, ": a dict key that is not a string (",
                                                         k.type_name(), ") is not supported by maskgen's template interpreter"));
          }
          items.emplace_back(k.as_string(), eval(*e.items[i + 1]));
        }
        return Value::dict(std::move(items));
      }
      case Expr::Kind::Attribute: return attribute(eval(*e.a), e.name, e.line, e.method_of);
      case Expr::Kind::Subscript: {
        const Value obj = eval(*e.a);
        if (e.b->kind == Expr::Kind::Slice) return slice(obj, *e.b, e.line);
        return subscript(obj, eval(*e.b), e.line);
      }
      case Expr::Kind::Slice: fail(e.line, "a slice outside a subscript");
      case Expr::Kind::Call: return call(e);
      case Expr::Kind::Filter: return apply_filter(e);
      case Expr::Kind::Test: {
        const bool r = apply_test(e);
        return Value(e.negated ? !r : r);
      }
      case Expr::Kind::Unary: {
        const Value v = eval(*e.a);
        if (v.is_int() || v.is_bool()) {
          if (e.name == "+") return Value(v.integer());
          if (v.integer() == std::numeric_limits<std::int64_t>::min()) overflow(e.line);
          return Value(-v.integer());
        }
        if (v.is_float()) return Value(e.name == "-" ? -v.as_float() : v.as_float());
        fail(e.line, detail::cat("bad operand type for unary ", e.name, ": '", v.type_name(), "'"));
      }
      case Expr::Kind::Binary: return binary(e.name, eval(*e.a), eval(*e.b), e.line);
      case Expr::Kind::Compare: {
        Value left = eval(*e.items[0]);
        for (std::size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.items[i + 1]);
          if (!compare(e.ops[i], left, right, e.line)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::And: {
        Value a = eval(*e.a);
        return a.truthy() ? eval(*e.b) : a;
      }
      case Expr::Kind::Or: {
        Value a = eval(*e.a);
        return a.truthy() ? a : eval(*e.b);
      }
      case Expr::Kind::Not: return Value(!eval(*e.a).truthy());
      case Expr::Kind::Conditional: {
        if (eval(*e.c).truthy()) return eval(*e.a);
        return e.b ? eval(*e.b) : Value::undefined("the inline if's condition was false and it has no else");
      }
    }
    fail(e.line, "unknown expression");
  }

  [[noreturn]] static void overflow(int line) {
    throw unsupported_template_error(detail::cat("template line ", line, ": an integer beyond 64 bits (Python's are unbounded)"));
  }

  // Using an undefined value in a way that needs its value fails with its hint.
  [[noreturn]] static void undefined_used(const Value& v, int line) { fail(line, v.undefined_hint()); }

  Value attribute(const Value& obj, const std::string& name, int line) { return attribute(obj, name, line, method_kinds(name)); }
  // `method_of`: method_kinds(name), computed by the parser for attributes written in the template.
  Value attribute(const Value& obj, const std::string& name, int line, std::uint8_t method_of) {
    if (obj.is_undefined()) undefined_used(obj, line);
    const bool dunder = name.rfind("__", 0) == 0;
    if (dunder) {
      return Value::undefined(detail::cat("access to attribute '", name, "' of '", obj.type_name(), "' object is unsafe."));
    }
    if (obj.is_dict()) {
      const DictData& d = obj.as_dict();
      if (!d.is_namespace) {
        if (method_of & dict_method) return bound_method(obj, name);
        if (method_of & unsafe_dict_method) {
          return Value::undefined(detail::cat("access to attribute '", name, "' of 'dict' object is unsafe."));
        }
      }
      if (const Value* v = d.find(name)) return *v;
      return Value::undefined(std::string(d.is_namespace ? "'Namespace'" : "'dict object'") + " has no attribute '" + name + "'");
    }
    if (obj.is_string()) {
      if (method_of & string_method) return bound_method(obj, name);
      return Value::undefined(detail::cat("'str object' has no attribute '", name, "'"));
    }
    if (obj.is_list()) {
      if (method_of & list_method) return bound_method(obj, name);
      if (method_of & unsafe_list_method) {
        return Value::undefined(detail::cat("access to attribute '", name, "' of '", obj.type_name(), "' object is unsafe."));
      }
      return Value::undefined(detail::cat("'", obj.type_name(), " object' has no attribute '", name, "'"));
    }
    if (obj.is_none()) return Value::undefined(detail::cat("'None' has no attribute '", name, "'"));
    return Value::undefined(detail::cat("'", obj.type_name(), " object' has no attribute '", name, "'"));
  }

  static std::int64_t python_index(std::int64_t i, std::size_t size) { return i < 0 ? i + static_cast<std::int64_t>(size) : i; }

  Value subscript(const Value& obj, const Value& key, int line) {
    if (obj.is_undefined()) undefined_used(obj, line);
    if (obj.is_dict()) {
      if (key.is_string()) {
        if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
        return Value::undefined("'dict object' has no attribute '" + key.as_string() + "'");
      }
      return Value::undefined(detail::cat("'dict object' has no attribute ", repr(key)));
    }
    if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
      if (obj.is_list()) {
        const auto& items = obj.as_list().items;
        const auto i = python_index(key.integer(), items.size());
        if (i < 0 || i >= static_cast<std::int64_t>(items.size())) {
          return Value::undefined(detail::cat(obj.type_name(), " object has no element ", key.integer()));
        }
        return items[static_cast<std::size_t>(i)];
      }
      const auto offsets = code_point_offsets(obj.as_string());
      const auto i = python_index(key.integer(), offsets.size() - 1);
      if (i < 0 || i >= static_cast<std::int64_t>(offsets.size() - 1)) {
        return Value::undefined(detail::cat("str object has no element ", key.integer()));
      }
      const auto u = static_cast<std::size_t>(i);
      return Value(obj.as_string().substr(offsets[u], offsets[u + 1] - offsets[u]));
    }
    if (key.is_string()) return attribute(obj, key.as_string(), line);
    return Value::undefined(detail::cat("'", obj.type_name(), " object' has no element ", repr(key)));
  }

  Value slice(const Value& obj, const Expr& sl, int line) {
    if (obj.is_undefined()) undefined_used(obj, line);
    std::optional<std::int64_t> parts[3];
    for (int k = 0; k < 3; ++k) {
      if (!sl.items[static_cast<std::size_t>(k)]) continue;
      const Value v = eval(*sl.items[static_cast<std::size_t>(k)]);
      if (v.is_none()) continue;
      if (!v.is_int() && !v.is_bool()) fail(line, "slice indices must be integers or None");
      parts[k] = v.integer();
    }
    const std::int64_t stepv = parts[2].value_or(1);
    if (stepv == 0) fail(line, "slice step cannot be zero");
    auto pick = [&](std::size_t size) {  // Python's slice.indices()
      const auto n = static_cast<std::int64_t>(size);
      auto clamp = [&](std::optional<std::int64_t> v, std::int64_t fallback, bool is_stop) {
        if (!v) return fallback;
        std::int64_t x = *v < 0 ? *v + n : *v;
        if (stepv > 0) return std::clamp<std::int64_t>(x, 0, n);
        (void)is_stop;
        return std::clamp<std::int64_t>(x, -1, n - 1);
      };
      const std::int64_t start = clamp(parts[0], stepv > 0 ? 0 : n - 1, false);
      const std::int64_t stop = clamp(parts[1], stepv > 0 ? n : -1, true);
      std::vector<std::size_t> idx;
      for (std::int64_t i = start; stepv > 0 ? i < stop : i > stop;) {
        idx.push_back(static_cast<std::size_t>(i));
        if (__builtin_add_overflow(i, stepv, &i)) break;  // past either end of the sequence
      }
      return idx;
    };
    if (obj.is_list()) {
      const auto& items = obj.as_list().items;
      List out;
      for (auto i : pick(items.size())) out.push_back(items[i]);
      return Value::list(std::move(out), obj.as_list().tuple);
    }
    if (obj.is_string()) {
      const auto cps = text::decode(obj.as_string());
      std::string out;
      for (auto i : pick(cps.size())) append_utf8(out, cps[i]);
      return Value(std::move(out));
    }
    fail(line, detail::cat("'", obj.type_name(), "' object is not subscriptable"));
  }

  bool contains(const Value& container, const Value& item, int line) {
    if (container.is_string()) {
      if (!item.is_string()) fail(line, detail::cat("'in <string>' requires string as left operand, not ", item.type_name()));
      return container.as_string().find(item.as_string()) != std::string::npos;
    }
    if (container.is_list()) {
      charge(container.as_list().items.size(), line);
      for (const auto& x : container.as_list().items) {
        if (equal(x, item)) return true;
      }
      return false;
    }
    if (container.is_dict()) return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    if (container.is_undefined()) return false;
    fail(line, detail::cat("argument of type '", container.type_name(), "' is not iterable"));
  }

  bool compare(std::string_view op, const Value& a, const Value& b, int line) {
    if (op == "==") return equal(a, b);
    if (op == "!=") return !equal(a, b);
    if (op == "in") return contains(b, a, line);
    if (op == "not in") return !contains(b, a, line);
    try {
      if (op == "<") return less(a, b, op);
      if (op == ">") return less(b, a, op);
      if (op == "<=") return !less(b, a, op);
      return !less(a, b, op);
    } catch (const template_error& err) {
      fail(line, err.what());
    }
  }

  Value binary(std::string_view op, const Value& a, const Value& b, int line) {
    if (op == "~") return bounded(to_string(a) + to_string(b), line);
    if (a.is_undefined()) undefined_used(a, line);
    if (b.is_undefined()) undefined_used(b, line);
    const bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
    const bool numbers = a.is_number() && b.is_number();
    auto type_error = [&]() -> Value {
      fail(line, detail::cat("unsupported operand type(s) for ", op, ": '", a.type_name(), "' and '", b.type_name(), "'"));
    };
    if (op == "+") {
      if (ints) {
        std::int64_t r;
        if (__builtin_add_overflow(a.integer(), b.integer(), &r)) overflow(line);
        return Value(r);
      }
      if (numbers) return Value(a.number() + b.number());
      if (a.is_string() && b.is_string()) return bounded(a.as_string() + b.as_string(), line);
      if (a.is_list() && b.is_list()) {
        charge(a.as_list().items.size() + b.as_list().items.size(), line);
        List items = a.as_list().items;
        items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
        return Value::list(std::move(items), a.as_list().tuple);
      }
      if (a.is_string()) fail(line, detail::cat("can only concatenate str (not \"", b.type_name(), "\") to str"));
      return type_error();
    }
    if (op == "-") {
      if (ints) {
        std::int64_t r;
        if (__builtin_sub_overflow(a.integer(), b.integer(), &r)) overflow(line);
        return Value(r);
      }
      if (numbers) return Value(a.number() - b.number());
      return type_error();
    }
    if (op == "*") {
      if (ints) {
        std::int64_t r;
        if (__builtin_mul_overflow(a.integer(), b.integer(), &r)) overflow(line);
        return Value(r);
      }
      if (numbers) return Value(a.number() * b.number());
      const Value* seq = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
      const Value* count = seq == &a ? &b : &a;
      if (seq && (count->is_int() || count->is_bool())) {
        std::int64_t n = std::max<std::int64_t>(0, count->integer());
        const std::size_t unit = seq->is_string() ? seq->as_string().size() : seq->as_list().items.size();
        if (unit == 0) n = 0;  // repeating nothing is nothing, however often
        if (unit != 0 && static_cast<std::size_t>(n) > limits_.max_output / unit) fail(line, "repetition too large");
        if (seq->is_string()) {
          std::string out;
          for (std::int64_t i = 0; i < n; ++i) out += seq->as_string();
          return Value(std::move(out));
        }
        charge(static_cast<std::size_t>(n) * unit, line);
        List out;
        for (std::int64_t i = 0; i < n; ++i) out.insert(out.end(), seq->as_list().items.begin(), seq->as_list().items.end());
        return Value::list(std::move(out));
      }
      return type_error();
    }
    if (op == "/") {
      if (!numbers) return type_error();
      if (b.number() == 0) fail(line, "division by zero");
      return Value(a.number() / b.number());
    }
    if (op == "//" || op == "%") {
      if (!numbers) return type_error();
      if (ints) {
        const std::int64_t x = a.integer(), y = b.integer();
        if (y == 0) fail(line, op == "//" ? "integer division or modulo by zero" : "integer modulo by zero");
        if (x == std::numeric_limits<std::int64_t>::min() && y == -1) overflow(line);
        std::int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          --q;
          r += y;
        }
        return Value(op == "//" ? q : r);
      }
      const double x = a.number(), y = b.number();
      if (y == 0) fail(line, "float division by zero");
      double r = std::fmod(x, y);
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
      return Value(op == "%" ? r : std::floor(x / y));
    }
    if (op == "**") {
      if (!numbers) return type_error();
      if (ints && b.integer() >= 0) {
        std::int64_t r = 1, base = a.integer();
        for (std::int64_t e = b.integer(); e > 0; e >>= 1) {  // by squaring: 63 rounds at most
          if ((e & 1) && __builtin_mul_overflow(r, base, &r)) overflow(line);
          if (e > 1 && __builtin_mul_overflow(base, base, &base)) overflow(line);
        }
        return Value(r);
      }
      if (a.number() == 0 && b.number() < 0) fail(line, "0.0 cannot be raised to a negative power");
      return Value(std::pow(a.number(), b.number()));
    }
    fail(line, detail::cat("unknown operator ", op));
  }

  // ---- calls ----
  CallArgs evaluate_args(const Expr& e) {
    CallArgs args;
    for (const auto& p : e.items) args.positional.push_back(eval(*p));
    for (const auto& [k, v] : e.named) args.named.emplace_back(k, eval(*v));
    return args;
  }

  Value call(const Expr& e) {
    if (e.a->kind == Expr::Kind::Attribute && e.a->method_of != 0) {
      // obj.method(...) on a str, dict or list: called straight, without a bound function.
      const Value obj = eval(*e.a->a);
      const std::uint8_t m = e.a->method_of;
      if ((obj.is_string() && (m & string_method)) || (obj.is_dict() && !obj.as_dict().is_namespace && (m & dict_method)) ||
          (obj.is_list() && (m & list_method))) {
        CallArgs args = evaluate_args(e);
        return method(obj, e.a->name, args);
      }
      return call_value(e, attribute(obj, e.a->name, e.a->line, m));
    }
    return call_value(e, eval(*e.a));
  }

  Value call_value(const Expr& e, const Value& callee) {
    CallArgs args = evaluate_args(e);
    if (callee.is_function()) return callee.as_function().call(args);
    if (callee.is_undefined()) {
      if (e.a->kind == Expr::Kind::Name) fail(e.line, detail::cat("'", e.a->name, "' is undefined"));
      fail(e.line, callee.undefined_hint());
    }
    fail(e.line, detail::cat("'", callee.type_name(), "' object is not callable"));
  }

  static const Value* named_arg(CallArgs& a, std::string_view name) {
    for (auto& [k, v] : a.named) {
      if (k == name) return &v;
    }
    return nullptr;
  }
  // Argument `index` by position, or `name` by keyword, or nullptr.
  static const Value* arg(CallArgs& a, std::size_t index, std::string_view name) {
    if (index < a.positional.size()) return &a.positional[index];
    return named_arg(a, name);
  }
  static std::string string_arg(CallArgs& a, std::size_t index, std::string_view name, std::string_view what) {
    const Value* v = arg(a, index, name);
    if (!v || !v->is_string()) throw template_error(detail::cat(what, ": argument '", name, "' must be a string"));
    return v->as_string();
  }
  static std::optional<std::string> optional_string(CallArgs& a, std::size_t index, std::string_view name) {
    const Value* v = arg(a, index, name);
    if (!v || v->is_none()) return std::nullopt;
    if (!v->is_string()) throw template_error(detail::cat("argument '", name, "' must be a string or None"));
    return v->as_string();
  }
  static std::int64_t int_arg(CallArgs& a, std::size_t index, std::string_view name, std::int64_t fallback) {
    const Value* v = arg(a, index, name);
    if (!v || v->is_none()) return fallback;
    if (!v->is_int() && !v->is_bool()) throw template_error(detail::cat("argument '", name, "' must be an integer"));
    return v->integer();
  }

  Value bound_method(const Value& self, const std::string& name) {
    return Value::function(name, [this, self, name](CallArgs& a) -> Value { return method(self, name, a); });
  }

  Value method(const Value& self, std::string_view name, CallArgs& a) {
    if (self.is_dict()) {
      const DictData& d = self.as_dict();
      if (name == "get") {
        const Value* key = arg(a, 0, "key");
        if (!key) throw template_error("get expected at least 1 argument, got 0");
        if (key->is_string()) {
          if (const Value* v = d.find(key->as_string())) return *v;
        }
        const Value* fallback = arg(a, 1, "default");
        return fallback ? *fallback : Value::none();
      }
      List out;
      for (const auto& [k, v] : d.items) {
        if (name == "keys") out.emplace_back(k);
        else if (name == "values") out.push_back(v);
        else out.push_back(Value::list({Value(k), v}, true));
      }
      return Value::list(std::move(out));
    }
    if (self.is_list()) {
      const auto& items = self.as_list().items;
      const Value* x = arg(a, 0, "value");
      if (!x) throw template_error(detail::cat(name, " expected 1 argument"));
      std::int64_t count = 0;
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (!equal(items[i], *x)) continue;
        if (name == "index") return Value(static_cast<std::int64_t>(i));
        ++count;
      }
      if (name == "index") throw template_error(detail::cat(repr(*x), " is not in list"));
      return Value(count);
    }
    const std::string& s = self.as_string();
    if (name == "startswith" || name == "endswith") {
      const Value* p = arg(a, 0, "prefix");
      if (!p) throw template_error(detail::cat(name, " takes at least 1 argument"));
      List options = p->is_list() ? p->as_list().items : List{*p};
      for (const auto& o : options) {
        if (!o.is_string()) throw template_error(detail::cat(name, " first arg must be str or a tuple of str"));
        const auto& x = o.as_string();
        if (name == "startswith" ? s.rfind(x, 0) == 0 : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0) {
          return Value(true);
        }
      }
      return Value(false);
    }
    if (name == "split" || name == "rsplit") {
      List out;
      for (auto& part : text::split(s, optional_string(a, 0, "sep"), int_arg(a, 1, "maxsplit", -1), name == "rsplit")) {
        out.emplace_back(std::move(part));
      }
      return Value::list(std::move(out));
    }
    if (name == "splitlines") {
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
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      return Value(text::strip(s, name != "rstrip", name != "lstrip", optional_string(a, 0, "chars")));
    }
    if (name == "upper") return Value(text::to_upper(s));
    if (name == "lower") return Value(text::to_lower(s));
    if (name == "title") return Value(text::title(s));
    if (name == "capitalize") return Value(text::capitalize(s));
    if (name == "swapcase") {
      return Value(text::map_chars(s, [](char32_t c) { return text::is_cased_upper(c) ? text::lower(c) : text::upper(c); }));
    }
    if (name == "replace") {
      return Value(text::replace(s, string_arg(a, 0, "old", "replace"), string_arg(a, 1, "new", "replace"),
                                 int_arg(a, 2, "count", -1), limits_.max_output));
    }
    if (name == "count" || name == "find" || name == "rfind" || name == "index") {
      const std::string sub = string_arg(a, 0, "sub", name);
      if (name == "count") {
        if (sub.empty()) return Value(static_cast<std::int64_t>(code_point_count(s) + 1));
        std::int64_t n = 0;
        for (std::size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
        return Value(n);
      }
      const std::size_t at = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (at == std::string::npos) {
        if (name == "index") throw template_error("substring not found");
        return Value(std::int64_t{-1});
      }
      return Value(static_cast<std::int64_t>(code_point_count(std::string_view(s).substr(0, at))));
    }
    if (name == "join") {
      const Value* items = arg(a, 0, "iterable");
      if (!items) throw template_error("join takes exactly one argument");
      std::string out;
      bool first = true;
      for (const auto& item : iterate(*items, 0)) {
        if (!item.is_string()) {
          throw template_error(detail::cat("sequence item: expected str instance, ", item.type_name(), " found"));
        }
        if (!first) out += s;
        first = false;
        out += item.as_string();
        if (out.size() > limits_.max_output) throw template_error(detail::cat("join: a result of more than ", limits_.max_output, " bytes"));
      }
      return Value(std::move(out));
    }
    const auto cps = text::decode(s);
    auto all = [&](auto pred) {
      if (cps.empty()) return Value(false);
      for (char32_t c : cps) {
        if (!pred(c)) return Value(false);
      }
      return Value(true);
    };
    if (name == "isdigit") return all(text::is_digit);
    if (name == "isalpha") return all(text::is_alpha);
    if (name == "isalnum") return all([](char32_t c) { return text::is_alpha(c) || text::is_digit(c); });
    if (name == "isspace") return all(text::is_space);
    if (name == "islower" || name == "isupper") {
      bool any_cased = false;
      for (char32_t c : cps) {
        if (name == "islower" ? text::is_cased_upper(c) : text::is_cased_lower(c)) return Value(false);
        any_cased = any_cased || text::is_cased_upper(c) || text::is_cased_lower(c);
      }
      return Value(any_cased);
    }
    throw template_error(detail::cat("'str object' has no attribute '", name, "'"));
  }

  // ---- tests ----
  bool apply_test(const Expr& e) {
    const Value v = eval(*e.a);
    CallArgs args = evaluate_args(e);
    const std::string_view t = e.name;
    auto other = [&]() -> const Value& {
      if (args.positional.empty()) fail(e.line, detail::cat("test '", t, "' needs an argument"));
      return args.positional[0];
    };
    if (t == "defined") return !v.is_undefined();
    if (t == "undefined") return v.is_undefined();
    if (t == "none") return v.is_none();
    if (t == "string") return v.is_string();
    if (t == "mapping") return v.is_dict();
    if (t == "iterable") return v.is_list() || v.is_dict() || v.is_string();
    if (t == "sequence") return v.is_list() || v.is_dict() || v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.is_int();
    if (t == "float") return v.is_float();
    if (t == "boolean") return v.is_bool();
    if (t == "true") return v.is_bool() && v.as_bool();
    if (t == "false") return v.is_bool() && !v.as_bool();
    if (t == "callable") return v.is_function();
    if (t == "equalto" || t == "eq" || t == "==") return equal(v, other());
    if (t == "ne" || t == "!=") return !equal(v, other());
    if (t == "sameas") {
      const Value& o = other();
      if (v.is_none() || o.is_none()) return v.is_none() && o.is_none();
      if (v.is_bool() || o.is_bool()) return v.is_bool() && o.is_bool() && v.as_bool() == o.as_bool();
      if (v.is_dict() && o.is_dict()) return &v.as_dict() == &o.as_dict();
      if (v.is_list() && o.is_list()) return &v.as_list() == &o.as_list();
      return false;
    }
    if (t == "in") return contains(other(), v, e.line);
    if (t == "odd" || t == "even" || t == "divisibleby") {
      if (!v.is_int() && !v.is_bool()) fail(e.line, detail::cat("test '", t, "' needs an integer"));
      if (t == "divisibleby") {
        const Value& d = other();
        if (!d.is_int() || d.as_int() == 0) fail(e.line, "divisibleby needs a non-zero integer");
        return d.as_int() == -1 || v.integer() % d.as_int() == 0;  // (INT64_MIN % -1 overflows)
      }
      return (v.integer() % 2 != 0) == (t == "odd");
    }
    if (t == "lower" || t == "upper") {
      const std::string s = to_string(v);
      return (t == "lower" ? text::to_lower(s) : text::to_upper(s)) == s;
    }
    try {
      if (t == "gt" || t == "greaterthan" || t == ">") return less(other(), v, ">");
      if (t == "ge" || t == ">=") return !less(v, other(), ">=");
      if (t == "lt" || t == "lessthan" || t == "<") return less(v, other(), "<");
      if (t == "le" || t == "<=") return !less(other(), v, "<=");
    } catch (const template_error& err) {
      fail(e.line, err.what());
    }
    fail(e.line, detail::cat("No test named '", t, "'."));
  }

  // ---- filters ----
  Value apply_filter(const Expr& e) {
    const Value v = eval(*e.a);
    CallArgs args = evaluate_args(e);
    try {
      return filter(e.name, v, args, e.line);
    } catch (const template_raised_error&) {
      throw;
    } catch (const unsupported_template_error&) {
      throw;
    } catch (const template_error& err) {
      const std::string what = err.what();
      if (what.rfind("template line ", 0) == 0) throw;
      fail(e.line, what);
    }
  }

  // `attribute` of x as filters read it: "a.b" walks dicts; a number indexes lists.
  Value attribute_path(const Value& x, const std::string& path, int line) {
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
        cur = subscript(cur, Value(index), line);
      } else {
        cur = subscript(cur, Value(part), line);
      }
      if (dot == std::string::npos) return cur;
      start = dot + 1;
    }
  }

  bool run_test(const std::string& name, const Value& x, const List& extra, int line) {
    Expr test(Expr::Kind::Test, line);
    test.name = name;
    if (!known_tests().count(name)) fail(line, detail::cat("No test named '", name, "'."));
    auto lit = std::make_unique<Expr>(Expr::Kind::Literal, line);
    lit->literal = x;
    test.a = std::move(lit);
    for (const auto& v : extra) {
      auto p = std::make_unique<Expr>(Expr::Kind::Literal, line);
      p->literal = v;
      test.items.push_back(std::move(p));
    }
    return apply_test(test);
  }

  static std::string sort_key_string(const Value& v, bool case_sensitive) {
    return case_sensitive ? v.as_string() : text::to_lower(v.as_string());
  }

  Value filter(std::string_view f, const Value& v, CallArgs& a, int line) {
    if (f == "default" || f == "d") {
      const Value* fallback = arg(a, 0, "default_value");
      const Value* boolean = arg(a, 1, "boolean");
      const bool use = boolean && boolean->truthy() ? !v.truthy() : v.is_undefined();
      return use ? (fallback ? *fallback : Value("")) : v;
    }
    if (f == "tojson") {
      JsonOptions o;
      o.max_bytes = limits_.max_output;
      if (const Value* x = arg(a, 0, "ensure_ascii")) o.ensure_ascii = x->truthy();
      if (const Value* x = arg(a, 1, "indent"); x && !x->is_none()) {
        if (x->is_string()) o.indent = x->as_string();
        else o.indent = std::string(width(x->integer(), line), ' ');
        o.item_separator = ",";
      }
      if (const Value* x = arg(a, 2, "separators"); x && !x->is_none()) {
        if (!x->is_list() || x->as_list().items.size() != 2 || !x->as_list().items[0].is_string() ||
            !x->as_list().items[1].is_string()) {
          fail(line, "tojson: separators must be a pair of strings");
        }
        o.item_separator = x->as_list().items[0].as_string();
        o.key_separator = x->as_list().items[1].as_string();
      }
      if (const Value* x = arg(a, 3, "sort_keys")) o.sort_keys = x->truthy();
      std::string out;
      to_json(out, v, o);
      return Value(std::move(out));
    }
    if (f == "safe") return v;
    if (f == "e" || f == "escape") {
      std::string out;
      for (char c : to_string(v)) {
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
    if (f == "string") return Value(to_string(v));
    if (f == "length" || f == "count") {
      if (v.is_string()) return Value(static_cast<std::int64_t>(code_point_count(v.as_string())));
      if (v.is_list()) return Value(static_cast<std::int64_t>(v.as_list().items.size()));
      if (v.is_dict()) return Value(static_cast<std::int64_t>(v.as_dict().items.size()));
      if (v.is_undefined()) return Value(std::int64_t{0});
      fail(line, detail::cat("object of type '", v.type_name(), "' has no len()"));
    }
    if (f == "trim") return Value(text::strip(to_string(v), true, true, optional_string(a, 0, "chars")));
    if (f == "lower") return Value(text::to_lower(to_string(v)));
    if (f == "upper") return Value(text::to_upper(to_string(v)));
    if (f == "capitalize") return Value(text::capitalize(to_string(v)));
    if (f == "title") {  // jinja2's title: words start after whitespace, '-', '(', '[', '{', '<'
      std::string out;
      bool start = true;
      const std::string s = to_string(v);
      for (std::size_t i = 0; i < s.size();) {
        const char32_t c = decode_at(s, i);
        append_utf8(out, start ? text::upper(c) : text::lower(c));
        start = text::is_space(c) || c == '-' || c == '(' || c == '[' || c == '{' || c == '<';
      }
      return Value(std::move(out));
    }
    if (f == "replace") {
      return Value(text::replace(to_string(v), string_arg(a, 0, "old", "replace"), string_arg(a, 1, "new", "replace"),
                                 int_arg(a, 2, "count", -1), limits_.max_output));
    }
    if (f == "first" || f == "last") {
      const List items = iterate(v, line);
      if (items.empty()) return Value::undefined(detail::cat("No ", f, " item, sequence was empty."));
      return f == "first" ? items.front() : items.back();
    }
    if (f == "list") return Value::list(iterate(v, line));
    if (f == "reverse") {
      if (v.is_string()) {
        auto cps = text::decode(v.as_string());
        std::reverse(cps.begin(), cps.end());
        return Value(text::encode(cps));
      }
      List items = iterate(v, line);
      std::reverse(items.begin(), items.end());
      return Value::list(std::move(items));
    }
    if (f == "join") {
      const std::string sep = arg(a, 0, "d") ? to_string(*arg(a, 0, "d")) : "";
      const Value* attribute = arg(a, 1, "attribute");
      std::string out;
      bool first = true;
      for (const auto& item : iterate(v, line)) {
        if (!first) out += sep;
        first = false;
        out += to_string(attribute ? attribute_path(item, to_string(*attribute), line) : item);
        if (out.size() > limits_.max_output) fail(line, detail::cat("join: a result of more than ", limits_.max_output, " bytes"));
      }
      return Value(std::move(out));
    }
    if (f == "items") {
      if (v.is_undefined()) return Value::list({});
      if (!v.is_dict()) fail(line, "Can only get item pairs from a mapping.");
      List out;
      for (const auto& [k, x] : v.as_dict().items) out.push_back(Value::list({Value(k), x}, true));
      return Value::list(std::move(out));
    }
    if (f == "dictsort") {
      if (!v.is_dict()) fail(line, "dictsort needs a mapping");
      const bool case_sensitive = arg(a, 0, "case_sensitive") && arg(a, 0, "case_sensitive")->truthy();
      const bool by_value = arg(a, 1, "by") && to_string(*arg(a, 1, "by")) == "value";
      const bool rev = arg(a, 2, "reverse") && arg(a, 2, "reverse")->truthy();
      List out;
      for (const auto& [k, x] : v.as_dict().items) out.push_back(Value::list({Value(k), x}, true));
      sort_values(out, case_sensitive, rev, [&](const Value& p) { return p.as_list().items[by_value ? 1 : 0]; }, line);
      return Value::list(std::move(out));
    }
    if (f == "map") {
      List out;
      const Value* attribute = named_arg(a, "attribute");
      if (attribute) {
        const Value* fallback = named_arg(a, "default");
        for (const auto& item : iterate(v, line)) {
          Value x = attribute_path(item, to_string(*attribute), line);
          out.push_back(x.is_undefined() && fallback ? *fallback : x);
        }
        return Value::list(std::move(out));
      }
      if (a.positional.empty() || !a.positional[0].is_string()) fail(line, "map needs a filter name or attribute=");
      const std::string name = a.positional[0].as_string();
      if (!known_filters().count(name)) fail(line, detail::cat("No filter named '", name, "'."));
      CallArgs rest;
      rest.positional.assign(a.positional.begin() + 1, a.positional.end());
      rest.named = a.named;
      for (const auto& item : iterate(v, line)) {
        CallArgs copy = rest;
        out.push_back(filter(name, item, copy, line));
      }
      return Value::list(std::move(out));
    }
    if (f == "select" || f == "reject" || f == "selectattr" || f == "rejectattr") {
      const bool attr = f == "selectattr" || f == "rejectattr";
      const bool keep_if = f == "select" || f == "selectattr";
      std::size_t next = 0;
      std::string path;
      if (attr) {
        if (a.positional.empty()) fail(line, detail::cat(f, " needs an attribute"));
        path = to_string(a.positional[next++]);
      }
      std::optional<std::string> test;
      if (next < a.positional.size()) test = to_string(a.positional[next++]);
      const List extra(a.positional.begin() + static_cast<std::ptrdiff_t>(std::min(next, a.positional.size())), a.positional.end());
      List out;
      for (const auto& item : iterate(v, line)) {
        const Value x = attr ? attribute_path(item, path, line) : item;
        const bool pass = test ? run_test(*test, x, extra, line) : x.truthy();
        if (pass == keep_if) out.push_back(item);
      }
      return Value::list(std::move(out));
    }
    if (f == "int") {
      const std::int64_t fallback = int_arg(a, 0, "default", 0);
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
    if (f == "float") {
      const Value* fallback = arg(a, 0, "default");
      if (v.is_number()) return Value(v.number());
      if (v.is_string()) {
        const std::string s = text::strip(v.as_string(), true, true, std::nullopt);
        char* end = nullptr;
        const double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end == s.c_str() + s.size()) return Value(d);
      }
      return fallback ? Value(fallback->number()) : Value(0.0);
    }
    if (f == "abs") {
      if (v.is_int() || v.is_bool()) {
        if (v.integer() == std::numeric_limits<std::int64_t>::min()) overflow(line);
        return Value(v.integer() < 0 ? -v.integer() : v.integer());
      }
      if (v.is_float()) return Value(std::abs(v.as_float()));
      fail(line, detail::cat("bad operand type for abs(): '", v.type_name(), "'"));
    }
    if (f == "round") {
      const std::int64_t precision = int_arg(a, 0, "precision", 0);
      const std::string method = arg(a, 1, "method") ? to_string(*arg(a, 1, "method")) : "common";
      if (!v.is_number()) fail(line, "round needs a number");
      if (method == "common") {
        if (v.is_int() || v.is_bool()) return Value(v.integer());
        // Python's round(x, n): the exact binary value rounded to n decimals, ties to even,
        // which is what printf's conversion does.
        if (precision < 0 || precision > 300 || !std::isfinite(v.as_float())) fail(line, "round: precision out of range");
        char buf[400];
        std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), v.as_float());
        return Value(std::strtod(buf, nullptr));
      }
      const double scale = std::pow(10.0, static_cast<double>(precision));
      if (method == "floor") return Value(std::floor(v.number() * scale) / scale);
      if (method == "ceil") return Value(std::ceil(v.number() * scale) / scale);
      fail(line, "method must be common, ceil or floor");
    }
    if (f == "sort" || f == "unique" || f == "min" || f == "max") {
      const bool rev = f == "sort" && arg(a, 0, "reverse") && arg(a, 0, "reverse")->truthy();
      const std::size_t cs_index = f == "sort" ? 1 : 0;
      const bool case_sensitive = arg(a, cs_index, "case_sensitive") && arg(a, cs_index, "case_sensitive")->truthy();
      const Value* attribute = arg(a, cs_index + 1, "attribute");
      auto key = [&](const Value& x) { return attribute ? attribute_path(x, to_string(*attribute), line) : x; };
      List items = iterate(v, line);
      if (f == "unique") {
        List out;
        std::vector<Value> seen;
        for (const auto& x : items) {
          Value k = key(x);
          if (k.is_string() && !case_sensitive) k = Value(text::to_lower(k.as_string()));
          charge(seen.size(), line);  // quadratic: each comparison is a step
          bool dup = false;
          for (const auto& s : seen) dup = dup || equal(s, k);
          if (!dup) {
            seen.push_back(k);
            out.push_back(x);
          }
        }
        return Value::list(std::move(out));
      }
      if (f == "min" || f == "max") {
        if (items.empty()) return Value::undefined(detail::cat("No aggregated item, sequence was empty."));
        sort_values(items, case_sensitive, false, key, line);
        return f == "min" ? items.front() : items.back();
      }
      sort_values(items, case_sensitive, rev, key, line);
      return Value::list(std::move(items));
    }
    if (f == "sum") {
      const Value* attribute = arg(a, 0, "attribute");
      Value total = arg(a, 1, "start") ? *arg(a, 1, "start") : Value(std::int64_t{0});
      for (const auto& x : iterate(v, line)) {
        total = binary("+", total, attribute ? attribute_path(x, to_string(*attribute), line) : x, line);
      }
      return total;
    }
    if (f == "indent") {
      const Value* width = arg(a, 0, "width");
      const std::string pad = width && width->is_string() ? width->as_string() : std::string(this->width(width ? width->integer() : 4, line), ' ');
      const bool first = arg(a, 1, "first") && arg(a, 1, "first")->truthy();
      const bool blank = arg(a, 2, "blank") && arg(a, 2, "blank")->truthy();
      const std::string s = to_string(v);
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
    if (f == "wordcount") {
      std::int64_t words = 0;
      bool in_word = false;
      const std::string s = to_string(v);
      for (std::size_t i = 0; i < s.size();) {
        const char32_t c = decode_at(s, i);
        const bool word = text::is_alpha(c) || text::is_digit(c) || c == '_';
        if (word && !in_word) ++words;
        in_word = word;
      }
      return Value(words);
    }
    if (f == "truncate") {
      const auto cps = text::decode(to_string(v));
      const std::int64_t length = int_arg(a, 0, "length", 255);
      const bool killwords = arg(a, 1, "killwords") && arg(a, 1, "killwords")->truthy();
      const std::string end = arg(a, 2, "end") ? to_string(*arg(a, 2, "end")) : "...";
      const std::int64_t leeway = int_arg(a, 3, "leeway", 5);
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
    if (f == "batch" || f == "slice") {
      const std::int64_t n = int_arg(a, 0, f == "batch" ? "linecount" : "slices", 0);
      if (n <= 0) fail(line, detail::cat(f, " needs a positive count"));
      const Value* fill = arg(a, 1, "fill_with");
      const List items = iterate(v, line);
      // batch() makes groups of n (padded with fill_with); slice() makes n groups: either way n
      // items or groups are made, so n is bounded as range() is and charged as steps.
      if ((f == "slice" || fill) && n > limits_.max_range) fail(line, detail::cat(f, "(", n, ") is larger than ", limits_.max_range));
      charge(f == "slice" || fill ? static_cast<std::size_t>(n) : items.size(), line);
      List out;
      if (f == "batch") {
        for (std::size_t i = 0; i < items.size(); i += static_cast<std::size_t>(n)) {
          List group(items.begin() + static_cast<std::ptrdiff_t>(i),
                     items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), i + static_cast<std::size_t>(n))));
          while (fill && group.size() < static_cast<std::size_t>(n)) group.push_back(*fill);
          out.push_back(Value::list(std::move(group)));
        }
      } else {
        const std::size_t slices = static_cast<std::size_t>(n), per = items.size() / slices, extra = items.size() % slices;
        std::size_t offset = 0;
        for (std::size_t s = 0; s < slices; ++s) {
          const std::size_t size = per + (s < extra ? 1 : 0);
          List group(items.begin() + static_cast<std::ptrdiff_t>(offset), items.begin() + static_cast<std::ptrdiff_t>(offset + size));
          offset += size;
          if (fill && s >= extra && extra > 0) group.push_back(*fill);
          out.push_back(Value::list(std::move(group)));
        }
      }
      return Value::list(std::move(out));
    }
    if (f == "attr") {
      const std::string name = string_arg(a, 0, "name", "attr");
      if (v.is_dict() && !v.as_dict().is_namespace) {  // Python attributes only, not keys
        if (dict_methods().count(name)) return bound_method(v, name);
        return Value::undefined(detail::cat("'dict object' has no attribute '", name, "'"));
      }
      return attribute(v, name, line);
    }
    fail(line, detail::cat("No filter named '", f, "'."));
  }

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
};

}  // namespace maskgen::jinja

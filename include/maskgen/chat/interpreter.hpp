#pragma once
// The Jinja interpreter: runs a parsed template against variables, with the semantics of
// jinja2's ImmutableSandboxedEnvironment as transformers configures it: undefined values print
// as nothing and fail when used further, dict keys read as attributes, loops have their own
// scope (a {% set %} inside one does not leak out), namespace() objects carry values out, and
// methods that would modify a value are refused.
//
// Limits keep a hostile template from running away: a million steps (statements and loop turns), 16 MiB of output, calls
// nested 100 deep, range() of at most a million items.
//
// This is the evaluator (statements, expressions, scopes, operators); the builtins it looks up by
// name are in filters.hpp, tests.hpp and methods.hpp, and reach back into it through Context.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "context.hpp"
#include "filters.hpp"
#include "methods.hpp"
#include "parser.hpp"
#include "tests.hpp"
#include "text.hpp"

namespace maskgen::jinja {

class Interpreter final : private Context {
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

  void step(int line) {
    if (++steps_ > limits_.max_steps) fail(line, detail::cat("the template ran more than ", limits_.max_steps, " steps"));
  }
  const RenderLimits& limits() const override { return limits_; }
  void charge(std::size_t n, int line) override {
    steps_ += n;
    if (steps_ > limits_.max_steps) fail(line, detail::cat("the template ran more than ", limits_.max_steps, " steps"));
  }
  // A string result, checked against the output limit before anyone copies it further.
  Value bounded(std::string s, int line) const {
    if (s.size() > limits_.max_output) fail(line, detail::cat("a string of more than ", limits_.max_output, " bytes"));
    return Value(std::move(s));
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

  // The items a for loop runs over: with `for x in xs if cond`, those for which cond holds,
  // filtered before the loop (loop.length counts what is left).
  List loop_items(const Stmt& s) {
    List all = iterate(eval(*s.expr), s.line);
    if (!s.condition) return all;
    List items;
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
    return items;
  }

  // `loop` in a loop over n items: length, depth, cycle() and changed(), then the per-turn
  // attributes, in a fixed order from items[turn] on, which exec_for updates in place.
  struct Loop {
    Value value;
    std::size_t turn = 0;
    std::shared_ptr<std::int64_t> position = std::make_shared<std::int64_t>(0);  // what loop.cycle() reads
    std::shared_ptr<std::optional<Value>> last_changed = std::make_shared<std::optional<Value>>();
  };
  static Loop make_loop(std::int64_t n) {
    Loop loop{Value::dict({}, false)};
    DictData& l = loop.value.as_dict();
    l.set("length", Value(n));
    l.set("depth", Value(1));
    l.set("depth0", Value(0));
    l.set("cycle", Value::function("loop.cycle", [position = loop.position](CallArgs& a) -> Value {
            if (a.positional.empty()) throw template_error("no items for cycling given");
            return a.positional[static_cast<std::size_t>(*position) % a.positional.size()];
          }));
    l.set("changed", Value::function("loop.changed", [last_changed = loop.last_changed](CallArgs& a) -> Value {
            const Value now = Value::list(a.positional);
            if (*last_changed && equal(**last_changed, now)) return Value(false);
            *last_changed = now;
            return Value(true);
          }));
    loop.turn = l.items.size();
    for (const char* key : {"index0", "index", "revindex", "revindex0", "first", "last", "previtem", "nextitem"}) l.set(key, Value());
    return loop;
  }

  void exec_for(const Stmt& s) {
    const List items = loop_items(s);
    if (items.empty()) {
      run(s.else_body);
      return;
    }
    const auto n = static_cast<std::int64_t>(items.size());
    Loop loop = make_loop(n);
    DictData& l = loop.value.as_dict();
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
    } end{scopes_, loop.last_changed};
    for (std::int64_t i = 0; i < n; ++i) {
      step(s.line);
      *loop.position = i;
      auto* at = &l.items[loop.turn];
      at[0].second = Value(i);
      at[1].second = Value(i + 1);
      at[2].second = Value(n - i);
      at[3].second = Value(n - i - 1);
      at[4].second = Value(i == 0);
      at[5].second = Value(i == n - 1);
      at[6].second = i > 0 ? items[static_cast<std::size_t>(i - 1)] : Value::undefined("there is no previous item");
      at[7].second = i + 1 < n ? items[static_cast<std::size_t>(i + 1)] : Value::undefined("there is no next item");
      scopes_.back()->clear();
      assign("loop", loop.value);
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

  // Using an undefined value in a way that needs its value fails with its hint.
  [[noreturn]] static void undefined_used(const Value& v, int line) { fail(line, v.undefined_hint()); }

  Value attribute(const Value& obj, const std::string& name, int line) override {
    return attribute(obj, name, line, method_kinds(name));
  }
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
        if (method_of & dict_method) return bound_method(*this, obj, name);
        if (method_of & unsafe_dict_method) {
          return Value::undefined(detail::cat("access to attribute '", name, "' of 'dict' object is unsafe."));
        }
      }
      if (const Value* v = d.find(name)) return *v;
      return Value::undefined(std::string(d.is_namespace ? "'Namespace'" : "'dict object'") + " has no attribute '" + name + "'");
    }
    if (obj.is_string()) {
      if (method_of & string_method) return bound_method(*this, obj, name);
      return Value::undefined(detail::cat("'str object' has no attribute '", name, "'"));
    }
    if (obj.is_list()) {
      if (method_of & list_method) return bound_method(*this, obj, name);
      if (method_of & unsafe_list_method) {
        return Value::undefined(detail::cat("access to attribute '", name, "' of '", obj.type_name(), "' object is unsafe."));
      }
      return Value::undefined(detail::cat("'", obj.type_name(), " object' has no attribute '", name, "'"));
    }
    if (obj.is_none()) return Value::undefined(detail::cat("'None' has no attribute '", name, "'"));
    return Value::undefined(detail::cat("'", obj.type_name(), " object' has no attribute '", name, "'"));
  }

  static std::int64_t python_index(std::int64_t i, std::size_t size) { return i < 0 ? i + static_cast<std::int64_t>(size) : i; }

  Value subscript(const Value& obj, const Value& key, int line) override {
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

  bool compare(std::string_view op, const Value& a, const Value& b, int line) {
    if (op == "==") return equal(a, b);
    if (op == "!=") return !equal(a, b);
    if (op == "in") return contains(*this, b, a, line);
    if (op == "not in") return !contains(*this, b, a, line);
    try {
      if (op == "<") return less(a, b, op);
      if (op == ">") return less(b, a, op);
      if (op == "<=") return !less(b, a, op);
      return !less(a, b, op);
    } catch (const template_error& err) {
      fail(line, err.what());
    }
  }

  // The arithmetic operators and `~`, with Python's types; integers are 64-bit and fail where
  // Python's would grow past that.
  Value binary(std::string_view op, const Value& a, const Value& b, int line) {
    if (op == "~") return bounded(to_string(a) + to_string(b), line);
    if (a.is_undefined()) undefined_used(a, line);
    if (b.is_undefined()) undefined_used(b, line);
    const bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
    const bool numbers = a.is_number() && b.is_number();
    if (op == "+") return plus(a, b, ints, numbers, line);
    if (op == "-") {
      if (ints) {
        std::int64_t r;
        if (__builtin_sub_overflow(a.integer(), b.integer(), &r)) overflow(line);
        return Value(r);
      }
      if (numbers) return Value(a.number() - b.number());
      operand_error(op, a, b, line);
    }
    if (op == "*") return times(a, b, ints, numbers, line);
    if (op == "/") {
      if (!numbers) operand_error(op, a, b, line);
      if (b.number() == 0) fail(line, "division by zero");
      return Value(a.number() / b.number());
    }
    if (op == "//" || op == "%") {
      if (!numbers) operand_error(op, a, b, line);
      return floor_divide(op == "//", a, b, ints, line);
    }
    if (op == "**") {
      if (!numbers) operand_error(op, a, b, line);
      return power(a, b, ints, line);
    }
    fail(line, detail::cat("unknown operator ", op));
  }

  [[noreturn]] static void operand_error(std::string_view op, const Value& a, const Value& b, int line) {
    fail(line, detail::cat("unsupported operand type(s) for ", op, ": '", a.type_name(), "' and '", b.type_name(), "'"));
  }

  // a + b: numbers, or strings or lists concatenated.
  Value plus(const Value& a, const Value& b, bool ints, bool numbers, int line) {
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
    operand_error("+", a, b, line);
  }

  // a * b: numbers, or a string or list repeated (either side may be the count).
  Value times(const Value& a, const Value& b, bool ints, bool numbers, int line) {
    if (ints) {
      std::int64_t r;
      if (__builtin_mul_overflow(a.integer(), b.integer(), &r)) overflow(line);
      return Value(r);
    }
    if (numbers) return Value(a.number() * b.number());
    const Value* seq = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
    const Value* count = seq == &a ? &b : &a;
    if (!seq || !(count->is_int() || count->is_bool())) operand_error("*", a, b, line);
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

  // a // b (floor) or a % b, Python's: the remainder takes the divisor's sign.
  static Value floor_divide(bool quotient, const Value& a, const Value& b, bool ints, int line) {
    if (ints) {
      const std::int64_t x = a.integer(), y = b.integer();
      if (y == 0) fail(line, quotient ? "integer division or modulo by zero" : "integer modulo by zero");
      if (x == std::numeric_limits<std::int64_t>::min() && y == -1) overflow(line);
      std::int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value(quotient ? q : r);
    }
    const double x = a.number(), y = b.number();
    if (y == 0) fail(line, "float division by zero");
    double r = std::fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return Value(quotient ? std::floor(x / y) : r);
  }

  // a ** b: an int for ints and a non-negative exponent, else a float.
  static Value power(const Value& a, const Value& b, bool ints, int line) {
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

  Value add(const Value& a, const Value& b, int line) override { return binary("+", a, b, line); }

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
        return call_method(*this, obj, e.a->name, args);
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

  // ---- tests and filters (tests.hpp, filters.hpp) ----
  bool apply_test(const Expr& e) {
    const Value v = eval(*e.a);
    const CallArgs args = evaluate_args(e);
    const Test* found = find_test(e.name);
    if (!found) fail(e.line, detail::cat("No test named '", e.name, "'."));
    return found->run(TestCall{*this, e.name, v, args.positional, e.line});
  }

  // For select() and reject(): as `x is name(args...)` with x and the arguments evaluated already.
  bool test(const std::string& name, const Value& x, const List& args, int line) override {
    const Test* found = find_test(name);
    if (!found) fail(line, detail::cat("No test named '", name, "'."));
    const Nest nest(*this, line);  // the frame that evaluating the test's operand would take
    return found->run(TestCall{*this, name, x, args, line});
  }

  // A filter's errors that have no line get the filter's.
  Value apply_filter(const Expr& e) {
    const Value v = eval(*e.a);
    CallArgs args = evaluate_args(e);
    try {
      const Filter* filter = find_filter(e.name);
      if (!filter) fail(e.line, detail::cat("No filter named '", e.name, "'."));
      return filter->apply(FilterCall{*this, e.name, v, args, e.line});
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
};

}  // namespace maskgen::jinja

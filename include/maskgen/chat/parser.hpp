#pragma once
// The Jinja parser: pieces from the lexer into a tree of statements and expressions, with
// jinja2's operator precedence (lowest first): `a if c else b`, or, and, not, comparisons and
// `in` (chained), + -, ~, * / // %, **, unary - +, then primaries with .attr, [index], [a:b:c],
// (calls), `| filter` and `is test`.
//
// Everything the parser does not implement is refused here, at compile time, with its line:
// unknown filters and tests, tags such as {% include %}, {% call %} or recursive loops. The names
// of filters, tests and methods are those of the interpreter's tables (filters.hpp, tests.hpp,
// methods.hpp).

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "filters.hpp"
#include "lexer.hpp"
#include "methods.hpp"
#include "tests.hpp"

namespace maskgen::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Expr {
  enum class Kind {
    Literal, Name, List, Tuple, Dict, Attribute, Subscript, Slice, Call, Filter, Test, Unary, Binary,
    Compare, And, Or, Not, Conditional
  };
  Kind kind;
  int line = 0;
  Value literal;                 // Literal
  std::string name;              // Name, Attribute, Filter, Test; the operator of Unary/Binary
  std::vector<ExprPtr> items;    // List/Tuple/Dict (key, value pairs); Call/Filter/Test positional args;
                                 // Compare operands; Slice's start, stop, step (null when absent)
  std::vector<std::pair<std::string, ExprPtr>> named;  // Call/Filter/Test keyword arguments
  std::vector<std::string> ops;  // Compare operators
  ExprPtr a, b, c;               // operands: object, index, condition...
  bool negated = false;          // Test: `is not`
  std::uint8_t method_of = 0;    // Attribute: of which types `name` is a method (MethodOf bits)
  Expr(Kind k, int l) : kind(k), line(l) {}
};

struct Stmt {
  enum class Kind { Text, Output, If, For, Set, SetBlock, Macro, FilterBlock, Break, Continue, Block };
  Kind kind;
  int line = 0;
  std::string text;                      // Text; Set/SetBlock/Macro name; the attribute of `set ns.x`
  std::vector<std::string> targets;      // For and Set: names assigned (several: unpacked)
  ExprPtr expr, condition;               // Output/Set value; If condition; For iterable and `if` filter
  ExprPtr filter;                        // FilterBlock: the filter, applied to an empty Name
  Body body, else_body;                  // If: then, else (elif nests an If in else); For: body, else
  std::vector<std::pair<std::string, ExprPtr>> params;  // Macro parameters and defaults (may be null)
  Stmt(Kind k, int l) : kind(k), line(l) {}
};

class Parser {
 public:
  explicit Parser(std::vector<Piece> pieces) : pieces_(std::move(pieces)) {}

  Body parse() {
    Body body = parse_body({});
    if (piece_ < pieces_.size()) {
      syntax_error(pieces_[piece_].line, detail::cat("unexpected '", pieces_[piece_].tokens[0].text, "'"));
    }
    return body;
  }

 private:
  static constexpr int max_depth = 200;  // nesting of expressions and blocks

  std::vector<Piece> pieces_;
  std::size_t piece_ = 0;
  const std::vector<Token>* tokens_ = nullptr;
  std::size_t pos_ = 0;
  int depth_ = 0;

  struct DepthGuard {
    int& d;
    DepthGuard(int& depth, int line) : d(depth) {
      if (++d > max_depth) syntax_error(line, "the template nests deeper than 200 levels");
    }
    ~DepthGuard() { --d; }
  };
  // A left-leaning chain (a ~ b ~ c..., x|f|g..., a.b.c...) grows one level per link: each link
  // counts as nesting until the chain ends, so no chain builds a tree the interpreter cannot walk.
  struct ChainGuard {
    int& d;
    int links = 0;
    explicit ChainGuard(int& depth) : d(depth) {}
    void link(int line) {
      ++links;
      if (++d > max_depth) syntax_error(line, "the template nests deeper than 200 levels");
    }
    ~ChainGuard() { d -= links; }
  };

  [[noreturn]] static void unsupported(int line, std::string_view what) {
    throw unsupported_template_error(detail::cat("template line ", line, ": ", what, " is not supported by maskgen's template interpreter"));
  }

  // ---- tokens of the current tag ----
  const Token& peek(std::size_t ahead = 0) const {
    const auto& t = *tokens_;
    return t[std::min(pos_ + ahead, t.size() - 1)];
  }
  const Token& next() {
    const Token& t = peek();
    if (t.kind != Token::Kind::End) ++pos_;
    return t;
  }
  bool at_op(std::string_view op) const { return peek().kind == Token::Kind::Operator && peek().text == op; }
  bool at_comparison() const {
    return at_op("==") || at_op("!=") || at_op("<") || at_op("<=") || at_op(">") || at_op(">=");
  }
  bool at_name(std::string_view name) const { return peek().kind == Token::Kind::Name && peek().text == name; }
  bool accept_op(std::string_view op) {
    if (!at_op(op)) return false;
    ++pos_;
    return true;
  }
  bool accept_name(std::string_view name) {
    if (!at_name(name)) return false;
    ++pos_;
    return true;
  }
  void expect_op(std::string_view op) {
    if (!accept_op(op)) syntax_error(peek().line, detail::cat("expected '", op, "', got ", describe(peek())));
  }
  std::string expect_name() {
    if (peek().kind != Token::Kind::Name) syntax_error(peek().line, detail::cat("expected a name, got ", describe(peek())));
    return next().text;
  }
  void expect_end() {
    if (peek().kind != Token::Kind::End) syntax_error(peek().line, detail::cat("expected the end of the tag, got ", describe(peek())));
  }
  static std::string describe(const Token& t) {
    return t.kind == Token::Kind::End ? std::string("the end of the tag") : detail::cat("'", t.text, "'");
  }

  // ---- statements ----

  // Statements until a tag whose first name is in `ends` (left unconsumed) or the end.
  Body parse_body(const std::vector<std::string_view>& ends) {
    Body body;
    while (piece_ < pieces_.size()) {
      Piece& p = pieces_[piece_];
      if (p.kind == Piece::Kind::Text) {
        auto s = std::make_unique<Stmt>(Stmt::Kind::Text, p.line);
        s->text = std::move(p.text);
        body.push_back(std::move(s));
        ++piece_;
        continue;
      }
      tokens_ = &p.tokens;
      pos_ = 0;
      if (p.kind == Piece::Kind::Expression) {
        auto s = std::make_unique<Stmt>(Stmt::Kind::Output, p.line);
        if (peek().kind == Token::Kind::End) syntax_error(p.line, "empty {{ }}");
        s->expr = parse_tuple_or_expression();
        expect_end();
        body.push_back(std::move(s));
        ++piece_;
        continue;
      }
      if (peek().kind != Token::Kind::Name) syntax_error(p.line, "a {% tag %} must start with a name");
      const std::string& tag = peek().text;
      for (auto e : ends) {
        if (tag == e) return body;
      }
      ++piece_;
      ++pos_;
      body.push_back(parse_statement(tag, p.line));
    }
    if (!ends.empty()) {
      syntax_error(pieces_.empty() ? 1 : pieces_.back().line, detail::cat("unexpected end of template: missing {% ", ends.back(), " %}"));
    }
    return body;
  }

  // The tag that ends a block: consumes it and checks it has nothing else.
  void close_block() {
    enter_tag();
    expect_end();
  }
  std::string current_tag() const { return pieces_[piece_].tokens[0].text; }
  // Re-enters the tokens of the tag at piece_ (after parse_body stopped at it).
  void enter_tag() {
    tokens_ = &pieces_[piece_].tokens;
    pos_ = 1;
    ++piece_;
  }

  std::unique_ptr<Stmt> parse_statement(const std::string& tag, int line) {
    DepthGuard guard(depth_, line);
    if (tag == "if") return parse_if(line);
    if (tag == "for") return parse_for(line);
    if (tag == "set") return parse_set(line);
    if (tag == "macro") return parse_macro(line);
    if (tag == "filter") {
      auto s = std::make_unique<Stmt>(Stmt::Kind::FilterBlock, line);
      auto input = std::make_unique<Expr>(Expr::Kind::Name, line);
      s->filter = parse_filter(std::move(input));
      ChainGuard chain(depth_);
      while (accept_op("|")) {
        chain.link(line);
        s->filter = parse_filter(std::move(s->filter));
      }
      expect_end();
      s->body = parse_body({"endfilter"});
      close_block();
      return s;
    }
    if (tag == "generation") {  // transformers' AssistantTracker: renders its body unchanged
      expect_end();
      auto s = std::make_unique<Stmt>(Stmt::Kind::Block, line);
      s->body = parse_body({"endgeneration"});
      close_block();
      return s;
    }
    if (tag == "break" || tag == "continue") {
      expect_end();
      return std::make_unique<Stmt>(tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, line);
    }
    static const std::set<std::string, std::less<>> unsupported_tags = {
        "include", "import", "from", "extends", "block", "call", "with", "autoescape", "trans", "do", "pluralize"};
    if (unsupported_tags.count(tag)) unsupported(line, detail::cat("{% ", tag, " %}"));
    syntax_error(line, detail::cat("unknown tag '", tag, "'"));
  }

  std::unique_ptr<Stmt> parse_if(int line) {
    auto s = std::make_unique<Stmt>(Stmt::Kind::If, line);
    s->condition = parse_expression();
    expect_end();
    s->body = parse_body({"elif", "else", "endif"});
    const std::string tag = current_tag();
    const int tag_line = pieces_[piece_].line;
    enter_tag();
    if (tag == "elif") {
      s->else_body.push_back(parse_if(tag_line));  // consumes through endif
      return s;
    }
    if (tag == "else") {
      expect_end();
      s->else_body = parse_body({"endif"});
      enter_tag();
    }
    expect_end();
    return s;
  }

  std::unique_ptr<Stmt> parse_for(int line) {
    auto s = std::make_unique<Stmt>(Stmt::Kind::For, line);
    do {
      s->targets.push_back(expect_name());
    } while (accept_op(","));
    if (!accept_name("in")) syntax_error(peek().line, detail::cat("expected 'in', got ", describe(peek())));
    s->expr = parse_tuple_or_expression(/*no_conditional=*/true);
    if (accept_name("if")) s->condition = parse_expression();
    if (at_name("recursive")) unsupported(line, "a recursive for loop");
    expect_end();
    s->body = parse_body({"else", "endfor"});
    if (current_tag() == "else") {
      enter_tag();
      expect_end();
      s->else_body = parse_body({"endfor"});
    }
    enter_tag();
    expect_end();
    return s;
  }

  std::unique_ptr<Stmt> parse_set(int line) {
    std::vector<std::string> targets;
    std::string attribute;
    do {
      targets.push_back(expect_name());
      if (targets.size() == 1 && accept_op(".")) attribute = expect_name();
    } while (attribute.empty() && accept_op(","));
    if (accept_op("=")) {
      auto s = std::make_unique<Stmt>(Stmt::Kind::Set, line);
      s->targets = std::move(targets);
      s->text = std::move(attribute);
      s->expr = parse_tuple_or_expression();
      expect_end();
      return s;
    }
    if (targets.size() != 1 || !attribute.empty()) syntax_error(line, "expected '=' in {% set %}");
    if (at_op("|")) unsupported(line, "a filtered {% set %} block");
    expect_end();
    auto s = std::make_unique<Stmt>(Stmt::Kind::SetBlock, line);
    s->targets = std::move(targets);
    s->body = parse_body({"endset"});
    close_block();
    return s;
  }

  std::unique_ptr<Stmt> parse_macro(int line) {
    auto s = std::make_unique<Stmt>(Stmt::Kind::Macro, line);
    s->text = expect_name();
    expect_op("(");
    if (!accept_op(")")) {
      do {
        std::string param = expect_name();
        ExprPtr fallback;
        if (accept_op("=")) fallback = parse_expression();
        s->params.emplace_back(std::move(param), std::move(fallback));
      } while (accept_op(","));
      expect_op(")");
    }
    expect_end();
    s->body = parse_body({"endmacro"});
    enter_tag();
    if (peek().kind == Token::Kind::Name && peek().text == s->text) ++pos_;
    expect_end();
    return s;
  }

  // ---- expressions ----

  ExprPtr make(Expr::Kind k, int line) { return std::make_unique<Expr>(k, line); }

  // `a, b` without parentheses is a tuple where jinja2 allows it ({{ }}, set, for ... in).
  ExprPtr parse_tuple_or_expression(bool no_conditional = false) {
    const int line = peek().line;
    ExprPtr first = no_conditional ? parse_or() : parse_expression();
    if (!at_op(",")) return first;
    auto t = make(Expr::Kind::Tuple, line);
    t->items.push_back(std::move(first));
    while (accept_op(",")) {
      if (peek().kind == Token::Kind::End || at_name("if")) break;
      t->items.push_back(no_conditional ? parse_or() : parse_expression());
    }
    return t;
  }

  ExprPtr parse_expression() {
    DepthGuard guard(depth_, peek().line);
    ExprPtr e = parse_or();
    ChainGuard chain(depth_);
    while (at_name("if")) {
      const int line = next().line;
      chain.link(line);
      auto c = make(Expr::Kind::Conditional, line);
      c->c = parse_or();
      c->a = std::move(e);
      if (accept_name("else")) c->b = parse_expression();
      e = std::move(c);
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    ChainGuard chain(depth_);
    while (at_name("or")) {
      auto o = make(Expr::Kind::Or, next().line);
      chain.link(o->line);
      o->a = std::move(e);
      o->b = parse_and();
      e = std::move(o);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    ChainGuard chain(depth_);
    while (at_name("and")) {
      auto o = make(Expr::Kind::And, next().line);
      chain.link(o->line);
      o->a = std::move(e);
      o->b = parse_not();
      e = std::move(o);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (at_name("not")) {
      DepthGuard guard(depth_, peek().line);
      auto n = make(Expr::Kind::Not, next().line);
      n->a = parse_not();
      return n;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = peek().line;
    ExprPtr first = parse_math1();
    std::unique_ptr<Expr> cmp;
    ChainGuard chain(depth_);
    while (true) {
      chain.link(line);
      std::string op;
      if (at_comparison()) {
        op = next().text;
      } else if (at_name("in")) {
        next();
        op = "in";
      } else if (at_name("not") && peek(1).kind == Token::Kind::Name && peek(1).text == "in") {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::Compare, line);
        cmp->items.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->items.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, int line) {
    auto e = make(Expr::Kind::Binary, line);
    e->name = std::move(op);
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    ChainGuard chain(depth_);
    while (at_op("+") || at_op("-")) {
      const Token& t = next();
      chain.link(t.line);
      e = binary(t.text, std::move(e), parse_concat(), t.line);
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    ChainGuard chain(depth_);
    while (at_op("~")) {
      const int line = next().line;
      chain.link(line);
      e = binary("~", std::move(e), parse_math2(), line);
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    ChainGuard chain(depth_);
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const Token& t = next();
      chain.link(t.line);
      e = binary(t.text, std::move(e), parse_pow(), t.line);
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    ChainGuard chain(depth_);
    while (at_op("**")) {
      const int line = next().line;
      chain.link(line);
      e = binary("**", std::move(e), parse_unary(true), line);
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(depth_, peek().line);
    ExprPtr e;
    if (at_op("-") || at_op("+")) {
      const Token& t = next();
      e = make(Expr::Kind::Unary, t.line);
      e->name = t.text;
      e->a = parse_unary(false);
    } else {
      e = parse_postfix(parse_primary());
    }
    return with_filter ? parse_filters_and_tests(std::move(e)) : std::move(e);
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    const int line = t.line;
    switch (t.kind) {
      case Token::Kind::Name: {
        next();
        auto e = make(Expr::Kind::Literal, line);
        if (t.text == "true" || t.text == "True") e->literal = Value(true);
        else if (t.text == "false" || t.text == "False") e->literal = Value(false);
        else if (t.text == "none" || t.text == "None") e->literal = Value::none();
        else {
          e->kind = Expr::Kind::Name;
          e->name = t.text;
        }
        return e;
      }
      case Token::Kind::String: {
        std::string s = next().text;
        while (peek().kind == Token::Kind::String) s += next().text;  // adjacent literals join
        auto e = make(Expr::Kind::Literal, line);
        e->literal = Value(std::move(s));
        return e;
      }
      case Token::Kind::Integer: {
        next();
        auto e = make(Expr::Kind::Literal, line);
        std::int64_t v = 0;
        const auto r = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (r.ec != std::errc()) unsupported(line, detail::cat("the integer ", t.text, " (beyond 64 bits)"));
        e->literal = Value(v);
        return e;
      }
      case Token::Kind::Float: {
        next();
        auto e = make(Expr::Kind::Literal, line);
        e->literal = Value(std::strtod(t.text.c_str(), nullptr));
        return e;
      }
      case Token::Kind::Operator: {
        if (accept_op("(")) {
          if (accept_op(")")) return make(Expr::Kind::Tuple, line);
          ExprPtr first = parse_expression();
          if (accept_op(")")) return first;
          auto tuple = make(Expr::Kind::Tuple, line);
          tuple->items.push_back(std::move(first));
          while (accept_op(",")) {
            if (at_op(")")) break;
            tuple->items.push_back(parse_expression());
          }
          expect_op(")");
          return tuple;
        }
        if (accept_op("[")) {
          auto list = make(Expr::Kind::List, line);
          while (!accept_op("]")) {
            list->items.push_back(parse_expression());
            if (!accept_op(",")) {
              expect_op("]");
              break;
            }
          }
          return list;
        }
        if (accept_op("{")) {
          auto dict = make(Expr::Kind::Dict, line);
          while (!accept_op("}")) {
            dict->items.push_back(parse_expression());
            expect_op(":");
            dict->items.push_back(parse_expression());
            if (!accept_op(",")) {
              expect_op("}");
              break;
            }
          }
          return dict;
        }
        break;
      }
      case Token::Kind::End: break;
    }
    syntax_error(line, detail::cat("unexpected ", describe(t)));
  }

  void parse_call_args(Expr& call) {
    // after "("
    while (!accept_op(")")) {
      if (peek().kind == Token::Kind::Name && peek(1).kind == Token::Kind::Operator && peek(1).text == "=") {
        std::string name = next().text;
        next();
        call.named.emplace_back(std::move(name), parse_expression());
      } else {
        if (at_op("*") || at_op("**")) unsupported(peek().line, "*args and **kwargs in a call");
        if (!call.named.empty()) syntax_error(peek().line, "positional argument after a keyword argument");
        call.items.push_back(parse_expression());
      }
      if (!accept_op(",")) {
        expect_op(")");
        break;
      }
    }
  }

  ExprPtr parse_postfix(ExprPtr e) {
    ChainGuard chain(depth_);
    while (true) {
      const int line = peek().line;
      chain.link(line);
      if (accept_op(".")) {
        auto a = make(Expr::Kind::Attribute, line);
        if (peek().kind == Token::Kind::Integer) {  // x.0 reads item 0
          a->kind = Expr::Kind::Subscript;
          auto index = make(Expr::Kind::Literal, line);
          const std::string& digits = next().text;
          std::int64_t value = 0;
          if (std::from_chars(digits.data(), digits.data() + digits.size(), value).ec != std::errc()) {
            unsupported(line, "an integer beyond 64 bits");
          }
          index->literal = Value(value);
          a->b = std::move(index);
        } else {
          a->name = expect_name();
          a->method_of = method_kinds(a->name);
        }
        a->a = std::move(e);
        e = std::move(a);
      } else if (accept_op("[")) {
        ExprPtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!at_op(":") && !at_op("]")) parts[k] = parse_expression();
          if (k < 2 && accept_op(":")) {
            slice = true;
            continue;
          }
          break;
        }
        expect_op("]");
        auto s = make(Expr::Kind::Subscript, line);
        s->a = std::move(e);
        if (slice) {
          auto sl = make(Expr::Kind::Slice, line);
          for (auto& p : parts) sl->items.push_back(std::move(p));
          s->b = std::move(sl);
        } else {
          if (!parts[0]) syntax_error(line, "empty subscript");
          s->b = std::move(parts[0]);
        }
        e = std::move(s);
      } else if (accept_op("(")) {
        if (e->kind == Expr::Kind::Attribute && !is_known_method(e->name) && e->name.rfind("__", 0) != 0) {
          unsupported(line, detail::cat("the method '", e->name, "'"));
        }
        auto call = make(Expr::Kind::Call, line);
        call->a = std::move(e);
        parse_call_args(*call);
        e = std::move(call);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filter(ExprPtr input) {
    const int line = peek().line;
    std::string name = expect_name();
    while (accept_op(".")) name += "." + expect_name();
    if (!find_filter(name)) {
      if (name == "format" || name == "center" || name == "urlencode" || name == "xmlattr" || name == "pprint" ||
          name == "filesizeformat" || name == "striptags" || name == "wordwrap" || name == "groupby" ||
          name == "forceescape" || name == "urlize" || name == "random") {
        unsupported(line, detail::cat("the filter '", name, "'"));
      }
      syntax_error(line, detail::cat("No filter named '", name, "'."));
    }
    auto f = make(Expr::Kind::Filter, line);
    f->name = std::move(name);
    f->a = std::move(input);
    if (accept_op("(")) parse_call_args(*f);
    return f;
  }

  ExprPtr parse_filters_and_tests(ExprPtr e) {
    ChainGuard chain(depth_);
    while (true) {
      chain.link(peek().line);
      if (accept_op("|")) {
        e = parse_filter(std::move(e));
      } else if (at_name("is")) {
        const int line = next().line;
        auto t = make(Expr::Kind::Test, line);
        t->negated = accept_name("not");
        if (peek().kind == Token::Kind::Name) {
          t->name = next().text;
        } else if (at_comparison()) {
          t->name = next().text;
        } else {
          syntax_error(line, detail::cat("expected a test name, got ", describe(peek())));
        }
        if (!find_test(t->name)) {
          syntax_error(line, detail::cat("No test named '", t->name, "'."));
        }
        t->a = std::move(e);
        if (accept_op("(")) {
          parse_call_args(*t);
        } else if ((peek().kind == Token::Kind::Name || peek().kind == Token::Kind::String ||
                    peek().kind == Token::Kind::Integer || peek().kind == Token::Kind::Float || at_op("[") ||
                    at_op("{") || at_op("(")) &&
                   !at_name("else") && !at_name("or") && !at_name("and")) {
          // `x is divisibleby 3`: one argument without parentheses (as jinja2 reads it)
          t->items.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }
};

}  // namespace maskgen::jinja

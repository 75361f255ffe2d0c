#include "text/jinja_parser.h"

#include <initializer_list>
#include <set>

#include "core/error.h"
#include "text/jinja_builtins.h"

namespace gemma4::jinja {
namespace {

class Parser {
 public:
  Parser(const std::vector<Token>& toks, const std::string& name) : t_(toks), name_(name) {}

  Body parse_template() {
    Body body = subparse({});
    if (cur().type != Tok::Eof) fail(cur().line, "unexpected tag '" + peek(1).text + "'");
    return body;
  }

 private:
  const std::vector<Token>& t_;
  std::string name_;
  size_t i_ = 0;
  int loop_depth_ = 0;
  // Innermost block tags still open, for "expected 'endif'" messages.
  std::vector<std::string> open_;
  int depth_ = 0;

  // Bounds the recursion of nested expressions and blocks, so hostile input is an error, not a stack overflow.
  struct DepthGuard {
    Parser& p;
    DepthGuard(Parser& parser, int line) : p(parser) {
      if (++p.depth_ > 400) p.fail(line, "template nested too deeply (limit 400)");
    }
    ~DepthGuard() { --p.depth_; }
  };

  [[noreturn]] void fail(int line, const std::string& msg) const { throw Error("{}:{}: {}", name_, line, msg); }

  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& advance() { return t_[i_ < t_.size() - 1 ? i_++ : i_]; }

  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Data: return "template data";
      case Tok::VarBegin: return "'{{'";
      case Tok::VarEnd: return "end of print statement '}}'";
      case Tok::BlockBegin: return "'{%'";
      case Tok::BlockEnd: return "end of statement block '%}'";
      case Tok::String: return "string literal";
      case Tok::Eof: return "end of template";
      default: return "'" + t.text + "'";
    }
  }

  void expect_op(const char* op) {
    if (!is_op(op)) fail(cur().line, fmt::format("expected '{}', got {}", op, describe(cur())));
    advance();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail(cur().line, fmt::format("expected a name, got {}", describe(cur())));
    return advance().text;
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) fail(cur().line, fmt::format("expected end of statement block '%}}', got {}",
                                                                  describe(cur())));
    advance();
  }

  // ---- statements ----

  // Parses statements until a block tag named in `ends` (left unconsumed: the cursor is on its name).
  Body subparse(std::initializer_list<const char*> ends) {
    Body body;
    while (true) {
      const Token& tk = cur();
      if (tk.type == Tok::Eof) {
        if (ends.size() != 0)
          fail(tk.line, fmt::format("unexpected end of template, expected '{}'",
                                    open_.empty() ? *ends.begin() : open_.back().c_str()));
        return body;
      }
      if (tk.type == Tok::Data) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Data;
        s->line = tk.line;
        s->text = tk.text;
        body.push_back(std::move(s));
        advance();
      } else if (tk.type == Tok::VarBegin) {
        advance();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Print;
        s->line = tk.line;
        s->expr = parse_tuple(true, {});
        if (cur().type != Tok::VarEnd)
          fail(cur().line, fmt::format("expected end of print statement '}}}}', got {}", describe(cur())));
        advance();
        body.push_back(std::move(s));
      } else if (tk.type == Tok::BlockBegin) {
        const Token& nm = peek(1);
        if (nm.type != Tok::Name) fail(nm.line, "expected a tag name after '{%'");
        for (const char* e : ends)
          if (nm.text == e) {
            advance();  // '{%'; the caller consumes the name
            return body;
          }
        advance();
        body.push_back(parse_statement());
      } else {
        fail(tk.line, fmt::format("unexpected {}", describe(tk)));
      }
    }
  }

  StmtPtr parse_statement() {
    const Token& nm = cur();
    int line = nm.line;
    DepthGuard guard(*this, line);
    std::string tag = nm.text;
    if (tag == "if") return parse_if();
    if (tag == "for") return parse_for();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "generation") return parse_generation();
    if (tag == "break" || tag == "continue") {
      advance();
      if (loop_depth_ == 0) fail(line, fmt::format("'{}' outside of a loop", tag));
      expect_block_end();
      auto s = std::make_unique<Stmt>();
      s->kind = tag == "break" ? StmtKind::Break : StmtKind::Continue;
      s->line = line;
      return s;
    }
    static const std::set<std::string> ends = {"endif", "elif", "else", "endfor", "endset", "endmacro",
                                               "endgeneration", "endraw", "endblock", "endcall", "endfilter",
                                               "endwith", "endautoescape"};
    if (ends.count(tag)) {
      if (open_.empty()) fail(line, fmt::format("unexpected tag '{}'", tag));
      fail(line, fmt::format("unexpected tag '{}' (the innermost open block expects '{}')", tag, open_.back()));
    }
    fail(line, fmt::format("unsupported tag '{}'", tag));
  }

  StmtPtr parse_if() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::If;
    s->line = cur().line;
    advance();  // 'if'
    open_.push_back("endif");
    ExprPtr cond = parse_tuple(false, {});
    while (true) {
      expect_block_end();
      Body body = subparse({"elif", "else", "endif"});
      s->branches.emplace_back(std::move(cond), std::move(body));
      std::string t = advance().text;
      if (t == "elif") {
        cond = parse_tuple(false, {});
      } else if (t == "else") {
        expect_block_end();
        Body eb = subparse({"endif"});
        advance();
        s->branches.emplace_back(nullptr, std::move(eb));
        break;
      } else {
        break;
      }
    }
    expect_block_end();
    open_.pop_back();
    return s;
  }

  Target parse_target(bool allow_namespace, std::initializer_list<const char*> extra_end) {
    Target tg;
    int line = cur().line;
    if (allow_namespace && cur().type == Tok::Name && peek(1).type == Tok::Op && peek(1).text == ".") {
      tg.names.push_back(advance().text);
      advance();
      tg.attr = expect_name();
      return tg;
    }
    while (true) {
      bool paren = is_op("(");
      if (paren) fail(line, "unsupported: parenthesised assignment targets");
      std::string n = expect_name();
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None")
        fail(line, fmt::format("cannot assign to '{}'", n));
      tg.names.push_back(n);
      if (!is_op(",")) break;
      tg.tuple = true;
      advance();
      bool end = false;
      for (const char* e : extra_end) end |= is_name(e);
      if (end || is_op("=")) break;
    }
    return tg;
  }

  StmtPtr parse_for() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::For;
    s->line = cur().line;
    advance();  // 'for'
    open_.push_back("endfor");
    s->target = parse_target(false, {"in"});
    if (!is_name("in")) fail(cur().line, fmt::format("expected 'in', got {}", describe(cur())));
    advance();
    s->expr = parse_tuple(false, {"recursive"});
    if (is_name("if")) {
      advance();
      s->filter = parse_expression(true);
    }
    if (is_name("recursive")) fail(cur().line, "unsupported: recursive for loops");
    expect_block_end();
    ++loop_depth_;
    s->body = subparse({"endfor", "else"});
    --loop_depth_;
    if (advance().text == "else") {
      expect_block_end();
      s->else_body = subparse({"endfor"});
      advance();
    }
    expect_block_end();
    open_.pop_back();
    return s;
  }

  StmtPtr parse_set() {
    auto s = std::make_unique<Stmt>();
    s->line = cur().line;
    advance();  // 'set'
    s->target = parse_target(true, {});
    if (is_op("=")) {
      advance();
      s->kind = StmtKind::Set;
      s->expr = parse_tuple(true, {});
      expect_block_end();
      return s;
    }
    if (!s->target.attr.empty() || s->target.tuple)
      fail(s->line, "a block set needs a single variable name as target");
    s->kind = StmtKind::SetBlock;
    if (is_op("|")) {
      ExprPtr f;
      while (is_op("|")) {
        advance();
        f = parse_filter(std::move(f));
      }
      s->filter = std::move(f);
    }
    expect_block_end();
    open_.push_back("endset");
    s->body = subparse({"endset"});
    advance();
    expect_block_end();
    open_.pop_back();
    return s;
  }

  StmtPtr parse_macro() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::Macro;
    s->line = cur().line;
    advance();  // 'macro'
    s->text = expect_name();
    expect_op("(");
    bool seen_default = false;
    while (!is_op(")")) {
      if (!s->params.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string p = expect_name();
      ExprPtr dflt;
      if (is_op("=")) {
        advance();
        dflt = parse_expression(true);
        seen_default = true;
      } else if (seen_default) {
        fail(cur().line, "non-default argument follows default argument");
      }
      s->params.emplace_back(p, std::move(dflt));
    }
    advance();  // ')'
    expect_block_end();
    open_.push_back("endmacro");
    int saved_depth = loop_depth_;
    loop_depth_ = 0;
    s->body = subparse({"endmacro"});
    loop_depth_ = saved_depth;
    advance();
    if (cur().type == Tok::Name) advance();  // `{% endmacro name %}`
    expect_block_end();
    open_.pop_back();
    return s;
  }

  // Hugging Face's `{% generation %}...{% endgeneration %}` (AssistantTracker extension).
  StmtPtr parse_generation() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::Generation;
    s->line = cur().line;
    advance();
    expect_block_end();
    open_.push_back("endgeneration");
    s->body = subparse({"endgeneration"});
    advance();
    expect_block_end();
    open_.pop_back();
    return s;
  }

  // ---- expressions ----

  ExprPtr make(ExprKind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }
  ExprPtr make2(ExprKind k, int line, std::string name, ExprPtr a, ExprPtr b) {
    auto e = make(k, line);
    e->name = std::move(name);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  bool tuple_end(std::initializer_list<const char*> extra) const {
    if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || cur().type == Tok::Eof) return true;
    if (is_op(")")) return true;
    for (const char* e : extra)
      if (is_name(e)) return true;
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<const char*> extra, bool explicit_parens = false) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(extra)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail(line, fmt::format("expected an expression, got {}", describe(cur())));
    }
    auto e = make(ExprKind::TupleLit, line);
    e->args = std::move(items);
    return e;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    int line = cur().line;
    ExprPtr e1 = parse_or();
    while (is_name("if")) {
      advance();
      ExprPtr cond = parse_or();
      ExprPtr e3;
      if (is_name("else")) {
        advance();
        e3 = parse_condexpr();
      }
      auto c = make(ExprKind::CondExpr, line);
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(e1));
      c->args.push_back(std::move(e3));
      e1 = std::move(c);
    }
    return e1;
  }

  ExprPtr parse_or() {
    ExprPtr l = parse_and();
    while (is_name("or")) {
      int line = advance().line;
      l = make2(ExprKind::Or, line, "or", std::move(l), parse_and());
    }
    return l;
  }

  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (is_name("and")) {
      int line = advance().line;
      l = make2(ExprKind::And, line, "and", std::move(l), parse_not());
    }
    return l;
  }

  ExprPtr parse_not() {
    DepthGuard guard(*this, cur().line);
    if (is_name("not")) {
      int line = advance().line;
      auto e = make(ExprKind::Not, line);
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr first = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> rest;
    while (true) {
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == ">" || cur().text == "<=" || cur().text == ">=")) {
        ops.push_back(advance().text);
      } else if (is_name("in")) {
        advance();
        ops.push_back("in");
      } else if (is_name("not") && peek(1).type == Tok::Name && peek(1).text == "in") {
        advance();
        advance();
        ops.push_back("not in");
      } else {
        break;
      }
      rest.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = make(ExprKind::Compare, line);
    e->args.push_back(std::move(first));
    for (auto& r : rest) e->args.push_back(std::move(r));
    e->ops = std::move(ops);
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& op = advance();
      l = make2(ExprKind::Binary, op.line, op.text, std::move(l), parse_concat());
    }
    return l;
  }

  ExprPtr parse_concat() {
    ExprPtr l = parse_math2();
    while (is_op("~")) {
      int line = advance().line;
      l = make2(ExprKind::Binary, line, "~", std::move(l), parse_math2());
    }
    return l;
  }

  ExprPtr parse_math2() {
    ExprPtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& op = advance();
      l = make2(ExprKind::Binary, op.line, op.text, std::move(l), parse_pow());
    }
    return l;
  }

  ExprPtr parse_pow() {
    ExprPtr l = parse_unary(true);
    while (is_op("**")) {
      int line = advance().line;
      l = make2(ExprKind::Binary, line, "**", std::move(l), parse_unary(true));
    }
    return l;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr node;
    int line = cur().line;
    DepthGuard guard(*this, line);
    if (is_op("-") || is_op("+")) {
      bool neg = advance().text == "-";
      node = make(neg ? ExprKind::Neg : ExprKind::Pos, line);
      node->args.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& tk = cur();
    int line = tk.line;
    if (tk.type == Tok::Name) {
      advance();
      auto e = make(ExprKind::Const, line);
      if (tk.text == "true" || tk.text == "True") e->value = Value(true);
      else if (tk.text == "false" || tk.text == "False") e->value = Value(false);
      else if (tk.text == "none" || tk.text == "None") e->value = Value(None{});
      else {
        e->kind = ExprKind::Name;
        e->name = tk.text;
      }
      return e;
    }
    if (tk.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) s += advance().text;  // adjacent literals concatenate
      auto e = make(ExprKind::Const, line);
      e->value = Value(std::move(s));
      return e;
    }
    if (tk.type == Tok::Int || tk.type == Tok::Float) {
      advance();
      auto e = make(ExprKind::Const, line);
      e->value = tk.type == Tok::Int ? Value(tk.ival) : Value(tk.fval);
      return e;
    }
    if (is_op("(")) {
      advance();
      ExprPtr e = parse_tuple(true, {}, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      advance();
      auto e = make(ExprKind::ListLit, line);
      while (!is_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      advance();
      return e;
    }
    if (is_op("{")) {
      advance();
      auto e = make(ExprKind::DictLit, line);
      while (!is_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      advance();
      return e;
    }
    fail(line, fmt::format("unexpected {}", describe(tk)));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        advance();
        node = parse_filter(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& tk = advance();
    if (tk.text == ".") {
      const Token& attr = advance();
      if (attr.type == Tok::Name) {
        auto e = make(ExprKind::GetAttr, tk.line);
        e->name = attr.text;
        e->args.push_back(std::move(node));
        return e;
      }
      if (attr.type == Tok::Int) {
        auto idx = make(ExprKind::Const, attr.line);
        idx->value = Value(attr.ival);
        auto e = make(ExprKind::GetItem, tk.line);
        e->args.push_back(std::move(node));
        e->args.push_back(std::move(idx));
        return e;
      }
      fail(attr.line, fmt::format("expected a name or number after '.', got {}", describe(attr)));
    }
    // '['
    int line = tk.line;
    ExprPtr start, stop, step;
    bool slice = false;
    if (!is_op(":")) start = parse_expression(true);
    if (is_op(":")) {
      slice = true;
      advance();
      if (!is_op("]") && !is_op(":")) stop = parse_expression(true);
      if (is_op(":")) {
        advance();
        if (!is_op("]")) step = parse_expression(true);
      }
    }
    if (is_op(",")) fail(cur().line, "unsupported: tuple subscripts");
    expect_op("]");
    auto e = make(slice ? ExprKind::Slice : ExprKind::GetItem, line);
    e->args.push_back(std::move(node));
    e->args.push_back(std::move(start));
    if (slice) {
      e->args.push_back(std::move(stop));
      e->args.push_back(std::move(step));
    }
    return e;
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) fail(cur().line, "unsupported: *args / **kwargs in calls");
      if (cur().type == Tok::Name && peek(1).type == Tok::Op && peek(1).text == "=") {
        std::string k = advance().text;
        advance();
        e.kwargs.emplace_back(k, parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail(cur().line, "positional argument follows keyword argument");
        e.args.push_back(parse_expression(true));
      }
    }
    advance();
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(ExprKind::Call, cur().line);
    e->args.push_back(std::move(node));
    parse_call_args(*e);
    return e;
  }

  // `input` may be null for a block set's filter chain (the body is the input).
  ExprPtr parse_filter(ExprPtr input) {
    int line = cur().line;
    std::string name = expect_name();
    while (is_op(".")) {
      advance();
      name += "." + expect_name();
    }
    if (!has_filter(name)) fail(line, fmt::format("unsupported filter '{}'", name));
    auto e = make(ExprKind::Filter, line);
    e->name = name;
    e->args.push_back(std::move(input));
    if (is_op("(")) parse_call_args(*e);
    return e;
  }

  ExprPtr parse_test(ExprPtr node) {
    int line = advance().line;  // 'is'
    bool negated = false;
    if (is_name("not")) {
      advance();
      negated = true;
    }
    std::string name = expect_name();
    if (!has_test(name)) fail(line, fmt::format("unsupported test '{}'", name));
    auto e = make(ExprKind::Test, line);
    e->name = name;
    e->args.push_back(std::move(node));
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                cur().type == Tok::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail(cur().line, "you cannot chain multiple tests with 'is'");
      e->args.push_back(parse_postfix(parse_primary()));
    }
    if (!negated) return e;
    auto n = make(ExprKind::Not, line);
    n->args.push_back(std::move(e));
    return n;
  }
};

}  // namespace

Body parse(const std::vector<Token>& tokens, const std::string& name) { return Parser(tokens, name).parse_template(); }

}  // namespace gemma4::jinja

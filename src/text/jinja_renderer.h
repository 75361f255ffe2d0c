// Internal: the tree-walking renderer behind jinja::Template. Statements are in jinja_exec.cpp,
// expressions in jinja_eval.cpp.
#pragma once
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "text/jinja.h"
#include "text/jinja_builtins.h"

namespace gemma4::jinja {

// Variable scope. jinja2 opens a new scope per for-loop iteration and per macro call; `if` and `set`
// do not open one (so a top-level `set` inside an `if` stays visible afterwards).
struct Frame {
  std::unordered_map<std::string, Value> vars;
  const Frame* parent = nullptr;
};

class Renderer {
 public:
  Renderer(const std::string& name, RenderTrace* trace);
  std::string render(const Body& body, const nlohmann::ordered_json& vars);

 private:
  enum class Flow { Normal, Break, Continue };

  const std::string& name_;
  RenderTrace* trace_;
  Dict globals_;
  Frame root_;
  const std::string* root_out_ = nullptr;
  std::unordered_map<const Dict*, size_t> watched_;  // message dict -> index, for the trace
  int depth_ = 0;
  FilterEnv filter_env_;

  // Statements (jinja_exec.cpp).
  Flow exec_body(const Body& body, Frame& f, std::string& out);
  Flow exec(const Stmt& s, Frame& f, std::string& out);
  Flow exec_impl(const Stmt& s, Frame& f, std::string& out);
  Flow exec_for(const Stmt& s, Frame& f, std::string& out);
  void assign(const Target& t, const Value& v, Frame& f, int line);
  Value make_macro(const Stmt& s);
  Value call_macro(const Stmt& s, CallArgs& args);

  // Expressions (jinja_eval.cpp).
  Value eval(const Expr& e, const Frame& f);
  Value eval_impl(const Expr& e, const Frame& f);
  Value lookup(const std::string& name, const Frame& f) const;
  CallArgs eval_args(const Expr& e, size_t first, const Frame& f);
  Value eval_compare(const Expr& e, const Frame& f);

  Value filter_chain(const Expr& filter, const Value& body, const Frame& f);

  [[noreturn]] void fail(int line, const std::string& msg) const;
};

}  // namespace gemma4::jinja

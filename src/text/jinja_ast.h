// Syntax tree of a parsed template. Every node keeps its line for error messages.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_value.h"

namespace gemma4::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  Const,      // value
  Name,       // name
  ListLit,    // args
  TupleLit,   // args
  DictLit,    // args: key, value, key, value, ...
  GetAttr,    // args[0].name
  GetItem,    // args[0][args[1]]
  Slice,      // args[0][args[1]:args[2]:args[3]] (null = omitted)
  Call,       // args[0](args[1:], kwargs)
  Filter,     // args[0] | name(args[1:], kwargs)
  Test,       // args[0] is name(args[1:], kwargs)
  Not,        // not args[0]
  Neg,        // -args[0]
  Pos,        // +args[0]
  Binary,     // args[0] name args[1]; name in + - * / // % ** ~
  And,        // args[0] and args[1]
  Or,         // args[0] or args[1]
  Compare,    // args[0] ops[0] args[1] ops[1] args[2] ... (chained like Python)
  CondExpr,   // args[1] if args[0] else args[2] (args[2] may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0;
  std::string name;
  Value value;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind { Data, Print, If, For, Set, SetBlock, Macro, Break, Continue, Generation };

// Assignment target: one name, a tuple of names, or namespace attribute (ns.attr).
struct Target {
  std::vector<std::string> names;
  std::string attr;  // non-empty: names[0].attr
  bool tuple = false;
};

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;                              // Data: the text; Macro: the name
  ExprPtr expr;                                  // Print, Set, For (iterable)
  Target target;                                 // Set, SetBlock, For
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: (condition, body)...; else has a null condition
  Body body, else_body;                          // For, SetBlock, Macro, Generation
  ExprPtr filter;                                // For: `if` filter; SetBlock: filter chain applied to body
  std::vector<std::pair<std::string, ExprPtr>> params;  // Macro parameters with optional defaults
};

}  // namespace gemma4::jinja

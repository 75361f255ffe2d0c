// Expression evaluation.
#include "text/jinja_renderer.h"

namespace gemma4::jinja {

void Renderer::fail(int line, const std::string& msg) const { throw Error("{}:{}: {}", name_, line, msg); }

Value Renderer::lookup(const std::string& name, const Frame& f) const {
  for (const Frame* p = &f; p; p = p->parent) {
    auto it = p->vars.find(name);
    if (it != p->vars.end()) return it->second;
  }
  if (const Value* g = globals_.find_str(name)) return *g;
  return Value(Undefined{fmt::format("'{}' is undefined", name)});
}

CallArgs Renderer::eval_args(const Expr& e, size_t first, const Frame& f) {
  CallArgs a;
  for (size_t i = first; i < e.args.size(); ++i) a.pos.push_back(eval(*e.args[i], f));
  for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x, f));
  return a;
}

// Runtime errors get the template position of the innermost expression that raised them.
Value Renderer::eval(const Expr& e, const Frame& f) {
  try {
    return eval_impl(e, f);
  } catch (const RuntimeError& ex) {
    fail(e.line, ex.what());
  }
}

Value Renderer::filter_chain(const Expr& filter, const Value& body, const Frame& f) {
  // A block set's filter chain bottoms out in a null input (the captured body).
  const Expr* in = filter.args[0].get();
  Value input = !in ? body : in->kind == ExprKind::Filter ? filter_chain(*in, body, f) : eval(*in, f);
  CallArgs a = eval_args(filter, 1, f);
  try {
    return apply_filter(filter.name, input, a, filter_env_);
  } catch (const RuntimeError& ex) {
    fail(filter.line, ex.what());
  }
}

Value Renderer::eval_compare(const Expr& e, const Frame& f) {
  Value left = eval(*e.args[0], f);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.args[i + 1], f);
    const std::string& op = e.ops[i];
    bool ok;
    if (op == "==") ok = py_equal(left, right);
    else if (op == "!=") ok = !py_equal(left, right);
    else if (op == "in") ok = py_in(left, right);
    else if (op == "not in") ok = !py_in(left, right);
    else {
      if (left.is_undefined() || right.is_undefined()) {
        const Value& u = left.is_undefined() ? left : right;
        throw RuntimeError("{} (in comparison '{}')", u.undefined().hint.empty() ? "value is undefined" : u.undefined().hint, op);
      }
      int c = py_compare(left, right);
      ok = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
    }
    if (!ok) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

Value Renderer::eval_impl(const Expr& e, const Frame& f) {
  switch (e.kind) {
    case ExprKind::Const: return e.value;
    case ExprKind::Name: return lookup(e.name, f);
    case ExprKind::ListLit:
    case ExprKind::TupleLit: {
      std::vector<Value> items;
      for (const auto& a : e.args) items.push_back(eval(*a, f));
      return Value::list(std::move(items), e.kind == ExprKind::ListLit ? Sequence::Kind::List : Sequence::Kind::Tuple);
    }
    case ExprKind::DictLit: {
      Value d = Value::dict();
      for (size_t i = 0; i < e.args.size(); i += 2) {
        Value k = eval(*e.args[i], f);
        if (k.is_seq() || k.is_dict() || k.is_undefined())
          throw RuntimeError("unhashable type: '{}'", k.type_name());
        d.dict_ref().set(std::move(k), eval(*e.args[i + 1], f));
      }
      return d;
    }
    case ExprKind::GetAttr: return get_attr(eval(*e.args[0], f), e.name);
    case ExprKind::GetItem: return get_item(eval(*e.args[0], f), eval(*e.args[1], f));
    case ExprKind::Slice: {
      Value obj = eval(*e.args[0], f);
      auto opt = [&](size_t i) { return e.args[i] ? eval(*e.args[i], f) : Value(None{}); };
      return get_slice(obj, opt(1), opt(2), opt(3));
    }
    case ExprKind::Call: {
      Value callee = eval(*e.args[0], f);
      CallArgs a = eval_args(e, 1, f);
      if (callee.is_undefined())
        throw RuntimeError("{} (called as a function)", callee.undefined().hint.empty() ? "value is undefined"
                                                                                      : callee.undefined().hint);
      if (!callee.is_callable()) throw RuntimeError("'{}' object is not callable", callee.type_name());
      return callee.callable().fn(a);
    }
    case ExprKind::Filter: return filter_chain(e, Value(), f);
    case ExprKind::Test: {
      Value subject = eval(*e.args[0], f);
      CallArgs a = eval_args(e, 1, f);
      return Value(apply_test(e.name, subject, a));
    }
    case ExprKind::Not: return Value(!eval(*e.args[0], f).truthy());
    case ExprKind::Neg:
    case ExprKind::Pos: return py_negate(eval(*e.args[0], f), e.kind == ExprKind::Neg);
    case ExprKind::Binary: {
      Value a = eval(*e.args[0], f);
      Value b = eval(*e.args[1], f);
      return py_binary(e.name, a, b);
    }
    case ExprKind::And: {
      Value a = eval(*e.args[0], f);
      return a.truthy() ? eval(*e.args[1], f) : a;
    }
    case ExprKind::Or: {
      Value a = eval(*e.args[0], f);
      return a.truthy() ? a : eval(*e.args[1], f);
    }
    case ExprKind::Compare: return eval_compare(e, f);
    case ExprKind::CondExpr:
      if (eval(*e.args[0], f).truthy()) return eval(*e.args[1], f);
      if (e.args[2]) return eval(*e.args[2], f);
      return Value(Undefined{"the inline if-expression has no else branch"});
  }
  throw RuntimeError("internal error: unknown expression kind");
}

}  // namespace gemma4::jinja

// Statement execution: output, if, for (with loop.*), set, macros, generation blocks.
#include "text/jinja_parser.h"
#include "text/jinja_renderer.h"

namespace gemma4::jinja {
namespace {

constexpr int kMaxCallDepth = 200;  // Python's recursion limit would stop a runaway macro too

// jinja2's LoopContext (non-recursive loops).
class LoopContext : public Object {
 public:
  explicit LoopContext(std::shared_ptr<const std::vector<Value>> items) : items_(std::move(items)) {}
  size_t index0 = 0;

  std::string type_name() const override { return "LoopContext"; }
  std::string repr() const override {
    return fmt::format("<LoopContext {}/{}>", index0 + 1, items_->size());
  }
  bool get(std::string_view name, Value& out) const override {
    const std::vector<Value>& items = *items_;
    int64_t n = static_cast<int64_t>(items.size()), i = static_cast<int64_t>(index0);
    if (name == "index") out = Value(i + 1);
    else if (name == "index0") out = Value(i);
    else if (name == "revindex") out = Value(n - i);
    else if (name == "revindex0") out = Value(n - i - 1);
    else if (name == "first") out = Value(i == 0);
    else if (name == "last") out = Value(i == n - 1);
    else if (name == "length") out = Value(n);
    else if (name == "depth") out = Value(int64_t{1});
    else if (name == "depth0") out = Value(int64_t{0});
    else if (name == "previtem")
      out = i > 0 ? items[i - 1] : Value(Undefined{"there is no previous item"});
    else if (name == "nextitem")
      out = i + 1 < n ? items[i + 1] : Value(Undefined{"there is no next item"});
    else if (name == "cycle") {
      size_t k = index0;
      out = Value(std::make_shared<Callable>(Callable{"loop.cycle", [k](CallArgs& a) {
        if (a.pos.empty()) throw RuntimeError("no items for cycling given");
        return a.pos[k % a.pos.size()];
      }}));
    } else {
      return false;
    }
    return true;
  }

 private:
  std::shared_ptr<const std::vector<Value>> items_;  // shared: the loop object may outlive the loop
};

}  // namespace

Renderer::Renderer(const std::string& name, RenderTrace* trace) : name_(name), trace_(trace) {
  add_globals(globals_);
  filter_env_.call_test = [](std::string_view n, const Value& v, const CallArgs& a) { return apply_test(n, v, a); };
  // map('f') may apply a filter that itself needs the environment (map of map): give it this one.
  filter_env_.call_filter = [this](std::string_view n, const Value& v, const CallArgs& a) {
    return apply_filter(n, v, a, filter_env_);
  };
}

std::string Renderer::render(const Body& body, const nlohmann::ordered_json& vars) {
  if (!vars.is_object()) throw Error("{}: template variables must be a JSON object", name_);
  for (const auto& [k, v] : vars.items()) root_.vars[k] = Value::from_json(v);
  if (trace_) {
    auto it = root_.vars.find(trace_->watch_key);
    if (it != root_.vars.end() && it->second.is_seq()) {
      const auto& items = it->second.seq().items;
      for (size_t i = 0; i < items.size(); ++i)
        if (items[i].is_dict()) watched_[&items[i].dict_ref()] = i;
    }
  }
  std::string out;
  root_out_ = &out;
  exec_body(body, root_, out);
  return out;
}

Renderer::Flow Renderer::exec_body(const Body& body, Frame& f, std::string& out) {
  for (const auto& s : body) {
    Flow fl = exec(*s, f, out);
    if (fl != Flow::Normal) return fl;
  }
  return Flow::Normal;
}

void Renderer::assign(const Target& t, const Value& v, Frame& f, int line) {
  if (!t.attr.empty()) {
    Value obj = lookup(t.names[0], f);
    if (!obj.is_object() || !obj.object().is_namespace())
      fail(line, fmt::format("cannot assign attribute '{}' on '{}': it is not a namespace()", t.attr, t.names[0]));
    obj.object().set(t.attr, v);
    return;
  }
  if (!t.tuple) {
    f.vars[t.names[0]] = v;
    return;
  }
  std::vector<Value> parts;
  try {
    parts = py_iterate(v);
  } catch (const RuntimeError& e) {
    fail(line, fmt::format("cannot unpack non-iterable {} object", v.type_name()));
  }
  if (parts.size() != t.names.size())
    fail(line, fmt::format("{} values to unpack (expected {}, got {})",
                           parts.size() > t.names.size() ? "too many" : "not enough", t.names.size(), parts.size()));
  for (size_t i = 0; i < parts.size(); ++i) f.vars[t.names[i]] = parts[i];
}

Renderer::Flow Renderer::exec(const Stmt& s, Frame& f, std::string& out) {
  try {
    return exec_impl(s, f, out);
  } catch (const RuntimeError& e) {  // raised outside an expression (assignment, loop setup): name the line
    fail(s.line, e.what());
  }
}

Renderer::Flow Renderer::exec_impl(const Stmt& s, Frame& f, std::string& out) {
  switch (s.kind) {
    case StmtKind::Data: out += s.text; return Flow::Normal;
    case StmtKind::Print: {
      Value v = eval(*s.expr, f);
      if (v.is_generator())
        fail(s.line, "unsupported: printing a generator (jinja2 prints its memory address); add '| list'");
      out += py_str(v);
      return Flow::Normal;
    }
    case StmtKind::If:
      for (const auto& [cond, body] : s.branches)
        if (!cond || eval(*cond, f).truthy()) return exec_body(body, f, out);
      return Flow::Normal;
    case StmtKind::For: return exec_for(s, f, out);
    case StmtKind::Set: assign(s.target, eval(*s.expr, f), f, s.line); return Flow::Normal;
    case StmtKind::SetBlock: {
      Frame inner{{}, &f};
      std::string captured;
      exec_body(s.body, inner, captured);
      Value v(captured);
      if (s.filter) v = filter_chain(*s.filter, v, f);
      assign(s.target, v, f, s.line);
      return Flow::Normal;
    }
    case StmtKind::Macro: f.vars[s.text] = make_macro(s); return Flow::Normal;
    case StmtKind::Break: return Flow::Break;
    case StmtKind::Continue: return Flow::Continue;
    case StmtKind::Generation: {
      size_t begin = out.size();
      Flow fl = exec_body(s.body, f, out);
      if (trace_ && &out == root_out_) trace_->generation.emplace_back(begin, out.size());
      return fl;
    }
  }
  return Flow::Normal;
}

Renderer::Flow Renderer::exec_for(const Stmt& s, Frame& f, std::string& out) {
  Value iterable = eval(*s.expr, f);
  std::vector<Value> all;
  try {
    if (iterable.is_none() || iterable.is_number() || iterable.is_callable() ||
        (iterable.is_object() && !iterable.object().is_namespace()))
      throw RuntimeError("'{}' object is not iterable", iterable.type_name());
    all = py_iterate(iterable);
  } catch (const RuntimeError& e) {
    fail(s.line, e.what());
  }
  auto items_ptr = std::make_shared<std::vector<Value>>();
  std::vector<Value>& items = *items_ptr;
  if (s.filter) {
    for (const Value& v : all) {
      Frame probe{{}, &f};
      assign(s.target, v, probe, s.line);
      if (eval(*s.filter, probe).truthy()) items.push_back(v);
    }
  } else {
    items = std::move(all);
  }
  if (items.empty()) {
    Frame inner{{}, &f};
    exec_body(s.else_body, inner, out);
    return Flow::Normal;
  }
  auto loop = std::make_shared<LoopContext>(items_ptr);
  Value loop_value{ObjPtr(loop)};
  bool at_root = &out == root_out_;
  for (size_t i = 0; i < items.size(); ++i) {
    loop->index0 = i;
    Frame inner{{}, &f};
    assign(s.target, items[i], inner, s.line);
    inner.vars["loop"] = loop_value;
    size_t begin = out.size();
    Flow fl = exec_body(s.body, inner, out);
    if (trace_ && at_root && items[i].is_dict()) {
      auto w = watched_.find(&items[i].dict_ref());
      if (w != watched_.end()) trace_->iterations.push_back({w->second, begin, out.size()});
    }
    if (fl == Flow::Break) break;
  }
  return Flow::Normal;
}

Value Renderer::make_macro(const Stmt& s) {
  const Stmt* def = &s;
  return Value(std::make_shared<Callable>(
      Callable{"macro '" + s.text + "'", [this, def](CallArgs& a) { return call_macro(*def, a); }}));
}

Value Renderer::call_macro(const Stmt& s, CallArgs& args) {
  if (depth_ >= kMaxCallDepth) throw RuntimeError("macro '{}': maximum recursion depth exceeded", s.text);
  if (args.pos.size() > s.params.size())
    throw RuntimeError("macro '{}' takes not more than {} argument(s)", s.text, s.params.size());
  Frame mf{{}, &root_};
  std::vector<bool> used(args.kw.size(), false);
  for (size_t i = 0; i < s.params.size(); ++i) {
    const auto& [pname, dflt] = s.params[i];
    Value v;
    bool bound = false;
    if (i < args.pos.size()) {
      v = args.pos[i];
      bound = true;
    }
    for (size_t k = 0; k < args.kw.size(); ++k) {
      if (args.kw[k].first != pname) continue;
      if (bound) throw RuntimeError("macro '{}' got multiple values for argument '{}'", s.text, pname);
      v = args.kw[k].second;
      used[k] = bound = true;
    }
    if (!bound) v = dflt ? eval(*dflt, mf) : Value(Undefined{fmt::format("parameter '{}' was not provided", pname)});
    mf.vars[pname] = v;
  }
  for (size_t k = 0; k < args.kw.size(); ++k)
    if (!used[k]) throw RuntimeError("macro '{}' takes no keyword argument '{}'", s.text, args.kw[k].first);
  std::string out;
  ++depth_;
  try {
    exec_body(s.body, mf, out);
  } catch (...) {
    --depth_;
    throw;
  }
  --depth_;
  return Value(out);
}

Template::Template(std::string_view source, std::string name)
    : name_(std::move(name)), body_(std::make_shared<Body>(parse(lex(source, name_), name_))) {}

std::string Template::render(const nlohmann::ordered_json& vars, RenderTrace* trace) const {
  Renderer r(name_, trace);
  return r.render(*body_, vars);
}

}  // namespace gemma4::jinja

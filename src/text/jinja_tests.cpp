// jinja2's built-in tests (`x is string`, `x is defined`, ...).
#include <functional>
#include <map>

#include "text/jinja_builtins.h"
#include "text/jinja_unicode.h"

namespace gemma4::jinja {

bool py_in(const Value& item, const Value& container) {
  if (container.is_string()) {
    if (!item.is_string())
      throw RuntimeError("'in <string>' requires string as left operand, not {}", item.type_name());
    return container.str().find(item.str()) != std::string::npos;
  }
  if (container.is_dict()) return container.dict_ref().find(item) != nullptr;
  if (container.is_object()) throw RuntimeError("argument of type '{}' is not iterable", container.type_name());
  for (const Value& v : py_iterate(container))
    if (py_equal(v, item)) return true;
  return false;
}

namespace {

using TestFn = std::function<bool(const Value&, const CallArgs&)>;

const Value& arg0(const CallArgs& a, const char* test) {
  ArgBinder b(a, test, {"other"});
  if (!b.has(0)) throw RuntimeError("test '{}' needs an argument", test);
  return a.pos.empty() ? a.kw[0].second : a.pos[0];
}

int64_t int_of(const Value& v, const char* test) {
  if (v.is_int()) return v.as_int();
  if (v.is_bool()) return v.as_bool();
  throw RuntimeError("test '{}' needs an integer, got '{}'", test, v.type_name());
}

bool no_args(const CallArgs& a, const char* test) {
  ArgBinder b(a, test, {});
  return true;
}

bool str_case(const Value& v, bool lower) {
  std::string s = py_str(v);
  bool cased = false;
  for (size_t i = 0; i < s.size();) {
    char32_t c = next_codepoint(s, i);
    if (is_cased_lower(c) || is_cased_upper(c)) {
      cased = true;
      if (lower ? is_cased_upper(c) : is_cased_lower(c)) return false;
    }
  }
  return cased;
}

const std::map<std::string, TestFn, std::less<>>& tests() {
  static const std::map<std::string, TestFn, std::less<>> t = [] {
    std::map<std::string, TestFn, std::less<>> m;
    auto simple = [&](const char* name, std::function<bool(const Value&)> f) {
      m[name] = [name, f](const Value& v, const CallArgs& a) { return no_args(a, name) && f(v); };
    };
    simple("defined", [](const Value& v) { return !v.is_undefined(); });
    simple("undefined", [](const Value& v) { return v.is_undefined(); });
    simple("none", [](const Value& v) { return v.is_none(); });
    simple("boolean", [](const Value& v) { return v.is_bool(); });
    simple("true", [](const Value& v) { return v.is_bool() && v.as_bool(); });
    simple("false", [](const Value& v) { return v.is_bool() && !v.as_bool(); });
    simple("integer", [](const Value& v) { return v.is_int(); });
    simple("float", [](const Value& v) { return v.is_float(); });
    simple("number", [](const Value& v) { return v.is_number(); });
    simple("string", [](const Value& v) { return v.is_string(); });
    simple("mapping", [](const Value& v) { return v.is_dict(); });
    // Undefined defines __len__, __getitem__ and __iter__ in jinja2, so it counts as a sequence and iterable.
    simple("sequence", [](const Value& v) {
      return v.is_string() || (v.is_seq() && !v.is_generator()) || v.is_dict() || v.is_undefined();
    });
    simple("iterable", [](const Value& v) {
      return v.is_string() || v.is_seq() || v.is_dict() || v.is_undefined() ||
             (v.is_object() && v.object().type_name() == "LoopContext");
    });
    simple("callable", [](const Value& v) { return v.is_callable() || v.is_undefined(); });
    simple("escaped", [](const Value&) { return false; });
    simple("lower", [](const Value& v) { return str_case(v, true); });
    simple("upper", [](const Value& v) { return str_case(v, false); });
    m["odd"] = [](const Value& v, const CallArgs& a) { return no_args(a, "odd") && (int_of(v, "odd") % 2 != 0); };
    m["even"] = [](const Value& v, const CallArgs& a) { return no_args(a, "even") && int_of(v, "even") % 2 == 0; };
    m["divisibleby"] = [](const Value& v, const CallArgs& a) {
      int64_t d = int_of(arg0(a, "divisibleby"), "divisibleby");
      if (d == 0) throw RuntimeError("integer division or modulo by zero");
      return int_of(v, "divisibleby") % d == 0;
    };
    auto cmp = [&](std::vector<const char*> names, std::function<bool(const Value&, const Value&)> f) {
      for (const char* n : names) m[n] = [n, f](const Value& v, const CallArgs& a) { return f(v, arg0(a, n)); };
    };
    cmp({"eq", "equalto", "=="}, [](const Value& a, const Value& b) { return py_equal(a, b); });
    cmp({"ne", "!="}, [](const Value& a, const Value& b) { return !py_equal(a, b); });
    cmp({"lt", "lessthan", "<"}, [](const Value& a, const Value& b) { return py_compare(a, b) < 0; });
    cmp({"le", "<="}, [](const Value& a, const Value& b) { return py_compare(a, b) <= 0; });
    cmp({"gt", "greaterthan", ">"}, [](const Value& a, const Value& b) { return py_compare(a, b) > 0; });
    cmp({"ge", ">="}, [](const Value& a, const Value& b) { return py_compare(a, b) >= 0; });
    cmp({"in"}, [](const Value& a, const Value& b) { return py_in(a, b); });
    cmp({"sameas"}, [](const Value& a, const Value& b) {
      if (a.storage().index() != b.storage().index()) return false;
      if (a.is_seq()) return &a.seq() == &b.seq();
      if (a.is_dict()) return &a.dict_ref() == &b.dict_ref();
      return py_equal(a, b);  // objects and callables compare by identity already
    });
    return m;
  }();
  return t;
}

}  // namespace

bool has_test(std::string_view name) { return tests().count(name) != 0; }

bool apply_test(std::string_view name, const Value& input, const CallArgs& args) {
  auto it = tests().find(name);
  if (it == tests().end()) throw RuntimeError("unsupported test '{}'", name);
  return it->second(input, args);
}

}  // namespace gemma4::jinja

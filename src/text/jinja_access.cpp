// Attribute, item and slice access, and the Python methods of str, dict and list that templates call.
#include <algorithm>
#include <optional>

#include "text/jinja_builtins.h"
#include "text/jinja_unicode.h"

namespace gemma4::jinja {
namespace {

Value undefined(std::string hint) { return Value(Undefined{std::move(hint)}); }

[[noreturn]] void fail_undefined(const Value& u, std::string_view what) {
  const std::string& h = u.undefined().hint;
  throw RuntimeError("{}{}", h.empty() ? "value is undefined" : h, what.empty() ? "" : fmt::format(" ({})", what));
}

Value method(std::string name, std::function<Value(CallArgs&)> fn) {
  return Value(std::make_shared<Callable>(Callable{std::move(name), std::move(fn)}));
}

const std::string& need_str(const Value& v, std::string_view method) {
  if (!v.is_string())
    throw RuntimeError("{}() argument must be str, not '{}'", method, v.type_name());
  return v.str();
}

int64_t need_int(const Value& v, std::string_view method) {
  if (v.is_int()) return v.as_int();
  if (v.is_bool()) return v.as_bool();
  throw RuntimeError("{}() argument must be int, not '{}'", method, v.type_name());
}

// Byte offset of code point index `cp` (clamped), for find/startswith ranges.
size_t byte_offset(const std::string& s, int64_t cp) {
  int64_t n = static_cast<int64_t>(codepoint_count(s));
  if (cp < 0) cp = std::max<int64_t>(0, cp + n);
  cp = std::min(cp, n);
  size_t i = 0;
  for (int64_t k = 0; k < cp; ++k) next_codepoint(s, i);
  return i;
}

Value str_list(std::vector<std::string> parts) {
  std::vector<Value> v;
  v.reserve(parts.size());
  for (auto& p : parts) v.emplace_back(std::move(p));
  return Value::list(std::move(v));
}

bool affix_match(const std::string& s, const Value& arg, bool prefix, std::string_view method) {
  auto one = [&](const Value& a) {
    const std::string& x = need_str(a, method);
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (arg.is_seq() && arg.seq().kind == Sequence::Kind::Tuple) {
    for (const auto& a : arg.seq().items)
      if (one(a)) return true;
    return false;
  }
  return one(arg);
}

template <typename Pred>
bool all_codepoints(const std::string& s, Pred p) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size();)
    if (!p(next_codepoint(s, i))) return false;
  return true;
}

bool is_ascii_alpha(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_letter(char32_t c) { return is_ascii_alpha(c) || is_cased_lower(c) || is_cased_upper(c) || c >= 0x3400; }

Value str_method(const std::string& s, std::string_view name) {
  std::string m = "str." + std::string(name);
  auto opt_chars = [](const CallArgs& a, std::string_view w) -> std::optional<std::string> {
    ArgBinder b(a, w, {"chars"});
    if (!b.has(0) || b.get(0).is_none()) return std::nullopt;
    return need_str(b.get(0), w);
  };
  if (name == "split" || name == "rsplit") {
    bool r = name == "rsplit";
    return method(m, [s, m, r](CallArgs& a) {
      ArgBinder b(a, m, {"sep", "maxsplit"});
      int64_t maxsplit = b.has(1) ? need_int(b.get(1), m) : -1;
      if (!b.has(0) || b.get(0).is_none()) {
        if (r && maxsplit >= 0) throw RuntimeError("unsupported: str.rsplit() on whitespace with maxsplit");
        return str_list(py_split_whitespace(s, maxsplit));
      }
      const std::string& sep = need_str(b.get(0), m);
      if (sep.empty()) throw RuntimeError("empty separator");
      return str_list(r ? py_rsplit(s, sep, maxsplit) : py_split(s, sep, maxsplit));
    });
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    return method(m, [s, m, l, r, opt_chars](CallArgs& a) {
      auto chars = opt_chars(a, m);
      return Value(py_strip(s, chars ? &*chars : nullptr, l, r));
    });
  }
  if (name == "startswith" || name == "endswith") {
    bool prefix = name == "startswith";
    return method(m, [s, m, prefix](CallArgs& a) {
      ArgBinder b(a, m, {"prefix", "start", "end"});
      if (!b.has(0)) throw RuntimeError("{}() takes at least 1 argument", m);
      size_t lo = b.has(1) && !b.get(1).is_none() ? byte_offset(s, need_int(b.get(1), m)) : 0;
      size_t hi = b.has(2) && !b.get(2).is_none() ? byte_offset(s, need_int(b.get(2), m)) : s.size();
      std::string sub = hi > lo ? s.substr(lo, hi - lo) : std::string();
      return Value(affix_match(sub, b.get(0), prefix, m));
    });
  }
  if (name == "replace") {
    return method(m, [s, m](CallArgs& a) {
      ArgBinder b(a, m, {"old", "new", "count"});
      if (!b.has(1)) throw RuntimeError("{}() takes at least 2 arguments", m);
      int64_t count = b.has(2) ? need_int(b.get(2), m) : -1;
      return Value(py_replace(s, need_str(b.get(0), m), need_str(b.get(1), m), count));
    });
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    return method(m, [s, m, n = std::string(name)](CallArgs& a) {
      ArgBinder b(a, m, {});
      if (n == "upper") return Value(py_upper(s));
      if (n == "lower") return Value(py_lower(s));
      if (n == "title") return Value(py_title(s));
      return Value(py_capitalize(s));
    });
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    bool rev = name[0] == 'r', raise = name.find("index") != std::string_view::npos;
    return method(m, [s, m, rev, raise](CallArgs& a) {
      ArgBinder b(a, m, {"sub", "start", "end"});
      const std::string& sub = need_str(b.get(0), m);
      size_t lo = b.has(1) && !b.get(1).is_none() ? byte_offset(s, need_int(b.get(1), m)) : 0;
      size_t hi = b.has(2) && !b.get(2).is_none() ? byte_offset(s, need_int(b.get(2), m)) : s.size();
      size_t f = std::string::npos;
      if (hi >= lo && hi - lo >= sub.size()) {
        std::string_view win(s.data() + lo, hi - lo);
        f = rev ? win.rfind(sub) : win.find(sub);
      }
      if (f == std::string::npos) {
        if (raise) throw RuntimeError("substring not found");
        return Value(int64_t{-1});
      }
      return Value(static_cast<int64_t>(codepoint_count(std::string_view(s).substr(0, lo + f))));
    });
  }
  if (name == "count") {
    return method(m, [s, m](CallArgs& a) {
      ArgBinder b(a, m, {"sub"});
      return Value(py_count(s, need_str(b.get(0), m)));
    });
  }
  if (name == "join") {
    return method(m, [s, m](CallArgs& a) {
      ArgBinder b(a, m, {"iterable"});
      std::string r;
      bool first = true;
      for (const Value& v : py_iterate(b.get(0))) {
        if (!first) r += s;
        first = false;
        r += need_str(v, m);
      }
      return Value(r);
    });
  }
  if (name == "removeprefix" || name == "removesuffix") {
    bool prefix = name == "removeprefix";
    return method(m, [s, m, prefix](CallArgs& a) {
      ArgBinder b(a, m, {"affix"});
      const std::string& x = need_str(b.get(0), m);
      if (x.size() <= s.size()) {
        if (prefix && s.compare(0, x.size(), x) == 0) return Value(s.substr(x.size()));
        if (!prefix && s.compare(s.size() - x.size(), x.size(), x) == 0) return Value(s.substr(0, s.size() - x.size()));
      }
      return Value(s);
    });
  }
  if (name == "splitlines") {
    return method(m, [s, m](CallArgs& a) {
      ArgBinder b(a, m, {"keepends"});
      if (b.has(0) && b.get(0).truthy()) throw RuntimeError("unsupported: str.splitlines(keepends=True)");
      std::vector<std::string> parts;
      std::string curr;
      std::u32string u = to_u32(s);
      for (size_t k = 0; k < u.size(); ++k) {
        char32_t c = u[k];
        bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                   c == 0x85 || c == 0x2028 || c == 0x2029;
        if (!brk) {
          append_utf8(curr, c);
          continue;
        }
        if (c == '\r' && k + 1 < u.size() && u[k + 1] == '\n') ++k;
        parts.push_back(std::move(curr));
        curr.clear();
      }
      if (!curr.empty()) parts.push_back(std::move(curr));
      return str_list(std::move(parts));
    });
  }
  static const std::vector<std::string> predicates = {"isdigit", "isalpha", "isalnum", "isspace", "islower",
                                                      "isupper"};
  if (std::find(predicates.begin(), predicates.end(), name) != predicates.end()) {
    return method(m, [s, m, n = std::string(name)](CallArgs& a) {
      ArgBinder b(a, m, {});
      auto digit = [](char32_t c) { return c >= '0' && c <= '9'; };
      if (n == "isdigit") return Value(all_codepoints(s, digit));
      if (n == "isalpha") return Value(all_codepoints(s, is_letter));
      if (n == "isalnum") return Value(all_codepoints(s, [&](char32_t c) { return digit(c) || is_letter(c); }));
      if (n == "isspace") return Value(all_codepoints(s, py_isspace));
      bool want_lower = n == "islower", any_cased = false;
      for (size_t i = 0; i < s.size();) {
        char32_t c = next_codepoint(s, i);
        if (is_cased_lower(c) || is_cased_upper(c)) {
          any_cased = true;
          if (want_lower ? is_cased_upper(c) : is_cased_lower(c)) return Value(false);
        }
      }
      return Value(any_cased);
    });
  }
  return Value();  // not a supported str method
}

Value dict_method(const DictPtr& d, std::string_view name) {
  std::string m = "dict." + std::string(name);
  if (name == "items" || name == "keys" || name == "values") {
    return method(m, [d, m, n = std::string(name)](CallArgs& a) {
      ArgBinder b(a, m, {});
      std::vector<Value> r;
      for (const auto& [k, v] : d->items) {
        if (n == "items") r.push_back(Value::list({k, v}, Sequence::Kind::Tuple));
        else r.push_back(n == "keys" ? k : v);
      }
      return Value::list(std::move(r));
    });
  }
  if (name == "get") {
    return method(m, [d, m](CallArgs& a) {
      ArgBinder b(a, m, {"key", "default"});
      if (!b.has(0)) throw RuntimeError("dict.get() takes at least 1 argument");
      const Value* v = d->find(b.get(0));
      return v ? *v : b.get_or(1, Value(None{}));
    });
  }
  if (name == "copy") {
    return method(m, [d](CallArgs&) { return Value(std::make_shared<Dict>(*d)); });
  }
  if (name == "update" || name == "pop" || name == "popitem" || name == "setdefault" || name == "clear") {
    return method(m, [m](CallArgs&) -> Value {
      throw RuntimeError("unsupported: {}() modifies a dict (the sandbox forbids it)", m);
    });
  }
  return Value();
}

Value seq_method(const SeqPtr& s, std::string_view name) {
  std::string m = (s->kind == Sequence::Kind::Tuple ? "tuple." : s->kind == Sequence::Kind::Range ? "range." : "list.") +
                  std::string(name);
  if (name == "index" || name == "count") {
    bool index = name == "index";
    return method(m, [s, m, index](CallArgs& a) {
      ArgBinder b(a, m, {"value"});
      int64_t n = 0;
      for (size_t i = 0; i < s->items.size(); ++i) {
        if (!py_equal(s->items[i], b.get(0))) continue;
        if (index) return Value(static_cast<int64_t>(i));
        ++n;
      }
      if (index) throw RuntimeError("{}(x): x not in sequence", m);
      return Value(n);
    });
  }
  if (s->kind == Sequence::Kind::List &&
      (name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" ||
       name == "sort" || name == "reverse" || name == "clear")) {
    return method(m, [m](CallArgs&) -> Value {
      throw RuntimeError("unsupported: {}() modifies a list (the sandbox forbids it)", m);
    });
  }
  return Value();
}

Value method_of(const Value& obj, std::string_view name) {
  if (obj.is_string()) return str_method(obj.str(), name);
  if (obj.is_dict()) return dict_method(obj.dict_ptr(), name);
  if (obj.is_seq() && !obj.is_generator()) return seq_method(std::get<SeqPtr>(obj.storage()), name);
  return Value();
}

std::string no_attribute(const Value& obj, std::string_view name) {
  return fmt::format("'{} object' has no attribute '{}'", obj.type_name(), name);
}

}  // namespace

Value get_attr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) fail_undefined(obj, fmt::format("while looking up attribute '{}'", name));
  if (obj.is_object()) {
    Value v;
    if (obj.object().get(name, v)) return v;
    return undefined(no_attribute(obj, name));
  }
  Value m = method_of(obj, name);
  if (!m.is_undefined()) return m;
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_ref().find_str(name)) return *v;
  }
  return undefined(no_attribute(obj, name));
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj, fmt::format("while looking up item {}", py_repr(key)));
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_ref().find(key)) return *v;
  } else if ((obj.is_seq() && !obj.is_generator()) || obj.is_string()) {
    if (key.is_int() || key.is_bool()) {
      int64_t i = key.is_int() ? key.as_int() : key.as_bool();
      if (obj.is_seq()) {
        int64_t n = static_cast<int64_t>(obj.seq().items.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return obj.seq().items[i];
      } else {
        std::u32string u = to_u32(obj.str());
        int64_t n = static_cast<int64_t>(u.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return Value(to_utf8(u.substr(i, 1)));
      }
      return undefined(fmt::format("{} object has no element {}", obj.type_name(), py_repr(key)));
    }
  }
  // jinja2 falls back to attribute lookup for string keys (so d['items'] is the bound method).
  if (key.is_string()) {
    if (obj.is_object()) return get_attr(obj, key.str());
    Value m = method_of(obj, key.str());
    if (!m.is_undefined()) return m;
    return undefined(no_attribute(obj, key.str()));
  }
  return undefined(fmt::format("'{} object' has no element {}", obj.type_name(), py_repr(key)));
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail_undefined(obj, "while slicing");
  bool seq = obj.is_seq() && !obj.is_generator();
  if (!seq && !obj.is_string()) return undefined(fmt::format("'{}' object is not subscriptable", obj.type_name()));
  if (seq && obj.seq().kind == Sequence::Kind::Range) throw RuntimeError("unsupported: slicing a range()");
  auto idx = [](const Value& v, bool& ok) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (v.is_int()) return v.as_int();
    if (v.is_bool()) return static_cast<int64_t>(v.as_bool());
    ok = false;
    return std::nullopt;
  };
  bool ok = true;
  auto a = idx(start, ok), b = idx(stop, ok), c = idx(step, ok);
  if (!ok) return undefined("slice indices must be integers or None");
  int64_t st = c.value_or(1);
  if (st == 0) throw RuntimeError("slice step cannot be zero");
  std::u32string u;
  int64_t n;
  if (seq) {
    n = static_cast<int64_t>(obj.seq().items.size());
  } else {
    u = to_u32(obj.str());
    n = static_cast<int64_t>(u.size());
  }
  // Python's PySlice_AdjustIndices.
  int64_t lower = st < 0 ? -1 : 0, upper = st < 0 ? n - 1 : n;
  auto adjust = [&](std::optional<int64_t> x, int64_t dflt) {
    if (!x) return dflt;
    int64_t v = *x;
    if (v < 0) {
      v += n;
      if (v < lower) v = lower;
    } else if (v > upper) {
      v = upper;
    }
    return v;
  };
  int64_t lo = adjust(a, st < 0 ? upper : lower), hi = adjust(b, st < 0 ? lower : upper);
  std::vector<Value> items;
  std::u32string chars;
  for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
    if (seq) items.push_back(obj.seq().items[i]);
    else chars += u[i];
  }
  if (seq) return Value::list(std::move(items), obj.seq().kind);
  return Value(to_utf8(chars));
}

}  // namespace gemma4::jinja

// jinja2's built-in filters (3.1 semantics) and Hugging Face's tojson.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>

#include "text/jinja_builtins.h"
#include "text/jinja_json.h"
#include "text/jinja_unicode.h"

namespace gemma4::jinja {
namespace {

using FilterFn = std::function<Value(const Value&, const CallArgs&, const FilterEnv&)>;

Value gen(std::vector<Value> items) { return Value::list(std::move(items), Sequence::Kind::Generator); }

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0, each with subscript semantics.
std::function<Value(const Value&)> attr_getter(const Value& attribute, const Value& dflt = Value()) {
  std::vector<Value> parts;
  if (attribute.is_string()) {
    for (const std::string& p : py_split(attribute.str(), ".", -1)) {
      bool digits = !p.empty() && std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
      parts.push_back(digits ? Value(static_cast<int64_t>(std::stoll(p))) : Value(p));
    }
  } else {
    parts.push_back(attribute);
  }
  return [parts, dflt](const Value& item) {
    Value v = item;
    for (const Value& p : parts) {
      v = get_item(v, p);
      if (v.is_undefined() && !dflt.is_undefined()) return dflt;
    }
    return v;
  };
}

Value ignore_case(const Value& v) { return v.is_string() ? Value(py_lower(v.str())) : v; }

std::function<Value(const Value&)> sort_key(const Value& attribute, bool case_sensitive) {
  std::function<Value(const Value&)> get =
      attribute.is_undefined() || attribute.is_none() ? [](const Value& v) { return v; } : attr_getter(attribute);
  if (case_sensitive) return get;
  return [get](const Value& v) { return ignore_case(get(v)); };
}

void stable_sort_by(std::vector<Value>& items, const std::function<Value(const Value&)>& key, bool reverse) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& v : items) keyed.emplace_back(key(v), v);
  // Python sorts stably; reverse=True keeps equal items in their original order too.
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& a, const auto& b) {
    int c = py_compare(a.first, b.first);
    return reverse ? c > 0 : c < 0;
  });
  for (size_t i = 0; i < items.size(); ++i) items[i] = keyed[i].second;
}

// Python float(str): surrounding whitespace, '_' between digits, inf/nan spellings.
bool parse_py_float(const std::string& text, double& out) {
  std::string s = py_strip(text, nullptr, true, true), clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 == s.size() || !isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !isdigit(static_cast<unsigned char>(s[i + 1])))
        return false;
      continue;
    }
    clean += s[i];
  }
  if (clean.empty()) return false;
  std::string low = py_lower(clean);
  std::string body = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
  if (body == "inf" || body == "infinity" || body == "nan") {
    double v = body == "nan" ? NAN : INFINITY;
    out = low[0] == '-' ? -v : v;
    return true;
  }
  for (char c : body)
    if (!(isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-')) return false;
  char* end = nullptr;
  out = std::strtod(clean.c_str(), &end);
  return end && *end == 0;
}

bool parse_py_int(const std::string& text, int64_t base, int64_t& out) {
  std::string s = py_strip(text, nullptr, true, true), clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 == s.size() || s[i + 1] == '_') return false;
      continue;
    }
    clean += s[i];
  }
  if (clean.empty() || base < 2 || base > 36) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(clean.c_str(), &end, static_cast<int>(base));
  if (errno == ERANGE || !end || *end || clean.find(' ') != std::string::npos) return false;
  if (clean[0] == '0' && clean.size() > 1 && base == 10 &&
      clean.find_first_not_of('0') != std::string::npos)  // Python refuses leading zeros ("012")
    return false;
  out = v;
  return true;
}

double py_round(double x, int64_t ndigits) {
  if (!std::isfinite(x)) return x;
  char buf[512];
  if (ndigits >= 0) {
    if (ndigits > 300) return x;
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(ndigits), x);  // correctly rounded, half-even
    return std::strtod(buf, nullptr);
  }
  double p = std::pow(10.0, static_cast<double>(-ndigits));
  std::snprintf(buf, sizeof buf, "%.0f", x / p);
  return std::strtod(buf, nullptr) * p;
}

std::string html_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    switch (c) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&#34;"; break;
      case '\'': r += "&#39;"; break;
      default: r += c;
    }
  }
  return r;
}

Value select_impl(const Value& value, const CallArgs& args, const FilterEnv& env, bool by_attr, bool keep,
                  const char* name) {
  CallArgs rest;
  size_t i = 0;
  std::function<Value(const Value&)> get = [](const Value& v) { return v; };
  if (by_attr) {
    if (args.pos.empty()) throw RuntimeError("{}() needs an attribute name", name);
    get = attr_getter(args.pos[0]);
    i = 1;
  }
  std::string test;
  if (i < args.pos.size()) {
    if (!args.pos[i].is_string()) throw RuntimeError("{}(): the test name must be a string", name);
    test = args.pos[i].str();
    if (!has_test(test)) throw RuntimeError("unsupported test '{}'", test);
    rest.pos.assign(args.pos.begin() + i + 1, args.pos.end());
  }
  rest.kw = args.kw;
  std::vector<Value> out;
  for (const Value& item : py_iterate(value)) {
    Value subject = get(item);
    bool ok = test.empty() ? subject.truthy() : env.call_test(test, subject, rest);
    if (ok == keep) out.push_back(item);
  }
  return gen(std::move(out));
}

Value minmax(const Value& value, const CallArgs& args, bool want_max) {
  ArgBinder b(args, want_max ? "max" : "min", {"case_sensitive", "attribute"});
  auto key = sort_key(b.get_or(1, Value(None{})), b.get_or(0, Value(false)).truthy());
  std::vector<Value> items = py_iterate(value);
  if (items.empty()) return Value(Undefined{"No aggregated item, sequence was empty."});
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    int c = py_compare(k, best_key);
    if (want_max ? c > 0 : c < 0) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}

const std::map<std::string, FilterFn, std::less<>>& filters() {
  static const std::map<std::string, FilterFn, std::less<>> table = [] {
    std::map<std::string, FilterFn, std::less<>> m;
    auto str_filter = [&](const char* name, std::string (*f)(std::string_view)) {
      m[name] = [name, f](const Value& v, const CallArgs& a, const FilterEnv&) {
        ArgBinder b(a, name, {});
        return Value(f(py_str(v)));
      };
    };
    str_filter("upper", py_upper);
    str_filter("lower", py_lower);
    str_filter("capitalize", py_capitalize);
    str_filter("title", py_title);
    m["trim"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "trim", {"chars"});
      if (b.has(0) && !b.get(0).is_none()) {
        std::string chars = py_str(b.get(0));
        return Value(py_strip(py_str(v), &chars, true, true));
      }
      return Value(py_strip(py_str(v), nullptr, true, true));
    };
    m["string"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "string", {});
      return Value(py_str(v));
    };
    m["safe"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "safe", {});
      return v;
    };
    m["escape"] = m["e"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "escape", {});
      return Value(html_escape(py_str(v)));
    };
    m["replace"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "replace", {"old", "new", "count"});
      if (!b.has(1)) throw RuntimeError("replace() needs 'old' and 'new'");
      int64_t count = -1;
      if (b.has(2) && !b.get(2).is_none()) {
        if (!b.get(2).is_int()) throw RuntimeError("replace(): count must be an integer");
        count = b.get(2).as_int();
      }
      return Value(py_replace(py_str(v), py_str(b.get(0)), py_str(b.get(1)), count));
    };
    m["wordcount"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "wordcount", {});
      // jinja2 counts \w+ runs; approximated by whitespace- and punctuation-separated runs.
      int64_t n = 0;
      bool in_word = false;
      std::string s = py_str(v);
      for (size_t i = 0; i < s.size();) {
        char32_t c = next_codepoint(s, i);
        bool w = c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
        w = w && !py_isspace(c);
        if (w && !in_word) ++n;
        in_word = w;
      }
      return Value(n);
    };
    m["default"] = m["d"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "default", {"default_value", "boolean"});
      bool boolean = b.get_or(1, Value(false)).truthy();
      if (v.is_undefined() || (boolean && !v.truthy())) return b.get_or(0, Value(std::string()));
      return v;
    };
    m["length"] = m["count"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "length", {});
      return Value(py_len(v));
    };
    m["list"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "list", {});
      return Value::list(py_iterate(v));
    };
    m["first"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "first", {});
      std::vector<Value> items = py_iterate(v);
      if (items.empty()) return Value(Undefined{"No first item, sequence was empty."});
      return items.front();
    };
    m["last"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "last", {});
      if (v.is_generator()) throw RuntimeError("'generator' object is not reversible");
      std::vector<Value> items = py_iterate(v);
      if (items.empty()) return Value(Undefined{"No last item, sequence was empty."});
      return items.back();
    };
    m["reverse"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "reverse", {});
      if (v.is_string()) {
        std::u32string u = to_u32(v.str());
        std::reverse(u.begin(), u.end());
        return Value(to_utf8(u));
      }
      std::vector<Value> items = py_iterate(v);
      std::reverse(items.begin(), items.end());
      return gen(std::move(items));
    };
    m["join"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "join", {"d", "attribute"});
      std::string sep = b.has(0) ? py_str(b.get(0)) : std::string();
      std::function<Value(const Value&)> get = [](const Value& x) { return x; };
      if (b.has(1) && !b.get(1).is_none()) get = attr_getter(b.get(1));
      std::string r;
      bool first = true;
      for (const Value& item : py_iterate(v)) {
        if (!first) r += sep;
        first = false;
        r += py_str(get(item));
      }
      return Value(r);
    };
    m["dictsort"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "dictsort", {"case_sensitive", "by", "reverse"});
      if (!v.is_dict()) throw RuntimeError("dictsort expects a mapping, got '{}'", v.type_name());
      std::string by = b.has(1) ? py_str(b.get(1)) : "key";
      if (by != "key" && by != "value") throw RuntimeError("You can only sort by either 'key' or 'value'");
      bool cs = b.get_or(0, Value(false)).truthy();
      std::vector<Value> items;
      for (const auto& [k, x] : v.dict_ref().items) items.push_back(Value::list({k, x}, Sequence::Kind::Tuple));
      Value pos(static_cast<int64_t>(by == "key" ? 0 : 1));
      stable_sort_by(items, sort_key(pos, cs), b.get_or(2, Value(false)).truthy());
      return Value::list(std::move(items));
    };
    m["items"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "items", {});
      if (v.is_undefined()) return gen({});
      if (!v.is_dict()) throw RuntimeError("Can only get item pairs from a mapping.");
      std::vector<Value> items;
      for (const auto& [k, x] : v.dict_ref().items) items.push_back(Value::list({k, x}, Sequence::Kind::Tuple));
      return gen(std::move(items));
    };
    m["sort"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "sort", {"reverse", "case_sensitive", "attribute"});
      std::vector<Value> items = py_iterate(v);
      stable_sort_by(items, sort_key(b.get_or(2, Value(None{})), b.get_or(1, Value(false)).truthy()),
                     b.get_or(0, Value(false)).truthy());
      return Value::list(std::move(items));
    };
    m["unique"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "unique", {"case_sensitive", "attribute"});
      auto key = sort_key(b.get_or(1, Value(None{})), b.get_or(0, Value(false)).truthy());
      std::vector<Value> seen, out;
      for (const Value& item : py_iterate(v)) {
        Value k = key(item);
        if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return py_equal(s, k); })) continue;
        seen.push_back(k);
        out.push_back(item);
      }
      return gen(std::move(out));
    };
    m["max"] = [](const Value& v, const CallArgs& a, const FilterEnv&) { return minmax(v, a, true); };
    m["min"] = [](const Value& v, const CallArgs& a, const FilterEnv&) { return minmax(v, a, false); };
    m["sum"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "sum", {"attribute", "start"});
      std::function<Value(const Value&)> get = [](const Value& x) { return x; };
      if (b.has(0) && !b.get(0).is_none()) get = attr_getter(b.get(0));
      Value total = b.get_or(1, Value(int64_t{0}));
      for (const Value& item : py_iterate(v)) {
        Value x = get(item);
        if (!total.is_number() || !x.is_number())
          throw RuntimeError("unsupported operand type(s) for +: '{}' and '{}'", total.type_name(), x.type_name());
        if (total.is_float() || x.is_float()) {
          total = Value(total.to_double() + x.to_double());
        } else {
          auto as_i = [](const Value& n) { return n.is_bool() ? int64_t{n.as_bool()} : n.as_int(); };
          int64_t r = 0;
          if (__builtin_add_overflow(as_i(total), as_i(x), &r)) throw RuntimeError("integer overflow in sum");
          total = Value(r);
        }
      }
      return total;
    };
    m["abs"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "abs", {});
      if (v.is_float()) return Value(std::fabs(v.as_float()));
      if (v.is_int()) return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
      if (v.is_bool()) return Value(static_cast<int64_t>(v.as_bool()));
      throw RuntimeError("bad operand type for abs(): '{}'", v.type_name());
    };
    m["round"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "round", {"precision", "method"});
      int64_t prec = 0;
      if (b.has(0)) {
        if (!b.get(0).is_int()) throw RuntimeError("round(): precision must be an integer");
        prec = b.get(0).as_int();
      }
      std::string method = b.has(1) ? py_str(b.get(1)) : "common";
      if (method != "common" && method != "ceil" && method != "floor")
        throw RuntimeError("method must be common, ceil or floor");
      if (!v.is_number()) throw RuntimeError("round(): expected a number, got '{}'", v.type_name());
      if (method == "common") {
        if (v.is_bool()) return Value(static_cast<int64_t>(v.as_bool()));
        if (v.is_int()) return v;
        return Value(py_round(v.as_float(), prec));
      }
      double p = std::pow(10.0, static_cast<double>(prec));
      double x = v.to_double() * p;
      return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / p);
    };
    m["int"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "int", {"default", "base"});
      Value dflt = b.get_or(0, Value(int64_t{0}));
      int64_t base = b.has(1) && b.get(1).is_int() ? b.get(1).as_int() : 10;
      if (v.is_int()) return v;
      if (v.is_bool()) return Value(static_cast<int64_t>(v.as_bool()));
      double d = 0;
      if (v.is_float()) {
        d = v.as_float();
      } else if (v.is_string()) {
        int64_t i = 0;
        if (parse_py_int(v.str(), base, i)) return Value(i);
        if (!parse_py_float(v.str(), d)) return dflt;
      } else {
        return dflt;
      }
      if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return dflt;
      return Value(static_cast<int64_t>(d));
    };
    m["float"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "float", {"default"});
      Value dflt = b.get_or(0, Value(0.0));
      if (v.is_number()) return Value(v.to_double());
      double d = 0;
      if (v.is_string() && parse_py_float(v.str(), d)) return Value(d);
      return dflt;
    };
    m["attr"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "attr", {"name"});
      return get_attr(v, py_str(b.get(0)));
    };
    m["map"] = [](const Value& v, const CallArgs& a, const FilterEnv& env) {
      std::vector<Value> out;
      if (!v.truthy()) return gen({});
      if (a.pos.empty()) {
        Value attribute, dflt;
        for (const auto& [k, x] : a.kw) {
          if (k == "attribute") attribute = x;
          else if (k == "default") dflt = x;
          else throw RuntimeError("map(): unexpected keyword argument '{}'", k);
        }
        if (attribute.is_undefined()) throw RuntimeError("map() needs a filter name or attribute=");
        auto get = attr_getter(attribute, dflt);
        for (const Value& item : py_iterate(v)) out.push_back(get(item));
        return gen(std::move(out));
      }
      if (!a.pos[0].is_string()) throw RuntimeError("map(): the filter name must be a string");
      std::string name = a.pos[0].str();
      if (!has_filter(name)) throw RuntimeError("unsupported filter '{}'", name);
      CallArgs rest{std::vector<Value>(a.pos.begin() + 1, a.pos.end()), a.kw};
      for (const Value& item : py_iterate(v)) out.push_back(env.call_filter(name, item, rest));
      return gen(std::move(out));
    };
    m["select"] = [](const Value& v, const CallArgs& a, const FilterEnv& env) {
      return select_impl(v, a, env, false, true, "select");
    };
    m["reject"] = [](const Value& v, const CallArgs& a, const FilterEnv& env) {
      return select_impl(v, a, env, false, false, "reject");
    };
    m["selectattr"] = [](const Value& v, const CallArgs& a, const FilterEnv& env) {
      return select_impl(v, a, env, true, true, "selectattr");
    };
    m["rejectattr"] = [](const Value& v, const CallArgs& a, const FilterEnv& env) {
      return select_impl(v, a, env, true, false, "rejectattr");
    };
    // Hugging Face replaces jinja2's tojson (which HTML-escapes) with plain json.dumps.
    m["tojson"] = [](const Value& v, const CallArgs& a, const FilterEnv&) {
      ArgBinder b(a, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
      JsonDumpOptions o;
      o.ensure_ascii = b.get_or(0, Value(false)).truthy();
      o.sort_keys = b.get_or(3, Value(false)).truthy();
      if (b.has(1) && !b.get(1).is_none()) {
        const Value& ind = b.get(1);
        if (ind.is_string()) o.indent = ind.str();
        else if (ind.is_int()) o.indent = std::string(std::max<int64_t>(0, ind.as_int()), ' ');
        else throw RuntimeError("tojson(): indent must be an integer or a string");
      }
      if (b.has(2) && !b.get(2).is_none()) {
        const Value& sep = b.get(2);
        if (!sep.is_seq() || sep.seq().items.size() != 2 || !sep.seq().items[0].is_string() ||
            !sep.seq().items[1].is_string())
          throw RuntimeError("tojson(): separators must be a pair of strings");
        o.item_separator = sep.seq().items[0].str();
        o.key_separator = sep.seq().items[1].str();
      }
      return Value(py_json_dumps(v, o));
    };
    return m;
  }();
  return table;
}

}  // namespace

bool has_filter(std::string_view name) { return filters().count(name) != 0; }

Value apply_filter(std::string_view name, const Value& input, const CallArgs& args, const FilterEnv& env) {
  auto it = filters().find(name);
  if (it == filters().end()) throw RuntimeError("unsupported filter '{}'", name);
  return it->second(input, args, env);
}

}  // namespace gemma4::jinja

#include "text/jinja_value.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "text/jinja_unicode.h"

namespace gemma4::jinja {

namespace {
// Python stops runaway recursion with RecursionError; nested values here are bounded the same way, so
// hostile input is an error rather than a stack overflow.
constexpr int kMaxNesting = 500;
thread_local int g_nesting = 0;
}  // namespace

const Value* Dict::find(const Value& key) const {
  for (const auto& kv : items)
    if (py_equal(kv.first, key)) return &kv.second;
  return nullptr;
}

const Value* Dict::find_str(std::string_view key) const {
  for (const auto& kv : items)
    if (kv.first.is_string() && kv.first.str() == key) return &kv.second;
  return nullptr;
}

int nesting_depth(const Value& v) {
  if (v.is_seq()) return v.seq().depth;
  if (v.is_dict()) return v.dict_ref().depth;
  if (v.is_object()) return v.object().depth();
  return 0;
}

static void check_depth(int depth) {
  if (depth > kMaxNesting) throw RuntimeError("value nested too deeply (limit {})", kMaxNesting);
}

void Dict::set(Value key, Value value) {
  int d = 1 + std::max(nesting_depth(key), nesting_depth(value));
  check_depth(d);
  depth = std::max(depth, d);
  for (auto& kv : items)
    if (py_equal(kv.first, key)) {
      kv.second = std::move(value);
      return;
    }
  items.emplace_back(std::move(key), std::move(value));
}

bool Object::set(std::string_view, const Value&) { return false; }

Value Value::list(std::vector<Value> items, Sequence::Kind kind) {
  auto s = std::make_shared<Sequence>();
  s->kind = kind;
  for (const Value& v : items) s->depth = std::max(s->depth, 1 + nesting_depth(v));
  check_depth(s->depth);
  s->items = std::move(items);
  return Value(std::move(s));
}

Value Value::dict() { return Value(std::make_shared<Dict>()); }


NestingLevel::NestingLevel() {
  if (++g_nesting > kMaxNesting) {
    --g_nesting;
    throw RuntimeError("value nested too deeply (limit {})", kMaxNesting);
  }
}
NestingLevel::~NestingLevel() { --g_nesting; }

template <typename Json>
static void check_nesting(const Json& j) {
  std::vector<std::pair<const Json*, int>> stack{{&j, 0}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured()) continue;
    if (depth >= kMaxNesting) throw Error("JSON input nested too deeply (limit {} levels)", kMaxNesting);
    for (const auto& child : *node) stack.emplace_back(&child, depth + 1);
  }
}

void check_json_nesting(const nlohmann::ordered_json& j) { check_nesting(j); }
void check_json_nesting(const nlohmann::json& j) { check_nesting(j); }

Value Value::from_json(const nlohmann::ordered_json& j) {
  NestingLevel guard;
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value(None{});
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) throw Error("integer {} is too large (limit 2^63-1)", u);
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<Dict>();
      d->items.reserve(j.size());
      for (const auto& [k, e] : j.items()) {
        Value v = from_json(e);
        d->depth = std::max(d->depth, 1 + nesting_depth(v));
        d->items.emplace_back(Value(k), std::move(v));
      }
      return Value(std::move(d));
    }
    default: throw Error("unsupported JSON value (binary or discarded)");
  }
}

double Value::to_double() const {
  if (is_bool()) return as_bool() ? 1.0 : 0.0;
  if (is_int()) return static_cast<double>(as_int());
  return as_float();
}

bool Value::truthy() const {
  return std::visit(
      [](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Undefined> || std::is_same_v<T, None>) return false;
        else if constexpr (std::is_same_v<T, bool>) return x;
        else if constexpr (std::is_same_v<T, int64_t>) return x != 0;
        else if constexpr (std::is_same_v<T, double>) return x != 0.0;
        else if constexpr (std::is_same_v<T, std::string>) return !x.empty();
        else if constexpr (std::is_same_v<T, SeqPtr>)
          return x->kind == Sequence::Kind::Generator || !x->items.empty();  // a generator object is truthy
        else if constexpr (std::is_same_v<T, DictPtr>) return !x->items.empty();
        else return true;
      },
      v_);
}

std::string Value::type_name() const {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Undefined>) return "Undefined";
        else if constexpr (std::is_same_v<T, None>) return "NoneType";
        else if constexpr (std::is_same_v<T, bool>) return "bool";
        else if constexpr (std::is_same_v<T, int64_t>) return "int";
        else if constexpr (std::is_same_v<T, double>) return "float";
        else if constexpr (std::is_same_v<T, std::string>) return "str";
        else if constexpr (std::is_same_v<T, SeqPtr>)
          return x->kind == Sequence::Kind::List    ? "list"
                 : x->kind == Sequence::Kind::Tuple ? "tuple"
                 : x->kind == Sequence::Kind::Range ? "range"
                                                    : "generator";
        else if constexpr (std::is_same_v<T, DictPtr>) return "dict";
        else if constexpr (std::is_same_v<T, ObjPtr>) return x->type_name();
        else return "function";
      },
      v_);
}

ArgBinder::ArgBinder(const CallArgs& args, std::string_view what, std::initializer_list<const char*> names)
    : vals_(names.size()), set_(names.size(), false) {
  if (args.pos.size() > names.size())
    throw RuntimeError("{}() takes at most {} argument(s) ({} given)", what, names.size(), args.pos.size());
  for (size_t i = 0; i < args.pos.size(); ++i) {
    vals_[i] = args.pos[i];
    set_[i] = true;
  }
  for (const auto& [k, v] : args.kw) {
    size_t i = 0;
    for (const char* n : names) {
      if (k == n) break;
      ++i;
    }
    if (i == names.size()) throw RuntimeError("{}() got an unexpected keyword argument '{}'", what, k);
    if (set_[i]) throw RuntimeError("{}() got multiple values for argument '{}'", what, k);
    vals_[i] = v;
    set_[i] = true;
  }
}

// Python's repr(float): the shortest digit string that round-trips, in fixed notation for exponents
// -4 <= e < 16 and scientific notation otherwise.
std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[40];
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*e", p - 1, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  bool neg = s[0] == '-';
  if (neg) s.erase(0, 1);
  size_t epos = s.find('e');
  int exp = std::atoi(s.c_str() + epos + 1);
  std::string digits;
  for (size_t i = 0; i < epos; ++i)
    if (s[i] != '.') digits += s[i];
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string r = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      std::string ip = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      while (static_cast<int>(ip.size()) < exp + 1) ip += '0';
      std::string fp = digits.size() > static_cast<size_t>(exp + 1) ? digits.substr(exp + 1) : "0";
      r += ip + "." + fp;
    } else {
      r += "0." + std::string(-exp - 1, '0') + digits;
    }
  } else {
    r += digits.substr(0, 1);
    if (digits.size() > 1) r += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    r += eb;
  }
  return r;
}

std::string py_repr_string(std::string_view s) {
  char q = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
  std::string r(1, q);
  for (size_t i = 0; i < s.size();) {
    char32_t c = next_codepoint(s, i);
    if (c == '\\') r += "\\\\";
    else if (c == static_cast<char32_t>(q)) r += std::string("\\") + q;
    else if (c == '\n') r += "\\n";
    else if (c == '\r') r += "\\r";
    else if (c == '\t') r += "\\t";
    else if (py_isprintable(c)) append_utf8(r, c);
    else if (c < 0x100) r += fmt::format("\\x{:02x}", static_cast<unsigned>(c));
    else if (c < 0x10000) r += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    else r += fmt::format("\\U{:08x}", static_cast<unsigned>(c));
  }
  return r + q;
}

static std::string seq_repr(const Sequence& s) {
  NestingLevel guard;
  if (s.kind == Sequence::Kind::Generator) return "<generator object>";
  if (s.kind == Sequence::Kind::Range) return s.range_repr;
  std::string r = s.kind == Sequence::Kind::Tuple ? "(" : "[";
  for (size_t i = 0; i < s.items.size(); ++i) {
    if (i) r += ", ";
    r += py_repr(s.items[i]);
  }
  if (s.kind == Sequence::Kind::Tuple && s.items.size() == 1) r += ",";
  return r + (s.kind == Sequence::Kind::Tuple ? ")" : "]");
}

static std::string dict_repr(const Dict& d) {
  NestingLevel guard;
  std::string r = "{";
  for (size_t i = 0; i < d.items.size(); ++i) {
    if (i) r += ", ";
    r += py_repr(d.items[i].first) + ": " + py_repr(d.items[i].second);
  }
  return r + "}";
}

std::string py_str(const Value& v) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Undefined>) return "";
        else if constexpr (std::is_same_v<T, None>) return "None";
        else if constexpr (std::is_same_v<T, bool>) return x ? "True" : "False";
        else if constexpr (std::is_same_v<T, int64_t>) return std::to_string(x);
        else if constexpr (std::is_same_v<T, double>) return py_float_repr(x);
        else if constexpr (std::is_same_v<T, std::string>) return x;
        else if constexpr (std::is_same_v<T, SeqPtr>) return seq_repr(*x);
        else if constexpr (std::is_same_v<T, DictPtr>) return dict_repr(*x);
        else if constexpr (std::is_same_v<T, ObjPtr>) return x->repr();
        else return "<function " + x->name + ">";
      },
      v.storage());
}

std::string py_repr(const Value& v) {
  if (v.is_string()) return py_repr_string(v.str());
  if (v.is_undefined()) return "Undefined";
  return py_str(v);
}

bool py_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) {
      int64_t x = a.is_bool() ? a.as_bool() : a.as_int();
      int64_t y = b.is_bool() ? b.as_bool() : b.as_int();
      return x == y;
    }
    return a.to_double() == b.to_double();
  }
  if (a.storage().index() != b.storage().index()) return false;
  if (a.is_undefined() || a.is_none()) return true;
  if (a.is_string()) return a.str() == b.str();
  if (a.is_seq()) {
    NestingLevel guard;
    const Sequence &x = a.seq(), &y = b.seq();
    if (&x == &y) return true;
    if (x.kind != y.kind || x.kind == Sequence::Kind::Generator || x.items.size() != y.items.size()) return false;
    for (size_t i = 0; i < x.items.size(); ++i)
      if (!py_equal(x.items[i], y.items[i])) return false;
    return true;
  }
  if (a.is_dict()) {
    NestingLevel guard;
    const Dict &x = a.dict_ref(), &y = b.dict_ref();
    if (x.items.size() != y.items.size()) return false;
    for (const auto& [k, v] : x.items) {
      const Value* o = y.find(k);
      if (!o || !py_equal(v, *o)) return false;
    }
    return true;
  }
  if (a.is_object()) return a.object_ptr() == b.object_ptr();
  if (a.is_callable()) return &a.callable() == &b.callable();
  return false;
}

int py_compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) {
      int64_t x = a.is_bool() ? a.as_bool() : a.as_int();
      int64_t y = b.is_bool() ? b.as_bool() : b.as_int();
      return x < y ? -1 : x > y;
    }
    double x = a.to_double(), y = b.to_double();
    return x < y ? -1 : x > y;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());  // byte order of UTF-8 equals code point order
    return c < 0 ? -1 : c > 0;
  }
  if (a.is_seq() && b.is_seq() && a.seq().kind == b.seq().kind &&
      (a.seq().kind == Sequence::Kind::List || a.seq().kind == Sequence::Kind::Tuple)) {
    NestingLevel guard;
    const auto &x = a.seq().items, &y = b.seq().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (py_equal(x[i], y[i])) continue;
      return py_compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size();
  }
  throw RuntimeError("'<' not supported between instances of '{}' and '{}'", a.type_name(), b.type_name());
}

std::vector<Value> py_iterate(const Value& v) {
  if (v.is_undefined()) return {};
  if (v.is_string()) {
    std::vector<Value> r;
    const std::string& s = v.str();
    for (size_t i = 0; i < s.size();) {
      size_t j = i;
      next_codepoint(s, j);
      r.emplace_back(s.substr(i, j - i));
      i = j;
    }
    return r;
  }
  if (v.is_seq()) {
    Sequence& s = v.seq();
    if (s.kind == Sequence::Kind::Generator) {
      if (s.consumed) return {};
      s.consumed = true;
    }
    return s.items;
  }
  if (v.is_dict()) {
    std::vector<Value> r;
    for (const auto& kv : v.dict_ref().items) r.push_back(kv.first);
    return r;
  }
  throw RuntimeError("'{}' object is not iterable", v.type_name());
}

int64_t py_len(const Value& v) {
  if (v.is_undefined()) return 0;
  if (v.is_string()) return static_cast<int64_t>(codepoint_count(v.str()));
  if (v.is_seq() && !v.is_generator()) return static_cast<int64_t>(v.seq().items.size());
  if (v.is_dict()) return static_cast<int64_t>(v.dict_ref().items.size());
  throw RuntimeError("object of type '{}' has no len()", v.type_name());
}

}  // namespace gemma4::jinja

#include "text/jinja_json.h"

#include <algorithm>
#include <cmath>

#include "text/jinja_unicode.h"

namespace gemma4::jinja {
namespace {

void dump_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    char32_t c = next_codepoint(s, i);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
      if (c >= 0x10000) {
        char32_t v = c - 0x10000;
        out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      }
    } else {
      append_utf8(out, c);
    }
  }
  out += '"';
}

std::string float_json(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return py_float_repr(d);
}

// Python converts non-string dict keys: True -> "true", None -> "null", numbers via repr.
std::string key_string(const Value& k) {
  if (k.is_string()) return k.str();
  if (k.is_bool()) return k.as_bool() ? "true" : "false";
  if (k.is_none()) return "null";
  if (k.is_int()) return std::to_string(k.as_int());
  if (k.is_float()) return float_json(k.as_float());
  throw RuntimeError("keys must be str, int, float, bool or None, not {}", k.type_name());
}

class Dumper {
 public:
  explicit Dumper(const JsonDumpOptions& o) : o_(o) {
    item_sep_ = o.item_separator.value_or(o.indent ? "," : ", ");
    key_sep_ = o.key_separator.value_or(": ");
  }

  void dump(std::string& out, const Value& v, int level) {
    NestingLevel guard;
    if (v.is_none()) out += "null";
    else if (v.is_bool()) out += v.as_bool() ? "true" : "false";
    else if (v.is_int()) out += std::to_string(v.as_int());
    else if (v.is_float()) out += float_json(v.as_float());
    else if (v.is_string()) dump_string(out, v.str(), o_.ensure_ascii);
    else if (v.is_seq() && (v.seq().kind == Sequence::Kind::List || v.seq().kind == Sequence::Kind::Tuple))
      dump_list(out, v.seq().items, level);
    else if (v.is_dict()) dump_dict(out, v.dict_ref(), level);
    else throw RuntimeError("Object of type {} is not JSON serializable", v.type_name());
  }

 private:
  const JsonDumpOptions& o_;
  std::string item_sep_, key_sep_;

  void newline(std::string& out, int level) {
    out += '\n';
    for (int i = 0; i < level; ++i) out += *o_.indent;
  }

  void dump_list(std::string& out, const std::vector<Value>& items, int level) {
    if (items.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += item_sep_;
      if (o_.indent) newline(out, level + 1);
      dump(out, items[i], level + 1);
    }
    if (o_.indent) newline(out, level);
    out += ']';
  }

  void dump_dict(std::string& out, const Dict& d, int level) {
    if (d.items.empty()) {
      out += "{}";
      return;
    }
    std::vector<const std::pair<Value, Value>*> items;
    for (const auto& kv : d.items) items.push_back(&kv);
    if (o_.sort_keys)
      std::stable_sort(items.begin(), items.end(),
                       [](auto* a, auto* b) { return py_compare(a->first, b->first) < 0; });
    out += '{';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += item_sep_;
      if (o_.indent) newline(out, level + 1);
      dump_string(out, key_string(items[i]->first), o_.ensure_ascii);
      out += key_sep_;
      dump(out, items[i]->second, level + 1);
    }
    if (o_.indent) newline(out, level);
    out += '}';
  }
};

}  // namespace

std::string py_json_dumps(const Value& v, const JsonDumpOptions& opt) {
  std::string out;
  Dumper(opt).dump(out, v, 0);
  return out;
}

}  // namespace gemma4::jinja

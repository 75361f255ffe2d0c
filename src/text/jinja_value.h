// Values of the Jinja engine with Python semantics: what jinja2 sees when HF passes JSON-decoded messages
// (None, bool, int, float, str, list, dict) plus the template's own objects (Undefined, tuples, generators,
// namespace(), loop, macros and bound methods).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace gemma4::jinja {

// A runtime error without a template position; the evaluator adds "file:line: " when it passes through.
class RuntimeError : public Error {
 public:
  using Error::Error;
};

class Value;

struct Undefined {
  std::string hint;  // what was looked up, for error messages ("'x' is undefined")
};
struct None {};

// list, tuple (from literals, dict.items(), dictsort), a one-shot generator (map, select, ...) or the
// result of range() (printed as "range(0, 3)").
struct Sequence {
  enum class Kind { List, Tuple, Generator, Range } kind = Kind::List;
  std::string range_repr;
  std::vector<Value> items;
  bool consumed = false;  // generators are empty after their first iteration, as in Python
  int depth = 1;          // nesting depth of containers (bounded, see nesting_depth)
};

// A Python dict: insertion-ordered, keys compared with Python equality.
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  int depth = 1;
  const Value* find(const Value& key) const;
  const Value* find_str(std::string_view key) const;
  void set(Value key, Value value);
};

// Objects with attributes: namespace(), the loop variable.
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;
  virtual std::string repr() const = 0;
  virtual bool get(std::string_view name, Value& out) const = 0;  // false if no such attribute
  virtual bool set(std::string_view name, const Value& v);         // false if read-only
  virtual bool is_namespace() const { return false; }
  virtual int depth() const { return 1; }
};

struct CallArgs;
struct Callable {
  std::string name;  // "macro 'm'", "str.split", "namespace"
  std::function<Value(CallArgs&)> fn;
};

using SeqPtr = std::shared_ptr<Sequence>;
using DictPtr = std::shared_ptr<Dict>;
using ObjPtr = std::shared_ptr<Object>;
using CallPtr = std::shared_ptr<Callable>;

class Value {
 public:
  using Storage = std::variant<Undefined, None, bool, int64_t, double, std::string, SeqPtr, DictPtr, ObjPtr, CallPtr>;
  Value() : v_(Undefined{}) {}
  Value(None) : v_(None{}) {}
  Value(Undefined u) : v_(std::move(u)) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(int64_t i) : v_(i) {}
  Value(long long i) : v_(static_cast<int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(SeqPtr s) : v_(std::move(s)) {}
  Value(DictPtr d) : v_(std::move(d)) {}
  Value(ObjPtr o) : v_(std::move(o)) {}
  Value(CallPtr c) : v_(std::move(c)) {}

  static Value list(std::vector<Value> items, Sequence::Kind kind = Sequence::Kind::List);
  static Value dict();
  static Value from_json(const nlohmann::ordered_json& j);

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<None>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_bool() || is_int() || is_float(); }  // Python numbers.Number
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_seq() const { return std::holds_alternative<SeqPtr>(v_); }
  bool is_dict() const { return std::holds_alternative<DictPtr>(v_); }
  bool is_object() const { return std::holds_alternative<ObjPtr>(v_); }
  bool is_callable() const { return std::holds_alternative<CallPtr>(v_); }
  bool is_generator() const { return is_seq() && seq().kind == Sequence::Kind::Generator; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  const std::string& str() const { return std::get<std::string>(v_); }
  Sequence& seq() const { return *std::get<SeqPtr>(v_); }
  Dict& dict_ref() const { return *std::get<DictPtr>(v_); }
  const DictPtr& dict_ptr() const { return std::get<DictPtr>(v_); }
  Object& object() const { return *std::get<ObjPtr>(v_); }
  const ObjPtr& object_ptr() const { return std::get<ObjPtr>(v_); }
  Callable& callable() const { return *std::get<CallPtr>(v_); }
  const Undefined& undefined() const { return std::get<Undefined>(v_); }

  // Numeric value of bool/int/float (Python: True == 1).
  double to_double() const;
  bool truthy() const;
  std::string type_name() const;  // Python's type name: 'str', 'int', 'dict', ...

  const Storage& storage() const { return v_; }

 private:
  Storage v_;
};

// Positional and keyword arguments of a call, a filter or a test (the subject excluded).
struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

// Binds CallArgs to a Python signature: names in order; throws on unknown or surplus arguments.
class ArgBinder {
 public:
  ArgBinder(const CallArgs& args, std::string_view what, std::initializer_list<const char*> names);
  bool has(size_t i) const { return set_[i]; }
  const Value& get(size_t i) const { return vals_[i]; }
  Value get_or(size_t i, Value dflt) const { return set_[i] ? vals_[i] : dflt; }

 private:
  std::vector<Value> vals_;
  std::vector<bool> set_;
};

// Python semantics. Recursive operations stop at 500 levels of nesting with a RuntimeError.
std::string py_str(const Value& v);   // str(v); Undefined -> ""
std::string py_repr(const Value& v);  // repr(v)
std::string py_repr_string(std::string_view s);
std::string py_float_repr(double d);
bool py_equal(const Value& a, const Value& b);
int py_compare(const Value& a, const Value& b);  // <0, 0, >0; RuntimeError for unorderable types
// Iterates like Python iter(): str -> chars, dict -> keys, Undefined -> nothing; marks generators consumed.
std::vector<Value> py_iterate(const Value& v);
int64_t py_len(const Value& v);  // RuntimeError if unsized
// Containers nest at most 500 deep (RuntimeError when building deeper ones), so printing, comparing and
// freeing them cannot overflow the stack.
int nesting_depth(const Value& v);
// Throws Error if `j` nests deeper than the value limit (checked without recursion, before anything copies
// the JSON recursively).
void check_json_nesting(const nlohmann::ordered_json& j);
void check_json_nesting(const nlohmann::json& j);
// Guards one level of recursion into a nested value (RuntimeError beyond the limit).
struct NestingLevel {
  NestingLevel();
  ~NestingLevel();
};

}  // namespace gemma4::jinja

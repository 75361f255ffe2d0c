// Built-in filters, tests, global functions and Python methods of the Jinja engine (jinja2 3.1 semantics,
// with Hugging Face's tojson, raise_exception and strftime_now).
#pragma once
#include <functional>
#include <string_view>

#include "text/jinja_value.h"

namespace gemma4::jinja {

// Calls back into the evaluator, for filters that apply other filters or tests (map, select, ...).
struct FilterEnv {
  std::function<Value(std::string_view name, const Value& input, const CallArgs& args)> call_filter;
  std::function<bool(std::string_view name, const Value& input, const CallArgs& args)> call_test;
};

bool has_filter(std::string_view name);
bool has_test(std::string_view name);
Value apply_filter(std::string_view name, const Value& input, const CallArgs& args, const FilterEnv& env);
bool apply_test(std::string_view name, const Value& input, const CallArgs& args);

// Globals visible to every template: namespace, range, dict, raise_exception, strftime_now.
void add_globals(Dict& globals);

// Attribute access `obj.name` and subscript `obj[key]` with jinja2's sandboxed semantics: attribute
// access prefers Python attributes (bound methods such as dict.items, str.split), subscript prefers items;
// each falls back to the other; missing -> Undefined. Accessing anything on Undefined is an error.
Value get_attr(const Value& obj, std::string_view name);
Value get_item(const Value& obj, const Value& key);
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

}  // namespace gemma4::jinja

namespace gemma4::jinja {
// Python's `item in container`.
bool py_in(const Value& item, const Value& container);
}  // namespace gemma4::jinja

namespace gemma4::jinja {
// Python's binary operators as jinja2 applies them: + - * / // % ** and `~` (string concatenation).
Value py_binary(std::string_view op, const Value& a, const Value& b);
Value py_negate(const Value& a, bool negative);
}  // namespace gemma4::jinja

// Template errors: syntax errors and unsupported constructs name the construct and the line; runtime errors
// name the line; hostile input is an error, never a crash.
#include <gtest/gtest.h>

#include "text/jinja.h"

namespace gemma4::jinja {
namespace {

std::string error_of(const std::string& src, const nlohmann::ordered_json& vars = nlohmann::ordered_json::object()) {
  try {
    Template t(src, "chat_template.jinja");
    t.render(vars);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(JinjaErrors, UnsupportedConstructsNameItAndTheLine) {
  EXPECT_EQ(error_of("a\nb\n{{ x | nosuchfilter }}"), "chat_template.jinja:3: unsupported filter 'nosuchfilter'");
  EXPECT_EQ(error_of("{% if x is nosuchtest %}{% endif %}"), "chat_template.jinja:1: unsupported test 'nosuchtest'");
  EXPECT_EQ(error_of("\n{% include 'other.jinja' %}"), "chat_template.jinja:2: unsupported tag 'include'");
  EXPECT_EQ(error_of("{% extends 'base' %}"), "chat_template.jinja:1: unsupported tag 'extends'");
  EXPECT_EQ(error_of("{% for x in y recursive %}{% endfor %}"),
            "chat_template.jinja:1: unsupported: recursive for loops");
  EXPECT_EQ(error_of("{{ f(*args) }}"), "chat_template.jinja:1: unsupported: *args / **kwargs in calls");
  EXPECT_EQ(error_of("{{ '%s' % 1 }}"),
            "chat_template.jinja:1: unsupported: printf-style string formatting ('%')");
  EXPECT_EQ(error_of("{{ [1] | map('upper') }}"),
            "chat_template.jinja:1: unsupported: printing a generator (jinja2 prints its memory address); add '| list'");
}

TEST(JinjaErrors, SyntaxErrorsNameTheLine) {
  EXPECT_EQ(error_of("{% if x %}\nabc"), "chat_template.jinja:2: unexpected end of template, expected 'endif'");
  EXPECT_EQ(error_of("{% for x in y %}\n{% endif %}"),
            "chat_template.jinja:2: unexpected tag 'endif' (the innermost open block expects 'endfor')");
  EXPECT_EQ(error_of("ok\n{% endif %}"), "chat_template.jinja:2: unexpected tag 'endif'");
  EXPECT_EQ(error_of("{{ 1 + }}"), "chat_template.jinja:1: unexpected end of print statement '}}'");
  EXPECT_EQ(error_of("\n\n{{ 'abc }}"), "chat_template.jinja:3: unterminated string literal");
  EXPECT_EQ(error_of("{{ x }"), "chat_template.jinja:1: unexpected '}'");
  EXPECT_EQ(error_of("{{ x"), "chat_template.jinja:1: unexpected end of template inside '{{', expected '}}'");
  EXPECT_EQ(error_of("{# never closed"), "chat_template.jinja:1: missing end of comment tag");
  EXPECT_EQ(error_of("{% break %}"), "chat_template.jinja:1: 'break' outside of a loop");
  EXPECT_EQ(error_of("{{ a ! b }}"), "chat_template.jinja:1: unexpected character '!'");
  EXPECT_EQ(error_of("{% macro m(a=1, b) %}{% endmacro %}"),
            "chat_template.jinja:1: non-default argument follows default argument");
  EXPECT_EQ(error_of("{% set 1 = 2 %}"), "chat_template.jinja:1: expected a name, got '1'");
  EXPECT_EQ(error_of("{{ 'x' is string is string }}"),
            "chat_template.jinja:1: you cannot chain multiple tests with 'is'");
}

TEST(JinjaErrors, RuntimeErrorsNameTheLine) {
  EXPECT_EQ(error_of("a\n\n{{ missing.attr }}"),
            "chat_template.jinja:3: 'missing' is undefined (while looking up attribute 'attr')");
  EXPECT_EQ(error_of("{% macro m() %}\n{{ raise_exception('bad input') }}{% endmacro %}\n{{ m() }}"),
            "chat_template.jinja:2: raise_exception: bad input");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "chat_template.jinja:1: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("{{ 1 // 0 }}"), "chat_template.jinja:1: integer division or modulo by zero");
  EXPECT_EQ(error_of("{{ 2 ** 64 }}"),
            "chat_template.jinja:1: integer overflow (Python integers are unbounded; this engine uses 64 bits)");
  EXPECT_EQ(error_of("{{ x | dictsort }}", {{"x", {1, 2}}}), "chat_template.jinja:1: dictsort expects a mapping, got 'list'");
  EXPECT_EQ(error_of("{% for a in 5 %}{% endfor %}"), "chat_template.jinja:1: 'int' object is not iterable");
}

TEST(JinjaErrors, HostileInputIsAnErrorNotACrash) {
  EXPECT_EQ(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"),
            "chat_template.jinja:1: macro 'f': maximum recursion depth exceeded");
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_EQ(error_of(deep), "chat_template.jinja:1: template nested too deeply (limit 400)");
  std::string deep_if;
  for (int i = 0; i < 2000; ++i) deep_if += "{% if true %}";
  EXPECT_EQ(error_of(deep_if), "chat_template.jinja:1: template nested too deeply (limit 400)");
  EXPECT_EQ(error_of("{{ range(200000) | length }}"),
            "chat_template.jinja:1: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  EXPECT_EQ(error_of("{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}"),
            "chat_template.jinja:1: value nested too deeply (limit 500)");
  EXPECT_EQ(error_of("{% set h = namespace(n=none) %}{% for i in range(100000) %}{% set h.n = namespace(y=h.n) %}{% endfor %}"),
            "chat_template.jinja:1: value nested too deeply (limit 500)");
  EXPECT_EQ(error_of("{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns }}"),
            "chat_template.jinja:1: value nested too deeply (limit 500)");
  // The loop object outlives its loop safely.
  EXPECT_EQ(error_of("{% set ns = namespace() %}{% for i in 'ab' %}{% set ns.l = loop %}{% endfor %}{{ ns.l.index }}{{ ns.l.length }}{{ x }}",
                     {{"x", nlohmann::ordered_json::array({nlohmann::ordered_json::array()})}}),
            "(no error)");
  EXPECT_EQ(error_of(std::string("{{ 'a\xff' }}")), "chat_template.jinja: template is not valid UTF-8");
  EXPECT_EQ(error_of("x", nlohmann::ordered_json::array()), "chat_template.jinja: template variables must be a JSON object");
}

}  // namespace
}  // namespace gemma4::jinja

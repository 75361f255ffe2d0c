// Jinja lexer with the environment Hugging Face renders chat templates with: trim_blocks=True,
// lstrip_blocks=True, default delimiters, newlines normalised to "\n" and one trailing newline dropped
// (keep_trailing_newline=False). Whitespace control (`{%-`, `-%}`, `{%+`, `+%}`) follows jinja2's lexer.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gemma4::jinja {

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // data text, name, unescaped string value, operator, or number spelling
  int line = 1;
  int64_t ival = 0;
  double fval = 0;
};

// Throws Error "NAME:LINE: message" on a lexical error.
std::vector<Token> lex(std::string_view source, const std::string& name);

}  // namespace gemma4::jinja

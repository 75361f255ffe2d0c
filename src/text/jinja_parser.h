// Recursive-descent parser for the Jinja subset, following jinja2's grammar and operator precedence
// (filters bind tighter than arithmetic; `not x | f` is `not (x | f)`). Unknown tags, filters and tests are
// errors naming the construct and its line ("chat_template.jinja:12: unsupported filter 'xyz'").
#pragma once
#include <string>
#include <vector>

#include "text/jinja_ast.h"
#include "text/jinja_lexer.h"

namespace gemma4::jinja {

Body parse(const std::vector<Token>& tokens, const std::string& name);

}  // namespace gemma4::jinja

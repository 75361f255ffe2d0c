// UTF-8 and Python `str` helpers for the Jinja engine: code-point indexing, Python's notion of whitespace
// (str.isspace / re's \s), case mapping and isprintable (used by repr()).
//
// Case mapping and isprintable cover ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic and fullwidth Latin
// exactly; other scripts are left unchanged (no linked Unicode database; see jinja_unicode.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/utf8.h"

namespace gemma4::jinja {

// Decodes one code point starting at s[i]; advances i. Invalid bytes decode as U+FFFD (inputs are validated
// at the boundary, so this only guards against misuse).
char32_t next_codepoint(std::string_view s, size_t& i);
using tok::append_utf8;  // the tokenizer's encoder (text/utf8.h)
std::u32string to_u32(std::string_view s);
std::string to_utf8(std::u32string_view s);
bool is_valid_utf8(std::string_view s);
size_t codepoint_count(std::string_view s);

bool py_isspace(char32_t c);
bool py_isprintable(char32_t c);
char32_t simple_lower(char32_t c);
char32_t simple_upper(char32_t c);
bool is_cased_lower(char32_t c);
bool is_cased_upper(char32_t c);

// Python str methods on UTF-8 strings.
std::string py_lower(std::string_view s);
std::string py_upper(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_title(std::string_view s);
// chars == nullptr: strip Python whitespace; otherwise strip any code point in *chars.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);
std::vector<std::string> py_split_whitespace(std::string_view s, long long maxsplit);
std::vector<std::string> py_split(std::string_view s, std::string_view sep, long long maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, std::string_view sep, long long maxsplit);
std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, long long count);
long long py_count(std::string_view s, std::string_view sub);

}  // namespace gemma4::jinja

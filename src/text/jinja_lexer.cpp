#include "text/jinja_lexer.h"

#include <cerrno>
#include <cstdlib>

#include "core/error.h"
#include "text/jinja_unicode.h"

namespace gemma4::jinja {
namespace {

// jinja2 normalises "\r\n" and "\r" to "\n" and drops one trailing newline.
std::string normalize_source(std::string_view src) {
  std::string s;
  s.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      s += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      s += src[i];
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// Python's \s at s[i] (ASCII or Unicode whitespace); returns its byte length or 0.
size_t space_at(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  size_t j = i;
  char32_t c = next_codepoint(s, j);
  return py_isspace(c) ? j - i : 0;
}

size_t skip_spaces(std::string_view s, size_t i) {
  while (size_t k = space_at(s, i)) i += k;
  return i;
}

bool only_spaces(std::string_view s) { return !s.empty() && skip_spaces(s, 0) == s.size(); }

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

class Lexer {
 public:
  Lexer(std::string_view src, const std::string& name) : src_(normalize_source(src)), name_(name) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      size_t tag = find_tag_start(pos_);
      if (tag == std::string::npos) {
        emit_data(src_.substr(pos_), line_);
        count_lines(pos_, src_.size());
        pos_ = src_.size();
        break;
      }
      lex_tag(tag);
    }
    out_.push_back({Tok::Eof, "", line_});
    return std::move(out_);
  }

 private:
  std::string src_;
  std::string name_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;  // the previous match ended with "\n" (jinja2's lstrip_blocks rule)
  std::vector<Token> out_;

  [[noreturn]] void fail(int line, const std::string& msg) const { throw Error("{}:{}: {}", name_, line, msg); }

  void count_lines(size_t a, size_t b) {
    for (size_t i = a; i < b; ++i) line_ += src_[i] == '\n';
  }

  bool at(size_t i, std::string_view s) const { return src_.compare(i, s.size(), s) == 0; }

  size_t find_tag_start(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  void emit_data(std::string text, int line) {
    if (!text.empty()) out_.push_back({Tok::Data, std::move(text), line});
  }

  // Applies `{%-` / lstrip_blocks to the text in front of a tag, as jinja2's OptionalLStrip does.
  std::string strip_before(std::string text, char sign, bool is_variable) const {
    if (sign == '-') return py_strip(text, nullptr, false, true);
    if (sign != '+' && !is_variable) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && only_spaces(std::string_view(text).substr(l_pos))) text.resize(l_pos);
    }
    return text;
  }

  void lex_tag(size_t tag) {
    char kind = src_[tag + 1];
    size_t p = tag + 2;
    char sign = (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ? src_[p] : 0;
    if (kind == '%' && try_raw(tag, p + (sign ? 1 : 0), sign)) return;
    int text_line = line_;
    emit_data(strip_before(src_.substr(pos_, tag - pos_), sign, kind == '{'), text_line);
    count_lines(pos_, tag);
    pos_ = p + (sign ? 1 : 0);
    line_starting_ = false;
    if (kind == '#') {
      lex_comment();
    } else {
      lex_expression_tag(kind == '%');
    }
  }

  void lex_comment() {
    int start_line = line_;
    for (size_t i = pos_; i < src_.size(); ++i) {
      size_t end;
      if (at(i, "+#}")) {
        end = i + 3;
      } else if (at(i, "-#}")) {
        end = skip_spaces(src_, i + 3);
      } else if (at(i, "#}")) {
        end = i + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
      } else {
        continue;
      }
      count_lines(pos_, end);
      line_starting_ = end > 0 && src_[end - 1] == '\n';
      pos_ = end;
      return;
    }
    fail(start_line, "missing end of comment tag");
  }

  // `{% raw %}...{% endraw %}`: the body is data, untouched.
  bool try_raw(size_t tag, size_t p, char sign) {
    size_t q = skip_spaces(src_, p);
    if (!at(q, "raw")) return false;
    size_t r = skip_spaces(src_, q + 3);
    size_t body;
    if (at(r, "-%}")) body = skip_spaces(src_, r + 3);
    else if (at(r, "%}")) body = r + 2;
    else return false;
    emit_data(strip_before(src_.substr(pos_, tag - pos_), sign, false), line_);
    count_lines(pos_, body);
    for (size_t i = src_.find("{%", body); i != std::string::npos; i = src_.find("{%", i + 1)) {
      size_t k = i + 2;
      char esign = (k < src_.size() && (src_[k] == '-' || src_[k] == '+')) ? src_[k] : 0;
      size_t e = skip_spaces(src_, k + (esign ? 1 : 0));
      if (!at(e, "endraw")) continue;
      e = skip_spaces(src_, e + 6);
      size_t end;
      if (at(e, "+%}")) end = e + 3;
      else if (at(e, "-%}")) end = skip_spaces(src_, e + 3);
      else if (at(e, "%}")) end = e + 2 + ((e + 2 < src_.size() && src_[e + 2] == '\n') ? 1 : 0);
      else continue;
      line_starting_ = false;
      emit_data(strip_before(src_.substr(body, i - body), esign, false), line_);
      count_lines(body, end);
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return true;
    }
    fail(line_, "missing endraw tag");
  }

  void lex_expression_tag(bool block) {
    out_.push_back({block ? Tok::BlockBegin : Tok::VarBegin, "", line_});
    std::vector<char> balance;
    size_t& p = pos_;
    while (true) {
      if (p >= src_.size()) fail(line_, block ? "unexpected end of template inside a block tag, expected '%}'"
                                              : "unexpected end of template inside '{{', expected '}}'");
      if (balance.empty()) {
        size_t end = 0;
        if (block) {
          if (at(p, "-%}")) end = skip_spaces(src_, p + 3);
          else if (at(p, "+%}")) end = p + 3;
          else if (at(p, "%}")) end = p + 2 + ((p + 2 < src_.size() && src_[p + 2] == '\n') ? 1 : 0);
        } else {
          if (at(p, "-}}")) end = skip_spaces(src_, p + 3);
          else if (at(p, "}}")) end = p + 2;
        }
        if (end) {
          out_.push_back({block ? Tok::BlockEnd : Tok::VarEnd, "", line_});
          count_lines(p, end);
          line_starting_ = src_[end - 1] == '\n';
          p = end;
          return;
        }
      }
      if (size_t k = space_at(src_, p)) {
        if (src_[p] == '\n') ++line_;
        p += k;
        continue;
      }
      char c = src_[p];
      if (is_digit(c)) {
        lex_number();
      } else if (is_name_start(c)) {
        size_t e = p;
        while (e < src_.size() && is_name_char(src_[e])) ++e;
        out_.push_back({Tok::Name, src_.substr(p, e - p), line_});
        p = e;
      } else if (c == '\'' || c == '"') {
        lex_string();
      } else {
        lex_operator(balance);
      }
    }
  }

  // Digits with optional '_' separators starting at i; returns the end.
  size_t digits_end(size_t i) const {
    size_t e = i;
    while (e < src_.size() && is_digit(src_[e])) {
      ++e;
      if (e + 1 < src_.size() && src_[e] == '_' && is_digit(src_[e + 1])) ++e;
    }
    return e;
  }

  void lex_number() {
    size_t p = pos_;
    size_t e = digits_end(p);
    bool is_float = false;
    bool after_dot = p > 0 && src_[p - 1] == '.';  // jinja2: a float never starts right after '.'
    if (!after_dot) {
      size_t f = e;
      if (f + 1 < src_.size() && src_[f] == '.' && is_digit(src_[f + 1])) {
        f = digits_end(f + 1);
        is_float = true;
      }
      if (f < src_.size() && (src_[f] == 'e' || src_[f] == 'E')) {
        size_t g = f + 1;
        if (g < src_.size() && (src_[g] == '+' || src_[g] == '-')) ++g;
        if (g < src_.size() && is_digit(src_[g])) {
          f = digits_end(g);
          is_float = true;
        }
      }
      if (is_float) e = f;
    }
    std::string text = src_.substr(p, e - p), clean;
    for (char ch : text)
      if (ch != '_') clean += ch;
    Token t{is_float ? Tok::Float : Tok::Int, text, line_};
    if (is_float) {
      t.fval = std::strtod(clean.c_str(), nullptr);
    } else {
      errno = 0;
      t.ival = std::strtoll(clean.c_str(), nullptr, 10);
      if (errno == ERANGE) fail(line_, fmt::format("integer literal {} is too large", text));
    }
    out_.push_back(std::move(t));
    pos_ = e;
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // String literal with Python "unicode-escape" semantics (what jinja2 applies to literals).
  void lex_string() {
    char q = src_[pos_];
    int start_line = line_;
    std::string val;
    size_t i = pos_ + 1;
    while (true) {
      if (i >= src_.size()) fail(start_line, "unterminated string literal");
      char c = src_[i];
      if (c == q) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        val += c;
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) fail(start_line, "unterminated string literal");
      char e = src_[i + 1];
      i += 2;
      switch (e) {
        case '\n': ++line_; break;  // line continuation
        case '\\': val += '\\'; break;
        case '\'': val += '\''; break;
        case '"': val += '"'; break;
        case 'a': val += '\a'; break;
        case 'b': val += '\b'; break;
        case 'f': val += '\f'; break;
        case 'n': val += '\n'; break;
        case 'r': val += '\r'; break;
        case 't': val += '\t'; break;
        case 'v': val += '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            int h = i + k < src_.size() ? hex_value(src_[i + k]) : -1;
            if (h < 0) fail(start_line, fmt::format("truncated \\{} escape in string literal", e));
            cp = cp * 16 + h;
          }
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            fail(start_line, "invalid code point escape in string literal");
          append_utf8(val, cp);
          i += n;
          break;
        }
        case 'N': fail(start_line, "unsupported escape \\N{...} in string literal");
        default:
          if (e >= '0' && e <= '7') {
            unsigned v = e - '0';
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k) v = v * 8 + (src_[i++] - '0');
            append_utf8(val, v);
          } else {
            val += '\\';  // unknown escapes stay as written
            val += e;
          }
      }
    }
    out_.push_back({Tok::String, std::move(val), start_line});
    pos_ = i + 1;
  }

  void lex_operator(std::vector<char>& balance) {
    static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : two) {
      if (at(pos_, op)) {
        out_.push_back({Tok::Op, op, line_});
        pos_ += 2;
        return;
      }
    }
    char c = src_[pos_];
    static const std::string singles = "+-/*%~[](){}<>=.:|,;";
    if (singles.find(c) == std::string::npos) {
      size_t j = pos_;
      std::string ch;
      append_utf8(ch, next_codepoint(src_, j));
      fail(line_, fmt::format("unexpected character '{}'", ch));
    }
    if (c == '(' || c == '[' || c == '{') {
      balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty() || balance.back() != c) fail(line_, fmt::format("unexpected '{}'", c));
      balance.pop_back();
    }
    out_.push_back({Tok::Op, std::string(1, c), line_});
    ++pos_;
  }
};

}  // namespace

std::vector<Token> lex(std::string_view source, const std::string& name) {
  if (!is_valid_utf8(source)) throw Error("{}: template is not valid UTF-8", name);
  return Lexer(source, name).run();
}

}  // namespace gemma4::jinja

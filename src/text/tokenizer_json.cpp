#include "text/tokenizer_json.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "text/utf8.h"

namespace gemma4::tok {

void JsonScanner::fail(std::string_view what) const {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < p_ && i < s_.size(); ++i) {
    if (s_[i] == '\n') ++line, col = 1;
    else ++col;
  }
  if (p_ >= s_.size()) throw Error("{}: invalid JSON: {} (unexpected end of file)", file_, what);
  throw Error("{}: invalid JSON at line {} column {}: {}", file_, line, col, what);
}

void JsonScanner::expect(char c) {
  if (peek() != c) fail(std::string("expected '") + c + "'");
  ++p_;
}

bool JsonScanner::more(char close, bool first) {
  char c = peek();
  if (c == close) {
    ++p_;
    return false;
  }
  if (!first) {
    if (c != ',') fail(std::string("expected ',' or '") + close + "'");
    ++p_;
  }
  return true;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view JsonScanner::string(std::string* scratch) {
  expect('"');
  size_t start = p_;
  // Fast path: no escapes.
  while (p_ < s_.size()) {
    char c = s_[p_];
    if (c == '"') return s_.substr(start, p_++ - start);
    if (c == '\\') break;
    if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
    ++p_;
  }
  if (p_ >= s_.size()) fail("unterminated string");
  scratch->assign(s_.data() + start, p_ - start);
  auto read_u16 = [&]() -> uint32_t {
    if (p_ + 4 > s_.size()) fail("bad \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      int d = hex_digit(s_[p_ + k]);
      if (d < 0) fail("bad \\u escape");
      v = v * 16 + d;
    }
    p_ += 4;
    return v;
  };
  while (p_ < s_.size()) {
    char c = s_[p_++];
    if (c == '"') return *scratch;
    if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
    if (c != '\\') {
      *scratch += c;
      continue;
    }
    if (p_ >= s_.size()) break;
    char e = s_[p_++];
    switch (e) {
      case '"': *scratch += '"'; break;
      case '\\': *scratch += '\\'; break;
      case '/': *scratch += '/'; break;
      case 'b': *scratch += '\b'; break;
      case 'f': *scratch += '\f'; break;
      case 'n': *scratch += '\n'; break;
      case 'r': *scratch += '\r'; break;
      case 't': *scratch += '\t'; break;
      case 'u': {
        uint32_t cp = read_u16();
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (p_ + 2 > s_.size() || s_[p_] != '\\' || s_[p_ + 1] != 'u') fail("lone surrogate in \\u escape");
          p_ += 2;
          uint32_t lo = read_u16();
          if (lo < 0xDC00 || lo > 0xDFFF) fail("lone surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          fail("lone surrogate in \\u escape");
        }
        append_utf8(*scratch, cp);
        break;
      }
      default: fail("bad escape in string");
    }
  }
  fail("unterminated string");
}

int64_t JsonScanner::integer() {
  ws();
  size_t start = p_;
  bool neg = p_ < s_.size() && s_[p_] == '-';
  if (neg) ++p_;
  int64_t v = 0;
  size_t digits = 0;
  while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') {
    if (digits > 15) fail("integer too large");
    v = v * 10 + (s_[p_++] - '0');
    ++digits;
  }
  if (digits == 0 || (digits > 1 && s_[start + neg] == '0')) fail("expected an integer");
  if (p_ < s_.size() && (s_[p_] == '.' || s_[p_] == 'e' || s_[p_] == 'E')) fail("expected an integer");
  return neg ? -v : v;
}

std::string_view JsonScanner::skip_value() {
  ws();
  size_t start = p_;
  std::vector<char> stack;  // open brackets
  std::string scratch;
  auto digits = [&] {
    if (p_ >= s_.size() || !(s_[p_] >= '0' && s_[p_] <= '9')) fail("bad number");
    while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
  };
  for (;;) {
    // Parse one value; an opening bracket of a non-empty container loops back for its first element.
    char c = peek();
    if (c == '{' || c == '[') {
      ++p_;
      char close = c == '{' ? '}' : ']';
      if (peek() != close) {
        stack.push_back(c);
        if (c == '{') {
          string(&scratch);
          expect(':');
        }
        continue;
      }
      ++p_;
    } else if (c == '"') {
      string(&scratch);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      if (c == '-') ++p_;
      if (p_ < s_.size() && s_[p_] == '0') ++p_;
      else digits();
      if (p_ < s_.size() && s_[p_] == '.') ++p_, digits();
      if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
        ++p_;
        if (p_ < s_.size() && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
        digits();
      }
    } else if (s_.substr(p_, 4) == "true" || s_.substr(p_, 4) == "null") {
      p_ += 4;
    } else if (s_.substr(p_, 5) == "false") {
      p_ += 5;
    } else {
      fail("expected a value");
    }
    // After a value: close finished containers, then a comma introduces the next element.
    for (;;) {
      if (stack.empty()) return s_.substr(start, p_ - start);
      char close = stack.back() == '{' ? '}' : ']';
      c = peek();
      if (c == close) {
        ++p_;
        stack.pop_back();
        continue;
      }
      if (c != ',') fail(std::string("expected ',' or '") + close + "'");
      ++p_;
      if (stack.back() == '{') {
        string(&scratch);
        expect(':');
      }
      break;
    }
  }
}

}  // namespace gemma4::tok

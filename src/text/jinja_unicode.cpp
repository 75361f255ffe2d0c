#include "text/jinja_unicode.h"

namespace gemma4::jinja {

char32_t next_codepoint(std::string_view s, size_t& i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return 0xFFFD;
  }
  char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  i += len;
  return cp;
}

std::u32string to_u32(std::string_view s) {
  std::u32string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size();) r += next_codepoint(s, i);
  return r;
}

std::string to_utf8(std::u32string_view s) {
  std::string r;
  r.reserve(s.size());
  for (char32_t c : s) append_utf8(r, c);
  return r;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    size_t j = i;
    char32_t cp = next_codepoint(s, j);
    if (j != i + len || cp == 0xFFFD) {
      // U+FFFD itself is valid when it was really encoded (EF BF BD).
      if (!(len == 3 && s.substr(i, 3) == "\xEF\xBF\xBD")) return false;
    }
    // Overlong encodings, surrogates and out-of-range values are invalid UTF-8 (Python refuses them).
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

size_t codepoint_count(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool py_isprintable(char32_t c) {
  if (c == ' ') return true;
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0)) return false;  // Cc and NBSP (Zs)
  if (py_isspace(c)) return false;                           // other Zs, Zl, Zp
  if (c == 0xAD || (c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x8E2 ||
      c == 0x180E || (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) ||
      (c >= 0x2060 && c <= 0x2064) || (c >= 0x2066 && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB) ||
      c == 0x110BD || c == 0x110CD || (c >= 0x13430 && c <= 0x1343F) || (c >= 0x1BCA0 && c <= 0x1BCA3) ||
      (c >= 0x1D173 && c <= 0x1D17A) || c == 0xE0001 || (c >= 0xE0020 && c <= 0xE007F))
    return false;                                                       // Cf
  if (c >= 0xD800 && c <= 0xF8FF) return false;                         // Cs, Co
  if ((c & 0xFFFE) == 0xFFFE || (c >= 0xFDD0 && c <= 0xFDEF)) return false;  // noncharacters (Cn)
  if (c >= 0x323B0 && c <= 0xE00FF) return false;                       // unassigned planes (Cn)
  if (c >= 0xE01F0) return false;                                       // Cn and private use planes
  return true;
}

// Simple (1:1) case mappings for the blocks listed in the header.
char32_t simple_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 0x20;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x130) return 'i';
    if (c == 0x178) return 0xFF;
    if ((c <= 0x137) || (c >= 0x14A && c <= 0x177)) return (c % 2 == 0) ? c + 1 : c;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 1) ? c + 1 : c;
    return c;
  }
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 0x20;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 0x25;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 0x3F;
  if (c >= 0x410 && c <= 0x42F) return c + 0x20;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F))
    return (c % 2 == 0) ? c + 1 : c;
  if (c == 0x4C0) return 0x4CF;
  if (c >= 0x4C1 && c <= 0x4CE) return (c % 2 == 1) ? c + 1 : c;
  if (c >= 0xFF21 && c <= 0xFF3A) return c + 0x20;
  return c;
}

char32_t simple_upper(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 0x20;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x131) return 'I';
    if (c == 0x17F) return 'S';
    if ((c <= 0x137) || (c >= 0x14A && c <= 0x177)) return (c % 2 == 1) ? c - 1 : c;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 0) ? c - 1 : c;
    return c;
  }
  if (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) return c - 0x20;
  if (c == 0x3C2) return 0x3A3;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 0x25;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 0x3F;
  if (c >= 0x430 && c <= 0x44F) return c - 0x20;
  if (c >= 0x450 && c <= 0x45F) return c - 0x50;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F))
    return (c % 2 == 1) ? c - 1 : c;
  if (c == 0x4CF) return 0x4C0;
  if (c >= 0x4C1 && c <= 0x4CE) return (c % 2 == 0) ? c - 1 : c;
  if (c >= 0xFF41 && c <= 0xFF5A) return c - 0x20;
  return c;
}

bool is_cased_lower(char32_t c) { return simple_upper(c) != c || c == 0xDF || c == 0x138 || c == 0x149; }
bool is_cased_upper(char32_t c) { return simple_lower(c) != c; }
static bool is_cased(char32_t c) { return is_cased_lower(c) || is_cased_upper(c); }

// Python's lower() applies the Final_Sigma rule: a capital sigma preceded by a cased letter and not
// followed by one becomes the final form.
static void append_lower(std::string& out, const std::u32string& u, size_t k) {
  char32_t c = u[k];
  if (c == 0x130) {
    out += "i\xCC\x87";  // U+0130 lowers to "i" + combining dot above
    return;
  }
  if (c == 0x3A3) {
    bool before = k > 0 && is_cased(u[k - 1]);
    bool after = k + 1 < u.size() && is_cased(u[k + 1]);
    append_utf8(out, before && !after ? 0x3C2 : 0x3C3);
    return;
  }
  append_utf8(out, simple_lower(c));
}

static void append_upper(std::string& out, char32_t c) {
  if (c == 0xDF) {
    out += "SS";
  } else if (c == 0x149) {
    out += "\xCA\xBCN";
  } else {
    append_utf8(out, simple_upper(c));
  }
}

std::string py_lower(std::string_view s) {
  std::u32string u = to_u32(s);
  std::string r;
  r.reserve(s.size());
  for (size_t k = 0; k < u.size(); ++k) append_lower(r, u, k);
  return r;
}

std::string py_upper(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size();) append_upper(r, next_codepoint(s, i));
  return r;
}

std::string py_capitalize(std::string_view s) {
  std::u32string u = to_u32(s);
  std::string r;
  for (size_t k = 0; k < u.size(); ++k) {
    if (k == 0) {
      if (u[0] == 0xDF) r += "Ss";  // the first character is title-cased: U+00DF -> "Ss"
      else append_upper(r, u[0]);
    } else {
      append_lower(r, u, k);
    }
  }
  return r;
}

std::string py_title(std::string_view s) {
  std::u32string u = to_u32(s);
  std::string r;
  bool prev_cased = false;
  for (size_t k = 0; k < u.size(); ++k) {
    char32_t c = u[k];
    if (prev_cased) {
      append_lower(r, u, k);
    } else if (c == 0xDF) {
      r += "Ss";  // title case of U+00DF
    } else {
      append_upper(r, c);
    }
    prev_cased = is_cased(c);
  }
  return r;
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::u32string u = to_u32(s);
  std::u32string set = chars ? to_u32(*chars) : std::u32string();
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && strip_it(u[b])) ++b;
  if (right)
    while (e > b && strip_it(u[e - 1])) --e;
  return to_utf8(std::u32string_view(u).substr(b, e - b));
}

std::vector<std::string> py_split_whitespace(std::string_view s, long long maxsplit) {
  std::u32string u = to_u32(s);
  std::vector<std::string> r;
  size_t i = 0, n = u.size();
  while (i < n) {
    while (i < n && py_isspace(u[i])) ++i;
    if (i == n) break;
    if (maxsplit >= 0 && static_cast<long long>(r.size()) == maxsplit) {
      size_t e = n;
      while (e > i && py_isspace(u[e - 1])) --e;
      r.push_back(to_utf8(std::u32string_view(u).substr(i, e - i)));
      break;
    }
    size_t j = i;
    while (j < n && !py_isspace(u[j])) ++j;
    r.push_back(to_utf8(std::u32string_view(u).substr(i, j - i)));
    i = j;
  }
  return r;
}

std::vector<std::string> py_split(std::string_view s, std::string_view sep, long long maxsplit) {
  std::vector<std::string> r;
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<long long>(r.size()) < maxsplit) {
    size_t f = s.find(sep, pos);
    if (f == std::string_view::npos) break;
    r.emplace_back(s.substr(pos, f - pos));
    pos = f + sep.size();
  }
  r.emplace_back(s.substr(pos));
  return r;
}

std::vector<std::string> py_rsplit(std::string_view s, std::string_view sep, long long maxsplit) {
  std::vector<std::string> r;
  size_t end = s.size();
  while (maxsplit < 0 || static_cast<long long>(r.size()) < maxsplit) {
    if (end < sep.size()) break;
    size_t f = s.rfind(sep, end - sep.size());
    if (f == std::string_view::npos) break;
    r.emplace_back(s.substr(f + sep.size(), end - f - sep.size()));
    end = f;
  }
  r.emplace_back(s.substr(0, end));
  return {r.rbegin(), r.rend()};
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, long long count) {
  std::string r;
  if (old.empty()) {
    // Python inserts repl before every code point and at the end (up to count times).
    long long n = 0;
    size_t i = 0;
    while (i <= s.size()) {
      if (count < 0 || n < count) {
        r += repl;
        ++n;
      }
      if (i == s.size()) break;
      size_t j = i;
      next_codepoint(s, j);
      r += s.substr(i, j - i);
      i = j;
    }
    return r;
  }
  size_t pos = 0;
  long long n = 0;
  while (count < 0 || n < count) {
    size_t f = s.find(old, pos);
    if (f == std::string_view::npos) break;
    r += s.substr(pos, f - pos);
    r += repl;
    pos = f + old.size();
    ++n;
  }
  r += s.substr(pos);
  return r;
}

long long py_count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<long long>(codepoint_count(s)) + 1;
  long long n = 0;
  for (size_t pos = s.find(sub); pos != std::string_view::npos; pos = s.find(sub, pos + sub.size())) ++n;
  return n;
}

}  // namespace gemma4::jinja

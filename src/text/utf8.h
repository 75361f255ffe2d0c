// UTF-8 helpers for the tokenizer: validation (the tokenizer rejects invalid input), decoding and encoding of
// single code points, and code-point length from a lead byte.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gemma4::tok {

// Byte offset of the first invalid sequence in s (overlongs, surrogates and > U+10FFFF are invalid), or npos.
size_t find_invalid_utf8(std::string_view s);
inline bool is_valid_utf8(std::string_view s) { return find_invalid_utf8(s) == std::string_view::npos; }

// Length of the UTF-8 sequence that starts with lead byte b (1 for continuation/invalid bytes).
inline size_t utf8_len(unsigned char b) {
  return b < 0x80 ? 1 : b < 0xE0 ? (b < 0xC0 ? 1 : 2) : b < 0xF0 ? 3 : 4;
}

// Decodes the code point at s[i] (s must be valid UTF-8); advances i.
inline char32_t decode_utf8(std::string_view s, size_t& i) {
  auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  size_t n = utf8_len(b);
  char32_t cp = b & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

void append_utf8(std::string& out, char32_t cp);

}  // namespace gemma4::tok

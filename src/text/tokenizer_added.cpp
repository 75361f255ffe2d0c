#include "text/tokenizer_added.h"

#include <algorithm>

#include "text/tokenizer_unicode.h"
#include "text/utf8.h"

namespace gemma4::tok {
namespace {

// Last / first code point of a valid UTF-8 string.
char32_t last_char(std::string_view s) {
  size_t i = s.size();
  while (i > 0 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) --i;
  if (i > 0) --i;
  return decode_utf8(s, i);
}
char32_t first_char(std::string_view s) {
  size_t i = 0;
  return decode_utf8(s, i);
}
// Regex \s*$ on s: where the trailing run of white space starts.
size_t trailing_space_start(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t b = e - 1;
    while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    size_t i = b;
    if (!is_white_space(decode_utf8(s, i))) break;
    e = b;
  }
  return e;
}
// Regex ^\s* on s: the length of the leading run of white space.
size_t leading_space_len(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!is_white_space(decode_utf8(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

void AddedMatcher::add(std::string_view pattern, int32_t id) {
  if (pattern.empty()) return;
  if (edges_.size() == 0) edges_.reset(1024);
  int32_t node = 0;
  for (char c : pattern) {
    auto b = static_cast<unsigned char>(c);
    int32_t next = child(node, b);
    if (next < 0) {
      next = int32_t(terminal_.size());
      terminal_.push_back(-1);
      edges_.assign(node, b, PairMap::Value{0, next});
    }
    node = next;
  }
  terminal_[node] = id;
  can_start_[static_cast<unsigned char>(pattern[0])] = true;
}

void AddedMatcher::find(std::string_view text, const std::vector<const AddedToken*>& tokens,
                        std::vector<TextSplit>& out) const {
  out.clear();
  size_t n = text.size();
  if (n == 0) return;  // HF yields one empty piece, which is dropped later anyway
  size_t start_offset = 0;
  size_t i = 0;
  while (i < n && !empty()) {
    if (!can_start_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    // Longest pattern starting at i.
    int32_t node = 0, best_id = -1;
    size_t best_end = 0;
    for (size_t j = i; j < n; ++j) {
      node = child(node, static_cast<unsigned char>(text[j]));
      if (node < 0) break;
      if (terminal_[node] >= 0) best_id = terminal_[node], best_end = j + 1;
    }
    if (best_id < 0) {
      ++i;
      continue;
    }
    size_t start = i, stop = best_end;
    i = best_end;  // matches do not overlap, whether or not the flags below keep this one
    const AddedToken& tok = *tokens[best_id];
    if (tok.single_word) {
      bool start_space = start == 0 || !is_word_char(last_char(text.substr(0, start)));
      bool stop_space = stop == n || !is_word_char(first_char(text.substr(stop)));
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (tok.rstrip) stop += leading_space_len(text.substr(stop));
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, best_id});
    start_offset = stop;
  }
  if (start_offset != n) out.push_back({start_offset, n, -1});
}

}  // namespace gemma4::tok

#include "generate/answer_extract.h"

#include "core/error.h"

namespace gemma4 {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of the number token starting at s[i] ('$'? sign? [0-9.,]+), 0 if none starts there.
size_t number_span(std::string_view s, size_t i) {
  size_t j = i;
  if (j < s.size() && s[j] == '$') ++j;
  if (j < s.size() && (s[j] == '-' || s[j] == '+')) ++j;
  if (j < s.size() && s[j] == '$' && (j == i || s[i] != '$')) ++j;  // "-$5"
  size_t body = j;
  while (j < s.size() && (is_digit(s[j]) || s[j] == ',' || s[j] == '.')) ++j;
  bool has_digit = false;
  for (size_t k = body; k < j; ++k) has_digit |= is_digit(s[k]);
  return has_digit ? j - i : 0;
}

}  // namespace

ExtractRule parse_extract_rule(std::string_view s) {
  if (s == "strict") return ExtractRule::Strict;
  if (s == "flexible") return ExtractRule::Flexible;
  throw UsageError("--extract: '{}' is not a rule (strict, flexible)", s);
}

std::optional<std::string> canonical_number(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '$') ++i;
  bool neg = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  if (i < s.size() && s[i] == '$') ++i;  // "-$5"
  std::string digits;                    // commas removed
  for (; i < s.size(); ++i) {
    if (s[i] == ',') continue;
    if (!is_digit(s[i]) && s[i] != '.') return std::nullopt;
    digits += s[i];
  }
  while (!digits.empty() && digits.back() == '.') digits.pop_back();  // sentence-final period
  if (digits.empty()) return std::nullopt;
  size_t dot = digits.find('.');
  if (dot != std::string::npos && digits.find('.', dot + 1) != std::string::npos) return std::nullopt;
  std::string ip = digits.substr(0, dot), fp = dot == std::string::npos ? "" : digits.substr(dot + 1);
  if (ip.empty() && fp.empty()) return std::nullopt;
  while (ip.size() > 1 && ip[0] == '0') ip.erase(0, 1);
  if (ip.empty()) ip = "0";
  while (!fp.empty() && fp.back() == '0') fp.pop_back();
  std::string out = ip + (fp.empty() ? "" : "." + fp);
  if (neg && out != "0") out = "-" + out;
  return out;
}

std::optional<std::string> extract_answer(std::string_view text, ExtractRule rule) {
  size_t pos = text.rfind("####");
  if (pos != std::string_view::npos) {
    size_t i = pos + 4;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (size_t n = number_span(text, i)) {
      if (auto c = canonical_number(text.substr(i, n))) return c;
    }
  }
  if (rule == ExtractRule::Strict) return std::nullopt;
  // Flexible: the last number of the text.
  std::optional<std::string> last;
  for (size_t i = 0; i < text.size();) {
    // A number starts at a digit, or at '$' / sign / '.' directly followed by one.
    size_t n = 0;
    if (is_digit(text[i]) || text[i] == '$' || text[i] == '-' || text[i] == '+' || text[i] == '.') {
      n = text[i] == '.' ? 0 : number_span(text, i);
    }
    if (n) {
      if (auto c = canonical_number(text.substr(i, n))) last = c;
      i += n;
    } else {
      ++i;
    }
  }
  return last;
}

std::optional<std::string> reference_answer(std::string_view answer_field) {
  return extract_answer(answer_field, ExtractRule::Strict);
}

}  // namespace gemma4

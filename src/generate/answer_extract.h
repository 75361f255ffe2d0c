// GSM8K answer extraction and comparison.
//
// Standard rule ("strict", as OpenAI's grade-school-math `extract_answer` and lm-eval's strict-match): the answer
// is the number that follows "####". Here the LAST "####" of the text is used (a completion that restates an
// earlier "####" line is judged on its final one). After "####": optional spaces/tabs, an optional '$', an optional
// sign, then a run of digits, ',' and '.'. Commas are removed and a trailing '.' (sentence end) is dropped.
// There is no fallback: a text without "####" followed by a number has no answer (counted wrong). The reference
// answers of GSM8K ("... #### 18") go through the same rule.
//
// Optional "flexible" rule (lm-eval's flexible-extract): the standard answer if there is one, else the last
// number anywhere in the text. Not the default; `gemma4 eval gsm8k --extract flexible` selects it.
//
// Comparison is exact match of canonical forms: sign kept (no "-0"), leading zeros of the integer part and
// trailing zeros of the fraction removed ("1,000.50" -> "1000.5", "$18." -> "18", "007" -> "7").
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace gemma4 {

enum class ExtractRule { Strict, Flexible };
ExtractRule parse_extract_rule(std::string_view s);  // "strict" | "flexible"; UsageError otherwise

// The canonical form of a number written with optional '$', sign, commas and a trailing '.';
// nullopt if `s` is not such a number (e.g. "", "-", "1.2.3", "abc").
std::optional<std::string> canonical_number(std::string_view s);

// The extracted, canonical answer; nullopt when the rule finds none.
std::optional<std::string> extract_answer(std::string_view text, ExtractRule rule = ExtractRule::Strict);

// The reference answer of a GSM8K record's "answer" field (strict rule).
std::optional<std::string> reference_answer(std::string_view answer_field);

}  // namespace gemma4

// GSM8K answer extraction rules (src/generate/answer_extract.h).
#include <gtest/gtest.h>

#include "core/error.h"
#include "generate/answer_extract.h"

using namespace gemma4;

namespace {
std::string strict(std::string_view s) { return extract_answer(s).value_or("<none>"); }
std::string flexible(std::string_view s) { return extract_answer(s, ExtractRule::Flexible).value_or("<none>"); }
}  // namespace

TEST(AnswerExtract, StandardHashLine) {
  EXPECT_EQ(strict("Janet sells 16 - 3 - 4 = 9 duck eggs.\nShe makes 9 * 2 = $18.\n#### 18"), "18");
  EXPECT_EQ(strict("731 - 58 = 673\n#### 673"), "673");
  EXPECT_EQ(strict("####42"), "42");
  EXPECT_EQ(strict("#### \t 7 apples"), "7");
}

TEST(AnswerExtract, CommasDollarsPeriodsSigns) {
  EXPECT_EQ(strict("#### 1,234,567"), "1234567");
  EXPECT_EQ(strict("#### $1,000."), "1000");
  EXPECT_EQ(strict("#### -153"), "-153");
  EXPECT_EQ(strict("#### -$5"), "-5");
  EXPECT_EQ(strict("#### +12"), "12");
  EXPECT_EQ(strict("#### 3.50"), "3.5");
  EXPECT_EQ(strict("#### 3.0"), "3");
  EXPECT_EQ(strict("#### 007"), "7");
  EXPECT_EQ(strict("#### -0"), "0");
  EXPECT_EQ(strict("#### .5"), "0.5");
}

TEST(AnswerExtract, LastHashWins) {
  EXPECT_EQ(strict("#### 5\nwait, no.\n#### 6"), "6");
  // The last "####" has no number: strict finds none (it does not go back to the earlier one).
  EXPECT_EQ(strict("#### 5\n#### none"), "<none>");
}

TEST(AnswerExtract, StrictHasNoFallback) {
  EXPECT_EQ(strict("The answer is 18."), "<none>");
  EXPECT_EQ(strict(""), "<none>");
  EXPECT_EQ(strict("#### "), "<none>");
  EXPECT_EQ(strict("#### ,."), "<none>");
  EXPECT_EQ(strict("#### 1.2.3"), "<none>");
  EXPECT_EQ(strict("#### -"), "<none>");
}

TEST(AnswerExtract, FlexibleFallsBackToLastNumber) {
  EXPECT_EQ(flexible("The answer is 18."), "18");
  EXPECT_EQ(flexible("9 * 2 = $1,018 dollars, so 7 left"), "7");
  EXPECT_EQ(flexible("5-3"), "-3");  // as lm-eval's regex reads it
  EXPECT_EQ(flexible("no digits here"), "<none>");
  // A standard answer takes precedence over later numbers.
  EXPECT_EQ(flexible("#### 12\nthen 99"), "12");
}

TEST(AnswerExtract, CanonicalNumber) {
  EXPECT_EQ(canonical_number("1,000.50").value_or("x"), "1000.5");
  EXPECT_EQ(canonical_number("$18.").value_or("x"), "18");
  EXPECT_FALSE(canonical_number("abc"));
  EXPECT_FALSE(canonical_number("1e5"));
  EXPECT_FALSE(canonical_number(""));
  EXPECT_FALSE(canonical_number("."));
}

TEST(AnswerExtract, ReferenceAnswerAndRuleNames) {
  EXPECT_EQ(reference_answer("It takes 2/2=<<2/2=1>>1 bolt.\n#### 3").value_or("x"), "3");
  EXPECT_EQ(parse_extract_rule("strict"), ExtractRule::Strict);
  EXPECT_EQ(parse_extract_rule("flexible"), ExtractRule::Flexible);
  EXPECT_THROW(parse_extract_rule("fuzzy"), UsageError);
}

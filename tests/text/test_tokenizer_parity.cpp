// Byte-exact parity with HF `tokenizers` 0.23 on the real 262,144-token Gemma 3 vocabulary and the derived
// Gemma 4 file, over tests/data/tokenizer/corpus.jsonl (references from tools/tokenizer_reference.py).
#include <gtest/gtest.h>

#include "core/error.h"
#include "text/tokenizer.h"
#include "tokenizer_test_util.h"

using namespace gemma4;
using namespace gemma4::test;

namespace {

struct Loaded {
  std::shared_ptr<Tokenizer> g3, g4;
  std::string error;
};

// Loaded once for the whole suite.
const Loaded& tokenizers() {
  static Loaded l = [] {
    Loaded r;
    std::string p3 = cached_tokenizer("gemma3"), p4 = cached_tokenizer("gemma4");
    if (!file_exists(p3) || !file_exists(p4)) {
      r.error = "tokenizer files missing (" + p3 + ", " + p4 + "): run tools/fetch_tokenizers.sh";
      return r;
    }
    r.g3 = Tokenizer::load(p3);
    r.g4 = Tokenizer::load(p4);
    return r;
  }();
  return l;
}

#define REQUIRE_TOKENIZERS() \
  if (!tokenizers().error.empty()) FAIL() << tokenizers().error

std::string ids_str(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 40; ++i) s += std::to_string(v[i]) + " ";
  return v.size() > 40 ? s + "..." : s;
}

void check_reference(const Tokenizer& tok, const std::string& ref_file) {
  auto corpus = read_jsonl(tokenizer_data("corpus.jsonl"));
  auto refs = read_jsonl(tokenizer_data(ref_file));
  ASSERT_EQ(corpus.size(), refs.size()) << ref_file;
  ASSERT_GE(corpus.size(), 2000u);
  size_t failures = 0;
  for (size_t i = 0; i < corpus.size() && failures < 5; ++i) {
    const std::string text = corpus[i].get<std::string>();
    const auto& ref = refs[i];
    auto want = ref["ids"].get<std::vector<int32_t>>();
    auto got = tok.encode(text);
    if (got != want) {
      ++failures;
      ADD_FAILURE() << ref_file << " line " << i + 1 << ": ids differ for " << nlohmann::json(text).dump()
                    << "\n  want " << ids_str(want) << "\n  got  " << ids_str(got);
      continue;
    }
    // tools/tokenizer_reference.py stores ids_special only when it is not <bos> (id 2) + ids.
    std::vector<int32_t> want_special = {2};
    want_special.insert(want_special.end(), want.begin(), want.end());
    if (ref.contains("ids_special")) want_special = ref["ids_special"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode_with_special_tokens(text), want_special) << i;
    std::string decoded = ref.contains("decoded") ? ref["decoded"].get<std::string>() : text;
    std::string decoded_skip = ref.contains("decoded_skip") ? ref["decoded_skip"].get<std::string>() : decoded;
    if (tok.decode(want) != decoded || tok.decode(want, true) != decoded_skip) {
      ++failures;
      ADD_FAILURE() << ref_file << " line " << i + 1 << ": decode differs for " << nlohmann::json(text).dump()
                    << "\n  want " << nlohmann::json(decoded).dump() << "\n  got  "
                    << nlohmann::json(tok.decode(want)).dump();
    }
  }
}

}  // namespace

TEST(TokenizerParity, Gemma3CorpusMatchesHf) {
  REQUIRE_TOKENIZERS();
  check_reference(*tokenizers().g3, "reference_gemma3.jsonl");
}

TEST(TokenizerParity, Gemma4CorpusMatchesHf) {
  REQUIRE_TOKENIZERS();
  check_reference(*tokenizers().g4, "reference_gemma4.jsonl");
}

TEST(TokenizerParity, Gemma4SpecialTokens) {
  REQUIRE_TOKENIZERS();
  const Tokenizer& t = *tokenizers().g4;
  EXPECT_EQ(t.vocab_size(), 262144);
  EXPECT_EQ(tokenizers().g3->vocab_size(), 262145);  // Gemma 3's <image_soft_token> is id 262144
  const std::pair<const char*, int32_t> specials[] = {
      {"<pad>", 0}, {"<eos>", 1}, {"<bos>", 2}, {"<|tool>", 46}, {"<tool|>", 47}, {"<|tool_call>", 48},
      {"<tool_call|>", 49}, {"<|tool_response>", 50}, {"<tool_response|>", 51}, {"<|\"|>", 52}, {"<|think|>", 98},
      {"<|channel>", 100}, {"<channel|>", 101}, {"<|turn>", 105}, {"<turn|>", 106}, {"<|image>", 255999},
      {"<|audio>", 256000}, {"<|image|>", 258880}, {"<|audio|>", 258881}, {"<image|>", 258882},
      {"<audio|>", 258883}, {"<|video|>", 258884}};
  for (auto [name, id] : specials) {
    EXPECT_EQ(t.token_to_id(name), id) << name;
    EXPECT_EQ(t.id_to_token(id), name);
    EXPECT_TRUE(t.is_special(id)) << name;
    EXPECT_EQ(t.encode(name), std::vector<int32_t>{id}) << name;
  }
  EXPECT_FALSE(t.is_special(107));  // "\n" is an added token but not special
  EXPECT_EQ(t.token_to_id("<start_of_turn>"), -1);
  EXPECT_EQ(t.bos_id(), 2);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.pad_id(), 0);
}

TEST(TokenizerParity, EncodeModes) {
  REQUIRE_TOKENIZERS();
  const Tokenizer& t = *tokenizers().g4;
  std::string text = "Natalia sold clips to 48 of her friends.";
  auto body = t.encode(text);
  ASSERT_FALSE(body.empty());
  auto with = [&](std::vector<int32_t> pre, std::vector<int32_t> post) {
    pre.insert(pre.end(), body.begin(), body.end());
    pre.insert(pre.end(), post.begin(), post.end());
    return pre;
  };
  EXPECT_EQ(t.encode(text, EncodeMode::AsIs), body);
  EXPECT_EQ(t.encode(text, EncodeMode::Default), with({2}, {1}));
  EXPECT_EQ(t.encode(text, EncodeMode::Prompt), with({2}, {}));
  EXPECT_EQ(t.encode(text, EncodeMode::PromptResponse), with({}, {1}));
  EXPECT_EQ(t.encode("", EncodeMode::Default), (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(parse_encode_mode("as_is"), EncodeMode::AsIs);
  EXPECT_EQ(parse_encode_mode("default"), EncodeMode::Default);
  EXPECT_EQ(parse_encode_mode("prompt"), EncodeMode::Prompt);
  EXPECT_EQ(parse_encode_mode("prompt_response"), EncodeMode::PromptResponse);
  EXPECT_THROW(parse_encode_mode("both"), UsageError);
}

TEST(TokenizerParity, BadInputIsAnError) {
  REQUIRE_TOKENIZERS();
  const Tokenizer& t = *tokenizers().g3;
  for (std::string bad : {std::string("abc\xff"), std::string("\xc3"), std::string("\xed\xa0\x80"),
                          std::string("\xc0\xaf"), std::string("\xf4\x90\x80\x80")}) {
    try {
      t.encode(bad);
      ADD_FAILURE() << "no error for invalid UTF-8";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(t.decode({2, 262145}), Error);
  EXPECT_THROW(t.decode({-1}), Error);
  EXPECT_NO_THROW(t.decode({262144}));
  EXPECT_EQ(t.decode({}), "");
}

TEST(TokenizerParity, ModelDirectoryPath) {
  REQUIRE_TOKENIZERS();
  std::string p = cached_tokenizer("gemma4");
  auto dir = Tokenizer::load(p.substr(0, p.rfind('/')));
  EXPECT_EQ(dir->encode("<|turn>user\nHi<turn|>"), tokenizers().g4->encode("<|turn>user\nHi<turn|>"));
}

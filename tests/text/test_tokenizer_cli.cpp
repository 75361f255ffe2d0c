// `gemma4 tokenize` / `gemma4 detokenize` through the built binary, against the library.
#include <gtest/gtest.h>

#include "text/tokenizer.h"
#include "tokenizer_test_util.h"

using namespace gemma4;
using namespace gemma4::test;

namespace {

std::string joined(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s + "\n";
}

const std::string& tiny() {
  static std::string p = tokenizer_data("tiny_flags.json");
  return p;
}

}  // namespace

TEST(TokenizerCli, TokenizeModesMatchLibrary) {
  auto tok = Tokenizer::load(tiny());
  std::string text = "hello world <sp> x\n";
  for (auto [name, mode] : {std::pair{"as_is", EncodeMode::AsIs}, std::pair{"prompt", EncodeMode::Prompt}}) {
    // tiny_flags has no <bos>: modes that need it fail cleanly; as_is works.
    auto r = run_gemma4({"tokenize", "--tokenizer", tiny(), "--mode", name}, text);
    if (mode == EncodeMode::AsIs) {
      EXPECT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, joined(tok->encode(text)));
    } else {
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_NE(r.err.find("no <bos>"), std::string::npos) << r.err;
    }
  }
  auto r = run_gemma4({"tokenize", "--tokenizer", tiny()}, text);  // default mode: as_is
  EXPECT_EQ(r.out, joined(tok->encode(text)));
}

TEST(TokenizerCli, RealTokenizerModesAndJsonl) {
  std::string path = cached_tokenizer("gemma4");
  if (!file_exists(path)) FAIL() << path << " missing: run tools/fetch_tokenizers.sh";
  std::string dir = path.substr(0, path.rfind('/'));
  auto tok = Tokenizer::load(path);
  std::string text = "<|turn>user\nWhat is 2+2?<turn|>\n";
  for (auto [name, mode] : {std::pair{"as_is", EncodeMode::AsIs}, std::pair{"default", EncodeMode::Default},
                            std::pair{"prompt", EncodeMode::Prompt},
                            std::pair{"prompt_response", EncodeMode::PromptResponse}}) {
    auto r = run_gemma4({"tokenize", "--tokenizer", dir, "--mode", name}, text);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, joined(tok->encode(text, mode))) << name;
  }
  auto r = run_gemma4({"tokenize", "--tokenizer", path, "--jsonl", "--mode", "default"},
                      "\"Hello world\"\n\"\"\n\"a\\nb <|image|>\"\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, joined(tok->encode("Hello world", EncodeMode::Default)) + joined({2, 1}) +
                       joined(tok->encode("a\nb <|image|>", EncodeMode::Default)));
  auto ids = tok->encode(text);
  auto d = run_gemma4({"detokenize", "--tokenizer", path}, joined(ids));
  EXPECT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(d.out, text);  // no added newline
  d = run_gemma4({"detokenize", "--tokenizer", path, "--skip-special"}, joined(ids));
  EXPECT_EQ(d.out, tok->decode(ids, true));
}

TEST(TokenizerCli, BadInput) {
  auto bad_utf8 = run_gemma4({"tokenize", "--tokenizer", tiny()}, "abc\xff");
  EXPECT_EQ(bad_utf8.exit_code, 1);
  EXPECT_NE(bad_utf8.err.find("not valid UTF-8"), std::string::npos) << bad_utf8.err;
  auto bad_mode = run_gemma4({"tokenize", "--tokenizer", tiny(), "--mode", "chat"}, "x");
  EXPECT_EQ(bad_mode.exit_code, 2);
  EXPECT_NE(bad_mode.err.find("unknown encode mode 'chat'"), std::string::npos) << bad_mode.err;
  EXPECT_EQ(run_gemma4({"tokenize"}, "x").exit_code, 2);  // --tokenizer is required
  auto bad_json = run_gemma4({"tokenize", "--tokenizer", tiny(), "--jsonl"}, "\"ok\"\n42\n");
  EXPECT_EQ(bad_json.exit_code, 1);
  EXPECT_NE(bad_json.err.find("stdin line 2: not a JSON string"), std::string::npos) << bad_json.err;
  auto missing = run_gemma4({"tokenize", "--tokenizer", temp_dir() + "/none.json"}, "x");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("cannot open"), std::string::npos) << missing.err;
  auto tok = Tokenizer::load(tiny());
  auto range = run_gemma4({"detokenize", "--tokenizer", tiny()}, "1 " + std::to_string(tok->vocab_size()));
  EXPECT_EQ(range.exit_code, 1);
  EXPECT_NE(range.err.find("out of range"), std::string::npos) << range.err;
  auto word = run_gemma4({"detokenize", "--tokenizer", tiny()}, "1 two");
  EXPECT_EQ(word.exit_code, 1);
  EXPECT_NE(word.err.find("'two' is not a token id"), std::string::npos) << word.err;
  for (const auto& r : {bad_utf8, bad_mode, bad_json, missing, range, word})
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one line
}

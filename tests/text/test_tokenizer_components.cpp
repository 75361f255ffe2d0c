// Components the Gemma files do not use, on small synthetic tokenizer.json files (tools/make_tokenizer_fixtures.py)
// against HF `tokenizers` references: added-token flags, Prepend/Metaspace/Split behaviors, Strip and Metaspace
// decoders, legacy merges, unk fusing, subword prefix/suffix, ignore_merges. Then malformed files.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "text/tokenizer.h"
#include "tokenizer_test_util.h"

using namespace gemma4;
using namespace gemma4::test;

namespace {

void check_tiny(const std::string& name) {
  std::string ref_path = tokenizer_data("reference_tiny_" + name + ".jsonl");
  ASSERT_TRUE(file_exists(ref_path)) << ref_path << " missing: run tools/tokenizer_reference.py --tiny";
  auto corpus = read_jsonl(tokenizer_data("tiny_corpus.jsonl"));
  auto refs = read_jsonl(ref_path);
  ASSERT_FALSE(refs.empty());
  if (refs[0].contains("load_error")) {  // HF refuses the file: so must we
    EXPECT_THROW(Tokenizer::load(tokenizer_data("tiny_" + name + ".json")), Error) << refs[0].dump();
    return;
  }
  auto tok = Tokenizer::load(tokenizer_data("tiny_" + name + ".json"));
  ASSERT_EQ(corpus.size(), refs.size());
  for (size_t i = 0; i < corpus.size(); ++i) {
    std::string text = corpus[i].get<std::string>();
    const auto& ref = refs[i];
    SCOPED_TRACE(name + ": " + nlohmann::json(text).dump());
    if (ref.contains("error")) {
      EXPECT_THROW(tok->encode(text), Error) << ref["error"];
      continue;
    }
    auto ids = ref["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->encode(text), ids);
    EXPECT_EQ(tok->encode_with_special_tokens(text), ref["ids_special"].get<std::vector<int32_t>>());
    EXPECT_EQ(tok->decode(ids), ref["decoded"].get<std::string>());
    EXPECT_EQ(tok->decode(ids, true), ref["decoded_skip"].get<std::string>());
  }
}

std::string write_tokenizer(const std::string& text) {
  static int n = 0;
  std::string path = temp_dir() + "/tok" + std::to_string(n++) + ".json";
  write_file(path, text);
  return path;
}

// The tiny flags tokenizer with `from` replaced by `to`.
std::string edited(const std::string& from, const std::string& to) {
  std::string text = read_file(tokenizer_data("tiny_flags.json"));
  size_t p = text.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  if (p != std::string::npos) text.replace(p, from.size(), to);
  return write_tokenizer(text);
}

std::string load_error(const std::string& path) {
  try {
    Tokenizer::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(TokenizerComponents, AddedTokenFlagsAndPrependNormalizer) { check_tiny("flags"); }
TEST(TokenizerComponents, MetaspaceAndUnk) { check_tiny("metaspace"); }
// HF refuses tiny_splits.json (its merge ("ab", "##c") needs "abc", which the vocabulary lacks).
TEST(TokenizerComponents, InvalidMergeRejectedLikeHf) {
  check_tiny("splits");
  try {
    Tokenizer::load(tokenizer_data("tiny_splits.json"));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("merged token 'abc' is not in the vocabulary"), std::string::npos) << e.what();
  }
}

// Split behaviors on HF's own documented example (tokenizer/normalizer.rs, SplitDelimiterBehavior): with
// ignore_merges each pre-token that is a vocabulary word comes out as one id, so the ids show the pieces.
TEST(TokenizerComponents, SplitBehaviorsAsDocumentedByHf) {
  const std::vector<std::string> words = {"the", "final", "countdown", "-", "--", "the-", "final-", "-final",
                                          "-countdown", "t", "h", "e", "f", "i", "n", "a", "l", "c", "o", "u", "w", "d"};
  std::string vocab;
  for (size_t i = 0; i < words.size(); ++i) vocab += (i ? ", \"" : "\"") + words[i] + "\": " + std::to_string(i);
  auto make = [&](const std::string& behavior, bool invert) {
    std::string json = "{\"version\": \"1.0\", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": "
                       "\"-\"}, \"behavior\": \"" + behavior + "\", \"invert\": " + (invert ? "true" : "false") +
                       "}, \"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"vocab\": {" + vocab +
                       "}, \"merges\": []}}";
    return Tokenizer::load(write_tokenizer(json));
  };
  auto pieces = [&](const std::string& behavior, bool invert = false) {
    std::vector<std::string> out;
    for (int32_t id : make(behavior, invert)->encode("the-final--countdown")) out.push_back(words[id]);
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Removed"), (V{"the", "final", "countdown"}));
  EXPECT_EQ(pieces("Isolated"), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pieces("MergedWithPrevious"), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pieces("MergedWithNext"), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pieces("Contiguous"), (V{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(pieces("Removed", true), (V{"-", "-", "-"}));  // inverted: the delimiters are the pieces kept
}
TEST(TokenizerComponents, SuffixAndIgnoreMerges) { check_tiny("suffix"); }

TEST(TokenizerComponents, UnsupportedComponentsAreNamed) {
  EXPECT_NE(load_error(edited("\"type\": \"Prepend\"", "\"type\": \"NFKC\"")).find("unsupported normalizer type 'NFKC'"),
            std::string::npos);
  EXPECT_NE(load_error(edited("\"type\": \"Fuse\"", "\"type\": \"CTC\"")).find("unsupported decoder type 'CTC'"),
            std::string::npos);
  EXPECT_NE(load_error(edited("\"type\": \"BPE\"", "\"type\": \"Unigram\"")).find("unsupported model type 'Unigram'"),
            std::string::npos);
  EXPECT_NE(load_error(edited("\"type\": \"TemplateProcessing\"", "\"type\": \"BertProcessing\""))
                .find("unsupported post_processor type 'BertProcessing'"),
            std::string::npos);
  EXPECT_NE(load_error(edited("\"pre_tokenizer\": null", "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}"))
                .find("unsupported pre_tokenizer type 'ByteLevel'"),
            std::string::npos);
  EXPECT_NE(load_error(edited("{\"String\": \" \"}", "{\"Regex\": \"\\\\s\"}")).find("Regex pattern is not supported"),
            std::string::npos);
  EXPECT_NE(load_error(edited("\"truncation\": null", "\"truncation\": {\"max_length\": 5}")).find("truncation"),
            std::string::npos);
  EXPECT_NE(load_error(edited("\"dropout\": null", "\"dropout\": 0.1")).find("dropout"), std::string::npos);
}

TEST(TokenizerComponents, MalformedFilesAreErrors) {
  std::string good = read_file(tokenizer_data("tiny_flags.json"));
  for (size_t cut : {size_t(0), size_t(1), good.size() / 3, good.size() / 2, good.size() - 2}) {
    std::string msg = load_error(write_tokenizer(good.substr(0, cut)));
    EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << cut << ": " << msg;
  }
  EXPECT_NE(load_error(write_tokenizer("[1, 2]")).find("expected '{'"), std::string::npos);
  EXPECT_NE(load_error(write_tokenizer(good + "x")).find("trailing"), std::string::npos);
  EXPECT_NE(load_error(write_tokenizer("{\"version\": \"1.0\"}")).find("no 'model'"), std::string::npos);
  EXPECT_NE(load_error(edited("\"version\": \"1.0\"", "\"version\": \"2.0\"")).find("version"), std::string::npos);
  EXPECT_NE(load_error(edited("\"h e\"", "\"h Q\"")).find("'Q' is not in the vocabulary"), std::string::npos);
  EXPECT_NE(load_error(edited("\"h e\"", "\"h e x\"")).find("not of the form 'a b'"), std::string::npos);
  EXPECT_NE(load_error(edited("\"<unk>\": 0", "\"<unk>\": -3")).find("out of range"), std::string::npos);
  EXPECT_NE(load_error(edited("\"<unk>\": 0", "\"<unk>\": \"zero\"")).find("invalid JSON"), std::string::npos);
  EXPECT_NE(load_error(edited("\"special\": true", "\"special\": 1")).find("'special' must be a boolean"),
            std::string::npos);
  EXPECT_NE(load_error(write_tokenizer("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], "
                                       "\"x\": \"\xff\"}}"))
                .find("not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(load_error(temp_dir() + "/missing.json").find("cannot open"), std::string::npos);
}

TEST(TokenizerComponents, MergesInEitherFormAndAnyKeyOrder) {
  // merges before vocab, pair form; the same tokenizer with "a b" strings gives the same ids.
  std::string pair = R"({"model": {"merges": [["a", "b"], ["ab", "c"]], "type": "BPE",
      "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}}, "version": "1.0"})";
  std::string legacy = R"({"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3,
      "abc": 4}, "merges": ["#version: 0.2", "a b", "ab c"]}})";
  auto t1 = Tokenizer::load(write_tokenizer(pair));
  auto t2 = Tokenizer::load(write_tokenizer(legacy));
  for (std::string s : {"abc", "cab", "abcab", "aabbcc", "x"}) EXPECT_EQ(t1->encode(s), t2->encode(s)) << s;
  EXPECT_EQ(t1->encode("abcab"), (std::vector<int32_t>{4, 3}));
  EXPECT_EQ(t1->encode("x"), std::vector<int32_t>{});  // no unk token, no byte fallback: dropped, as in HF
  EXPECT_EQ(t1->decode({4, 3}), "abc ab");              // no decoder: tokens joined by spaces
  EXPECT_EQ(t1->bos_id(), -1);
  EXPECT_THROW(t1->encode("abc", EncodeMode::Default), Error);
}

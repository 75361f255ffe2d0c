// `gemma4 eval gsm8k` and `gemma4 chat`: record reading, prompts, and the CLI on the bundled demo model
// (models/gemma4-tiny-arith-it).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "model/config.h"
#include "test_util.h"
#include "train/eval_gsm8k.h"
#include "train/eval_prompt.h"

using namespace gemma4;
using gemma4::test::read_file;
using gemma4::test::run_gemma4;
using gemma4::test::source_dir;
using gemma4::test::temp_dir;
using gemma4::test::write_file;

namespace {

std::string demo_model() { return source_dir() + "/models/gemma4-tiny-arith-it"; }

// The bundled model is produced by tools/train_demo.sh (issue 5); the tests that run it say so when absent.
#define REQUIRE_DEMO_MODEL()                                                                              \
  if (!std::filesystem::exists(demo_model() + "/model.safetensors"))                                     \
  GTEST_SKIP() << "bundled model " << demo_model() << " is not in this checkout (train it: tools/train_demo.sh)"

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string l;
  while (std::getline(ss, l)) out.push_back(l);
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(EvalData, ReadsRecordsAndReferences) {
  std::string p = temp_dir() + "/qa.jsonl";
  write_file(p,
             "{\"question\": \"q1\", \"answer\": \"so 3+4=7\\n#### 7\"}\n"
             "\n"
             "{\"question\": \"q2\", \"answer\": \"#### 1,000\", \"extra\": 1}\r\n"
             "{\"question\": \"q3\", \"answer\": \"#### -12\"}\n");
  auto r = read_qa_jsonl(p);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].question, "q1");
  EXPECT_EQ(r[0].reference, "7");
  EXPECT_EQ(r[1].reference, "1000");
  EXPECT_EQ(r[1].origin, p + ":3");
  EXPECT_EQ(r[2].reference, "-12");
  EXPECT_EQ(read_qa_jsonl(p, 2).size(), 2u);
  EXPECT_EQ(read_qa_jsonl(p, 0).size(), 0u);
}

TEST(EvalData, MalformedRecordsNameFileAndLine) {
  std::string dir = temp_dir();
  auto err = [&](const std::string& content) {
    std::string p = dir + "/bad.jsonl";
    write_file(p, content);
    return error_of([&] { read_qa_jsonl(p); });
  };
  std::string ok = "{\"question\": \"q\", \"answer\": \"#### 1\"}\n";
  EXPECT_NE(err(ok + "{not json\n").find("bad.jsonl:2: invalid JSON"), std::string::npos);
  EXPECT_NE(err(ok + ok + "[1, 2]\n").find("bad.jsonl:3: expected a JSON object"), std::string::npos);
  EXPECT_NE(err("{\"question\": 5, \"answer\": \"#### 1\"}\n").find(":1: \"question\" must be a string"),
            std::string::npos);
  EXPECT_NE(err("{\"question\": \"q\"}\n").find(":1: \"answer\" must be a string"), std::string::npos);
  EXPECT_NE(err("{\"question\": \"q\", \"answer\": \"the answer is 5\"}\n").find(":1: the answer has no \"#### N\""),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_qa_jsonl(dir + "/missing.jsonl"); }).find("missing.jsonl: cannot read"),
            std::string::npos);
}

TEST(EvalCli, UsageErrors) {
  REQUIRE_DEMO_MODEL();
  auto r = run_gemma4({"eval", "mmlu", "--model", demo_model()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown eval task 'mmlu'"), std::string::npos);
  r = run_gemma4({"eval", "gsm8k"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--model is required"), std::string::npos);
  r = run_gemma4({"eval", "gsm8k", "--model", demo_model(), "--limit", "-3"});
  EXPECT_EQ(r.exit_code, 2);
  r = run_gemma4({"eval", "gsm8k", "--model", demo_model(), "--extract", "fuzzy"});
  EXPECT_EQ(r.exit_code, 2);
  r = run_gemma4({"chat"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--model is required"), std::string::npos);
}

TEST(EvalCli, BadDataIsOneLineError) {
  REQUIRE_DEMO_MODEL();
  std::string p = temp_dir() + "/bad.jsonl";
  write_file(p, "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{oops\n");
  auto r = run_gemma4({"eval", "gsm8k", "--model", demo_model(), "--data", p});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(p + ":2: invalid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
}

// ---- On the bundled demo model -------------------------------------------------------------------------

TEST(ChatPrompterDemo, RendersTheTemplateAndStopsAtEndOfTurn) {
  REQUIRE_DEMO_MODEL();
  std::shared_ptr<const Tokenizer> tok = Tokenizer::load(demo_model());
  ChatPrompter p(demo_model(), tok);
  ASSERT_TRUE(p.has_template());
  nlohmann::ordered_json msgs = {{{"role", "user"}, {"content", "  What is 2 plus 3?  "}}};
  EXPECT_EQ(p.render(msgs), "<bos><|turn>user\nWhat is 2 plus 3?<turn|>\n<|turn>model\n");
  std::vector<int64_t> ids = p.encode_question("What is 2 plus 3?");
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids[0], tok->bos_id());
  EXPECT_EQ(ids[1], tok->token_to_id("<|turn>"));
  EXPECT_EQ(ids.back(), tok->token_to_id("\n"));
  // A system turn comes first when given.
  EXPECT_EQ(p.render({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}}),
            "<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n");

  ModelConfig cfg = ModelConfig::from_dir(demo_model());
  std::vector<int64_t> stops = p.stop_ids(cfg);
  int64_t eot = tok->token_to_id("<turn|>");
  EXPECT_NE(std::find(stops.begin(), stops.end(), eot), stops.end());
  EXPECT_NE(std::find(stops.begin(), stops.end(), int64_t(tok->eos_id())), stops.end());
  // decode_reply drops the stop token and special tokens.
  std::vector<int32_t> body = tok->encode("7 + 5 = 12");
  std::vector<int64_t> gen(body.begin(), body.end());
  gen.push_back(eot);
  EXPECT_EQ(p.decode_reply(gen, stops), "7 + 5 = 12");

  // Without the template: raw text after <bos>.
  ChatPrompter raw(demo_model(), tok, /*use_template=*/false);
  EXPECT_FALSE(raw.has_template());
  EXPECT_EQ(raw.render(msgs), "  What is 2 plus 3?  ");
  EXPECT_EQ(raw.encode_question("12")[0], tok->bos_id());
}

TEST(EvalCliDemo, AccuracyLineMatchesPredictions) {
  REQUIRE_DEMO_MODEL();
  // Three held-out problems plus one whose reference is deliberately wrong: that one can never be correct.
  std::string dir = temp_dir();
  std::vector<std::string> held = lines_of(read_file(demo_model() + "/heldout_test.jsonl"));
  ASSERT_GE(held.size(), 3u);
  std::string data = held[0] + "\n" + held[1] + "\n" + held[2] + "\n" +
                     "{\"question\": \"What is 2 plus 2?\", \"answer\": \"2 + 2 = 4\\n#### 5\"}\n";
  write_file(dir + "/qa.jsonl", data);
  auto r = run_gemma4({"eval", "gsm8k", "--model", demo_model(), "--data", dir + "/qa.jsonl", "--predictions",
                       dir + "/pred.jsonl", "--max-new-tokens", "96"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> out = lines_of(r.out);
  ASSERT_FALSE(out.empty());
  std::smatch m;
  ASSERT_TRUE(std::regex_match(out.back(), m, std::regex(R"(accuracy: ([01]\.\d{4}))"))) << out.back();
  // Progress went to stderr, one line per record (plus the header).
  EXPECT_EQ(lines_of(r.err).size(), 5u) << r.err;

  std::vector<std::string> preds = lines_of(read_file(dir + "/pred.jsonl"));
  ASSERT_EQ(preds.size(), 4u);
  int correct = 0;
  for (const auto& l : preds) {
    auto j = nlohmann::json::parse(l);
    bool ok = !j["predicted"].is_null() && j["predicted"] == j["reference"];
    EXPECT_EQ(j["correct"].get<bool>(), ok) << l;
    // The prediction is what the strict rule extracts from the completion.
    auto ex = extract_answer(j["completion"].get<std::string>());
    EXPECT_EQ(j["predicted"].is_null(), !ex.has_value());
    if (ex) {
      EXPECT_EQ(j["predicted"].get<std::string>(), *ex);
    }
    correct += ok;
  }
  EXPECT_FALSE(nlohmann::json::parse(preds[3])["correct"].get<bool>());
  EXPECT_EQ(m[1].str(), fmt::format("{:.4f}", correct / 4.0));
  EXPECT_NE(std::find(out.begin(), out.end(), fmt::format("correct: {}", correct)), out.end());

  // --limit takes the first N records.
  r = run_gemma4({"eval", "gsm8k", "--model", demo_model(), "--data", dir + "/qa.jsonl", "--limit", "1", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("examples: 1\n"), std::string::npos);
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(ChatCliDemo, PipedStdinGivesOneReplyLinePerUserLine) {
  REQUIRE_DEMO_MODEL();
  // The trained demo model answers these in the training format; greedy decoding is deterministic.
  std::string in = "What is 123 plus 456?\nSubtract 58 from 731.\n";
  auto r = run_gemma4({"chat", "--model", demo_model(), "--no-history"}, in);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> out = lines_of(r.out);
  ASSERT_EQ(out.size(), 2u) << r.out;
  // Newlines inside a reply are escaped, so each reply is one line ending with the "#### N" answer.
  EXPECT_EQ(extract_answer(out[0]).value_or("?"), "579") << out[0];
  EXPECT_EQ(extract_answer(out[1]).value_or("?"), "673") << out[1];
  EXPECT_NE(out[0].find("\\n#### 579"), std::string::npos) << out[0];
  EXPECT_TRUE(r.err.empty()) << r.err;  // nothing but replies when stdin is not a terminal

  // With history, the second turn sees the first: the prompt grows, and it still answers one line per line.
  r = run_gemma4({"chat", "--model", demo_model(), "--max-new-tokens", "8"}, "Add 1 and 2.\nAdd 3 and 4.\n\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 3u) << r.out;  // an empty line is an (empty) user turn in piped mode

  // Sampling options are accepted and validated.
  r = run_gemma4({"chat", "--model", demo_model(), "--temperature", "0.7", "--top-k", "5", "--seed", "3"}, "Add 1 and 2.\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 1u);
  r = run_gemma4({"chat", "--model", demo_model(), "--top-p", "0"}, "x\n");
  EXPECT_EQ(r.exit_code, 2);
}

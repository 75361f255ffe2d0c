// `gemma4 eval gsm8k` and `gemma4 chat`: record reading, prompts, and the CLI on the bundled demo model
// (models/gemma4-tiny-arith-it).
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <sstream>

#include "core/error.h"
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
  std::string p = temp_dir() + "/bad.jsonl";
  write_file(p, "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{oops\n");
  auto r = run_gemma4({"eval", "gsm8k", "--model", demo_model(), "--data", p});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(p + ":2: invalid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
}

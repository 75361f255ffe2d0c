// `gemma4 render-chat --template PATH --input CONV.json`: output byte-identical to the HF reference, every
// PATH form, and clear one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace gemma4 {
namespace {

using test::run_gemma4;

std::string chat_dir() { return test::source_dir() + "/tests/data/chat"; }

// The suite's conversation `name` and its HF rendering with the stock template.
std::pair<std::string, std::string> suite_case(const std::string& name) {
  std::ifstream conv(chat_dir() + "/conversations.jsonl"), ref(chat_dir() + "/reference_gemma4.jsonl");
  std::string a, b;
  while (std::getline(conv, a) && std::getline(ref, b)) {
    auto c = nlohmann::ordered_json::parse(a);
    if (c["name"] == name) return {c["conversation"].dump(), nlohmann::json::parse(b)["text"]};
  }
  ADD_FAILURE() << "no suite case " << name;
  return {};
}

bool one_line(const std::string& s) { return !s.empty() && s.find('\n') == s.size() - 1; }

TEST(RenderChatCli, JinjaFileMatchesReferenceExactly) {
  std::string dir = test::temp_dir();
  for (const char* name : {"tools_nested", "tool_responses_same_turn", "unicode_mix", "multi_turn_gen"}) {
    auto [conv, want] = suite_case(name);
    test::write_file(dir + "/conv.json", conv);
    auto r = run_gemma4({"render-chat", "--template", chat_dir() + "/templates/gemma4.jinja", "--input", dir + "/conv.json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, want) << name;  // no newline added
  }
}

TEST(RenderChatCli, StdinInput) {
  auto [conv, want] = suite_case("thinking_on_gen");
  auto r = run_gemma4({"render-chat", "--template", chat_dir() + "/templates/gemma4.jinja", "--input", "-"}, conv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want);
}

TEST(RenderChatCli, TokenizerConfigAndModelDir) {
  std::string tmpl = test::read_file(chat_dir() + "/templates/gemma4.jinja");
  std::string dir = test::temp_dir();
  nlohmann::json cfg = {{"chat_template", tmpl}, {"bos_token", {{"content", "<s>"}, {"special", true}}}, {"eos_token", "</s>"}};
  test::write_file(dir + "/tokenizer_config.json", cfg.dump());
  test::write_file(dir + "/conv.json", R"({"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true})");
  const std::string want = "<s><|turn>user\nHi<turn|>\n<|turn>model\n<|channel>thought\n<channel|>";
  // tokenizer_config.json: its chat_template and its bos_token.
  auto r = run_gemma4({"render-chat", "--template", dir + "/tokenizer_config.json", "--input", dir + "/conv.json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want);
  // A model dir with only tokenizer_config.json.
  r = run_gemma4({"render-chat", "--template", dir, "--input", dir + "/conv.json"});
  EXPECT_EQ(r.out, want);
  // chat_template.jinja wins over tokenizer_config.json's template; the config still gives bos_token.
  test::write_file(dir + "/chat_template.jinja", "{{ bos_token }}jinja file{{ messages | length }}");
  r = run_gemma4({"render-chat", "--template", dir, "--input", dir + "/conv.json"});
  EXPECT_EQ(r.out, "<s>jinja file1");
  // The conversation's own bos_token wins.
  test::write_file(dir + "/conv2.json", R"({"messages": [{"role": "user", "content": "Hi"}], "bos_token": "[B]"})");
  r = run_gemma4({"render-chat", "--template", dir, "--input", dir + "/conv2.json"});
  EXPECT_EQ(r.out, "[B]jinja file1");
  // HF's list of named templates.
  nlohmann::json named = {{"chat_template", {{{"name", "tool_use"}, {"template", "T"}}, {{"name", "default"}, {"template", "D{{ eos_token }}"}}}}};
  test::write_file(dir + "/named.json", named.dump());
  r = run_gemma4({"render-chat", "--template", dir + "/named.json", "--input", dir + "/conv.json"});
  EXPECT_EQ(r.out, "D<eos>");
}

TEST(RenderChatCli, Errors) {
  std::string dir = test::temp_dir();
  std::string tmpl = chat_dir() + "/templates/gemma4.jinja";
  test::write_file(dir + "/conv.json", R"({"messages": [{"role": "user", "content": "Hi"}]})");
  auto r = run_gemma4({"render-chat", "--input", dir + "/conv.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--template"), std::string::npos) << r.err;

  test::write_file(dir + "/bad.json", "{\"messages\": [");
  r = run_gemma4({"render-chat", "--template", tmpl, "--input", dir + "/bad.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("bad.json: invalid JSON"), std::string::npos) << r.err;

  test::write_file(dir + "/utf8.json", "{\"messages\": [{\"role\": \"user\", \"content\": \"a\xff\"}]}");
  r = run_gemma4({"render-chat", "--template", tmpl, "--input", dir + "/utf8.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("ill-formed UTF-8"), std::string::npos) << r.err;

  const int n = 100000;  // hostile nesting: an error, not a stack overflow
  test::write_file(dir + "/deep.json", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"d\": " +
                                           std::string(n, '[') + std::string(n, ']') + "}]}");
  r = run_gemma4({"render-chat", "--template", tmpl, "--input", dir + "/deep.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nested too deeply"), std::string::npos) << r.err;

  test::write_file(dir + "/nomsg.json", R"({"tools": []})");
  r = run_gemma4({"render-chat", "--template", tmpl, "--input", dir + "/nomsg.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("\"messages\""), std::string::npos) << r.err;

  test::write_file(dir + "/empty.json", R"({"messages": []})");
  r = run_gemma4({"render-chat", "--template", tmpl, "--input", dir + "/empty.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("empty conversation"), std::string::npos) << r.err;

  test::write_file(dir + "/syntax.jinja", "line one\n{% if messages %}\n{{ messages | frobnicate }}\n{% endif %}");
  r = run_gemma4({"render-chat", "--template", dir + "/syntax.jinja", "--input", dir + "/conv.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("syntax.jinja:3: unsupported filter 'frobnicate'"), std::string::npos) << r.err;

  test::write_file(dir + "/raise.jinja", "{{ raise_exception('Conversation roles must alternate') }}");
  r = run_gemma4({"render-chat", "--template", dir + "/raise.jinja", "--input", dir + "/conv.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("raise.jinja:1: raise_exception: Conversation roles must alternate"), std::string::npos);

  test::write_file(dir + "/tokenizer_config.json", R"({"bos_token": "<bos>"})");
  r = run_gemma4({"render-chat", "--template", dir + "/tokenizer_config.json", "--input", dir + "/conv.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no \"chat_template\" field"), std::string::npos) << r.err;

  r = run_gemma4({"render-chat", "--template", dir + "/missing.jinja", "--input", dir + "/conv.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no such file"), std::string::npos) << r.err;

  std::filesystem::create_directory(dir + "/emptydir");
  r = run_gemma4({"render-chat", "--template", dir + "/emptydir", "--input", dir + "/conv.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no chat_template.jinja or tokenizer_config.json"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gemma4

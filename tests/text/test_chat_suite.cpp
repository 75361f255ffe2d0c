// The chat-template reference suite: both Gemma 4 templates must render every conversation of
// tests/data/chat/conversations.jsonl byte-identically to Hugging Face (tools/chat_reference.py), and must
// raise where jinja2 raised.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "test_util.h"
#include "text/chat_template.h"

namespace gemma4 {
namespace {

std::vector<nlohmann::ordered_json> read_jsonl(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << "missing " << path;
  std::vector<nlohmann::ordered_json> r;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) r.push_back(nlohmann::ordered_json::parse(line));
  return r;
}

// Where two renderings first differ, with some context, for a readable failure.
std::string first_difference(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  size_t from = i > 40 ? i - 40 : 0;
  nlohmann::json w = want.substr(from, 80), g = got.substr(from, 80);
  return "first difference at byte " + std::to_string(i) + "\n  want: " + w.dump() + "\n  got:  " + g.dump();
}

void check_template(const std::string& stem) {
  std::string dir = test::source_dir() + "/tests/data/chat";
  ChatTemplate tmpl = ChatTemplate::load(dir + "/templates/" + stem + ".jinja");
  auto suite = read_jsonl(dir + "/conversations.jsonl");
  auto refs = read_jsonl(dir + "/reference_" + stem + ".jsonl");
  ASSERT_GE(suite.size(), 50u);
  ASSERT_EQ(suite.size(), refs.size()) << "reference out of date: rerun tools/chat_reference.py";
  int failures = 0;
  for (size_t i = 0; i < suite.size(); ++i) {
    const std::string name = suite[i]["name"];
    ASSERT_EQ(refs[i]["name"], name);
    if (refs[i].contains("error")) {
      EXPECT_THROW(tmpl.render(suite[i]["conversation"]), Error)
          << name << ": jinja2 raised " << refs[i]["error"].get<std::string>();
      continue;
    }
    std::string want = refs[i]["text"];
    try {
      std::string got = tmpl.render(suite[i]["conversation"]);
      if (got != want) {
        ++failures;
        ADD_FAILURE() << stem << " / " << name << ": " << first_difference(want, got);
      }
    } catch (const std::exception& e) {
      ++failures;
      ADD_FAILURE() << stem << " / " << name << ": threw " << e.what();
    }
  }
  EXPECT_EQ(failures, 0);
}

TEST(ChatSuite, Gemma4TemplateMatchesHuggingFace) { check_template("gemma4"); }
TEST(ChatSuite, Gemma4InterleavedTemplateMatchesHuggingFace) { check_template("gemma4-31b-it-interleaved"); }

TEST(ChatSuite, ReferenceWasMadeByTransformers) {
  std::ifstream f(test::source_dir() + "/tests/data/chat/reference_meta.json");
  ASSERT_TRUE(f.good());
  auto meta = nlohmann::json::parse(f);
  EXPECT_EQ(meta["renderer"], "transformers.utils.chat_template_utils.render_jinja_template");
}

}  // namespace
}  // namespace gemma4

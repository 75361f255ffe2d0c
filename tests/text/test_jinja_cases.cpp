// Engine cases: small templates exercising each supported Jinja feature (whitespace control, Python value
// printing, operators, slices, filters, tests, methods, namespace, loops, macros), each rendered by Hugging
// Face's jinja environment (tools/chat_reference.py --cases) and compared byte for byte.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"
#include "text/jinja.h"

namespace gemma4::jinja {
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

TEST(JinjaCases, MatchHuggingFaceJinja) {
  std::string dir = test::source_dir() + "/tests/data/chat";
  auto cases = read_jsonl(dir + "/jinja_cases.jsonl");
  auto refs = read_jsonl(dir + "/reference_jinja_cases.jsonl");
  ASSERT_EQ(cases.size(), refs.size()) << "reference out of date: rerun tools/chat_reference.py --cases";
  ASSERT_GE(cases.size(), 50u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string name = cases[i]["name"];
    ASSERT_EQ(refs[i]["name"], name);
    SCOPED_TRACE(name);
    std::string got, err;
    try {
      got = Template(cases[i]["template"].get<std::string>(), name).render(cases[i]["vars"]);
    } catch (const Error& e) {
      err = e.what();
    }
    if (refs[i].contains("error")) {
      EXPECT_FALSE(err.empty()) << "jinja2 raised " << refs[i]["error"] << " but the engine rendered " << got;
      // Runtime errors name the template and line.
      if (!err.empty()) {
        EXPECT_EQ(err.rfind(name + ":1: ", 0), 0u) << err;
      }
    } else {
      EXPECT_EQ(err, "");
      EXPECT_EQ(got, refs[i]["text"].get<std::string>());
    }
  }
}

}  // namespace
}  // namespace gemma4::jinja

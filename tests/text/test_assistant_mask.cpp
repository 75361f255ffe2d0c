// Assistant masks: the exact spans the model learns, at text level for both Gemma 4 templates, cross-checked
// against prefix rendering, and at token level with the real (Gemma-4-style) tokenizer.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"
#include "text/assistant_mask.h"
#include "tokenizer_test_util.h"

namespace gemma4 {
namespace {

using ojson = nlohmann::ordered_json;

ChatTemplate load_template(const std::string& stem) {
  return ChatTemplate::load(test::source_dir() + "/tests/data/chat/templates/" + stem + ".jinja");
}

std::vector<std::string> masked_texts(const AssistantSpans& s) {
  std::vector<std::string> r;
  for (const auto& [b, e] : s.spans) r.push_back(s.text.substr(b, e - b));
  return r;
}

ojson call(const std::string& name, ojson args) {
  return {{"type", "function"}, {"function", {{"name", name}, {"arguments", std::move(args)}}}};
}

const char* kBoth[] = {"gemma4", "gemma4-31b-it-interleaved"};

TEST(AssistantMask, SimpleTurns) {
  ojson conv = {{"messages",
                 {{{"role", "system"}, {"content", "Be brief."}},
                  {{"role", "user"}, {"content", "Hi"}},
                  {{"role", "assistant"}, {"content", "<|channel>thought\nplan<channel|>Hello!"}},
                  {{"role", "user"}, {"content", "Bye"}},
                  {{"role", "assistant"}, {"content", "Goodbye."}}}},
                {"add_generation_prompt", true}};  // ignored: masks render the conversation as training text
  for (const char* stem : kBoth) {
    SCOPED_TRACE(stem);
    AssistantSpans s = assistant_spans(load_template(stem), conv);
    EXPECT_EQ(s.text,
              "<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\nHello!<turn|>\n"
              "<|turn>user\nBye<turn|>\n<|turn>model\nGoodbye.<turn|>\n");
    EXPECT_EQ(masked_texts(s), (std::vector<std::string>{"Hello!<turn|>\n", "Goodbye.<turn|>\n"}));
  }
}

TEST(AssistantMask, ThinkingOnAndOffGiveTheSameSpans) {
  for (bool thinking : {false, true}) {
    ojson conv = {{"messages", {{{"role", "user"}, {"content", "Q"}}, {{"role", "assistant"}, {"content", "A"}}}},
                  {"enable_thinking", thinking}};
    for (const char* stem : kBoth) {
      SCOPED_TRACE(std::string(stem) + (thinking ? " thinking" : " no thinking"));
      AssistantSpans s = assistant_spans(load_template(stem), conv);
      EXPECT_EQ(masked_texts(s), (std::vector<std::string>{"A<turn|>\n"}));
    }
  }
}

TEST(AssistantMask, ToolCallsAreLearnedToolResultsAreNot) {
  ojson conv = {
      {"messages",
       {{{"role", "user"}, {"content", "Weather in Paris?"}},
        {{"role", "assistant"},
         {"tool_calls", {call("get_weather", {{"city", "Paris"}})}},
         {"tool_responses", {{{"name", "get_weather"}, {"response", {{"temp", 21}}}}}}},
        {{"role", "assistant"}, {"content", "It is 21."}}}},
      {"tools", ojson::array()}};
  for (const char* stem : kBoth) {
    SCOPED_TRACE(stem);
    AssistantSpans s = assistant_spans(load_template(stem), conv);
    EXPECT_EQ(s.text,
              "<bos><|turn>user\nWeather in Paris?<turn|>\n<|turn>model\n"
              "<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>}<tool_call|>"
              "<|tool_response>response:get_weather{temp:21}<tool_response|>"
              "<|turn>model\nIt is 21.<turn|>\n");
    EXPECT_EQ(masked_texts(s),
              (std::vector<std::string>{"<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>}<tool_call|><|tool_response>",
                                        "It is 21.<turn|>\n"}));
  }
}

TEST(AssistantMask, InterleavedReasoningAndContinuedTurn) {
  ojson conv = {
      {"messages",
       {{{"role", "user"}, {"content", "Plan"}},
        {{"role", "assistant"},
         {"reasoning_content", "Need weather."},
         {"tool_calls", {call("w", {{"c", "Oslo"}})}},
         {"tool_responses", {{{"name", "w"}, {"response", {{"t", -3}}}}}}},
        {{"role", "assistant"},
         {"reasoning_content", "Again."},
         {"tool_calls", {call("w", {{"c", "Oslo"}})}},
         {"tool_responses", {{{"name", "w"}, {"response", {{"t", -5}}}}}}},
        {{"role", "assistant"}, {"content", "Wear a coat."}}}}};
  AssistantSpans s = assistant_spans(load_template("gemma4-31b-it-interleaved"), conv);
  // The second call continues the model turn after the tool result: no header to skip.
  EXPECT_EQ(masked_texts(s), (std::vector<std::string>{
                                 "<|channel>thought\nNeed weather.<channel|><|tool_call>call:w{c:<|\"|>Oslo<|\"|>}<tool_call|><|tool_response>",
                                 "<|channel>thought\nAgain.<channel|><|tool_call>call:w{c:<|\"|>Oslo<|\"|>}<tool_call|><|tool_response>",
                                 "Wear a coat.<turn|>\n"}));
}

TEST(AssistantMask, ReasoningDroppedByALaterUserTurnIsNotMasked) {
  // The interleaved template renders reasoning only after the last user message, so turn 1 renders
  // differently once turn 3 exists: prefix rendering cannot locate it, the loop trace can.
  ojson conv = {{"messages",
                 {{{"role", "user"}, {"content", "First"}},
                  {{"role", "assistant"}, {"reasoning_content", "old"}, {"tool_calls", {call("f", ojson::object())}}},
                  {{"role", "user"}, {"content", "Second"}},
                  {{"role", "assistant"}, {"content", "Done."}}}}};
  AssistantSpans s = assistant_spans(load_template("gemma4-31b-it-interleaved"), conv);
  EXPECT_EQ(masked_texts(s), (std::vector<std::string>{"<|tool_call>call:f{}<tool_call|><turn|>\n", "Done.<turn|>\n"}));
}

TEST(AssistantMask, NoAssistantMessagesNoSpans) {
  ojson conv = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}};
  EXPECT_TRUE(assistant_spans(load_template("gemma4"), conv).spans.empty());
}

TEST(AssistantMask, GenerationBlocksAreUsedWhenPresent) {
  ChatTemplate t = ChatTemplate::from_string(
      "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>"
      "{% endgeneration %}{% else %}{{ m.content }}{% endif %}{{ '\\n' }}{% endfor %}",
      "gen.jinja");
  ojson conv = {{"messages", {{{"role", "user"}, {"content", "u"}}, {{"role", "assistant"}, {"content", "a"}}}}};
  AssistantSpans s = assistant_spans(t, conv);
  EXPECT_EQ(s.text, "<user>u\n<assistant>a</s>\n");
  EXPECT_EQ(masked_texts(s), (std::vector<std::string>{"a</s>"}));
}

TEST(AssistantMask, AssistantOutsideTheMessageLoopIsAnError) {
  ChatTemplate t = ChatTemplate::from_string("{{ messages[0].content }}", "odd.jinja");
  ojson conv = {{"messages", {{{"role", "assistant"}, {"content", "a"}}}}};
  EXPECT_THROW(assistant_spans(t, conv), Error);
}

// Independent oracle: where the template is prefix-stable, the span of assistant message i is what
// rendering messages[:i+1] appends to rendering messages[:i], minus the header and tool results.
TEST(AssistantMask, AgreesWithPrefixRenderingOnTheSuite) {
  std::ifstream f(test::source_dir() + "/tests/data/chat/conversations.jsonl");
  std::string line;
  int checked = 0;
  while (std::getline(f, line)) {
    ojson c = ojson::parse(line)["conversation"];
    const ojson& msgs = c["messages"];
    for (const char* stem : kBoth) {
      ChatTemplate t = load_template(stem);
      AssistantSpans s;
      try {
        s = assistant_spans(t, c);
      } catch (const Error&) {
        continue;  // conversations the template itself rejects
      }
      ojson probe = c;
      probe["add_generation_prompt"] = false;
      std::vector<std::string> expected;
      bool stable = true;
      for (size_t i = 0; i < msgs.size() && stable; ++i) {
        std::string role = msgs[i].value("role", "");
        if (role != "assistant" && role != "model") continue;
        if (i == 0) {  // no shorter conversation to compare with
          stable = false;
          break;
        }
        ojson pre = probe, cur = probe;
        pre["messages"] = ojson(std::vector<ojson>(msgs.begin(), msgs.begin() + i));
        cur["messages"] = ojson(std::vector<ojson>(msgs.begin(), msgs.begin() + i + 1));
        std::string a, b;
        try {
          a = t.render(pre);
          b = t.render(cur);
        } catch (const Error&) {
          stable = false;
          break;
        }
        if (b.compare(0, a.size(), a) != 0 || s.text.compare(0, b.size(), b) != 0) {
          stable = false;
          break;
        }
        std::string turn = b.substr(a.size());
        if (turn.rfind("<|turn>model\n", 0) == 0) turn = turn.substr(13);
        // Keep up to and including each "<|tool_response>", drop through its "<tool_response|>".
        while (!turn.empty()) {
          size_t open = turn.find("<|tool_response>");
          if (open == std::string::npos) {
            expected.push_back(turn);
            break;
          }
          expected.push_back(turn.substr(0, open + 16));
          size_t close = turn.find("<tool_response|>", open);
          turn = close == std::string::npos ? "" : turn.substr(close + 16);
        }
      }
      if (!stable || expected.empty()) continue;
      // Adjacent pieces merge in assistant_spans (a tool-call turn followed directly by the next turn), so
      // compare the learned text as a whole.
      std::string want, got;
      for (auto& x : expected) want += x;
      for (auto& x : masked_texts(s)) got += x;
      EXPECT_EQ(want, got) << stem << ": " << line.substr(0, 80);
      ++checked;
    }
  }
  EXPECT_GE(checked, 30);
}

TEST(AssistantMask, TokenLevelMaskWithTheRealTokenizer) {
  std::string path = test::cached_tokenizer("gemma4");
  if (!test::file_exists(path)) FAIL() << "missing " << path << ": run tools/fetch_tokenizers.sh";
  auto tok = Tokenizer::load(path);
  ojson conv = {
      {"messages",
       {{{"role", "user"}, {"content", "Weather in Paris?"}},
        {{"role", "assistant"},
         {"tool_calls", {call("get_weather", {{"city", "Paris"}})}},
         {"tool_responses", {{{"name", "get_weather"}, {"response", {{"temp", 21}}}}}}},
        {{"role", "assistant"}, {"content", "It is 21 °C in Paris — sunny. 😀"}},
        {{"role", "user"}, {"content", "Thanks!"}},
        {{"role", "assistant"}, {"content", "You're welcome."}}}}};
  for (const char* stem : kBoth) {
    SCOPED_TRACE(stem);
    ChatTemplate t = load_template(stem);
    MaskedIds m = chat_with_assistant_mask(*tok, t, conv);
    AssistantSpans s = assistant_spans(t, conv);
    ASSERT_EQ(m.ids, tok->encode(s.text));
    ASSERT_EQ(m.ids.size(), m.mask.size());
    EXPECT_EQ(m.ids[0], tok->token_to_id("<bos>"));
    // Decode each run of masked tokens.
    std::vector<std::string> runs;
    for (size_t i = 0; i < m.ids.size();) {
      if (!m.mask[i]) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < m.ids.size() && m.mask[j]) ++j;
      runs.push_back(tok->decode(std::vector<int32_t>(m.ids.begin() + i, m.ids.begin() + j)));
      i = j;
    }
    EXPECT_EQ(runs, (std::vector<std::string>{
                        "<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>}<tool_call|><|tool_response>",
                        "It is 21 °C in Paris — sunny. 😀<turn|>\n", "You're welcome.<turn|>\n"}));
    // The header and the tool result are not learned.
    int32_t turn = tok->token_to_id("<|turn>");
    for (size_t i = 0; i < m.ids.size(); ++i)
      if (m.ids[i] == turn) {
        EXPECT_EQ(m.mask[i], 0);
      }
  }
}

TEST(AssistantMask, PlainJsonOverloadMatches) {
  std::string path = test::cached_tokenizer("gemma4");
  if (!test::file_exists(path)) FAIL() << "missing " << path << ": run tools/fetch_tokenizers.sh";
  auto tok = Tokenizer::load(path);
  nlohmann::json conv = {{"messages", {{{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "Yo"}}}}};
  MaskedIds m = chat_with_assistant_mask(*tok, load_template("gemma4"), conv);
  std::vector<int32_t> masked;
  for (size_t i = 0; i < m.ids.size(); ++i)
    if (m.mask[i]) masked.push_back(m.ids[i]);
  EXPECT_EQ(tok->decode(masked), "Yo<turn|>\n");
}

}  // namespace
}  // namespace gemma4

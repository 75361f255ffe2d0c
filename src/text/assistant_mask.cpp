#include "text/assistant_mask.h"

#include <algorithm>

#include "core/error.h"

namespace gemma4 {
namespace {

constexpr std::string_view kToolResponseOpen = "<|tool_response>";
constexpr std::string_view kToolResponseClose = "<tool_response|>";

bool is_assistant(const nlohmann::ordered_json& m) {
  if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) return false;
  const std::string& r = m["role"].get_ref<const std::string&>();
  return r == "assistant" || r == "model";
}

// The model-turn header: the first line of the generation prompt, found by rendering a one-message
// conversation with and without add_generation_prompt (same variables otherwise).
std::string model_header(const ChatTemplate& tmpl, const nlohmann::ordered_json& conv) {
  nlohmann::ordered_json probe = conv;
  probe["messages"] = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "x"}}});
  probe["add_generation_prompt"] = false;
  std::string without = tmpl.render(probe);
  probe["add_generation_prompt"] = true;
  std::string with = tmpl.render(probe);
  if (with.compare(0, without.size(), without) != 0)
    throw Error("{}: add_generation_prompt changes the text before the prompt; cannot find the model turn header",
                tmpl.name());
  std::string prompt = with.substr(without.size());
  size_t nl = prompt.find('\n');
  return nl == std::string::npos ? prompt : prompt.substr(0, nl + 1);
}

// Splits [b, e) around tool results (kept: everything up to and including `<|tool_response>`).
void add_without_tool_results(const std::string& text, size_t b, size_t e, std::vector<std::pair<size_t, size_t>>& out) {
  size_t pos = b;
  while (pos < e) {
    size_t open = text.find(kToolResponseOpen, pos);
    if (open == std::string::npos || open + kToolResponseOpen.size() > e) {
      out.emplace_back(pos, e);
      return;
    }
    out.emplace_back(pos, open + kToolResponseOpen.size());
    size_t close = text.find(kToolResponseClose, open + kToolResponseOpen.size());
    if (close == std::string::npos || close + kToolResponseClose.size() > e) return;
    pos = close + kToolResponseClose.size();
  }
}

std::vector<std::pair<size_t, size_t>> normalize(std::vector<std::pair<size_t, size_t>> spans) {
  std::sort(spans.begin(), spans.end());
  std::vector<std::pair<size_t, size_t>> out;
  for (const auto& [b, e] : spans) {
    if (b >= e) continue;
    if (!out.empty() && b <= out.back().second) out.back().second = std::max(out.back().second, e);
    else out.emplace_back(b, e);
  }
  return out;
}

}  // namespace

AssistantSpans assistant_spans(const ChatTemplate& tmpl, const nlohmann::ordered_json& conversation) {
  if (!conversation.is_object()) throw Error("chat conversation must be a JSON object with \"messages\"");
  jinja::check_json_nesting(conversation);
  nlohmann::ordered_json conv = conversation;
  conv["add_generation_prompt"] = false;
  jinja::RenderTrace trace;
  AssistantSpans r;
  r.text = tmpl.render(conv, &trace);
  std::vector<std::pair<size_t, size_t>> spans;
  if (!trace.generation.empty()) {
    spans = trace.generation;
  } else {
    const auto& messages = conv["messages"];
    std::string header;
    bool have_header = false;
    for (size_t i = 0; i < messages.size(); ++i) {
      if (!is_assistant(messages[i])) continue;
      std::vector<jinja::RenderTrace::Iteration> hits;
      for (const auto& it : trace.iterations)
        if (it.item == i && it.begin < it.end) hits.push_back(it);
      if (hits.empty())
        throw Error("{}: assistant message {} is not rendered inside a loop over messages; cannot locate its span",
                    tmpl.name(), i);
      if (hits.size() > 1)
        throw Error("{}: assistant message {} is rendered by {} loop iterations; its span is ambiguous", tmpl.name(),
                    i, hits.size());
      if (!have_header) {
        header = model_header(tmpl, conv);
        have_header = true;
      }
      size_t b = hits[0].begin, e = hits[0].end;
      if (!header.empty() && r.text.compare(b, header.size(), header) == 0) b += header.size();
      add_without_tool_results(r.text, b, e, spans);
    }
  }
  r.spans = normalize(std::move(spans));
  return r;
}

MaskedIds chat_with_assistant_mask(const Tokenizer& tok, const ChatTemplate& tmpl,
                                   const nlohmann::ordered_json& conversation) {
  AssistantSpans s = assistant_spans(tmpl, conversation);
  MaskedIds out;
  auto piece = [&](size_t b, size_t e, uint8_t m) {
    if (b >= e) return;
    std::vector<int32_t> ids = tok.encode(std::string_view(s.text).substr(b, e - b));
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.mask.insert(out.mask.end(), ids.size(), m);
  };
  size_t pos = 0;
  for (const auto& [b, e] : s.spans) {
    piece(pos, b, 0);
    piece(b, e, 1);
    pos = e;
  }
  piece(pos, s.text.size(), 0);
  std::vector<int32_t> whole = tok.encode(s.text);
  if (whole != out.ids) {
    size_t k = 0;
    while (k < whole.size() && k < out.ids.size() && whole[k] == out.ids[k]) ++k;
    throw Error("{}: assistant mask: tokenizing the rendered chat at the span boundaries gives other ids than "
                "tokenizing it whole (first difference at token {}); a boundary splits a token",
                tmpl.name(), k);
  }
  return out;
}

MaskedIds chat_with_assistant_mask(const Tokenizer& tok, const ChatTemplate& tmpl, const nlohmann::json& conversation) {
  jinja::check_json_nesting(conversation);  // before dump(), which recurses
  return chat_with_assistant_mask(tok, tmpl, nlohmann::ordered_json::parse(conversation.dump()));
}

}  // namespace gemma4

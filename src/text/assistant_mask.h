// Assistant masks for chat SFT: the ids of a rendered conversation plus a mask that is true exactly on the
// tokens the model must learn -- each model turn's content and its closing `<turn|>` and newline, not the
// `<|turn>model\n` header, not user/system/tool text.
//
// The stock Gemma 4 templates have no {% generation %} markers (HF's mask comes back all zeros), so spans
// are derived from the rendering itself: the engine records which output bytes each iteration of the
// template's loop over `messages` wrote (robust to templates whose earlier turns depend on later messages,
// such as the interleaved template dropping reasoning before the last user turn). From an assistant
// message's bytes we drop
//   - the turn header: the first line of the generation prompt (what add_generation_prompt=true appends;
//     the rest of that prompt, e.g. the thinking-off empty thought channel, is not part of the header);
//   - tool results inside the turn: after `<|tool_response>` up to and including `<tool_response|>` (the
//     model emits `<|tool_response>` to hand over to the tool; generation stops there).
// Templates that do have {% generation %} blocks use those blocks, as HF does.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace gemma4 {

struct MaskedIds {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;  // 1 = a token the model learns
};

// The rendered conversation (add_generation_prompt forced to false) and the byte ranges [begin, end) the
// model learns, sorted and disjoint. Throws Error if an assistant message cannot be located.
struct AssistantSpans {
  std::string text;
  std::vector<std::pair<size_t, size_t>> spans;
};
AssistantSpans assistant_spans(const ChatTemplate& tmpl, const nlohmann::ordered_json& conversation);

// Tokenizes the rendered text piecewise at the span boundaries; the concatenated ids must equal tokenizing
// the whole text (checked: an Error names the first differing token otherwise).
MaskedIds chat_with_assistant_mask(const Tokenizer& tok, const ChatTemplate& tmpl,
                                   const nlohmann::ordered_json& conversation);
MaskedIds chat_with_assistant_mask(const Tokenizer& tok, const ChatTemplate& tmpl, const nlohmann::json& conversation);

}  // namespace gemma4

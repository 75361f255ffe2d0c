// Chat records -> Example: the chat template renders the conversation and the assistant masks of
// text/assistant_mask.h mark what the model learns (each model turn's content and closing tokens).
#include "core/error.h"
#include "text/assistant_mask.h"
#include "train/data_internal.h"

namespace gemma4::data {

Example encode_chat(const nlohmann::ordered_json& messages, const Tokenizer& tok, const ChatTemplate* tmpl) {
  if (!tmpl) {
    throw UsageError("chat records need a chat template (set tokenizer.chat_template, or a model/tokenizer "
                     "directory that has chat_template.jinja)");
  }
  nlohmann::ordered_json conversation = {{"messages", messages}};
  MaskedIds m;
  try {
    m = chat_with_assistant_mask(tok, *tmpl, conversation);
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw Error("chat: {}", e.what());
  }
  G4_CHECK(m.ids.size() == m.mask.size(), "chat: {} ids but {} mask values", m.ids.size(), m.mask.size());
  Example ex;
  ex.ids.assign(m.ids.begin(), m.ids.end());
  ex.target = std::move(m.mask);
  return ex;
}

}  // namespace gemma4::data

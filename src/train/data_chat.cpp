// Chat records -> Example with the chat template's assistant masks.
#include "core/error.h"
#include "train/data_internal.h"

namespace gemma4::data {

Example encode_chat(const nlohmann::json& messages, const Tokenizer& tok, const ChatTemplate* tmpl) {
  // Replaced once src/text/assistant_mask.h lands.
  throw UsageError("chat records are not supported yet (chat template with assistant masks pending)");
}

}  // namespace gemma4::data

// Prompts for chat-style generation from a model directory (used by `gemma4 eval` and `gemma4 chat`): the
// conversation rendered with the directory's chat template (chat_template.jinja, or the chat_template field of
// tokenizer_config.json) and tokenized as Hugging Face's apply_chat_template(tokenize=True) does (the rendered
// text encoded without adding special tokens: the template writes <bos> itself); without a template, the raw
// text with <bos> (fairseq2's `prompt` mode). Stop ids: the model's generation eos ids plus the template's
// end-of-turn token (<turn|>) and the tokenizer's <eos>.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace gemma4 {

struct ModelConfig;

class ChatPrompter {
 public:
  // use_template = false ignores a template the directory has. Throws Error on a broken template file.
  ChatPrompter(const std::string& model_dir, std::shared_ptr<const Tokenizer> tok, bool use_template = true);

  // True when model_dir has a chat template (chat_template.jinja, or tokenizer_config.json with chat_template).
  static bool dir_has_template(const std::string& model_dir);

  bool has_template() const { return tmpl_.has_value(); }
  const Tokenizer& tokenizer() const { return *tok_; }

  // messages: [{"role": ..., "content": ...}, ...]; the prompt ends with the generation prompt (the model's
  // turn header). Without a template: the messages' contents joined by "\n\n" after <bos>.
  std::vector<int64_t> encode(const nlohmann::ordered_json& messages) const;
  // One user question (plus an optional system text) as a prompt.
  std::vector<int64_t> encode_question(const std::string& question, const std::string& system = "") const;
  // The text of the prompt (for --verbose output and tests).
  std::string render(const nlohmann::ordered_json& messages) const;

  // Stop ids for generation: cfg's eos ids, the end-of-turn token when the vocabulary has one, <eos>.
  std::vector<int64_t> stop_ids(const ModelConfig& cfg) const;

  // Decodes generated ids to the reply text: a trailing stop id is dropped, special tokens are skipped.
  std::string decode_reply(const std::vector<int64_t>& generated, const std::vector<int64_t>& stops) const;

 private:
  std::shared_ptr<const Tokenizer> tok_;
  std::optional<ChatTemplate> tmpl_;
};

}  // namespace gemma4

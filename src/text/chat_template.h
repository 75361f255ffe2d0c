// A checkpoint's chat template, rendered as Hugging Face's apply_chat_template(tokenize=False) renders it.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "text/jinja.h"

namespace gemma4 {

class ChatTemplate {
 public:
  // PATH is a .jinja file, a tokenizer_config.json (its "chat_template" field, a string or HF's list of named
  // templates, of which "default" is used), or a model directory (chat_template.jinja first, then
  // tokenizer_config.json). bos_token/eos_token come from the directory's or file's tokenizer_config.json
  // when it has them, else "<bos>"/"<eos>". Throws Error naming the file.
  static ChatTemplate load(const std::string& path);
  static ChatTemplate from_string(std::string_view source, std::string name = "chat_template.jinja");

  // conversation: a JSON object with "messages" and optionally "tools", "add_generation_prompt",
  // "enable_thinking", "bos_token", "eos_token" or any other variable; every top-level key is passed to
  // the template. Defaults as HF: tools=None, documents=None, add_generation_prompt=False, and the
  // template's bos/eos tokens. Throws Error ("chat_template.jinja:12: ...") on failure.
  std::string render(const nlohmann::ordered_json& conversation, jinja::RenderTrace* trace = nullptr) const;

  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }
  const std::string& name() const { return tmpl_->name(); }

 private:
  std::shared_ptr<const jinja::Template> tmpl_;
  std::string bos_ = "<bos>", eos_ = "<eos>";
};

}  // namespace gemma4

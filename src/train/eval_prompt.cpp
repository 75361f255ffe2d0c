#include "train/eval_prompt.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/config.h"

namespace gemma4 {
namespace fs = std::filesystem;

bool ChatPrompter::dir_has_template(const std::string& model_dir) {
  std::error_code ec;
  if (fs::exists(fs::path(model_dir) / "chat_template.jinja", ec)) return true;
  fs::path cfg = fs::path(model_dir) / "tokenizer_config.json";
  if (!fs::exists(cfg, ec)) return false;
  std::ifstream f(cfg, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error("{}: invalid JSON", cfg.string());
  return j.is_object() && j.contains("chat_template") && !j["chat_template"].is_null();
}

ChatPrompter::ChatPrompter(const std::string& model_dir, std::shared_ptr<const Tokenizer> tok, bool use_template)
    : tok_(std::move(tok)) {
  G4_CHECK(tok_ != nullptr, "ChatPrompter: no tokenizer");
  if (use_template && dir_has_template(model_dir)) tmpl_ = ChatTemplate::load(model_dir);
}

std::string ChatPrompter::render(const nlohmann::ordered_json& messages) const {
  G4_CHECK(messages.is_array(), "chat messages must be a JSON array");
  if (tmpl_) {
    nlohmann::ordered_json conv = {{"messages", messages}, {"add_generation_prompt", true}};
    return tmpl_->render(conv);
  }
  std::string text;
  for (const auto& m : messages) {
    G4_CHECK(m.is_object() && m.contains("content") && m["content"].is_string(),
             "chat message needs a string \"content\"");
    if (!text.empty()) text += "\n\n";
    text += m["content"].get<std::string>();
  }
  return text;
}

std::vector<int64_t> ChatPrompter::encode(const nlohmann::ordered_json& messages) const {
  std::string text = render(messages);
  // The template writes <bos> itself; raw text gets it from `prompt` mode.
  std::vector<int32_t> ids = tmpl_ ? tok_->encode(text) : tok_->encode(text, EncodeMode::Prompt);
  G4_CHECK(!ids.empty(), "the prompt is empty");
  return {ids.begin(), ids.end()};
}

std::vector<int64_t> ChatPrompter::encode_question(const std::string& question, const std::string& system) const {
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  if (!system.empty()) msgs.push_back({{"role", "system"}, {"content", system}});
  msgs.push_back({{"role", "user"}, {"content", question}});
  return encode(msgs);
}

std::vector<int64_t> ChatPrompter::stop_ids(const ModelConfig& cfg) const {
  std::vector<int64_t> ids = cfg.eos_ids();
  auto add = [&](int64_t id) {
    if (id >= 0 && id < cfg.text.vocab_size && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  if (tmpl_) add(tok_->token_to_id("<turn|>"));
  add(tok_->eos_id());
  return ids;
}

std::string ChatPrompter::decode_reply(const std::vector<int64_t>& generated, const std::vector<int64_t>& stops) const {
  std::vector<int32_t> ids(generated.begin(), generated.end());
  if (!ids.empty() && std::find(stops.begin(), stops.end(), int64_t(ids.back())) != stops.end()) ids.pop_back();
  for (int32_t id : ids)
    G4_CHECK(id >= 0 && id < tok_->vocab_size(), "generated id {} is outside the tokenizer's vocabulary ({})", id,
             tok_->vocab_size());
  return tok_->decode(ids, /*skip_special=*/true);
}

}  // namespace gemma4

#include "text/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace gemma4 {
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error("{}: cannot read file", p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::ordered_json read_json(const fs::path& p) {
  try {
    return nlohmann::ordered_json::parse(read_text(p));
  } catch (const nlohmann::json::exception& e) {
    throw Error("{}: invalid JSON: {}", p.string(), e.what());
  }
}

// Special tokens are strings or AddedToken objects ({"content": "<bos>", ...}).
std::string token_text(const nlohmann::ordered_json& v, const std::string& dflt) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return dflt;
}

std::string template_from_config(const nlohmann::ordered_json& cfg, const fs::path& p) {
  if (!cfg.is_object() || !cfg.contains("chat_template")) throw Error("{}: no \"chat_template\" field", p.string());
  const auto& ct = cfg["chat_template"];
  if (ct.is_string()) return ct.get<std::string>();
  if (ct.is_array()) {
    for (const auto& t : ct)
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
        return t["template"].get<std::string>();
    throw Error("{}: \"chat_template\" is a list without a template named \"default\"", p.string());
  }
  throw Error("{}: \"chat_template\" must be a string or a list of named templates", p.string());
}

}  // namespace

ChatTemplate ChatTemplate::from_string(std::string_view source, std::string name) {
  ChatTemplate t;
  t.tmpl_ = std::make_shared<jinja::Template>(source, std::move(name));
  return t;
}

ChatTemplate ChatTemplate::load(const std::string& path) {
  fs::path p(path);
  std::error_code ec;
  if (!fs::exists(p, ec)) throw Error("{}: no such file or directory", path);
  fs::path config;
  ChatTemplate t;
  if (fs::is_directory(p, ec)) {
    fs::path jinja_file = p / "chat_template.jinja";
    if (fs::exists(p / "tokenizer_config.json")) config = p / "tokenizer_config.json";
    if (fs::exists(jinja_file)) {
      t = from_string(read_text(jinja_file), jinja_file.string());
    } else if (!config.empty()) {
      t = from_string(template_from_config(read_json(config), config), config.string());
    } else {
      throw Error("{}: no chat_template.jinja or tokenizer_config.json in this directory", path);
    }
  } else if (p.extension() == ".json") {
    config = p;
    t = from_string(template_from_config(read_json(config), config), config.string());
  } else {
    t = from_string(read_text(p), p.string());
  }
  if (!config.empty()) {
    auto cfg = read_json(config);
    if (cfg.is_object()) {
      if (cfg.contains("bos_token")) t.bos_ = token_text(cfg["bos_token"], t.bos_);
      if (cfg.contains("eos_token")) t.eos_ = token_text(cfg["eos_token"], t.eos_);
    }
  }
  return t;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& conversation, jinja::RenderTrace* trace) const {
  if (!conversation.is_object()) throw Error("chat conversation must be a JSON object with \"messages\"");
  jinja::check_json_nesting(conversation);
  if (!conversation.contains("messages") || !conversation["messages"].is_array())
    throw Error("chat conversation needs a \"messages\" array");
  if (conversation["messages"].empty())  // as HF's apply_chat_template
    throw Error("cannot apply a chat template to an empty conversation: provide at least one message");
  // HF passes messages, tools, documents and add_generation_prompt, then the special tokens and the
  // caller's keyword arguments.
  nlohmann::ordered_json vars = {{"tools", nullptr},
                                 {"documents", nullptr},
                                 {"add_generation_prompt", false},
                                 {"bos_token", bos_},
                                 {"eos_token", eos_}};
  for (const auto& [k, v] : conversation.items()) vars[k] = v;
  return tmpl_->render(vars, trace);
}

}  // namespace gemma4

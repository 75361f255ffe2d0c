// gemma4 render-chat --template PATH --input CONV.json
// Prints the rendered conversation exactly (no newline added). CONV.json is an object with "messages" and
// any other template variables; "-" reads it from stdin.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/args.h"
#include "cli/command.h"
#include "core/error.h"
#include "text/chat_template.h"

namespace gemma4::cli {
namespace {

const char* kUsage =
    "usage: gemma4 render-chat --template PATH --input CONV.json\n"
    "  PATH: a .jinja file, a tokenizer_config.json or a model directory\n"
    "  CONV.json: {\"messages\": [...], \"tools\"?, \"add_generation_prompt\"?, \"enable_thinking\"?, ...}; - for stdin";

nlohmann::ordered_json read_conversation(const std::string& path) {
  std::stringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("{}: cannot read file", path);
    ss << f.rdbuf();
  }
  try {
    return nlohmann::ordered_json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error("{}: invalid JSON: {}", path, e.what());
  }
}

int run_render_chat(const std::vector<std::string>& argv) {
  Args args(argv, {"--template", "--input"}, {}, kUsage);
  if (!args.positionals().empty()) throw UsageError("unexpected argument '{}'", args.positionals()[0]);
  ChatTemplate tmpl = ChatTemplate::load(args.get("--template"));
  std::string input = args.get("--input");
  std::string text = tmpl.render(read_conversation(input));
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

G4_COMMAND("render-chat", "render a conversation with a chat template, as HF apply_chat_template does", run_render_chat);

}  // namespace gemma4::cli

// gemma4 chat --model DIR [--system TEXT] [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]
//             [--seed S] [--no-history]
//
// A conversation with the model through its chat template. Each stdin line is one user turn; EOF ends.
// - On a terminal: a "> " prompt, the reply streamed as it is generated; "/reset" starts a new conversation,
//   "/exit" (or Ctrl-D) quits.
// - Piped (stdin not a terminal): only the replies are printed, one line each, so that the output is
//   scriptable; a newline inside a reply is written as the two characters "\n" (and a backslash as "\\").
// Greedy by default; sampling with --temperature > 0 (turn k uses seed S + k). Generation stops at the
// template's end-of-turn token or the model's eos ids. --no-history answers every line as a fresh
// conversation.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/args.h"
#include "cli/command.h"
#include "core/error.h"
#include "generate/generator.h"
#include "train/eval_prompt.h"

namespace gemma4::cli {
namespace {

std::string escape_line(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out;
}

// Prints the reply while it is generated: decodes the whole reply so far and prints what is new, holding
// back a tail that ends in an incomplete UTF-8 sequence (decoded as U+FFFD until its last byte arrives).
class Streamer {
 public:
  Streamer(const ChatPrompter& p, const std::vector<int64_t>& stops) : p_(p), stops_(stops) {}
  void add(int64_t id) {
    ids_.push_back(id);
    std::string text = p_.decode_reply(ids_, stops_);
    static const std::string kReplacement = "\xEF\xBF\xBD";
    if (text.size() >= 3 && text.compare(text.size() - 3, 3, kReplacement) == 0) return;
    if (text.size() > printed_ && text.compare(0, printed_, shown_, 0, printed_) == 0) {
      std::fwrite(text.data() + printed_, 1, text.size() - printed_, stdout);
      std::fflush(stdout);
      printed_ = text.size();
      shown_ = text;
    }
  }
  void finish(const std::string& final_text) {
    if (final_text.size() > printed_ && final_text.compare(0, printed_, shown_, 0, printed_) == 0)
      std::fwrite(final_text.data() + printed_, 1, final_text.size() - printed_, stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

 private:
  const ChatPrompter& p_;
  const std::vector<int64_t>& stops_;
  std::vector<int64_t> ids_;
  std::string shown_;
  size_t printed_ = 0;
};

int run_chat(const std::vector<std::string>& argv) {
  const char* usage =
      "gemma4 chat --model DIR [--system TEXT] [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] "
      "[--seed S] [--no-history]";
  Args a(argv, {"--model", "--system", "--max-new-tokens", "--temperature", "--top-k", "--top-p", "--seed"},
         {"--no-history"}, usage);
  if (!a.positionals().empty()) throw UsageError("unexpected argument '{}'; usage: {}", a.positionals()[0], usage);
  if (!a.has("--model")) throw UsageError("--model is required; usage: {}", usage);
  const std::string dir = a.get("--model");
  long long max_new = a.get_int("--max-new-tokens", 256);
  if (max_new < 1 || max_new > 1000000) throw UsageError("--max-new-tokens must be in [1, 1000000]");
  double temperature = a.get_double("--temperature", 0.0);
  if (temperature < 0) throw UsageError("--temperature must be >= 0");
  long long top_k = a.get_int("--top-k", 0);
  if (top_k < 0) throw UsageError("--top-k must be >= 0");
  double top_p = a.get_double("--top-p", 1.0);
  if (!(top_p > 0 && top_p <= 1)) throw UsageError("--top-p must be in (0, 1]");
  long long seed = a.get_int("--seed", 0);
  const std::string system = a.get_or("--system", "");
  const bool history = !a.has("--no-history");

  auto model = Model::load(dir);
  std::shared_ptr<const Tokenizer> tok = Tokenizer::load(dir);
  if (!ChatPrompter::dir_has_template(dir))
    throw Error("{}: no chat template (chat_template.jinja or tokenizer_config.json chat_template)", dir);
  ChatPrompter prompter(dir, tok);

  GenerateOptions gen = default_generate_options(model->config());
  gen.eos_ids = prompter.stop_ids(model->config());
  gen.max_new_tokens = int(max_new);
  gen.sampling.temperature = temperature;
  gen.sampling.top_k = int(top_k);
  gen.sampling.top_p = top_p;

  const bool tty = isatty(STDIN_FILENO);
  auto fresh = [&] {
    nlohmann::ordered_json m = nlohmann::ordered_json::array();
    if (!system.empty()) m.push_back({{"role", "system"}, {"content", system}});
    return m;
  };
  nlohmann::ordered_json messages = fresh();
  if (tty) std::fprintf(stderr, "gemma4 chat: %s (/reset starts over, /exit or Ctrl-D quits)\n", dir.c_str());

  std::string line;
  for (uint64_t turn = 0;; ++turn) {
    if (tty) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (tty) {
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        messages = fresh();
        std::fputs("(new conversation)\n", stdout);
        continue;
      }
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
    }
    if (!history) messages = fresh();
    messages.push_back({{"role", "user"}, {"content", line}});
    std::vector<int64_t> prompt = prompter.encode(messages);
    gen.sampling.seed = uint64_t(seed) + turn;

    std::string reply;
    if (tty) {
      Streamer s(prompter, gen.eos_ids);
      std::vector<int64_t> out = generate(*model, prompt, gen, nullptr, [&](int64_t id) { s.add(id); });
      reply = prompter.decode_reply(out, gen.eos_ids);
      s.finish(reply);
    } else {
      std::vector<int64_t> out = generate(*model, prompt, gen);
      reply = prompter.decode_reply(out, gen.eos_ids);
      std::string esc = escape_line(reply) + "\n";
      std::fwrite(esc.data(), 1, esc.size(), stdout);
      std::fflush(stdout);
    }
    messages.push_back({{"role", "assistant"}, {"content", reply}});
  }
  if (std::cin.bad()) throw Error("stdin: read error");
  if (tty) std::fputc('\n', stdout);
  return 0;
}

}  // namespace
G4_COMMAND("chat", "chat with a model through its chat template (stdin lines are user turns)", run_chat);
}  // namespace gemma4::cli

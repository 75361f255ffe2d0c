// gemma4 eval gsm8k --model DIR [--limit N] [--data PATH] [--max-new-tokens N] [--extract strict|flexible]
//                   [--system TEXT] [--no-chat-template] [--predictions OUT.jsonl] [--quiet]
//
// Generates greedy answers for GSM8K-style records ({"question","answer":"... #### N"}) and prints the exact-match
// accuracy of the "#### N" answers as its last stdout line: "accuracy: 0.9150". Progress (one line per record)
// goes to stderr unless --quiet. Default data: ../shared/data/gsm8k/test.jsonl relative to the working
// directory (the repository root), else relative to the repository that holds the executable.

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/args.h"
#include "cli/command.h"
#include "train/eval_gsm8k.h"

namespace gemma4::cli {
namespace {
namespace fs = std::filesystem;

const char* kDefaultData = "../shared/data/gsm8k/test.jsonl";

std::string default_data_path() {
  std::error_code ec;
  if (fs::exists(kDefaultData, ec)) return kDefaultData;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path()) {
      fs::path cand = d / kDefaultData;
      if (fs::exists(cand, ec)) return cand.lexically_normal().string();
    }
  }
  throw Error("GSM8K test set not found at {} (relative to the repository); give --data PATH", kDefaultData);
}

std::string json_line(const QaRecord& r, const EvalItem& it) {
  nlohmann::ordered_json j = {{"question", r.question},
                              {"reference", r.reference},
                              {"completion", it.completion},
                              {"predicted", it.predicted ? nlohmann::json(*it.predicted) : nlohmann::json(nullptr)},
                              {"correct", it.correct}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

int run_eval(const std::vector<std::string>& argv) {
  const char* usage =
      "gemma4 eval gsm8k --model DIR [--limit N] [--data PATH] [--max-new-tokens N] [--extract strict|flexible] "
      "[--system TEXT] [--no-chat-template] [--predictions OUT.jsonl] [--quiet]";
  Args a(argv, {"--model", "--limit", "--data", "--max-new-tokens", "--extract", "--system", "--predictions"},
         {"--no-chat-template", "--quiet"}, usage);
  if (a.positionals().size() != 1) throw UsageError("expected the task name (gsm8k); usage: {}", usage);
  if (a.positionals()[0] != "gsm8k")
    throw UsageError("unknown eval task '{}' (available: gsm8k); usage: {}", a.positionals()[0], usage);
  if (!a.has("--model")) throw UsageError("--model is required; usage: {}", usage);
  const std::string dir = a.get("--model");
  long long limit = a.get_int("--limit", -1);
  if (a.has("--limit") && limit < 0) throw UsageError("--limit must be >= 0");
  long long max_new = a.get_int("--max-new-tokens", 256);
  if (max_new < 1 || max_new > 1000000) throw UsageError("--max-new-tokens must be in [1, 1000000]");
  EvalOptions opt;
  opt.max_new_tokens = int(max_new);
  opt.rule = parse_extract_rule(a.get_or("--extract", "strict"));
  opt.system = a.get_or("--system", "");
  const bool quiet = a.has("--quiet");

  const std::string data = a.has("--data") ? a.get("--data") : default_data_path();
  std::vector<QaRecord> records = read_qa_jsonl(data, limit);
  if (records.empty()) throw Error("{}: no records to evaluate", data);

  auto model = Model::load(dir);
  std::shared_ptr<const Tokenizer> tok = Tokenizer::load(dir);
  ChatPrompter prompter(dir, tok, !a.has("--no-chat-template"));

  std::ofstream pred;
  if (a.has("--predictions")) {
    pred.open(a.get("--predictions"), std::ios::binary | std::ios::trunc);
    if (!pred) throw Error("{}: cannot write file", a.get("--predictions"));
  }
  if (!quiet)
    std::fprintf(stderr, "eval gsm8k: %zu records from %s, model %s (%s prompt), greedy, max %d new tokens\n",
                 records.size(), data.c_str(), dir.c_str(), prompter.has_template() ? "chat-template" : "raw",
                 opt.max_new_tokens);
  int64_t correct = 0;
  auto on_item = [&](size_t i, const QaRecord& r, const EvalItem& it) {
    correct += it.correct;
    if (pred) pred << json_line(r, it);
    if (!quiet)
      std::fprintf(stderr, "[%zu/%zu] %-5s predicted=%s reference=%s  running accuracy %.4f\n", i + 1, records.size(),
                   it.correct ? "ok" : "wrong", it.predicted ? it.predicted->c_str() : "(none)", r.reference.c_str(),
                   double(correct) / double(i + 1));
  };
  EvalSummary s = evaluate_qa(*model, prompter, records, opt, on_item);
  if (pred) {
    pred.flush();
    if (!pred) throw Error("{}: write failed", a.get("--predictions"));
  }
  std::printf("examples: %lld\n", (long long)s.num_examples);
  std::printf("correct: %lld\n", (long long)s.num_correct);
  std::printf("no answer: %lld\n", (long long)s.num_no_answer);
  std::printf("generated tokens: %lld (%.1f tokens/s, %.2f s)\n", (long long)s.new_tokens,
              s.seconds > 0 ? double(s.new_tokens) / s.seconds : 0.0, s.seconds);
  std::printf("accuracy: %.4f\n", s.accuracy());
  return 0;
}

}  // namespace
G4_COMMAND("eval", "evaluate a model: eval gsm8k (exact match of '#### N' answers)", run_eval);
}  // namespace gemma4::cli

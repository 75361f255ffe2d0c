#include "train/eval_gsm8k.h"

#include <chrono>
#include <fstream>

#include "core/error.h"
#include "generate/generator.h"

namespace gemma4 {

std::vector<QaRecord> read_qa_jsonl(const std::string& path, int64_t limit) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("{}: cannot read file", path);
  std::vector<QaRecord> out;
  std::string line;
  for (int64_t lineno = 1; std::getline(f, line); ++lineno) {
    if (limit >= 0 && int64_t(out.size()) >= limit) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::string where = path + ":" + std::to_string(lineno);
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw Error("{}: invalid JSON", where);
    if (!j.is_object()) throw Error("{}: expected a JSON object with \"question\" and \"answer\"", where);
    for (const char* k : {"question", "answer"})
      if (!j.contains(k) || !j[k].is_string()) throw Error("{}: \"{}\" must be a string", where, k);
    QaRecord r;
    r.question = j["question"].get<std::string>();
    r.answer = j["answer"].get<std::string>();
    r.origin = where;
    auto ref = reference_answer(r.answer);
    if (!ref) throw Error("{}: the answer has no \"#### N\" line with a number", where);
    r.reference = *ref;
    out.push_back(std::move(r));
  }
  if (f.bad()) throw Error("{}: read error", path);
  return out;
}

EvalSummary evaluate_qa(Model& model, const ChatPrompter& prompter, const std::vector<QaRecord>& records,
                        const EvalOptions& opt,
                        const std::function<void(size_t, const QaRecord&, const EvalItem&)>& on_item) {
  G4_CHECK(opt.max_new_tokens >= 1, "max_new_tokens must be >= 1, got {}", opt.max_new_tokens);
  GenerateOptions gen = default_generate_options(model.config());
  gen.eos_ids = prompter.stop_ids(model.config());
  gen.max_new_tokens = opt.max_new_tokens;
  gen.sampling.temperature = 0.0;  // greedy
  gen.sampling.top_k = 0;
  gen.sampling.top_p = 1.0;

  EvalSummary s;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < records.size(); ++i) {
    const QaRecord& r = records[i];
    EvalItem it;
    std::vector<int64_t> prompt;
    try {
      prompt = prompter.encode_question(r.question, opt.system);
    } catch (const Error& e) {
      throw Error("{}: {}", r.origin, e.what());
    }
    std::vector<int64_t> out = generate(model, prompt, gen);
    it.prompt_tokens = int64_t(prompt.size());
    it.new_tokens = int64_t(out.size());
    it.completion = prompter.decode_reply(out, gen.eos_ids);
    it.predicted = extract_answer(it.completion, opt.rule);
    it.correct = it.predicted && *it.predicted == r.reference;
    ++s.num_examples;
    s.num_correct += it.correct;
    s.num_no_answer += !it.predicted;
    s.prompt_tokens += it.prompt_tokens;
    s.new_tokens += it.new_tokens;
    if (on_item) on_item(i, r, it);
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

}  // namespace gemma4

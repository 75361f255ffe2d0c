// GSM8K-style evaluation (`gemma4 eval gsm8k`): each {"question","answer"} record's question becomes a
// prompt (the model's chat template with the question as the user turn, or the raw question when the model
// has no template), the model generates greedily until a stop id or max_new_tokens, the answer is extracted
// with the standard "#### N" rule (generate/answer_extract.h) and compared exactly with the reference's.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "generate/answer_extract.h"
#include "model/model.h"
#include "train/eval_prompt.h"

namespace gemma4 {

struct QaRecord {
  std::string question, answer;
  std::string reference;  // canonical "#### N" number of `answer`
  std::string origin;     // "file:line"
};

// Reads a JSONL file of {"question": str, "answer": str with a "#### N" line}. Blank lines are skipped;
// anything else malformed is an Error naming file and line. limit < 0: all records.
std::vector<QaRecord> read_qa_jsonl(const std::string& path, int64_t limit = -1);

struct EvalOptions {
  int max_new_tokens = 256;
  ExtractRule rule = ExtractRule::Strict;
  std::string system;  // optional system turn
};

struct EvalItem {
  std::string completion;            // decoded model output (stop token dropped)
  std::optional<std::string> predicted;  // extracted answer
  bool correct = false;
  int64_t prompt_tokens = 0, new_tokens = 0;
};

struct EvalSummary {
  int64_t num_examples = 0, num_correct = 0, num_no_answer = 0;
  int64_t prompt_tokens = 0, new_tokens = 0;
  double seconds = 0;
  double accuracy() const { return num_examples ? double(num_correct) / double(num_examples) : 0.0; }
};

// Runs the evaluation; on_item (optional) sees each record's result as it completes.
EvalSummary evaluate_qa(Model& model, const ChatPrompter& prompter, const std::vector<QaRecord>& records,
                        const EvalOptions& opt,
                        const std::function<void(size_t index, const QaRecord&, const EvalItem&)>& on_item = {});

}  // namespace gemma4

// SFT data (fairseq2 semantics): JSONL readers for {"src","tgt"} (target = the tgt part; src encoded in
// `prompt` mode, tgt in `prompt_response` mode), chat records {"chat":[{"role","content"},...]} with the
// tokenizer issue's assistant masks, and GSM8K's {"question","answer"}. Examples longer than max_seq_len
// are skipped and counted (never truncated); malformed lines are reported with file and line.
// Length bucketing: examples of similar length are batched so that num_seqs * max_len <= max_num_tokens.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/example.h"
#include "train/recipe_config.h"

namespace gemma4 {

class Tokenizer;
class ChatTemplate;

struct Batch {
  std::vector<Example> examples;
  int64_t num_elements = 0;     // sum of sequence lengths
  int64_t padded_elements = 0;  // num_seqs * longest length (what a padded batch would hold)
  int64_t num_target_elements() const;
};

struct DataStats {
  int64_t num_examples = 0;
  int64_t skipped_too_long = 0;
  int64_t skipped_too_short = 0;
  int64_t malformed = 0;
  std::vector<std::string> messages;  // first few "file:line: problem" reports
};

// An endless, deterministic stream of training batches: each epoch reshuffles (seed, epoch) and
// re-buckets. state()/restore() make resumption exact.
class BatchStream {
 public:
  virtual ~BatchStream() = default;
  virtual Batch next() = 0;
  virtual int64_t epoch() const = 0;
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& s) = 0;
};

struct SftData {
  std::unique_ptr<BatchStream> train;
  std::vector<Batch> valid;  // fixed order
  DataStats train_stats, valid_stats;
};

// Reads and tokenizes the dataset of `cfg` (template needed only for chat records).
SftData load_sft_data(const RecipeConfig& cfg, const Tokenizer& tok, const ChatTemplate* tmpl);

// Building blocks (exposed for tests).
std::vector<Example> read_examples(const std::string& jsonl_path, const RecipeConfig::Dataset& dc, const Tokenizer& tok,
                                   const ChatTemplate* tmpl, DataStats& stats);
std::vector<Batch> bucket_batches(std::vector<Example> examples, int64_t max_num_tokens, uint64_t seed);

}  // namespace gemma4

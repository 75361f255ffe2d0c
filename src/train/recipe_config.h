// The SFT recipe configuration, with fairseq2's sections (model, tokenizer, dataset, trainer, optimizer,
// lr_scheduler, regime, common). Loaded from YAML, then `--config a.b=value` overrides (value parsed as
// YAML), then validated; `--dump-config` prints the effective config as YAML. Unknown keys are errors
// naming the key path.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gemma4 {

struct RecipeConfig {
  struct Model {
    std::string path;          // checkpoint directory (HF layout); "" = build from `arch` with random init
    std::string arch;          // registry name (used when path is empty), e.g. "12b"
    std::string dtype = "float32";  // master weights: float32 (compute dtype on CPU is fp32)
  } model;
  struct Tokenizer {
    std::string path;  // tokenizer.json or model dir; "" = model.path
    std::string chat_template;  // .jinja / tokenizer_config.json / model dir; "" = model.path
  } tokenizer;
  struct Dataset {
    std::string path;         // JSONL file or directory (train.jsonl [+ valid.jsonl / test.jsonl])
    std::string format = "auto";  // auto | src_tgt | chat | gsm8k
    std::string train_split = "train";
    std::string valid_split = "";  // file stem in `path`, or "" = hold out valid_fraction of train
    double valid_fraction = 0.0;
    int64_t max_seq_len = 4096;
    int64_t max_num_tokens = 8192;  // per batch: num_seqs * padded_len <= max_num_tokens (fairseq2 bucketing)
    int64_t min_seq_len = 1;
    int64_t example_shuffle_window = 10000;
    int64_t batch_shuffle_window = 1000;
    bool chat_mode = false;   // render chat records with the template + assistant masks
    std::string src_encode_mode = "prompt";
    std::string tgt_encode_mode = "prompt_response";
  } dataset;
  struct Trainer {
    int64_t grad_accumulation = 1;  // micro-batches per optimizer step
    double max_grad_norm = 1.0;     // 0 = no clipping
    std::string dtype = "float32";
  } trainer;
  struct Optimizer {
    std::string name = "adamw";
    double lr = 2e-5;
    std::vector<double> betas{0.9, 0.95};
    double eps = 1e-8;
    double weight_decay = 0.1;
  } optimizer;
  struct LRScheduler {
    std::string name = "cosine_annealing";
    int64_t num_warmup_steps = 100;  // linear warmup from 0
    double final_lr_scale = 0.1;     // final lr = lr * final_lr_scale
    std::optional<int64_t> cycle_len;  // default: regime.num_steps - num_warmup_steps
  } lr_scheduler;
  struct Regime {
    int64_t num_steps = 5000;
    std::optional<int64_t> num_data_epochs;
    int64_t checkpoint_every_n_steps = 100;
    int64_t keep_last_n_checkpoints = 10;
    int64_t validate_every_n_steps = 100;
    int64_t publish_metrics_every_n_steps = 10;
    bool export_hf = true;  // write an HF checkpoint (config.json + safetensors) at the end
  } regime;
  struct Common {
    uint64_t seed = 2;
    std::string metric_recorders = "jsonl,tensorboard";
  } common;
};

// Parses YAML text (file name for messages), applies overrides ("a.b=value"), validates.
RecipeConfig load_recipe(const std::string& yaml_path, const std::vector<std::string>& overrides);
RecipeConfig parse_recipe(const std::string& yaml_text, const std::string& origin,
                          const std::vector<std::string>& overrides);
std::string dump_recipe(const RecipeConfig& c);  // YAML that parse_recipe reads back to the same config

}  // namespace gemma4

// The SFT trainer (fairseq2's LM SFT recipe on CPU): `gemma4 sft` runs it.
//
// OUTPUT_DIR layout:
//   config.yaml                 the effective recipe
//   checkpoints/step_N/         model.safetensors, optimizer.safetensors, trainer_state.json (checkpoint.h)
//   metrics/train.jsonl, valid.jsonl, tb/train/, tb/valid/   (metrics.h)
//   hf/                         HF export at the end (config.json, model.safetensors, tokenizer files)
//
// Each step: grad_accumulation micro-batches from the BatchStream; forward_backward per sequence adds the
// gradient of the summed nll; the gradients are divided by the step's number of target tokens; clipped by
// global norm (grad_norm is the norm before clipping); AdamW with the lr of fairseq2's CosineAnnealingLR.
// After a step: publish metrics, validate, checkpoint (in that order, so that a checkpoint holds the
// state after its step's publication); the last step always does all three.
//
// Resume: when OUTPUT_DIR/checkpoints has a complete checkpoint, the run continues from the last one and
// reproduces an uninterrupted run exactly (metrics identical except the timing fields); records the
// interrupted run wrote after that checkpoint are dropped from the JSONL files.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "train/recipe_config.h"

namespace gemma4 {

struct SftHooks {
  // Called after each step's publication/validation/checkpoint; may throw (tests simulate a crash).
  std::function<void(int64_t step)> after_step;
};

// Returns 0 on success; throws Error on bad input.
int run_sft(const RecipeConfig& cfg, const std::string& output_dir, const SftHooks& hooks = {});

}  // namespace gemma4

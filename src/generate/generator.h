// The generation loop: prefill the prompt once, then decode one token per step with the KV cache.
#pragma once
#include <functional>
#include <vector>

#include "generate/sampler.h"
#include "model/model.h"

namespace gemma4 {

struct GenerateOptions {
  int max_new_tokens = 32;
  SamplingParams sampling;
  std::vector<int64_t> eos_ids;  // stop after emitting one of these (the eos id is part of the output)
  bool ignore_eos = false;
};

// Returns the generated ids (prompt excluded). on_token (optional) sees each id as it is produced.
std::vector<int64_t> generate(Model& model, const std::vector<int64_t>& prompt, const GenerateOptions& opt,
                              const MultimodalInputs* mm = nullptr,
                              const std::function<void(int64_t)>& on_token = {});

// Batched generation: every prompt is prefilled on its own, then all unfinished sequences decode together,
// one token each per step (one forward over B rows). A sequence stops at its own eos or max_new_tokens and
// leaves the batch; at most max_batch sequences decode at once (the rest wait their turn). Sequence b
// samples with seed opt.sampling.seed + b. Greedy results equal generate() on each prompt alone.
std::vector<std::vector<int64_t>> generate_batch(Model& model, const std::vector<std::vector<int64_t>>& prompts,
                                                 const GenerateOptions& opt, int max_batch = 32);

// Generation defaults from the model's generation_config.json / config (eos ids, suppress_tokens).
GenerateOptions default_generate_options(const ModelConfig& cfg);

}  // namespace gemma4

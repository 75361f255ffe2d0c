// Training forward + backward of the Gemma 4 decoder (fp32), written against the same model code as
// inference (model/forward.cpp records what backward needs; model/backward.cpp walks it back).
// Objective (fairseq2): cross-entropy summed over target tokens; the trainer divides by the number of
// target tokens of the whole optimizer step.
#pragma once
#include "model/model.h"
#include "train/example.h"

namespace gemma4 {

struct LossStats {
  double nll_sum = 0;       // sum over target tokens of -log p(target)
  int64_t num_targets = 0;  // target tokens counted
  int64_t num_correct = 0;  // targets that are the argmax
  LossStats& operator+=(const LossStats& o) {
    nll_sum += o.nll_sum, num_targets += o.num_targets, num_correct += o.num_correct;
    return *this;
  }
};

// F32 zeros with the structure of w (lm_head aliases embed_tokens when the config ties them).
Weights zeros_like(const ModelConfig& cfg, const Weights& w);
// Sets every gradient to zero (keeps the buffers).
void zero_grads(const ModelConfig& cfg, Weights& grads);
// grads += d(nll_sum)/d(params) for one sequence. The model's weights must be F32.
LossStats forward_backward(Model& model, const Example& ex, Weights& grads);
// Forward only (validation).
LossStats evaluate_loss(Model& model, const Example& ex);

}  // namespace gemma4

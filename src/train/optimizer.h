// AdamW with fp32 master weights and fp32 states (torch.optim.AdamW semantics), and gradient clipping by
// global L2 norm (torch.nn.utils.clip_grad_norm_). Weight decay applies to every parameter, as fairseq2 does
// when the recipe defines no parameter groups.
//
// One step, per parameter p with gradient g (t = step count after increment):
//   p <- p * (1 - lr * weight_decay)
//   m <- m + (g - m) * (1 - beta1);   v <- beta2 * v + (1 - beta2) * g * g
//   p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// All reductions are deterministic (fixed chunking, sequential combination), so a resumed run reproduces
// an uninterrupted one bit for bit.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/keymap.h"
#include "model/weights.h"

namespace gemma4 {

// A trainable parameter: its stored (HF) name, the F32 master tensor and its F32 gradient (same shape).
struct ParamRef {
  std::string name;
  Tensor param, grad;
};

// The text-decoder parameters of `w` with their gradients in `grads` (same structure), in the key map's
// order with the layout's names; lm_head only when untied. Embedders (vision/audio) are not trained.
std::vector<ParamRef> collect_params(const ModelConfig& cfg, Layout layout, Weights& w, Weights& grads);

// sqrt(sum of g^2) over all gradients (double accumulation).
double global_grad_norm(const std::vector<ParamRef>& params);
// Multiplies every gradient by s.
void scale_grads(const std::vector<ParamRef>& params, double s);
// Divides every gradient by d (fairseq2 normalizes the summed loss's gradients this way).
void divide_grads(const std::vector<ParamRef>& params, double d);
// torch clip_grad_norm_: returns the norm before clipping; when max_norm > 0 multiplies the gradients by
// min(1, max_norm / (norm + 1e-6)). max_norm <= 0 only measures.
double clip_grad_norm(const std::vector<ParamRef>& params, double max_norm);

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class AdamW {
 public:
  AdamW(std::vector<ParamRef> params, AdamWConfig cfg);

  // One optimizer step with learning rate lr (uses the current gradients).
  void step(double lr);
  int64_t step_count() const { return step_; }
  const std::vector<ParamRef>& params() const { return params_; }
  const AdamWConfig& config() const { return cfg_; }

  // State as named tensors ("<param>.exp_avg", "<param>.exp_avg_sq") plus metadata {"step": N}.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  std::map<std::string, std::string> state_metadata() const;
  // Restores from a file written with the tensors/metadata above; every parameter's state must be there
  // with the right shape (Error naming the file and tensor otherwise).
  void load_state(const std::string& path);

 private:
  std::vector<ParamRef> params_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  AdamWConfig cfg_;
  int64_t step_ = 0;
};

}  // namespace gemma4

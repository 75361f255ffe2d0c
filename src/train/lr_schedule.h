// Learning-rate schedule of the SFT recipe: fairseq2's CosineAnnealingLR (linear warmup from start_lr, then
// cosine annealing from the base lr to final_lr over cycle_len steps, restarting each cycle).
//
// Step numbering follows fairseq2/torch: the scheduler's `last_epoch` is the number of optimizer steps
// already taken, so optimizer step N (1-based) runs with lr_at(N - 1), and that is the `lr` reported for
// step N. Step 1 of a warmup therefore runs with start_lr (0 by default), exactly as in fairseq2.
#pragma once
#include <cstdint>

namespace gemma4 {

struct RecipeConfig;

struct CosineAnnealingLR {
  double base_lr = 0;
  double start_lr = 0;   // warmup starts here
  double final_lr = 0;   // lr at the end of the (first) cycle
  int64_t num_warmup_steps = 0;
  int64_t cycle_len = 1;  // steps per cosine cycle after warmup

  // The lr after `last_epoch` scheduler steps.
  double lr_at(int64_t last_epoch) const;
};

// From the recipe: lr = optimizer.lr, final_lr = lr * final_lr_scale, cycle_len = lr_scheduler.cycle_len or
// regime.num_steps - num_warmup_steps (at least 1). Throws Error for an unknown scheduler name or bad values.
CosineAnnealingLR make_lr_schedule(const RecipeConfig& cfg);

}  // namespace gemma4

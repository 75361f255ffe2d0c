#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "train/recipe_config.h"

namespace gemma4 {

double CosineAnnealingLR::lr_at(int64_t last_epoch) const {
  if (last_epoch < num_warmup_steps) {
    double c = double(last_epoch) / double(num_warmup_steps);
    return start_lr + (base_lr - start_lr) * c;
  }
  int64_t cur = last_epoch - num_warmup_steps;
  int64_t len = std::max<int64_t>(cycle_len, 1);
  int64_t pos = cur - (cur / len) * len;  // position inside the current cycle
  double c = std::cos(std::numbers::pi * double(pos) / double(len));
  return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + c);
}

CosineAnnealingLR make_lr_schedule(const RecipeConfig& cfg) {
  const auto& s = cfg.lr_scheduler;
  G4_CHECK(s.name == "cosine_annealing", "lr_scheduler.name: '{}' is not supported (supported: cosine_annealing)",
           s.name);
  G4_CHECK(s.num_warmup_steps >= 0, "lr_scheduler.num_warmup_steps must be >= 0, got {}", s.num_warmup_steps);
  G4_CHECK(std::isfinite(s.final_lr_scale) && s.final_lr_scale >= 0,
           "lr_scheduler.final_lr_scale must be a finite number >= 0, got {}", s.final_lr_scale);
  G4_CHECK(std::isfinite(cfg.optimizer.lr) && cfg.optimizer.lr >= 0, "optimizer.lr must be a finite number >= 0, got {}",
           cfg.optimizer.lr);
  CosineAnnealingLR r;
  r.base_lr = cfg.optimizer.lr;
  r.start_lr = 0.0;
  r.final_lr = cfg.optimizer.lr * s.final_lr_scale;
  r.num_warmup_steps = s.num_warmup_steps;
  if (s.cycle_len) {
    G4_CHECK(*s.cycle_len >= 1, "lr_scheduler.cycle_len must be >= 1, got {}", *s.cycle_len);
    r.cycle_len = *s.cycle_len;
  } else {
    r.cycle_len = std::max<int64_t>(cfg.regime.num_steps - s.num_warmup_steps, 1);
  }
  return r;
}

}  // namespace gemma4

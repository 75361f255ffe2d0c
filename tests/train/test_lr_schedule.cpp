// fairseq2's CosineAnnealingLR: linear warmup from 0, cosine from lr to lr * final_lr_scale over cycle_len
// steps, then a restart; step N runs with lr_at(N - 1).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "train/lr_schedule.h"
#include "train/recipe_config.h"

using namespace gemma4;

namespace {

RecipeConfig schedule_cfg(double lr, int64_t warmup, double final_scale, int64_t num_steps) {
  RecipeConfig c;
  c.optimizer.lr = lr;
  c.lr_scheduler.num_warmup_steps = warmup;
  c.lr_scheduler.final_lr_scale = final_scale;
  c.regime.num_steps = num_steps;
  return c;
}

}  // namespace

TEST(LrSchedule, WarmupThenCosineToFinal) {
  // lr 1e-3, 10 warmup steps, final 1e-4, 110 steps -> cycle of 100 steps.
  CosineAnnealingLR s = make_lr_schedule(schedule_cfg(1e-3, 10, 0.1, 110));
  EXPECT_EQ(s.cycle_len, 100);
  EXPECT_DOUBLE_EQ(s.final_lr, 1e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.0);        // step 1 runs with lr 0 (fairseq2 warmup from start_lr 0)
  EXPECT_DOUBLE_EQ(s.lr_at(1), 1e-4);       // 1/10 of the way
  EXPECT_DOUBLE_EQ(s.lr_at(5), 5e-4);       // mid-warmup
  EXPECT_DOUBLE_EQ(s.lr_at(10), 1e-3);      // end of warmup: cos(0) -> the base lr
  EXPECT_NEAR(s.lr_at(60), 5.5e-4, 1e-15);  // half the cycle: final + (base - final) / 2
  // quarter of the cycle: final + 0.5 * (base - final) * (1 + cos(pi/4))
  EXPECT_NEAR(s.lr_at(35), 1e-4 + 0.5 * 9e-4 * (1 + std::sqrt(0.5)), 1e-15);
  // last step of the cycle (step 110 runs with lr_at(109)): just above final
  EXPECT_NEAR(s.lr_at(109), 1e-4 + 0.5 * 9e-4 * (1 + std::cos(M_PI * 0.99)), 1e-15);
  EXPECT_GT(s.lr_at(109), 1e-4);
  EXPECT_LT(s.lr_at(109), 1.003e-4);
  // after the cycle: restart at the base lr (cycle_mul 1, lr_mul 1)
  EXPECT_DOUBLE_EQ(s.lr_at(110), 1e-3);
  // monotone decrease inside the cycle
  for (int64_t t = 11; t < 110; ++t) EXPECT_LT(s.lr_at(t), s.lr_at(t - 1)) << t;
}

TEST(LrSchedule, NoWarmupAndExplicitCycle) {
  RecipeConfig c = schedule_cfg(2e-5, 0, 0.0, 1000);
  c.lr_scheduler.cycle_len = 4;
  CosineAnnealingLR s = make_lr_schedule(c);
  EXPECT_DOUBLE_EQ(s.lr_at(0), 2e-5);
  EXPECT_NEAR(s.lr_at(1), 1e-5 * (1 + std::cos(M_PI / 4)), 1e-20);
  EXPECT_NEAR(s.lr_at(2), 1e-5, 1e-20);
  EXPECT_NEAR(s.lr_at(3), 1e-5 * (1 + std::cos(3 * M_PI / 4)), 1e-20);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 2e-5);
}

TEST(LrSchedule, RecipeDefaultsAndErrors) {
  RecipeConfig c;  // gsm8k values: lr 2e-5, warmup 100, final scale 0.1, 5000 steps
  CosineAnnealingLR s = make_lr_schedule(c);
  EXPECT_EQ(s.cycle_len, 4900);
  EXPECT_DOUBLE_EQ(s.lr_at(50), 1e-5);
  EXPECT_NEAR(s.final_lr, 2e-6, 1e-21);

  c.lr_scheduler.name = "noam";
  EXPECT_THROW(make_lr_schedule(c), Error);
  c = RecipeConfig{};
  c.lr_scheduler.cycle_len = 0;
  EXPECT_THROW(make_lr_schedule(c), Error);
  c = RecipeConfig{};
  c.lr_scheduler.num_warmup_steps = -1;
  EXPECT_THROW(make_lr_schedule(c), Error);
  // fewer steps than warmup: a valid (warmup-only) run
  c = RecipeConfig{};
  c.regime.num_steps = 10;
  EXPECT_EQ(make_lr_schedule(c).cycle_len, 1);
}

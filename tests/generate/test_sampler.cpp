#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/error.h"
#include "generate/sampler.h"

using namespace gemma4;

TEST(Sampler, GreedyTakesFirstMaximum) {
  Sampler s({});
  std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(s.next(l.data(), 4), 1);
}

TEST(Sampler, SuppressedTokensAreNeverChosen) {
  SamplingParams p;
  p.suppress_tokens = {1};
  Sampler s(p);
  std::vector<float> l = {0.1f, 3.0f, -1.0f, 2.0f};
  EXPECT_EQ(s.next(l.data(), 4), 3);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  // probabilities ~ 0.665, 0.245, 0.090 (after softmax of 2,1,0); top_p 0.8 keeps the first two.
  SamplingParams p;
  p.temperature = 1.0;
  p.top_p = 0.8;
  p.seed = 1;
  Sampler s(p);
  std::map<int64_t, int> counts;
  for (int i = 0; i < 3000; ++i) {
    std::vector<float> l = {2.f, 1.f, 0.f};
    counts[s.next(l.data(), 3)]++;
  }
  EXPECT_EQ(counts.count(2), 0u);
  double frac0 = counts[0] / 3000.0;
  EXPECT_NEAR(frac0, 0.665 / (0.665 + 0.245), 0.03);
}

TEST(Sampler, TopKAndTemperature) {
  SamplingParams p;
  p.temperature = 100.0;  // nearly uniform over the top 2
  p.top_k = 2;
  p.seed = 3;
  Sampler s(p);
  std::map<int64_t, int> counts;
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> l = {5.f, 4.f, 3.f, 2.f};
    counts[s.next(l.data(), 4)]++;
  }
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_NEAR(counts[0] / 2000.0, 0.5, 0.05);
}

TEST(Sampler, RejectsBadParameters) {
  SamplingParams p;
  p.top_p = 0.0;
  EXPECT_THROW(Sampler{p}, Error);
  SamplingParams q;
  q.temperature = -1;
  EXPECT_THROW(Sampler{q}, Error);
}

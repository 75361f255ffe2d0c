// Next-token selection from logits, in Hugging Face's processor order: suppress_tokens -> temperature ->
// top-k -> top-p -> sample. temperature == 0 means greedy (first maximal index, as torch.argmax).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace gemma4 {

struct SamplingParams {
  double temperature = 0.0;
  int top_k = 0;       // 0 = off
  double top_p = 1.0;  // 1 = off
  uint64_t seed = 0;
  std::vector<int64_t> suppress_tokens;
};

class Sampler {
 public:
  explicit Sampler(SamplingParams p);
  // logits: [vocab] (modified in place: suppressed entries set to -inf).
  int64_t next(float* logits, int64_t vocab);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int64_t>> cand_;
};

}  // namespace gemma4

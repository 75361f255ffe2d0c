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
  int64_t next(float* logits, int64_t vocab) { return pick(logits, vocab, draw()); }
  // The uniform draw of the next step ([0, 1) from this sampler's generator; 0 without drawing when greedy).
  double draw();
  // The choice for a draw: candidates ordered by (scaled logit desc, id asc), the first whose cumulative
  // probability exceeds `uniform` (the GPU backend implements the same rule: Ops::choose_tokens).
  int64_t pick(float* logits, int64_t vocab, double uniform);
  const SamplingParams& params() const { return p_; }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int64_t>> cand_;  // candidates, kept across calls (vocab-sized)
};

}  // namespace gemma4

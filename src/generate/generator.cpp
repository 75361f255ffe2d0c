#include "generate/generator.h"

#include <algorithm>

namespace gemma4 {

GenerateOptions default_generate_options(const ModelConfig& cfg) {
  GenerateOptions o;
  o.eos_ids = cfg.eos_ids();
  o.sampling.suppress_tokens = cfg.generation.suppress_tokens;
  return o;
}

std::vector<int64_t> generate(Model& model, const std::vector<int64_t>& prompt, const GenerateOptions& opt,
                              const MultimodalInputs* mm, const std::function<void(int64_t)>& on_token) {
  G4_CHECK(!prompt.empty(), "generate: empty prompt");
  G4_CHECK(opt.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  Sampler sampler(opt.sampling);
  KVCache cache = model.new_cache();
  cache.reserve(int64_t(prompt.size()) + opt.max_new_tokens);
  std::vector<int64_t> out;
  if (opt.max_new_tokens == 0) return out;
  const int64_t V = model.config().text.vocab_size;
  Tensor logits = model.forward(prompt, cache, mm, /*all_logits=*/false);
  for (int step = 0; step < opt.max_new_tokens; ++step) {
    int64_t id = sampler.next(logits.ptr<float>(), V);
    out.push_back(id);
    if (on_token) on_token(id);
    bool stop = !opt.ignore_eos && std::find(opt.eos_ids.begin(), opt.eos_ids.end(), id) != opt.eos_ids.end();
    if (stop || step + 1 == opt.max_new_tokens) break;
    logits = model.forward({id}, cache, nullptr, /*all_logits=*/false);
  }
  return out;
}

}  // namespace gemma4

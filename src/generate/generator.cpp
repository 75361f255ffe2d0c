#include "generate/generator.h"

#include <algorithm>

namespace gemma4 {

GenerateOptions default_generate_options(const ModelConfig& cfg) {
  GenerateOptions o;
  o.eos_ids = cfg.eos_ids();
  o.sampling.suppress_tokens = cfg.generation.suppress_tokens;
  return o;
}

namespace {

// Each sampler's parameters and its uniform draw for this step.
std::vector<Ops::TokenChoice> token_choices(const std::vector<Sampler*>& samplers) {
  std::vector<Ops::TokenChoice> rows;
  for (Sampler* s : samplers) {
    const SamplingParams& p = s->params();
    rows.push_back({p.temperature, p.top_k, p.top_p, s->draw()});
  }
  return rows;
}

// The next token of each row of `logits` ([B, V] on the model's device) by `rows` (the samplers' parameters and
// this step's draws, token_choices): chosen on the device when the backend can (a GPU: no [B, V] copy to the
// host), else by the samplers on the host, with the same draws either way.
std::vector<int64_t> next_tokens(Model& model, Tensor& logits, const std::vector<Sampler*>& samplers,
                                 const std::vector<Ops::TokenChoice>& rows) {
  const int64_t V = model.config().text.vocab_size;
  std::vector<int64_t> ids;
  const std::vector<int64_t>& suppress = samplers.front()->params().suppress_tokens;
  bool same_suppress = true;
  for (Sampler* s : samplers) same_suppress = same_suppress && s->params().suppress_tokens == suppress;
  if (same_suppress && model.ops().choose_tokens(logits, rows, suppress, ids)) return ids;
  Tensor host = model.ops().to_host(logits);
  for (size_t b = 0; b < samplers.size(); ++b)
    ids.push_back(samplers[b]->pick(host.ptr<float>() + int64_t(b) * V, V, rows[b].uniform));
  return ids;
}

}  // namespace

std::vector<int64_t> generate(Model& model, const std::vector<int64_t>& prompt, const GenerateOptions& opt,
                              const MultimodalInputs* mm, const std::function<void(int64_t)>& on_token) {
  G4_CHECK(!prompt.empty(), "generate: empty prompt");
  G4_CHECK(opt.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  Sampler sampler(opt.sampling);
  KVCache cache = model.new_cache();
  cache.reserve(int64_t(prompt.size()) + opt.max_new_tokens);
  std::vector<int64_t> out;
  if (opt.max_new_tokens == 0) return out;
  Tensor logits = model.forward(prompt, cache, mm, /*all_logits=*/false, nullptr, /*logits_on_device=*/true);
  auto is_eos = [&](int64_t id) {
    return !opt.ignore_eos && std::find(opt.eos_ids.begin(), opt.eos_ids.end(), id) != opt.eos_ids.end();
  };
  // Pipelined on a GPU: the chosen token stays on the device and feeds the next step, which is issued before
  // the host reads the token; the host's part of step n + 1 overlaps the GPU's step n. When the token read
  // turns out to end the generation, the step already issued is discarded (the cache is this call's own).
  auto choose_pending = [&] {
    G4_CHECK(model.ops().choose_tokens_pending(logits, token_choices({&sampler}), opt.sampling.suppress_tokens),
             "generate: the backend could not choose the token on the device");
  };
  if (model.can_forward_pending()) {
    choose_pending();
    for (int step = 0; step < opt.max_new_tokens; ++step) {
      const bool more = step + 1 < opt.max_new_tokens;
      if (more) logits = model.forward_pending(cache);
      const int64_t id = model.ops().read_pending_tokens()[0];
      out.push_back(id);
      if (on_token) on_token(id);
      if (is_eos(id) || !more) break;
      choose_pending();
    }
    return out;
  }
  for (int step = 0; step < opt.max_new_tokens; ++step) {
    const int64_t id = next_tokens(model, logits, {&sampler}, token_choices({&sampler}))[0];
    out.push_back(id);
    if (on_token) on_token(id);
    if (is_eos(id) || step + 1 == opt.max_new_tokens) break;
    logits = model.forward({id}, cache, nullptr, /*all_logits=*/false, nullptr, /*logits_on_device=*/true);
  }
  return out;
}

std::vector<std::vector<int64_t>> generate_batch(Model& model, const std::vector<std::vector<int64_t>>& prompts,
                                                 const GenerateOptions& opt, int max_batch) {
  G4_CHECK(opt.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  G4_CHECK(max_batch >= 1, "max_batch must be >= 1");
  for (auto& p : prompts) G4_CHECK(!p.empty(), "generate: empty prompt");
  std::vector<std::vector<int64_t>> out(prompts.size());
  if (opt.max_new_tokens == 0) return out;
  struct Live {
    size_t index;
    KVCache cache;
    Sampler sampler;
    int64_t next;
  };
  auto is_eos = [&](int64_t id) {
    return !opt.ignore_eos && std::find(opt.eos_ids.begin(), opt.eos_ids.end(), id) != opt.eos_ids.end();
  };
  size_t queued = 0;
  std::vector<Live> live;
  // Admits waiting prompts: prefill alone, sample the first token; finished at once if it is eos.
  auto admit = [&] {
    while (live.size() < size_t(max_batch) && queued < prompts.size()) {
      const size_t i = queued++;
      SamplingParams sp = opt.sampling;
      sp.seed = opt.sampling.seed + i;
      Live l{i, model.new_cache(), Sampler(sp), 0};
      l.cache.reserve(int64_t(prompts[i].size()) + opt.max_new_tokens);
      Tensor logits =
          model.forward(prompts[i], l.cache, nullptr, /*all_logits=*/false, nullptr, /*logits_on_device=*/true);
      l.next = next_tokens(model, logits, {&l.sampler}, token_choices({&l.sampler}))[0];
      out[i].push_back(l.next);
      if (is_eos(l.next) || opt.max_new_tokens == 1) continue;
      live.push_back(std::move(l));
    }
  };
  admit();
  // On a GPU the steps are pipelined as in generate(): the live rows' tokens stay on the device and feed the
  // next step, issued before the host reads them. A row that stops at the token read has had one step more
  // computed, which is dropped with its cache; the others' logits rows are kept. A step that admits new prompts
  // (their first tokens are host values) runs with explicit ids, the survivors' tokens chosen on the host.
  const bool pipelined = model.can_forward_pending();
  Tensor logits;  // [live, V] on the device: the live rows' next-token logits, when have_logits
  bool have_logits = false;
  auto samplers_of_live = [&] {
    std::vector<Sampler*> s;
    for (Live& l : live) s.push_back(&l.sampler);
    return s;
  };
  // Records each live row's token; keeps the rows that go on and returns their old row indices.
  auto take = [&](const std::vector<int64_t>& ids) {
    std::vector<Live> still;
    std::vector<int64_t> rows;
    for (size_t b = 0; b < live.size(); ++b) {
      Live& l = live[b];
      l.next = ids[b];
      out[l.index].push_back(l.next);
      if (!is_eos(l.next) && int(out[l.index].size()) < opt.max_new_tokens) {
        still.push_back(std::move(l));
        rows.push_back(int64_t(b));
      }
    }
    live = std::move(still);
    return rows;
  };
  auto caches_of_live = [&] {
    std::vector<KVCache*> c;
    for (Live& l : live) c.push_back(&l.cache);
    return c;
  };
  while (!live.empty()) {
    if (!have_logits) {  // every live row's next input is a host value
      std::vector<std::vector<int64_t>> step;
      for (Live& l : live) step.push_back({l.next});
      logits = model.forward_batch(step, caches_of_live(), nullptr, false, nullptr, /*logits_on_device=*/true);
    }
    have_logits = false;
    // Each live sampler draws once a step, whichever way its token is chosen (more rows than the backend's
    // pending buffer: synchronously).
    const std::vector<Sampler*> samplers = samplers_of_live();
    const std::vector<Ops::TokenChoice> choice = token_choices(samplers);
    if (!pipelined || !model.ops().choose_tokens_pending(logits, choice, opt.sampling.suppress_tokens)) {
      take(next_tokens(model, logits, samplers, choice));
      admit();
      continue;
    }
    bool more = false;  // does any row go on after this token, by length?
    for (Live& l : live) more = more || int(out[l.index].size()) + 1 < opt.max_new_tokens;
    Tensor next;
    if (more) next = model.forward_pending_batch(caches_of_live());
    const size_t before = live.size();
    const std::vector<int64_t> rows = take(model.ops().read_pending_tokens());
    if (live.empty()) {
      admit();
      continue;
    }
    if (rows.size() == before) {
      logits = next;
    } else {  // keep the survivors' rows
      logits = model.ops().alloc(DType::F32, {int64_t(rows.size()), next.dim(1)});
      for (size_t j = 0; j < rows.size(); ++j) {
        Tensor dst = logits.slice_rows(int64_t(j), int64_t(j) + 1);
        model.ops().copy(next.slice_rows(rows[j], rows[j] + 1), dst);
      }
    }
    have_logits = true;
    if (queued < prompts.size() && live.size() < size_t(max_batch)) {
      const std::vector<Sampler*> s = samplers_of_live();  // the survivors' tokens on the host, then admit
      take(next_tokens(model, logits, s, token_choices(s)));
      have_logits = false;
      admit();
    }
  }
  return out;
}

}  // namespace gemma4

#include "train/grad.h"

#include <cmath>
#include <cstring>

namespace gemma4 {

namespace {
// Visits the parameter tensors of a Weights struct (undefined slots skipped; lm_head only when untied).
template <typename Fn>
void each_tensor(const ModelConfig& cfg, Weights& w, Fn fn) {
  auto v = [&](Tensor& t) {
    if (t.data) fn(t);
  };
  v(w.embed_tokens), v(w.final_norm);
  if (!cfg.text.tie_word_embeddings) v(w.lm_head);
  v(w.embed_tokens_per_layer), v(w.per_layer_model_projection), v(w.per_layer_projection_norm);
  for (auto& l : w.layers)
    for (Tensor* t : tensor_slots(l)) v(*t);
  for (Tensor* t : tensor_slots(w.vision)) v(*t);
  v(w.audio_projection);
}

// Cross-entropy of the targets: dlogits = softmax - onehot on target rows (row t-1 predicts ids[t]).
LossStats cross_entropy(const Tensor& logits, const Example& ex, Tensor* dlogits) {
  const int64_t T = logits.dim(0), V = logits.dim(1);
  LossStats st;
  if (dlogits) std::memset(dlogits->data, 0, dlogits->nbytes());
  for (int64_t t = 1; t < T; ++t) {
    if (!ex.target[t]) continue;
    const float* l = logits.ptr<float>() + (t - 1) * V;
    int64_t y = ex.ids[t];
    float mx = l[0];
    int64_t am = 0;
    for (int64_t v = 1; v < V; ++v)
      if (l[v] > mx) mx = l[v], am = v;
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(l[v] - mx));
    double lse = double(mx) + std::log(sum);
    st.nll_sum += lse - l[y];
    st.num_targets += 1;
    st.num_correct += am == y;
    if (dlogits) {
      float* d = dlogits->ptr<float>() + (t - 1) * V;
      for (int64_t v = 0; v < V; ++v) d[v] = float(std::exp(double(l[v]) - lse));
      d[y] -= 1.0f;
    }
  }
  return st;
}

void check_example(const Model& model, const Example& ex) {
  G4_CHECK(ex.ids.size() == ex.target.size(), "{}: {} ids but {} target flags", ex.origin, ex.ids.size(),
           ex.target.size());
  G4_CHECK(ex.ids.size() >= 2, "{}: a training example needs at least 2 tokens", ex.origin);
  (void)model;
}
}  // namespace

Weights zeros_like(const ModelConfig& cfg, const Weights& w) {
  Weights g = w;  // same structure; every defined slot replaced by F32 zeros
  each_tensor(cfg, g, [](Tensor& t) { t = Tensor::zeros(DType::F32, t.shape); });
  if (cfg.text.tie_word_embeddings) g.lm_head = g.embed_tokens;
  return g;
}

void zero_grads(const ModelConfig& cfg, Weights& grads) {
  each_tensor(cfg, grads, [](Tensor& t) { std::memset(t.data, 0, t.nbytes()); });
}

LossStats forward_backward(Model& model, const Example& ex, Weights& grads) {
  check_example(model, ex);
  Tape tape;
  KVCache cache = model.new_cache();
  Tensor logits = model.forward(ex.ids, cache, nullptr, /*all_logits=*/true, &tape);
  Tensor dlogits = Tensor::empty(DType::F32, logits.shape);
  LossStats st = cross_entropy(logits, ex, &dlogits);
  model.backward(tape, logits, dlogits, grads);
  return st;
}

LossStats evaluate_loss(Model& model, const Example& ex) {
  check_example(model, ex);
  KVCache cache = model.new_cache();
  Tensor logits = model.forward(ex.ids, cache, nullptr, /*all_logits=*/true);
  return cross_entropy(logits, ex, nullptr);
}

}  // namespace gemma4

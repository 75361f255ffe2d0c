#include "model/model.h"

#include <filesystem>
#include <map>

namespace gemma4 {

namespace {

// Applies fn to every tensor slot of a Weights (defined or not).
template <typename Fn>
void for_each_tensor(Weights& w, Fn&& fn) {
  for (Tensor* t : {&w.embed_tokens, &w.final_norm, &w.lm_head, &w.embed_tokens_per_layer,
                    &w.per_layer_model_projection, &w.per_layer_projection_norm, &w.audio_projection})
    fn(*t);
  for (Tensor* t : tensor_slots(w.vision)) fn(*t);
  for (LayerWeights& l : w.layers)
    for (Tensor* t : tensor_slots(l)) fn(*t);
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& dir, const BindOptions& opt, Device device,
                                   std::optional<Precision> precision) {
  G4_CHECK(std::filesystem::is_directory(dir), "{}: not a model directory", dir);
  ModelConfig cfg = ModelConfig::from_dir(dir);
  TensorStore store = TensorStore::open(dir);
  KeyAccounting acct;
  Weights w = bind_weights(cfg, store, acct, opt);
  const bool half_stored = w.embed_tokens.dtype == DType::BF16 || w.embed_tokens.dtype == DType::F16;
  const Precision p = precision ? *precision : (half_stored ? Precision::BF16 : Precision::F32);
  auto m = std::make_unique<Model>(std::move(cfg), std::move(w), make_ops(device, p));
  m->acct_ = std::move(acct);
  return m;
}

Model::Model(ModelConfig cfg, Weights w, std::unique_ptr<Ops> ops)
    : cfg_(std::move(cfg)), w_(std::move(w)), ops_(ops ? std::move(ops) : make_cpu_ops()) {
  layers_ = cfg_.text.layers();
  if (ops_->device() != Device::CPU) {
    host_ops_ = make_cpu_ops();
    // Upload every weight the device forward reads once, in its stored dtype; tensors that share bytes
    // (tied lm_head) share one device copy. The embedders and the MoE block run on the host with w_
    // (forward.cpp), so their weights stay there.
    dev_w_ = std::make_unique<Weights>(w_);
    dev_w_->vision = VisionEmbedderWeights{};
    dev_w_->audio_projection = Tensor{};
    for (LayerWeights& l : dev_w_->layers)
      for (Tensor* t : {&l.router_proj, &l.router_scale, &l.router_per_expert_scale, &l.experts_gate_up,
                        &l.experts_down, &l.pre_feedforward_layernorm_2, &l.post_feedforward_layernorm_2})
        *t = Tensor{};
    pack_gate_up();
    std::map<const void*, Tensor> uploaded;
    for_each_tensor(*dev_w_, [&](Tensor& t) {
      if (!t.data) return;
      auto it = uploaded.find(t.data);
      if (it != uploaded.end() && it->second.shape == t.shape && it->second.dtype == t.dtype) {
        t = it->second;
        return;
      }
      const void* key = t.data;
      t = ops_->to_device(t);
      uploaded.emplace(key, t);
    });
  }
}

// Each dense layer's gate and up projections side by side in one device allocation ([2I, K], gate rows first):
// a backend's prefill may then run them as one GEMM (CudaOps::feed_forward). Weights built on the device (the
// benchmark's) are moved into the packed copy in w_ too, so that their separate allocations are freed.
void Model::pack_gate_up() {
  for (size_t li = 0; li < dev_w_->layers.size(); ++li) {
    LayerWeights& l = dev_w_->layers[li];
    const Tensor g = l.gate_proj, u = l.up_proj;
    if (!g.data || !u.data || g.dtype != u.dtype || g.shape != u.shape || g.ndim() != 2 || g.data == u.data) continue;
    if (g.device != Device::CPU && static_cast<const char*>(g.data) + g.nbytes() == u.data) continue;  // packed
    const int64_t I = g.dim(0);
    Tensor both = ops_->alloc(g.dtype, {2 * I, g.dim(1)});
    Tensor dg = both.slice_rows(0, I), du = both.slice_rows(I, 2 * I);
    ops_->copy(g, dg);
    ops_->copy(u, du);
    l.gate_proj = dg, l.up_proj = du;
    LayerWeights& host = w_.layers[li];
    if (host.gate_proj.device != Device::CPU) host.gate_proj = dg;
    if (host.up_proj.device != Device::CPU) host.up_proj = du;
  }
}

}  // namespace gemma4

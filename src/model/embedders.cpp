#include "model/embedders.h"

#include <algorithm>

namespace gemma4 {

// Note on dtypes (spec §7.9): HF casts the embedder inputs to the weight dtype, so a bf16 run sees
// bf16-rounded pixels and samples. This CPU path computes in fp32 and keeps the inputs in fp32, which
// reproduces HF's fp32 run of the same (upcast) weights; rounding the raw pixels to bf16 changes the
// logits far more (cosine 0.9967 on tests/fixtures/unified_bf16) than any other bf16 effect.

Tensor embed_images(Ops& ops, const ModelConfig& cfg, const VisionEmbedderWeights& w, const Tensor& pixel_values,
                    const Tensor& image_position_ids) {
  G4_CHECK(cfg.vision.has_value(), "this model has no vision embedder");
  G4_CHECK(w.patch_dense_w.defined() && w.patch_dense_w.data, "the vision embedder weights are not loaded");
  const VisionEmbedderConfig& vc = *cfg.vision;
  const int64_t D = w.patch_dense_w.dim(0), P = w.patch_dense_w.dim(1), H = cfg.text.hidden_size;
  G4_CHECK(pixel_values.ndim() == 2 && pixel_values.dim(1) == P, "pixel_values: shape {} but the model needs [N, {}]",
           shape_str(pixel_values.shape), P);
  const int64_t N = pixel_values.dim(0);
  G4_CHECK(image_position_ids.ndim() == 2 && image_position_ids.dim(0) == N && image_position_ids.dim(1) == 2,
           "image_position_ids: shape {} but pixel_values needs [{}, 2]", shape_str(image_position_ids.shape), N);
  std::vector<int64_t> pos = image_position_ids.i64_vector();
  const int64_t table = w.pos_embedding.dim(0);

  Tensor x = pixel_values.to_f32();
  ops.layernorm(x, w.patch_ln1_w, w.patch_ln1_b, float(vc.layer_norm_eps), x);
  Tensor h = Tensor::empty(DType::F32, {N, D});
  ops.linear(x, w.patch_dense_w, h, &w.patch_dense_b);
  ops.layernorm(h, w.patch_ln2_w, w.patch_ln2_b, float(vc.layer_norm_eps), h);
  // Factorised 2-D position embedding: table[x, 0] + table[y, 1]; padding rows (-1) get none.
  std::vector<float> pe = w.pos_embedding.f32_vector();  // [table, 2, D]
  float* hp = h.ptr<float>();
  std::vector<int64_t> keep;
  for (int64_t n = 0; n < N; ++n) {
    int64_t px = pos[2 * n], py = pos[2 * n + 1];
    bool pad = px == -1 && py == -1;
    if (!pad) {
      G4_CHECK(px >= 0 && py >= 0 && px < table && py < table,
               "image_position_ids row {}: ({}, {}) outside the position table [0, {})", n, px, py, table);
      keep.push_back(n);
      for (int64_t i = 0; i < D; ++i) hp[n * D + i] += pe[(px * 2 + 0) * D + i] + pe[(py * 2 + 1) * D + i];
    }
  }
  ops.layernorm(h, w.pos_norm_w, w.pos_norm_b, float(vc.layer_norm_eps), h);
  // Multimodal embedder: input cast to the projection dtype, weightless RMSNorm, Linear (spec §4.2).
  Tensor hn = Tensor::empty(DType::F32, h.shape);
  ops.rmsnorm(h, nullptr, float(vc.rms_norm_eps), hn);
  Tensor sel = Tensor::empty(DType::F32, {int64_t(keep.size()), D});
  for (size_t r = 0; r < keep.size(); ++r)
    std::copy(hn.ptr<float>() + keep[r] * D, hn.ptr<float>() + (keep[r] + 1) * D, sel.ptr<float>() + r * D);
  Tensor out = Tensor::empty(DType::F32, {int64_t(keep.size()), H});
  if (!keep.empty()) ops.linear(sel, w.projection, out);
  return out;
}

Tensor embed_audio(Ops& ops, const ModelConfig& cfg, const Tensor& projection, const Tensor& input_features) {
  G4_CHECK(cfg.audio.has_value(), "this model has no audio embedder");
  G4_CHECK(projection.defined() && projection.data, "the audio embedder weights are not loaded");
  const int64_t A = projection.dim(1), H = cfg.text.hidden_size;
  G4_CHECK(input_features.ndim() == 2 && input_features.dim(1) == A,
           "input_features: shape {} but the model needs [M, {}]", shape_str(input_features.shape), A);
  Tensor x = input_features.to_f32();
  ops.rmsnorm(x, nullptr, float(cfg.audio->rms_norm_eps), x);
  Tensor out = Tensor::empty(DType::F32, {input_features.dim(0), H});
  if (input_features.dim(0) > 0) ops.linear(x, projection, out);
  return out;
}

}  // namespace gemma4

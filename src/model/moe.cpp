#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace gemma4 {

namespace {
// 2-D view of expert e of a stacked [E, rows, cols] weight.
Tensor expert_slice(const Tensor& stacked, int64_t e) {
  Tensor t = stacked;
  int64_t rows = stacked.dim(1), cols = stacked.dim(2);
  t.shape = {rows, cols};
  t.data = static_cast<char*>(stacked.data) + size_t(e * rows * cols) * dtype_size(stacked.dtype);
  return t;
}
}  // namespace

Tensor moe_forward(Ops& ops, const TextConfig& tc, const LayerWeights& lw, const Tensor& r) {
  const int64_t T = r.dim(0), H = r.dim(1), E = tc.num_experts, K = tc.top_k_experts, I = tc.moe_intermediate_size;
  const float eps = float(tc.rms_norm_eps);

  // Router.
  Tensor z = Tensor::empty(DType::F32, {T, H});
  ops.rmsnorm(r, nullptr, eps, z);
  std::vector<float> scale = lw.router_scale.f32_vector();
  float root = float(1.0 / std::sqrt(double(H)));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < H; ++i) z.ptr<float>()[t * H + i] *= scale[i] * root;
  Tensor logits = Tensor::empty(DType::F32, {T, E});
  ops.linear(z, lw.router_proj, logits);
  std::vector<float> per_expert = lw.router_per_expert_scale.f32_vector();

  // Top-k per token (softmax in fp32, renormalised over the chosen experts).
  std::vector<std::vector<std::pair<int64_t, float>>> routed(E);  // expert -> (token, weight)
  std::vector<float> p(E);
  std::vector<int64_t> idx(E);
  for (int64_t t = 0; t < T; ++t) {
    const float* l = logits.ptr<float>() + t * E;
    float mx = *std::max_element(l, l + E);
    float sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += (p[e] = std::exp(l[e] - mx));
    for (int64_t e = 0; e < E; ++e) p[e] /= sum;
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + K, idx.end(),
                      [&](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float ksum = 0;
    for (int64_t k = 0; k < K; ++k) ksum += p[idx[k]];
    for (int64_t k = 0; k < K; ++k) routed[idx[k]].push_back({t, p[idx[k]] / ksum * per_expert[idx[k]]});
  }

  Tensor x2 = Tensor::empty(DType::F32, {T, H});
  ops.rmsnorm(r, &lw.pre_feedforward_layernorm_2, eps, x2);
  Tensor y = Tensor::zeros(DType::F32, {T, H});
  for (int64_t e = 0; e < E; ++e) {
    const auto& toks = routed[e];
    if (toks.empty()) continue;
    int64_t n = int64_t(toks.size());
    Tensor xin = Tensor::empty(DType::F32, {n, H});
    for (int64_t j = 0; j < n; ++j)
      std::copy(x2.ptr<float>() + toks[j].first * H, x2.ptr<float>() + (toks[j].first + 1) * H,
                xin.ptr<float>() + j * H);
    Tensor gu = Tensor::empty(DType::F32, {n, 2 * I});
    ops.linear(xin, expert_slice(lw.experts_gate_up, e), gu);
    Tensor g = Tensor::empty(DType::F32, {n, I}), u = Tensor::empty(DType::F32, {n, I});
    for (int64_t j = 0; j < n; ++j) {
      std::copy(gu.ptr<float>() + j * 2 * I, gu.ptr<float>() + j * 2 * I + I, g.ptr<float>() + j * I);
      std::copy(gu.ptr<float>() + j * 2 * I + I, gu.ptr<float>() + (j + 1) * 2 * I, u.ptr<float>() + j * I);
    }
    ops.gelu_tanh_mul(g, u, g);
    Tensor out = Tensor::empty(DType::F32, {n, H});
    ops.linear(g, expert_slice(lw.experts_down, e), out);
    for (int64_t j = 0; j < n; ++j) {
      float w = toks[j].second;
      float* yr = y.ptr<float>() + toks[j].first * H;
      const float* o = out.ptr<float>() + j * H;
      for (int64_t i = 0; i < H; ++i) yr[i] += w * o[i];
    }
  }
  ops.rmsnorm(y, &lw.post_feedforward_layernorm_2, eps, y);
  return y;
}

}  // namespace gemma4

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

Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& rows) {
  const int64_t H = x.dim(1);
  Tensor out = Tensor::empty(DType::F32, {int64_t(rows.size()), H});
  for (size_t j = 0; j < rows.size(); ++j)
    std::copy(x.ptr<float>() + rows[j] * H, x.ptr<float>() + (rows[j] + 1) * H, out.ptr<float>() + j * H);
  return out;
}

// Router decisions and everything the backward needs to differentiate them.
struct Routing {
  Tensor zn, z;                      // rms(r), zn * scale * H^-0.5
  std::vector<float> probs;          // [T, E] softmax
  std::vector<int64_t> sel;          // [T, K] chosen experts
  std::vector<float> weight;         // [T, K] p / sum(p_sel) * per_expert_scale
  std::vector<float> psum;           // [T] sum of chosen probabilities
  std::vector<std::vector<std::pair<int64_t, int64_t>>> routed;  // expert -> (token, k)
};

Routing route(Ops& ops, const TextConfig& tc, const LayerWeights& lw, const Tensor& r) {
  const int64_t T = r.dim(0), H = r.dim(1), E = tc.num_experts, K = tc.top_k_experts;
  Routing R;
  R.zn = Tensor::empty(DType::F32, {T, H});
  ops.rmsnorm(r, nullptr, float(tc.rms_norm_eps), R.zn);
  R.z = Tensor::empty(DType::F32, {T, H});
  std::vector<float> scale = lw.router_scale.f32_vector();
  const float root = float(1.0 / std::sqrt(double(H)));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < H; ++i) R.z.ptr<float>()[t * H + i] = R.zn.ptr<float>()[t * H + i] * scale[i] * root;
  Tensor logits = Tensor::empty(DType::F32, {T, E});
  ops.linear(R.z, lw.router_proj, logits);
  std::vector<float> per_expert = lw.router_per_expert_scale.f32_vector();
  R.probs.resize(T * E);
  R.sel.resize(T * K);
  R.weight.resize(T * K);
  R.psum.resize(T);
  R.routed.assign(E, {});
  std::vector<int64_t> idx(E);
  for (int64_t t = 0; t < T; ++t) {
    const float* l = logits.ptr<float>() + t * E;
    float* p = &R.probs[t * E];
    float mx = *std::max_element(l, l + E), sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += (p[e] = std::exp(l[e] - mx));
    for (int64_t e = 0; e < E; ++e) p[e] /= sum;
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + K, idx.end(),
                      [&](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float ks = 0;
    for (int64_t k = 0; k < K; ++k) ks += p[idx[k]];
    R.psum[t] = ks;
    for (int64_t k = 0; k < K; ++k) {
      R.sel[t * K + k] = idx[k];
      R.weight[t * K + k] = p[idx[k]] / ks * per_expert[idx[k]];
      R.routed[idx[k]].push_back({t, k});
    }
  }
  return R;
}

// One expert's MLP over its tokens' rows: gu = x . Wgu^T, h = gelu(gate) * up, out = h . Wd^T.
struct ExpertPass {
  Tensor xin, g, u, h, out;
};

ExpertPass run_expert(Ops& ops, const LayerWeights& lw, int64_t e, const Tensor& x2,
                      const std::vector<int64_t>& tokens, int64_t I) {
  ExpertPass P;
  const int64_t n = int64_t(tokens.size()), H = x2.dim(1);
  P.xin = gather_rows(x2, tokens);
  Tensor gu = Tensor::empty(DType::F32, {n, 2 * I});
  ops.linear(P.xin, expert_slice(lw.experts_gate_up, e), gu);
  P.g = Tensor::empty(DType::F32, {n, I});
  P.u = Tensor::empty(DType::F32, {n, I});
  for (int64_t j = 0; j < n; ++j) {  // gate rows first, then up rows (spec §8.3)
    std::copy(gu.ptr<float>() + j * 2 * I, gu.ptr<float>() + j * 2 * I + I, P.g.ptr<float>() + j * I);
    std::copy(gu.ptr<float>() + j * 2 * I + I, gu.ptr<float>() + (j + 1) * 2 * I, P.u.ptr<float>() + j * I);
  }
  P.h = Tensor::empty(DType::F32, {n, I});
  ops.gelu_tanh_mul(P.g, P.u, P.h);
  P.out = Tensor::empty(DType::F32, {n, H});
  ops.linear(P.h, expert_slice(lw.experts_down, e), P.out);
  return P;
}

std::vector<int64_t> tokens_of(const std::vector<std::pair<int64_t, int64_t>>& routed) {
  std::vector<int64_t> t;
  for (auto& [tok, k] : routed) t.push_back(tok);
  return t;
}

// y = sum over chosen experts of weight * expert(x2); returns y (before post_feedforward_layernorm_2).
Tensor mix(Ops& ops, const TextConfig& tc, const LayerWeights& lw, const Routing& R, const Tensor& x2,
           std::vector<ExpertPass>* passes) {
  const int64_t T = x2.dim(0), H = x2.dim(1), E = tc.num_experts, K = tc.top_k_experts;
  Tensor y = Tensor::zeros(DType::F32, {T, H});
  if (passes) passes->assign(E, {});
  for (int64_t e = 0; e < E; ++e) {
    if (R.routed[e].empty()) continue;
    ExpertPass P = run_expert(ops, lw, e, x2, tokens_of(R.routed[e]), tc.moe_intermediate_size);
    for (size_t j = 0; j < R.routed[e].size(); ++j) {
      auto [t, k] = R.routed[e][j];
      float w = R.weight[t * K + k];
      float* yr = y.ptr<float>() + t * H;
      const float* o = P.out.ptr<float>() + j * H;
      for (int64_t i = 0; i < H; ++i) yr[i] += w * o[i];
    }
    if (passes) (*passes)[e] = std::move(P);
  }
  return y;
}

}  // namespace

Tensor moe_forward(Ops& ops, const TextConfig& tc, const LayerWeights& lw, const Tensor& r) {
  Routing R = route(ops, tc, lw, r);
  Tensor x2 = Tensor::empty(DType::F32, r.shape);
  ops.rmsnorm(r, &lw.pre_feedforward_layernorm_2, float(tc.rms_norm_eps), x2);
  Tensor y = mix(ops, tc, lw, R, x2, nullptr);
  ops.rmsnorm(y, &lw.post_feedforward_layernorm_2, float(tc.rms_norm_eps), y);
  return y;
}

void moe_backward(Ops& ops, const TextConfig& tc, const LayerWeights& lw, const Tensor& r, const Tensor& dout,
                  Tensor& dr, LayerWeights& g) {
  const int64_t T = r.dim(0), H = r.dim(1), E = tc.num_experts, K = tc.top_k_experts, I = tc.moe_intermediate_size;
  const float eps = float(tc.rms_norm_eps);
  Routing R = route(ops, tc, lw, r);
  Tensor x2 = Tensor::empty(DType::F32, r.shape);
  ops.rmsnorm(r, &lw.pre_feedforward_layernorm_2, eps, x2);
  std::vector<ExpertPass> passes;
  Tensor y = mix(ops, tc, lw, R, x2, &passes);

  Tensor dy = Tensor::empty(DType::F32, {T, H});
  ops.rmsnorm_backward(y, &lw.post_feedforward_layernorm_2, eps, dout, dy, false, &g.post_feedforward_layernorm_2);

  std::vector<float> dweight(T * K, 0.f);
  Tensor dx2 = Tensor::zeros(DType::F32, {T, H});
  for (int64_t e = 0; e < E; ++e) {
    const auto& routed = R.routed[e];
    if (routed.empty()) continue;
    const ExpertPass& P = passes[e];
    const int64_t n = int64_t(routed.size());
    Tensor dout_e = Tensor::empty(DType::F32, {n, H});
    for (int64_t j = 0; j < n; ++j) {
      auto [t, k] = routed[j];
      const float* dyr = dy.ptr<float>() + t * H;
      const float* o = P.out.ptr<float>() + j * H;
      float w = R.weight[t * K + k], dot = 0;
      for (int64_t i = 0; i < H; ++i) {
        dout_e.ptr<float>()[j * H + i] = w * dyr[i];
        dot += dyr[i] * o[i];
      }
      dweight[t * K + k] = dot;
    }
    Tensor dh = Tensor::empty(DType::F32, {n, I});
    Tensor gd = expert_slice(g.experts_down, e);
    ops.linear_backward(P.h, expert_slice(lw.experts_down, e), dout_e, &dh, false, &gd);
    Tensor dg = Tensor::empty(DType::F32, {n, I}), du = Tensor::empty(DType::F32, {n, I});
    ops.gelu_tanh_mul_backward(P.g, P.u, dh, dg, du);
    Tensor dgu = Tensor::empty(DType::F32, {n, 2 * I});
    for (int64_t j = 0; j < n; ++j) {
      std::copy(dg.ptr<float>() + j * I, dg.ptr<float>() + (j + 1) * I, dgu.ptr<float>() + j * 2 * I);
      std::copy(du.ptr<float>() + j * I, du.ptr<float>() + (j + 1) * I, dgu.ptr<float>() + j * 2 * I + I);
    }
    Tensor dxin = Tensor::empty(DType::F32, {n, H});
    Tensor ggu = expert_slice(g.experts_gate_up, e);
    ops.linear_backward(P.xin, expert_slice(lw.experts_gate_up, e), dgu, &dxin, false, &ggu);
    for (int64_t j = 0; j < n; ++j) {
      float* d = dx2.ptr<float>() + routed[j].first * H;
      const float* s = dxin.ptr<float>() + j * H;
      for (int64_t i = 0; i < H; ++i) d[i] += s[i];
    }
  }
  ops.rmsnorm_backward(r, &lw.pre_feedforward_layernorm_2, eps, dx2, dr, true, &g.pre_feedforward_layernorm_2);

  // Router: weight_k = p_k / S * pes[e_k], S = sum of chosen p; softmax over all experts.
  std::vector<float> per_expert = lw.router_per_expert_scale.f32_vector();
  float* dpes = g.router_per_expert_scale.ptr<float>();
  Tensor dlogits = Tensor::zeros(DType::F32, {T, E});
  std::vector<float> dp(E);
  for (int64_t t = 0; t < T; ++t) {
    const float* p = &R.probs[t * E];
    const float S = R.psum[t];
    std::fill(dp.begin(), dp.end(), 0.f);
    float sum_a_p = 0;
    for (int64_t k = 0; k < K; ++k) {
      int64_t e = R.sel[t * K + k];
      float dw = dweight[t * K + k];
      dpes[e] += dw * p[e] / S;
      sum_a_p += dw * per_expert[e] * p[e];
    }
    for (int64_t k = 0; k < K; ++k) {
      int64_t e = R.sel[t * K + k];
      dp[e] = dweight[t * K + k] * per_expert[e] / S - sum_a_p / (S * S);
    }
    float pdp = 0;
    for (int64_t e = 0; e < E; ++e) pdp += p[e] * dp[e];
    for (int64_t e = 0; e < E; ++e) dlogits.ptr<float>()[t * E + e] = p[e] * (dp[e] - pdp);
  }
  Tensor dz = Tensor::empty(DType::F32, {T, H});
  ops.linear_backward(R.z, lw.router_proj, dlogits, &dz, false, &g.router_proj);
  std::vector<float> scale = lw.router_scale.f32_vector();
  const float root = float(1.0 / std::sqrt(double(H)));
  Tensor dzn = Tensor::empty(DType::F32, {T, H});
  float* dscale = g.router_scale.ptr<float>();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < H; ++i) {
      float d = dz.ptr<float>()[t * H + i];
      dscale[i] += d * R.zn.ptr<float>()[t * H + i] * root;
      dzn.ptr<float>()[t * H + i] = d * scale[i] * root;
    }
  ops.rmsnorm_backward(r, nullptr, eps, dzn, dr, true, nullptr);
}

}  // namespace gemma4

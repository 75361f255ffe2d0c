// Backward of the Gemma 4 decoder: walks the forward of forward.cpp in reverse using the activations its
// Tape recorded. Every step names the forward line it differentiates. fp32 throughout.
#include <cmath>

#include "model/model.h"
#include "model/moe.h"
#include "model/rope.h"

namespace gemma4 {

namespace {

Tensor zeros_f32(Shape s) { return Tensor::zeros(DType::F32, std::move(s)); }

Tensor as_rows(const Tensor& t, int64_t rows, int64_t width) { return t.reshape({rows, width}); }

inline float gelu_f(float x) {
  const float c = 0.7978845608028654f;
  return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}
inline float gelu_grad(float x) {
  const float c = 0.7978845608028654f;
  float th = std::tanh(c * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * c * (1.0f + 3.0f * 0.044715f * x * x);
}

float scalar_of(const Tensor& t) { return t.f32_vector().at(0); }

}  // namespace

void Model::backward(const Tape& tp, const Tensor& logits, const Tensor& dlogits, Weights& gr) {
  const TextConfig& tc = cfg_.text;
  Ops& ops = *ops_;
  const int64_t T = logits.dim(0), H = tc.hidden_size, V = tc.vocab_size;
  const int64_t L = tc.num_hidden_layers, P = tc.hidden_size_per_layer_input;
  const float eps = float(tc.rms_norm_eps);
  G4_CHECK(w_.embed_tokens.dtype == DType::F32, "training needs F32 (master) weights, got {}",
           dtype_name(w_.embed_tokens.dtype));
  G4_CHECK(T == int64_t(tp.positions.size()), "backward: the tape holds {} positions, logits {}", tp.positions.size(), T);

  // Softcap: l = c * tanh(z / c)  =>  dz = dl * (1 - (l / c)^2).
  Tensor dz = clone(dlogits);
  if (tc.final_logit_softcapping > 0) {
    const float c = float(tc.final_logit_softcapping);
    const float* l = logits.ptr<float>();
    float* d = dz.ptr<float>();
    for (int64_t i = 0; i < T * V; ++i) {
      float th = l[i] / c;
      d[i] *= 1.0f - th * th;
    }
  }
  // logits = xn . lm_head^T ; xn = final_norm(x_final)
  Tensor dxn = zeros_f32({T, H});
  ops.linear_backward(tp.xn, w_.lm_head, dz, &dxn, false, &gr.lm_head);
  Tensor dx = zeros_f32({T, H});
  ops.rmsnorm_backward(tp.x_final, &w_.final_norm, eps, dxn, dx, false, &gr.final_norm);

  const LayerSpec* any_full = nullptr;
  for (auto& s : layers_)
    if (s.type == LayerType::Full) any_full = &s;
  std::vector<float> freq_sliding = rope_inv_freq(tc.rope_sliding, tc.head_dim);
  std::vector<float> freq_full = any_full ? rope_inv_freq(tc.rope_full, any_full->head_dim) : std::vector<float>{};

  std::vector<Tensor> dK(layers_.size()), dV(layers_.size());  // per K/V-owning layer, summed over readers
  Tensor dple = P > 0 ? zeros_f32({T, L * P}) : Tensor{};
  const int nq = tc.num_attention_heads;
  const int64_t* pos = tp.positions.data();

  for (int64_t li = int64_t(layers_.size()) - 1; li >= 0; --li) {
    const LayerSpec& s = layers_[li];
    const LayerWeights& lw = w_.layers[li];
    LayerWeights& lg = gr.layers[li];
    const LayerTape& lt = tp.layers[li];
    const int hd = s.head_dim, nkv = s.num_kv_heads;
    const int64_t qd = int64_t(nq) * hd, kvd = int64_t(nkv) * hd;
    const std::vector<float>& freq = s.type == LayerType::Full ? freq_full : freq_sliding;

    // x4 = x3 * layer_scalar
    {
      const float sc = scalar_of(lw.layer_scalar);
      double ds = 0;
      const float* x3 = lt.x3.ptr<float>();
      float* d = dx.ptr<float>();
      for (int64_t i = 0; i < T * H; ++i) ds += double(d[i]) * x3[i], d[i] *= sc;
      lg.layer_scalar.ptr<float>()[0] += float(ds);
    }
    // x3 = x2 + post_per_layer_input_norm(per_layer_projection(gelu(per_layer_input_gate(x2)) * ple_i))
    if (P > 0) {
      Tensor dc = zeros_f32({T, H});
      ops.rmsnorm_backward(lt.ple_c, &lw.post_per_layer_input_norm, eps, dx, dc, false, &lg.post_per_layer_input_norm);
      Tensor ga = Tensor::empty(DType::F32, {T, P});
      const float* gl = lt.ple_gate_lin.ptr<float>();
      const float* pl = tp.ple.ptr<float>();
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < P; ++i) ga.ptr<float>()[t * P + i] = gelu_f(gl[t * P + i]) * pl[(t * L + li) * P + i];
      Tensor dga = zeros_f32({T, P});
      ops.linear_backward(ga, lw.per_layer_projection, dc, &dga, false, &lg.per_layer_projection);
      Tensor dgl = Tensor::empty(DType::F32, {T, P});
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < P; ++i) {
          float g = gl[t * P + i], d = dga.ptr<float>()[t * P + i];
          dgl.ptr<float>()[t * P + i] = d * pl[(t * L + li) * P + i] * gelu_grad(g);
          dple.ptr<float>()[(t * L + li) * P + i] += d * gelu_f(g);
        }
      ops.linear_backward(lt.x2, lw.per_layer_input_gate, dgl, &dx, true, &lg.per_layer_input_gate);
    }
    // x2 = x1 + post_feedforward_layernorm(f)
    Tensor df = zeros_f32({T, H});
    ops.rmsnorm_backward(lt.f, &lw.post_feedforward_layernorm, eps, dx, df, false, &lg.post_feedforward_layernorm);
    Tensor df_dense = df;
    if (s.has_moe) {  // f = post_feedforward_layernorm_1(f_dense) + moe(x1)
      moe_backward(ops, tc, lw, lt.x1, df, dx, lg);
      df_dense = zeros_f32({T, H});
      ops.rmsnorm_backward(lt.f_dense, &lw.post_feedforward_layernorm_1, eps, df, df_dense, false,
                           &lg.post_feedforward_layernorm_1);
    }
    // f_dense = down(gelu(gate(m)) * up(m)); m = pre_feedforward_layernorm(x1)
    const int64_t I = s.intermediate_size;
    Tensor dh = zeros_f32({T, I});
    ops.linear_backward(lt.h, lw.down_proj, df_dense, &dh, false, &lg.down_proj);
    Tensor dg = Tensor::empty(DType::F32, {T, I}), du = Tensor::empty(DType::F32, {T, I});
    ops.gelu_tanh_mul_backward(lt.g, lt.u, dh, dg, du);
    Tensor dm = zeros_f32({T, H});
    ops.linear_backward(lt.m, lw.gate_proj, dg, &dm, false, &lg.gate_proj);
    ops.linear_backward(lt.m, lw.up_proj, du, &dm, true, &lg.up_proj);
    ops.rmsnorm_backward(lt.x1, &lw.pre_feedforward_layernorm, eps, dm, dx, true, &lg.pre_feedforward_layernorm);

    // x1 = x0 + post_attention_layernorm(o_proj(o))
    Tensor dp = zeros_f32({T, H});
    ops.rmsnorm_backward(lt.p, &lw.post_attention_layernorm, eps, dx, dp, false, &lg.post_attention_layernorm);
    Tensor dout = zeros_f32({T, qd});
    ops.linear_backward(lt.o, lw.o_proj, dp, &dout, false, &lg.o_proj);

    // o = attention(q, k_src, v_src)
    const int64_t src = s.kv_source >= 0 ? s.kv_source : li;
    const LayerTape& st = tp.layers[src];
    if (!dK[src].defined() || !dK[src].data) dK[src] = zeros_f32({T, kvd}), dV[src] = zeros_f32({T, kvd});
    AttnMask mask;
    mask.q_pos = pos;
    mask.k_pos = pos;
    mask.window = s.type == LayerType::Sliding ? tc.sliding_window : 0;
    Tensor dq = zeros_f32({T, qd});
    ops.attention_backward(lt.q, st.k, st.v, nq, nkv, hd, 1.0f, mask, dout, dq, dK[src], dV[src]);
    // q = rope(q_norm(q_lin)); q_lin = q_proj(a)
    ops.rope_backward(dq, nq, hd, pos, freq);
    Tensor dq_lin = zeros_f32({T, qd});
    Tensor dq_h = as_rows(dq, T * nq, hd), dq_lin_h = as_rows(dq_lin, T * nq, hd);
    ops.rmsnorm_backward(as_rows(lt.q_lin, T * nq, hd), &lw.q_norm, eps, dq_h, dq_lin_h, false, &lg.q_norm);
    Tensor da = zeros_f32({T, H});
    ops.linear_backward(lt.a, lw.q_proj, dq_lin, &da, false, &lg.q_proj);

    if (s.kv_source < 0) {
      // Every reader of this layer's K/V has a larger index, so dK/dV are complete here.
      // k = rope(k_norm(k_lin)); v = v_norm(v_lin) with v_lin = k_lin (k_eq_v) or v_proj(a)
      Tensor dk = dK[li];
      ops.rope_backward(dk, nkv, hd, pos, freq);
      Tensor dk_lin = zeros_f32({T, kvd});
      Tensor dk_h = as_rows(dk, T * nkv, hd), dk_lin_h = as_rows(dk_lin, T * nkv, hd);
      ops.rmsnorm_backward(as_rows(lt.k_lin, T * nkv, hd), &lw.k_norm, eps, dk_h, dk_lin_h, false, &lg.k_norm);
      const Tensor& v_lin = s.k_eq_v ? lt.k_lin : lt.v_lin;
      Tensor dv_lin = zeros_f32({T, kvd});
      Tensor dv_h = as_rows(dV[li], T * nkv, hd), dv_lin_h = as_rows(dv_lin, T * nkv, hd);
      ops.rmsnorm_backward(as_rows(v_lin, T * nkv, hd), nullptr, eps, dv_h, dv_lin_h, false, nullptr);
      if (s.k_eq_v) {
        ops.add(dk_lin, dv_lin, dk_lin);
      } else {
        ops.linear_backward(lt.a, lw.v_proj, dv_lin, &da, true, &lg.v_proj);
      }
      ops.linear_backward(lt.a, lw.k_proj, dk_lin, &da, true, &lg.k_proj);
    }
    // a = input_layernorm(x0)
    ops.rmsnorm_backward(lt.x0, &lw.input_layernorm, eps, da, dx, true, &lg.input_layernorm);
  }

  // Per-layer embeddings: ple = (norm(x_emb . Wp^T * H^-0.5) + E_ple[ids] * sqrt(P)) * 2^-0.5
  const float embed_scale = float(std::sqrt(double(H)));
  if (P > 0) {
    ops.scale(dple, float(1.0 / std::sqrt(2.0)));
    const float ple_scale = float(std::sqrt(double(P)));
    float* ge = gr.embed_tokens_per_layer.ptr<float>();
    const float* d = dple.ptr<float>();
    for (int64_t t = 0; t < T; ++t) {
      int64_t id = tp.lookup_ids[t];
      if (id < 0 || id >= tc.vocab_size_per_layer_input) id = tc.pad_token_id;
      for (int64_t i = 0; i < L * P; ++i) ge[id * L * P + i] += d[t * L * P + i] * ple_scale;
    }
    Tensor dpl = zeros_f32({T * L, P});
    ops.rmsnorm_backward(as_rows(tp.ple_lin, T * L, P), &w_.per_layer_projection_norm, eps, as_rows(dple, T * L, P), dpl,
                         false, &gr.per_layer_projection_norm);
    ops.scale(dpl, float(1.0 / std::sqrt(double(H))));
    ops.linear_backward(tp.x_emb, w_.per_layer_model_projection, as_rows(dpl, T, L * P), &dx, true,
                        &gr.per_layer_model_projection);
  }
  // x_emb = E[ids] * sqrt(H)
  float* ge = gr.embed_tokens.ptr<float>();
  const float* d = dx.ptr<float>();
  for (int64_t t = 0; t < T; ++t) {
    int64_t id = tp.lookup_ids[t];
    for (int64_t i = 0; i < H; ++i) ge[id * H + i] += d[t * H + i] * embed_scale;
  }
}

}  // namespace gemma4

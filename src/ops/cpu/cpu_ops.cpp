// CPU backend of the op set (ops.h). Activations F32; weights in their stored dtype. OpenMP over rows.
#include <algorithm>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/cpu/linear.h"
#include "ops/ops.h"

namespace gemma4 {
namespace {

// Reads element i of a float tensor of any float dtype.
inline float elem(const Tensor& t, int64_t i) {
  switch (t.dtype) {
    case DType::F32: return t.ptr<float>()[i];
    case DType::BF16: return bf16_to_f32(t.ptr<uint16_t>()[i]);
    case DType::F16: return f16_to_f32(t.ptr<uint16_t>()[i]);
    default: throw Error("expected a float tensor, got {}", dtype_name(t.dtype));
  }
}

std::vector<float> as_f32(const Tensor& t) { return t.f32_vector(); }

void check_f32(const Tensor& t, const char* what) {
  G4_CHECK(t.dtype == DType::F32, "{}: activations must be F32, got {}", what, dtype_name(t.dtype));
}

inline float gelu_tanh_f(float x) {
  const float c = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}

inline float gelu_tanh_grad(float x) {
  const float c = 0.7978845608028654f;
  float th = std::tanh(c * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * c * (1.0f + 3.0f * 0.044715f * x * x);
}

// out[c, r] = in[r, c] as F32 (any float dtype in).
std::vector<float> transpose_f32(const Tensor& t, int64_t rows, int64_t cols) {
  std::vector<float> out(size_t(rows * cols));
  const int64_t B = 32;
#pragma omp parallel for collapse(2) schedule(static) if (rows * cols > 65536)
  for (int64_t r0 = 0; r0 < rows; r0 += B)
    for (int64_t c0 = 0; c0 < cols; c0 += B)
      for (int64_t r = r0; r < std::min(rows, r0 + B); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + B); ++c) out[c * rows + r] = elem(t, r * cols + c);
  return out;
}

void add_into(float* dst, const float* src, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

class CpuOps final : public Ops {
  const bool avx2_ = cpu::linear_has_avx2();  // vector kernels (AVX2/FMA/F16C) when the CPU has them

 public:
  Device device() const override { return Device::CPU; }

  void linear(const Tensor& x, const Tensor& w, Tensor& y, const Tensor* b) override {
    check_f32(x, "linear");
    G4_CHECK(w.ndim() == 2, "linear: weight must be 2-D, got {}", shape_str(w.shape));
    int64_t K = w.dim(1), N = w.dim(0);
    G4_CHECK(x.dim(-1) == K, "linear: input width {} but weight {}", x.dim(-1), shape_str(w.shape));
    int64_t M = x.numel() / K;
    G4_CHECK(y.numel() == M * N && y.dtype == DType::F32, "linear: output shape {}", shape_str(y.shape));
    std::vector<float> bias;
    if (b && b->defined() && b->numel() > 0) bias = as_f32(*b);
    cpu::linear(x.ptr<float>(), M, K, w.data, w.dtype, N, y.ptr<float>(), bias.empty() ? nullptr : bias.data());
  }

  void rmsnorm(const Tensor& x, const Tensor* w, float eps, Tensor& y) override {
    check_f32(x, "rmsnorm");
    int64_t D = w && w->defined() ? w->numel() : x.dim(-1);
    int64_t rows = x.numel() / D;
    if (avx2_) {
      bool has_w = w && w->defined() && w->data;
      cpu::rmsnorm_avx2(x.ptr<float>(), has_w ? w->data : nullptr, has_w ? w->dtype : DType::F32, rows, D, eps,
                        y.ptr<float>());
      return;
    }
    std::vector<float> wv;
    if (w && w->defined()) wv = as_f32(*w);
    const float* xp = x.ptr<float>();
    float* yp = y.ptr<float>();
#pragma omp parallel for schedule(static) if (rows * D > 16384)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = xp + r * D;
      float* yr = yp + r * D;
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += double(xr[i]) * xr[i];
      float inv = 1.0f / std::sqrt(float(ss / D) + eps);
      if (wv.empty())
        for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * inv;
      else
        for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * inv * wv[i];
    }
  }

  void layernorm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) override {
    check_f32(x, "layernorm");
    int64_t D = x.dim(-1), rows = x.numel() / D;
    std::vector<float> wv = as_f32(w), bv = as_f32(b);
    const float* xp = x.ptr<float>();
    float* yp = y.ptr<float>();
#pragma omp parallel for schedule(static) if (rows * D > 16384)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = xp + r * D;
      float* yr = yp + r * D;
      double mean = 0;
      for (int64_t i = 0; i < D; ++i) mean += xr[i];
      mean /= D;
      double var = 0;
      for (int64_t i = 0; i < D; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      var /= D;
      float inv = float(1.0 / std::sqrt(var + eps));
      for (int64_t i = 0; i < D; ++i) yr[i] = float(xr[i] - mean) * inv * wv[i] + bv[i];
    }
  }

  void embedding(const Tensor& table, const std::vector<int64_t>& ids, float scale, Tensor& y) override {
    int64_t V = table.dim(0), D = table.dim(1);
    float* yp = y.ptr<float>();
    for (size_t t = 0; t < ids.size(); ++t) {
      G4_CHECK(ids[t] >= 0 && ids[t] < V, "token id {} out of range [0, {})", ids[t], V);
      for (int64_t i = 0; i < D; ++i) yp[t * D + i] = elem(table, ids[t] * D + i) * scale;
    }
  }

  void rope(Tensor& x, int n_heads, int head_dim, const int64_t* pos, const std::vector<float>& inv_freq) override {
    check_f32(x, "rope");
    int half = head_dim / 2;
    int64_t T = x.numel() / (int64_t(n_heads) * head_dim);
    float* xp = x.ptr<float>();
    std::vector<float> cs(half), sn(half);
    for (int64_t t = 0; t < T; ++t) {
      for (int j = 0; j < half; ++j) {
        // fp32 angle as HF computes it: position * inv_freq in fp32.
        float ang = float(pos[t]) * inv_freq[j];
        cs[j] = std::cos(ang);
        sn[j] = std::sin(ang);
      }
      for (int h = 0; h < n_heads; ++h) {
        float* v = xp + (t * n_heads + h) * head_dim;
        for (int j = 0; j < half; ++j) {
          float a = v[j], b = v[j + half];
          v[j] = a * cs[j] - b * sn[j];
          v[j + half] = b * cs[j] + a * sn[j];
        }
      }
    }
  }

  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads, int head_dim,
                 float scale, const AttnMask& mask, Tensor& o) override {
    int64_t T = q.numel() / (int64_t(n_q_heads) * head_dim);
    int64_t S = k.numel() / (int64_t(n_kv_heads) * head_dim);
    int group = n_q_heads / n_kv_heads;
    const float* qp = q.ptr<float>();
    const float* kp = k.ptr<float>();
    const float* vp = v.ptr<float>();
    float* op = o.ptr<float>();
    if (avx2_ && cpu::attention_avx2(qp, kp, vp, T, S, n_q_heads, n_kv_heads, head_dim, scale, mask.q_pos, mask.k_pos,
                                     mask.window, mask.q_block, mask.k_block, op))
      return;
    int64_t qstride = int64_t(n_q_heads) * head_dim, kstride = int64_t(n_kv_heads) * head_dim;
#pragma omp parallel if (T * S * n_q_heads * int64_t(head_dim) > 32768)
    {
      std::vector<float> scores(S);
      std::vector<float> acc(head_dim);
#pragma omp for collapse(2) schedule(dynamic, 1)
      for (int64_t t = 0; t < T; ++t) {
        for (int h = 0; h < n_q_heads; ++h) {
          const float* qv = qp + t * qstride + int64_t(h) * head_dim;
          int kh = h / group;
          float mx = -INFINITY;
          for (int64_t s = 0; s < S; ++s) {
            if (!mask.visible(t, s)) {
              scores[s] = -INFINITY;
              continue;
            }
            const float* kv = kp + s * kstride + int64_t(kh) * head_dim;
            float d = 0.f;
            for (int i = 0; i < head_dim; ++i) d += qv[i] * kv[i];
            scores[s] = d * scale;
            mx = std::max(mx, scores[s]);
          }
          std::fill(acc.begin(), acc.end(), 0.f);
          float* out = op + t * qstride + int64_t(h) * head_dim;
          if (mx == -INFINITY) {
            std::fill(out, out + head_dim, 0.f);
            continue;
          }
          float sum = 0.f;
          for (int64_t s = 0; s < S; ++s) {
            if (scores[s] == -INFINITY) continue;
            float p = std::exp(scores[s] - mx);
            sum += p;
            const float* vv = vp + s * kstride + int64_t(kh) * head_dim;
            for (int i = 0; i < head_dim; ++i) acc[i] += p * vv[i];
          }
          float inv = 1.f / sum;
          for (int i = 0; i < head_dim; ++i) out[i] = acc[i] * inv;
        }
      }
    }
  }

  void gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    int64_t n = gate.numel();
    if (avx2_) {
      cpu::gelu_tanh_mul_avx2(gate.ptr<float>(), up.ptr<float>(), out.ptr<float>(), n);
      return;
    }
    const float *g = gate.ptr<float>(), *u = up.ptr<float>();
    float* o = out.ptr<float>();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) o[i] = gelu_tanh_f(g[i]) * u[i];
  }

  void gelu_tanh(const Tensor& x, Tensor& out) override {
    int64_t n = x.numel();
    const float* g = x.ptr<float>();
    float* o = out.ptr<float>();
    for (int64_t i = 0; i < n; ++i) o[i] = gelu_tanh_f(g[i]);
  }

  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    int64_t n = a.numel();
    G4_CHECK(b.numel() == n && out.numel() == n, "add: sizes {} {} {}", n, b.numel(), out.numel());
    const float *ap = a.ptr<float>(), *bp = b.ptr<float>();
    float* o = out.ptr<float>();
    for (int64_t i = 0; i < n; ++i) o[i] = ap[i] + bp[i];
  }

  void scale(Tensor& x, const Tensor& s) override { scale(x, elem(s, 0)); }

  void scale(Tensor& x, float s) override {
    int64_t n = x.numel();
    float* p = x.ptr<float>();
    for (int64_t i = 0; i < n; ++i) p[i] *= s;
  }

  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, bool accumulate_dx,
                       Tensor* dw) override {
    const int64_t N = w.dim(0), K = w.dim(1), M = dy.numel() / N;
    G4_CHECK(x.numel() == M * K, "linear_backward: x has {} elements, expected {}", x.numel(), M * K);
    if (dx) {  // dx[M,K] = dy[M,N] . w[N,K]  ==  linear(dy, w^T)
      std::vector<float> wt = transpose_f32(w, N, K);
      if (accumulate_dx) {
        std::vector<float> tmp(size_t(M * K));
        cpu::linear(dy.ptr<float>(), M, N, wt.data(), DType::F32, K, tmp.data());
        add_into(dx->ptr<float>(), tmp.data(), M * K);
      } else {
        cpu::linear(dy.ptr<float>(), M, N, wt.data(), DType::F32, K, dx->ptr<float>());
      }
    }
    if (dw) {  // dw[N,K] += dy^T[N,M] . x[M,K]  ==  linear(dy^T, x^T)
      G4_CHECK(dw->dtype == DType::F32 && dw->numel() == N * K, "linear_backward: dw must be F32 [{}, {}]", N, K);
      std::vector<float> dyt = transpose_f32(dy, M, N), xt = transpose_f32(x, M, K);
      std::vector<float> tmp(size_t(N * K));
      cpu::linear(dyt.data(), N, M, xt.data(), DType::F32, K, tmp.data());
      add_into(dw->ptr<float>(), tmp.data(), N * K);
    }
  }

  void rmsnorm_backward(const Tensor& x, const Tensor* w, float eps, const Tensor& dy, Tensor& dx, bool accumulate_dx,
                        Tensor* dw) override {
    bool has_w = w && w->defined() && w->numel() > 0;
    int64_t D = has_w ? w->numel() : x.dim(-1);
    int64_t rows = x.numel() / D;
    std::vector<float> wv;
    if (has_w) wv = as_f32(*w);
    const float *xp = x.ptr<float>(), *gp = dy.ptr<float>();
    float* dxp = dx.ptr<float>();
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif
    std::vector<std::vector<double>> dw_part(has_w && dw ? nthreads : 0, std::vector<double>(D, 0.0));
#pragma omp parallel for schedule(static) if (rows * D > 16384)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = xp + r * D;
      const float* gr = gp + r * D;
      float* out = dxp + r * D;
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += double(xr[i]) * xr[i];
      double inv = 1.0 / std::sqrt(ss / D + eps);
      double dot = 0;  // sum_j g_j w_j x_j
      for (int64_t i = 0; i < D; ++i) dot += double(gr[i]) * (has_w ? wv[i] : 1.0f) * xr[i];
      double c = inv * inv * inv * dot / D;
      for (int64_t i = 0; i < D; ++i) {
        double v = inv * gr[i] * (has_w ? wv[i] : 1.0f) - xr[i] * c;
        out[i] = accumulate_dx ? out[i] + float(v) : float(v);
      }
      if (!dw_part.empty()) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        for (int64_t i = 0; i < D; ++i) dw_part[tid][i] += double(gr[i]) * xr[i] * inv;
      }
    }
    if (!dw_part.empty()) {
      G4_CHECK(dw->dtype == DType::F32 && dw->numel() == D, "rmsnorm_backward: dw must be F32 [{}]", D);
      for (auto& part : dw_part)
        for (int64_t i = 0; i < D; ++i) dw->ptr<float>()[i] += float(part[i]);
    }
  }

  void rope_backward(Tensor& dx, int n_heads, int head_dim, const int64_t* pos,
                     const std::vector<float>& inv_freq) override {
    std::vector<float> neg(inv_freq.size());
    int64_t T = dx.numel() / (int64_t(n_heads) * head_dim);
    // Rotation by -angle: negate positions' angles by rotating with negated frequencies.
    for (size_t j = 0; j < inv_freq.size(); ++j) neg[j] = -inv_freq[j];
    (void)T;
    rope(dx, n_heads, head_dim, pos, neg);
  }

  // Two passes so that the result does not depend on thread scheduling (exact resume reproducibility):
  // pass 1 owns a query row (t, h): its softmax statistics, D = sum_s p dp, and dq; pass 2 owns a key
  // row (s, kv head): it recomputes p and dp for every query that sees it and sums dk, dv in a fixed order.
  void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads,
                          int head_dim, float scale, const AttnMask& mask, const Tensor& dout, Tensor& dq, Tensor& dk,
                          Tensor& dv) override {
    const int64_t T = q.numel() / (int64_t(n_q_heads) * head_dim);
    const int64_t S = k.numel() / (int64_t(n_kv_heads) * head_dim);
    const int group = n_q_heads / n_kv_heads;
    const int64_t qs = int64_t(n_q_heads) * head_dim, ks = int64_t(n_kv_heads) * head_dim;
    const float *qp = q.ptr<float>(), *kp = k.ptr<float>(), *vp = v.ptr<float>(), *gp = dout.ptr<float>();
    float *dqp = dq.ptr<float>(), *dkp = dk.ptr<float>(), *dvp = dv.ptr<float>();
    auto dot = [head_dim](const float* a, const float* b) {
      float d = 0.f;
      for (int i = 0; i < head_dim; ++i) d += a[i] * b[i];
      return d;
    };
    std::vector<float> lse(size_t(T * n_q_heads), -INFINITY), dsum(size_t(T * n_q_heads), 0.f);
    const bool big = T * S * n_q_heads * int64_t(head_dim) > 32768;
#pragma omp parallel if (big)
    {
      std::vector<float> p(S), dp(S);
#pragma omp for collapse(2) schedule(static)
      for (int64_t t = 0; t < T; ++t) {
        for (int h = 0; h < n_q_heads; ++h) {
          const int kh = h / group;
          const float* qv = qp + t * qs + int64_t(h) * head_dim;
          const float* go = gp + t * qs + int64_t(h) * head_dim;
          float* dqv = dqp + t * qs + int64_t(h) * head_dim;
          std::fill(dqv, dqv + head_dim, 0.f);
          float mx = -INFINITY;
          for (int64_t s = 0; s < S; ++s) {
            p[s] = mask.visible(t, s) ? dot(qv, kp + s * ks + int64_t(kh) * head_dim) * scale : -INFINITY;
            mx = std::max(mx, p[s]);
          }
          if (mx == -INFINITY) continue;
          float sum = 0;
          for (int64_t s = 0; s < S; ++s) sum += (p[s] = p[s] == -INFINITY ? 0.f : std::exp(p[s] - mx));
          float D = 0;
          for (int64_t s = 0; s < S; ++s) {
            p[s] /= sum;
            dp[s] = p[s] == 0.f ? 0.f : dot(go, vp + s * ks + int64_t(kh) * head_dim);
            D += p[s] * dp[s];
          }
          for (int64_t s = 0; s < S; ++s) {
            if (p[s] == 0.f) continue;
            float ds = p[s] * (dp[s] - D) * scale;
            const float* kv = kp + s * ks + int64_t(kh) * head_dim;
            for (int i = 0; i < head_dim; ++i) dqv[i] += ds * kv[i];
          }
          lse[t * n_q_heads + h] = mx + std::log(sum);
          dsum[t * n_q_heads + h] = D;
        }
      }
#pragma omp for collapse(2) schedule(static)
      for (int64_t s = 0; s < S; ++s) {
        for (int kh = 0; kh < n_kv_heads; ++kh) {
          const float* kv = kp + s * ks + int64_t(kh) * head_dim;
          const float* vv = vp + s * ks + int64_t(kh) * head_dim;
          float* dks = dkp + s * ks + int64_t(kh) * head_dim;
          float* dvs = dvp + s * ks + int64_t(kh) * head_dim;
          for (int64_t t = 0; t < T; ++t) {
            if (!mask.visible(t, s)) continue;
            for (int h = kh * group; h < (kh + 1) * group; ++h) {
              const float l = lse[t * n_q_heads + h];
              if (l == -INFINITY) continue;
              const float* qv = qp + t * qs + int64_t(h) * head_dim;
              const float* go = gp + t * qs + int64_t(h) * head_dim;
              const float pr = std::exp(dot(qv, kv) * scale - l);
              const float ds = pr * (dot(go, vv) - dsum[t * n_q_heads + h]) * scale;
              for (int i = 0; i < head_dim; ++i) {
                dvs[i] += pr * go[i];
                dks[i] += ds * qv[i];
              }
            }
          }
        }
      }
    }
  }

  void gelu_tanh_mul_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, Tensor& dgate,
                              Tensor& dup) override {
    int64_t n = gate.numel();
    const float *g = gate.ptr<float>(), *u = up.ptr<float>(), *d = dout.ptr<float>();
    float *dg = dgate.ptr<float>(), *du = dup.ptr<float>();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      float gi = g[i], di = d[i];
      du[i] = di * gelu_tanh_f(gi);
      dg[i] = di * u[i] * gelu_tanh_grad(gi);
    }
  }

  void softcap(Tensor& x, float cap) override {
    int64_t n = x.numel();
    float* p = x.ptr<float>();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) p[i] = cap * std::tanh(p[i] / cap);
  }
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops() { return std::make_unique<CpuOps>(); }

}  // namespace gemma4

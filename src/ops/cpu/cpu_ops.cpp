// CPU backend of the op set (ops.h). Activations F32; weights in their stored dtype. OpenMP over rows.
#include <algorithm>
#include <cmath>
#include <vector>

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

class CpuOps final : public Ops {
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
    int64_t qstride = int64_t(n_q_heads) * head_dim, kstride = int64_t(n_kv_heads) * head_dim;
#pragma omp parallel
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

#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/safetensors.h"

namespace gemma4 {

namespace {

constexpr int64_t kChunk = 1 << 15;  // reduction granularity (independent of the thread count)

void check_f32_pair(const ParamRef& p) {
  G4_CHECK(p.param.dtype == DType::F32 && p.grad.dtype == DType::F32, "parameter '{}': master weight and gradient must be F32",
           p.name);
  G4_CHECK(p.param.shape == p.grad.shape, "parameter '{}': gradient shape {} differs from the parameter's {}", p.name,
           shape_str(p.grad.shape), shape_str(p.param.shape));
  G4_CHECK(p.param.device == Device::CPU && p.grad.device == Device::CPU, "parameter '{}': not on the CPU", p.name);
}

// Sum of squares of one tensor: chunks in parallel, chunks combined in order.
double sum_squares(const Tensor& t) {
  const float* g = t.ptr<float>();
  int64_t n = t.numel();
  int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(size_t(std::max<int64_t>(nchunks, 1)), 0.0);
#pragma omp parallel for schedule(static) if (nchunks > 4)
  for (int64_t c = 0; c < nchunks; ++c) {
    int64_t b = c * kChunk, e = std::min(n, b + kChunk);
    double s = 0;
    for (int64_t i = b; i < e; ++i) s += double(g[i]) * double(g[i]);
    part[size_t(c)] = s;
  }
  double s = 0;
  for (double v : part) s += v;
  return s;
}

}  // namespace

// layer_scalar is a persistent buffer in HF (and fairseq2), loaded but never trained (spec §2.4): it is
// not an optimizer parameter here either.
static bool trainable(const std::string& name) {
  return name.size() < 12 || name.compare(name.size() - 12, 12, "layer_scalar") != 0;
}

std::vector<ParamRef> collect_params(const ModelConfig& cfg, Layout layout, Weights& w, Weights& grads) {
  BindOptions text_only{false, false};
  std::vector<ParamRef> out;
  for_each_parameter(cfg, layout, text_only, w, [&](const ExpectedTensor& e, Tensor& t) {
    if (!trainable(e.name)) return;
    G4_CHECK(t.data != nullptr, "parameter '{}' is not set", e.name);
    out.push_back({e.name, t, Tensor{}});
  });
  size_t i = 0;
  for_each_parameter(cfg, layout, text_only, grads, [&](const ExpectedTensor& e, Tensor& g) {
    if (!trainable(e.name)) return;
    G4_CHECK(i < out.size() && out[i].name == e.name, "gradient structure differs from the weights at '{}'", e.name);
    G4_CHECK(g.data != nullptr, "gradient of '{}' is not allocated", e.name);
    out[i++].grad = g;
  });
  G4_CHECK(i == out.size(), "gradient structure differs from the weights ({} vs {} tensors)", i, out.size());
  for (const auto& p : out) check_f32_pair(p);
  return out;
}

double global_grad_norm(const std::vector<ParamRef>& params) {
  double s = 0;
  for (const auto& p : params) s += sum_squares(p.grad);
  return std::sqrt(s);
}

void scale_grads(const std::vector<ParamRef>& params, double s) {
  float f = float(s);
  for (const auto& p : params) {
    float* g = const_cast<Tensor&>(p.grad).ptr<float>();
    int64_t n = p.grad.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) g[i] *= f;
  }
}

void divide_grads(const std::vector<ParamRef>& params, double d) {
  float f = float(d);
  for (const auto& p : params) {
    float* g = const_cast<Tensor&>(p.grad).ptr<float>();
    int64_t n = p.grad.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) g[i] /= f;
  }
}

double clip_grad_norm(const std::vector<ParamRef>& params, double max_norm) {
  double norm = global_grad_norm(params);
  if (max_norm > 0 && std::isfinite(norm)) {
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) scale_grads(params, coef);
  }
  return norm;
}

AdamW::AdamW(std::vector<ParamRef> params, AdamWConfig cfg) : params_(std::move(params)), cfg_(cfg) {
  G4_CHECK(cfg_.beta1 >= 0 && cfg_.beta1 < 1 && cfg_.beta2 >= 0 && cfg_.beta2 < 1,
           "optimizer.betas must be in [0, 1), got [{}, {}]", cfg_.beta1, cfg_.beta2);
  G4_CHECK(cfg_.eps >= 0, "optimizer.eps must be >= 0, got {}", cfg_.eps);
  G4_CHECK(cfg_.weight_decay >= 0, "optimizer.weight_decay must be >= 0, got {}", cfg_.weight_decay);
  for (const auto& p : params_) {
    check_f32_pair(p);
    exp_avg_.push_back(Tensor::zeros(DType::F32, p.param.shape));
    exp_avg_sq_.push_back(Tensor::zeros(DType::F32, p.param.shape));
  }
}

void AdamW::step(double lr) {
  ++step_;
  const double bc1 = 1.0 - std::pow(cfg_.beta1, double(step_));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, double(step_));
  const float decay = float(1.0 - lr * cfg_.weight_decay);
  const float step_size = float(lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float one_minus_b1 = float(1.0 - cfg_.beta1);
  const float b2 = float(cfg_.beta2), one_minus_b2 = float(1.0 - cfg_.beta2);
  const float eps = float(cfg_.eps);
  for (size_t k = 0; k < params_.size(); ++k) {
    float* p = params_[k].param.ptr<float>();
    const float* g = params_[k].grad.ptr<float>();
    float* m = exp_avg_[k].ptr<float>();
    float* v = exp_avg_sq_[k].ptr<float>();
    int64_t n = params_[k].param.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      float gi = g[i];
      float pi = p[i] * decay;
      float mi = m[i] + (gi - m[i]) * one_minus_b1;
      float vi = v[i] * b2 + one_minus_b2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = pi - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
    }
  }
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t k = 0; k < params_.size(); ++k) {
    out.emplace_back(params_[k].name + ".exp_avg", exp_avg_[k]);
    out.emplace_back(params_[k].name + ".exp_avg_sq", exp_avg_sq_[k]);
  }
  return out;
}

std::map<std::string, std::string> AdamW::state_metadata() const {
  return {{"step", std::to_string(step_)}, {"optimizer", "adamw"}};
}

void AdamW::load_state(const std::string& path) {
  auto f = SafetensorsFile::open(path);
  auto it = f->metadata().find("step");
  G4_CHECK(it != f->metadata().end(), "{}: no 'step' in the metadata", path);
  char* end = nullptr;
  long long st = std::strtoll(it->second.c_str(), &end, 10);
  G4_CHECK(!it->second.empty() && *end == 0 && st >= 0, "{}: metadata step '{}' is not a count", path, it->second);
  size_t expected = 0;
  for (size_t k = 0; k < params_.size(); ++k) {
    for (int which = 0; which < 2; ++which) {
      std::string name = params_[k].name + (which ? ".exp_avg_sq" : ".exp_avg");
      G4_CHECK(f->has(name), "{}: tensor '{}' is missing", path, name);
      Tensor t = f->get(name);
      Tensor& dst = which ? exp_avg_sq_[k] : exp_avg_[k];
      G4_CHECK(t.dtype == DType::F32 && t.shape == dst.shape, "{}: tensor '{}': {} {} but the optimizer needs F32 {}", path,
               name, dtype_name(t.dtype), shape_str(t.shape), shape_str(dst.shape));
      std::memcpy(dst.data, t.data, dst.nbytes());
      ++expected;
    }
  }
  G4_CHECK(f->tensors().size() == expected, "{}: {} tensors but the optimizer has {} states", path, f->tensors().size(),
           expected);
  step_ = st;
}

}  // namespace gemma4

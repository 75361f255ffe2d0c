// AdamW against hand-computed values (decoupled weight decay, bias correction, eps outside the sqrt),
// clipping by global norm, and the optimizer state round trip.
#include <gtest/gtest.h>

#include <cmath>

#include "io/safetensors.h"
#include "test_util.h"
#include "train/optimizer.h"

using namespace gemma4;

namespace {

ParamRef make_param(const std::string& name, std::vector<float> p, std::vector<float> g) {
  int64_t n = int64_t(p.size());
  return {name, Tensor::from_f32(p, {n}), Tensor::from_f32(g, {n})};
}

void set_grad(ParamRef& r, const std::vector<float>& g) {
  for (size_t i = 0; i < g.size(); ++i) r.grad.ptr<float>()[i] = g[i];
}

}  // namespace

TEST(AdamW, FirstStepByHand) {
  // At t = 1, m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps) ~ lr * sign(g).
  // p = 1.0, g = 0.5, lr 0.1, wd 0.1: p <- 1.0 * (1 - 0.01) - 0.1 = 0.89.
  // p = -2.0, g = -3.0: p <- -2.0 * 0.99 + 0.1 = -1.88.   p = 0.5, g = 0: only the decay, 0.495.
  ParamRef r = make_param("w", {1.0f, -2.0f, 0.5f}, {0.5f, -3.0f, 0.0f});
  AdamW opt({r}, AdamWConfig{0.9, 0.999, 1e-8, 0.1});
  opt.step(0.1);
  const float* p = r.param.ptr<float>();
  EXPECT_NEAR(p[0], 0.89f, 1e-6);
  EXPECT_NEAR(p[1], -1.88f, 1e-6);
  EXPECT_NEAR(p[2], 0.495f, 1e-7);
  EXPECT_EQ(opt.step_count(), 1);
}

TEST(AdamW, ThreeStepsAgainstScalarReference) {
  // Second step by hand for one element (beta1 0.9, beta2 0.99, eps 0.1, wd 0.5, lr 0.2):
  // step 1, g=1: m=0.1 v=0.01, m_hat=1 v_hat=1, p = 2*(1-0.1) - 0.2*1/(1+0.1) = 1.8 - 0.181818 = 1.618182
  // step 2, g=-1: m = 0.09 - 0.1 = -0.01, v = 0.0099 + 0.01 = 0.0199,
  //   m_hat = -0.01/0.19 = -0.0526316, v_hat = 0.0199/0.0199 = 1
  //   p = 1.618182*0.9 + 0.2*0.0526316/1.1 = 1.456364 + 0.009569 = 1.465933
  ParamRef r = make_param("w", {2.0f}, {1.0f});
  AdamW opt({r}, AdamWConfig{0.9, 0.99, 0.1, 0.5});
  opt.step(0.2);
  EXPECT_NEAR(r.param.ptr<float>()[0], 1.6181818f, 2e-6);
  set_grad(r, {-1.0f});
  opt.step(0.2);
  EXPECT_NEAR(r.param.ptr<float>()[0], 1.4659331f, 2e-6);

  // Several elements and steps with changing lr against a plain double-precision textbook loop.
  std::vector<double> p0{0.3, -1.2, 2.5, 0.0, -0.7}, m(5, 0), v(5, 0);
  std::vector<std::vector<float>> gs{{0.1f, -0.2f, 0.3f, 0.0f, 1.5f}, {-0.4f, 0.2f, 0.1f, 0.05f, -1.0f},
                                     {0.2f, 0.2f, -0.3f, -0.05f, 0.5f}};
  std::vector<double> lrs{1e-2, 5e-3, 2e-3};
  const double b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  ParamRef q = make_param("q", std::vector<float>(p0.begin(), p0.end()), gs[0]);
  AdamW o2({q}, AdamWConfig{b1, b2, eps, wd});
  std::vector<double> ref = p0;
  for (int t = 1; t <= 3; ++t) {
    set_grad(q, gs[t - 1]);
    o2.step(lrs[t - 1]);
    for (int i = 0; i < 5; ++i) {
      double g = gs[t - 1][i];
      ref[i] -= lrs[t - 1] * wd * ref[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
      ref[i] -= lrs[t - 1] * mh / (std::sqrt(vh) + eps);
    }
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(q.param.ptr<float>()[i], ref[i], 2e-6) << "step " << t << " elem " << i;
  }
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  auto make = [] {
    return std::vector<ParamRef>{make_param("a.weight", {0.5f, -0.25f, 1.0f}, {0.1f, 0.2f, -0.3f}),
                                 make_param("b.weight", {2.0f, 3.0f}, {-1.0f, 0.5f})};
  };
  auto pa = make(), pb = make();
  AdamW a(pa, AdamWConfig{0.9, 0.95, 1e-8, 0.1}), b(pb, AdamWConfig{0.9, 0.95, 1e-8, 0.1});
  a.step(1e-2);
  a.step(2e-2);
  std::string path = test::temp_dir() + "/optimizer.safetensors";
  save_safetensors(path, a.state_tensors(), a.state_metadata());
  for (size_t k = 0; k < pa.size(); ++k)
    std::memcpy(pb[k].param.data, pa[k].param.data, pa[k].param.nbytes());
  b.load_state(path);
  EXPECT_EQ(b.step_count(), 2);
  a.step(3e-2);
  b.step(3e-2);
  for (size_t k = 0; k < pa.size(); ++k)
    for (int64_t i = 0; i < pa[k].param.numel(); ++i)
      EXPECT_EQ(pa[k].param.ptr<float>()[i], pb[k].param.ptr<float>()[i]);  // bit-identical

  // A state file for other parameters is rejected with the tensor's name.
  auto other = std::vector<ParamRef>{make_param("c.weight", {1.0f}, {1.0f})};
  AdamW c(other, AdamWConfig{});
  try {
    c.load_state(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.weight.exp_avg"), std::string::npos) << e.what();
  }
}

TEST(Clipping, GlobalNormAcrossTensors) {
  // grads [3] and [4]: global norm 5.
  std::vector<ParamRef> ps{make_param("a", {0.f}, {3.f}), make_param("b", {0.f}, {4.f})};
  EXPECT_DOUBLE_EQ(global_grad_norm(ps), 5.0);
  // max_norm above the norm: unchanged, reports 5.
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 10.0), 5.0);
  EXPECT_EQ(ps[0].grad.ptr<float>()[0], 3.f);
  // max_norm 0: measure only.
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 0.0), 5.0);
  EXPECT_EQ(ps[1].grad.ptr<float>()[0], 4.f);
  // max_norm 1: scaled by 1 / (5 + 1e-6) (torch clip_grad_norm_), the norm before clipping is returned.
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 1.0), 5.0);
  EXPECT_NEAR(ps[0].grad.ptr<float>()[0], 0.6f, 1e-6);
  EXPECT_NEAR(ps[1].grad.ptr<float>()[0], 0.8f, 1e-6);
  EXPECT_NEAR(global_grad_norm(ps), 1.0, 1e-6);
  // Large tensor (several reduction chunks): exact against a sequential double sum, deterministic.
  std::vector<float> big(200000);
  double ss = 0;
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = float((int64_t(i) * 7919 % 1000) - 500) * 1e-3f;
    ss += double(big[i]) * big[i];
  }
  std::vector<ParamRef> pb{make_param("big", std::vector<float>(big.size(), 0.f), big)};
  EXPECT_NEAR(global_grad_norm(pb), std::sqrt(ss), 1e-9 * std::sqrt(ss));
  EXPECT_EQ(global_grad_norm(pb), global_grad_norm(pb));
  divide_grads(pb, 4.0);
  EXPECT_EQ(pb[0].grad.ptr<float>()[3], big[3] / 4.0f);
}

TEST(AdamW, RejectsBadInput) {
  ParamRef r = make_param("w", {1.f, 2.f}, {1.f, 2.f});
  EXPECT_THROW(AdamW({r}, AdamWConfig{1.0, 0.9, 1e-8, 0.0}), Error);
  EXPECT_THROW(AdamW({r}, AdamWConfig{0.9, 0.9, -1.0, 0.0}), Error);
  ParamRef bad{"x", Tensor::from_f32({1.f, 2.f}, {2}), Tensor::from_f32({1.f}, {1})};
  EXPECT_THROW(AdamW({bad}, AdamWConfig{}), Error);
}

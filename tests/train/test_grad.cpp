// Gradients of forward_backward against central finite differences of the loss, for every parameter
// tensor of tiny models covering each feature (GQA + K=V + sliding window, PLE + KV sharing + double-wide
// MLP, MoE). HF/PyTorch autograd parity is in test_grad_parity.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/keymap.h"
#include "train/grad.h"

using namespace gemma4;

namespace {

ModelConfig tiny(int variant) {
  ModelConfig c;
  c.model_type = "gemma4_text";
  TextConfig& t = c.text;
  t.vocab_size = 37;
  t.hidden_size = 16;
  t.intermediate_size = 24;
  t.num_hidden_layers = 4;
  t.num_attention_heads = 4;
  t.num_key_value_heads = 2;
  t.head_dim = 4;
  t.global_head_dim = 8;
  t.num_global_key_value_heads = 1;
  t.attention_k_eq_v = variant != 1;
  t.layer_types = {LayerType::Sliding, LayerType::Full, LayerType::Sliding, LayerType::Full};
  t.sliding_window = 3;
  t.final_logit_softcapping = 5.0;
  if (variant == 1) {
    t.hidden_size_per_layer_input = 4;
    t.vocab_size_per_layer_input = 37;
    t.num_kv_shared_layers = 2;
    t.use_double_wide_mlp = true;
  }
  if (variant == 2) {
    t.enable_moe_block = true;
    t.num_experts = 4;
    t.top_k_experts = 2;
    t.moe_intermediate_size = 8;
  }
  return c;
}

Example example(int vocab) {
  Example e;
  std::mt19937 rng(11);
  for (int i = 0; i < 9; ++i) e.ids.push_back(rng() % vocab);
  e.target = {0, 0, 0, 1, 1, 0, 1, 1, 1};
  e.origin = "test";
  return e;
}

void check_gradients(int variant) {
  ModelConfig cfg = tiny(variant);
  Weights w = random_weights(cfg, DType::F32, 5);
  // Well-separated router probabilities, so that the finite-difference steps never flip a top-k choice
  // (routing is piecewise constant).
  for (auto& l : w.layers)
    if (l.router_proj.data)
      for (int64_t i = 0; i < l.router_proj.numel(); ++i) l.router_proj.ptr<float>()[i] *= 40.0f;
  Model model(cfg, w);
  Example ex = example(int(cfg.text.vocab_size));
  Weights g = zeros_like(cfg, model.weights());
  LossStats st = forward_backward(model, ex, g);
  ASSERT_EQ(st.num_targets, 5);

  int checked = 0;
  double worst = 0;
  std::string worst_name;
  // Walk weights and grads in lockstep.
  std::vector<std::pair<std::string, Tensor>> params, grads;
  for_each_parameter(cfg, Layout::CausalLM, {}, model.mutable_weights(),
                     [&](const ExpectedTensor& et, Tensor& p) { params.push_back({et.name, p}); });
  for_each_parameter(cfg, Layout::CausalLM, {}, g, [&](const ExpectedTensor& et, Tensor& p) { grads.push_back({et.name, p}); });
  ASSERT_EQ(params.size(), grads.size());
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor& p = params[i].second;
    const Tensor& gp = grads[i].second;
    const int64_t n = p.numel();
    // A few entries per tensor, including the first and last.
    for (int64_t j : {int64_t(0), n / 3, n / 2, n - 1}) {
      float* v = p.ptr<float>() + j;
      const float orig = *v;
      const float h = 1e-3f * std::max(1.0f, std::fabs(orig));
      *v = orig + h;
      double lp = evaluate_loss(model, ex).nll_sum;
      *v = orig - h;
      double lm = evaluate_loss(model, ex).nll_sum;
      *v = orig;
      double fd = (lp - lm) / (2 * h);
      double an = gp.ptr<float>()[j];
      double err = std::fabs(fd - an) / std::max(0.05, std::fabs(fd) + std::fabs(an));
      if (err > worst) worst = err, worst_name = params[i].first + "[" + std::to_string(j) + "]";
      EXPECT_LT(err, 2e-2) << params[i].first << "[" << j << "] analytic " << an << " numeric " << fd;
      ++checked;
    }
  }
  std::printf("  variant %d: %d entries checked, worst relative error %.2e at %s\n", variant, checked, worst,
              worst_name.c_str());
}

}  // namespace

TEST(Gradients, MatchFiniteDifferencesDense) { check_gradients(0); }
TEST(Gradients, MatchFiniteDifferencesPleKvSharing) { check_gradients(1); }
TEST(Gradients, MatchFiniteDifferencesMoe) { check_gradients(2); }

TEST(Gradients, LossMatchesEvaluateLoss) {
  ModelConfig cfg = tiny(0);
  Model model(cfg, random_weights(cfg, DType::F32, 5));
  Example ex = example(int(cfg.text.vocab_size));
  Weights g = zeros_like(cfg, model.weights());
  LossStats a = forward_backward(model, ex, g);
  LossStats b = evaluate_loss(model, ex);
  EXPECT_NEAR(a.nll_sum, b.nll_sum, 1e-6);
  EXPECT_EQ(a.num_correct, b.num_correct);
}

// Mixture-of-experts branch of the 26B-A4B decoder layer (spec §8.3), forward and backward.
#pragma once
#include "core/tensor.h"
#include "model/config.h"
#include "model/weights.h"
#include "ops/ops.h"

namespace gemma4 {

// r: the residual stream after attention [T, H]. Returns post_feedforward_layernorm_2(experts(r)) [T, H]:
//   z = rms(r) * router.scale * H^-0.5; p = softmax(router.proj(z)); top-k, renormalised, times
//   per_expert_scale; y = sum_k w_k down_e(gelu_tanh(gate_e x2) * up_e x2) with x2 = pre_ffw_norm_2(r).
Tensor moe_forward(Ops& ops, const TextConfig& tc, const LayerWeights& lw, const Tensor& r);

// Backward of moe_forward (recomputes the forward): dr += d/dr; parameter gradients into g (F32).
void moe_backward(Ops& ops, const TextConfig& tc, const LayerWeights& lw, const Tensor& r, const Tensor& dout,
                  Tensor& dr, LayerWeights& g);

}  // namespace gemma4

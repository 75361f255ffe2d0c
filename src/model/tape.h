// Activations recorded by a training forward (Model::forward with a Tape) for the backward pass
// (model/backward.cpp). Names follow forward.cpp; all F32, one sequence starting at position 0.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace gemma4 {

struct LayerTape {
  Tensor x0;                    // residual stream entering the layer [T, H]
  Tensor a;                     // input_layernorm(x0)
  Tensor q_lin, k_lin, v_lin;   // projections before their norms (v_lin undefined when k_eq_v / shared)
  Tensor q, k, v;               // attention inputs (q, k after norm + RoPE; v after the weightless norm)
  Tensor o;                     // attention output [T, nq*hd]
  Tensor p;                     // o_proj(o), before post_attention_layernorm
  Tensor x1;                    // x0 + post_attention_layernorm(p)
  Tensor m;                     // pre_feedforward_layernorm(x1)
  Tensor g, u, h;               // gate, up, gelu(gate)*up
  Tensor f_dense;               // down_proj(h)
  Tensor f;                     // input of post_feedforward_layernorm (= f_dense, or norm1(f_dense) + moe(x1))
  Tensor x2;                    // x1 + post_feedforward_layernorm(f)
  Tensor ple_gate_lin, ple_c;   // PLE: per_layer_input_gate(x2), per_layer_projection(...)
  Tensor x3;                    // before layer_scalar
};

struct Tape {
  std::vector<int64_t> positions, lookup_ids;
  Tensor x_emb;      // scaled embeddings (+ soft tokens) [T, H]
  Tensor ple_lin;    // PLE: per_layer_model_projection(x_emb) * H^-0.5, before its norm [T, L*P]
  Tensor ple;        // PLE: final per-layer inputs [T, L*P]
  std::vector<LayerTape> layers;
  Tensor x_final;    // residual stream before the final norm [T, H]
  Tensor xn;         // final norm output
};

inline Tensor clone(const Tensor& t) {
  Tensor c = Tensor::empty(t.dtype, t.shape);
  std::copy(static_cast<const char*>(t.data), static_cast<const char*>(t.data) + t.nbytes(), static_cast<char*>(c.data));
  return c;
}

}  // namespace gemma4

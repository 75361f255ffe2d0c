// The parameters of a Gemma 4 model, as views into the checkpoint (stored dtype, zero-copy) or
// freshly allocated (random init, training). Filled by the HF key map (keymap.h); read by the forward.
// A Tensor that is !defined() is absent for this layer/model (e.g. v_proj on k_eq_v full layers).
#pragma once
#include <array>
#include <vector>

#include "core/tensor.h"

namespace gemma4 {

struct LayerWeights {
  Tensor input_layernorm, post_attention_layernorm, pre_feedforward_layernorm, post_feedforward_layernorm;
  Tensor q_proj, k_proj, v_proj, o_proj;  // [out, in]; k/v absent on KV-shared layers, v on k_eq_v
  Tensor q_norm, k_norm;                  // [head_dim]; k_norm absent on KV-shared layers
  Tensor gate_proj, up_proj, down_proj;   // dense MLP
  Tensor layer_scalar;                    // [1]
  // Per-layer embeddings (E2B/E4B, spec §8.2)
  Tensor per_layer_input_gate;       // [ple, H]
  Tensor per_layer_projection;       // [H, ple]
  Tensor post_per_layer_input_norm;  // [H]
  // MoE (26B-A4B, spec §8.3)
  Tensor router_proj;              // [E, H]
  Tensor router_scale;             // [H]
  Tensor router_per_expert_scale;  // [E]
  Tensor experts_gate_up;          // [E, 2*moe_inter, H] (gate rows first)
  Tensor experts_down;             // [E, H, moe_inter]
  Tensor pre_feedforward_layernorm_2, post_feedforward_layernorm_1, post_feedforward_layernorm_2;
};

struct VisionEmbedderWeights {  // spec §4.2
  Tensor patch_ln1_w, patch_ln1_b;    // [6912]
  Tensor patch_dense_w, patch_dense_b;  // [D, 6912], [D]
  Tensor patch_ln2_w, patch_ln2_b;    // [D]
  Tensor pos_embedding;               // [posemb, 2, D]
  Tensor pos_norm_w, pos_norm_b;      // [D]
  Tensor projection;                  // [H, D]
};

// Every tensor slot of a layer / of the vision embedder, defined or not, in declaration order (loaders, training
// and checkpoints walk them in this order).
inline std::array<Tensor*, 25> tensor_slots(LayerWeights& l) {
  return {&l.input_layernorm, &l.post_attention_layernorm, &l.pre_feedforward_layernorm,
          &l.post_feedforward_layernorm, &l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.q_norm, &l.k_norm,
          &l.gate_proj, &l.up_proj, &l.down_proj, &l.layer_scalar, &l.per_layer_input_gate,
          &l.per_layer_projection, &l.post_per_layer_input_norm, &l.router_proj, &l.router_scale,
          &l.router_per_expert_scale, &l.experts_gate_up, &l.experts_down, &l.pre_feedforward_layernorm_2,
          &l.post_feedforward_layernorm_1, &l.post_feedforward_layernorm_2};
}
inline std::array<Tensor*, 10> tensor_slots(VisionEmbedderWeights& v) {
  return {&v.patch_ln1_w, &v.patch_ln1_b, &v.patch_dense_w, &v.patch_dense_b, &v.patch_ln2_w,
          &v.patch_ln2_b, &v.pos_embedding, &v.pos_norm_w, &v.pos_norm_b, &v.projection};
}

struct Weights {
  Tensor embed_tokens;  // [V, H]
  Tensor final_norm;    // [H]
  Tensor lm_head;       // [V, H]; the same tensor as embed_tokens when tied
  // PLE
  Tensor embed_tokens_per_layer;      // [V_ple, L*ple]
  Tensor per_layer_model_projection;  // [L*ple, H]
  Tensor per_layer_projection_norm;   // [ple]
  std::vector<LayerWeights> layers;
  VisionEmbedderWeights vision;  // unified only (present when the model uses images)
  Tensor audio_projection;       // [H, 640], unified only
};

}  // namespace gemma4

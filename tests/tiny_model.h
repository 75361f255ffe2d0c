// The tiny random Gemma 4 text config the forward tests share (tests/model, tests/cuda): 6 layers (sliding,
// sliding, full) x 2, window 4, GQA on sliding and MQA with K=V on full layers, softcap; optionally PLE + KV
// sharing + double-wide MLP, or MoE.
#pragma once
#include "model/config.h"

namespace gemma4::test {

inline ModelConfig tiny_config(bool ple_and_sharing, bool moe) {
  ModelConfig c;
  c.model_type = "gemma4_text";
  TextConfig& t = c.text;
  t.vocab_size = 97;
  t.hidden_size = 32;
  t.intermediate_size = 48;
  t.num_hidden_layers = 6;
  t.num_attention_heads = 4;
  t.num_key_value_heads = 2;
  t.head_dim = 8;
  t.global_head_dim = 16;
  t.num_global_key_value_heads = 1;
  t.attention_k_eq_v = !ple_and_sharing;
  t.layer_types = {LayerType::Sliding, LayerType::Sliding, LayerType::Full,
                   LayerType::Sliding, LayerType::Sliding, LayerType::Full};
  t.sliding_window = 4;
  t.final_logit_softcapping = 30.0;
  if (ple_and_sharing) {
    t.hidden_size_per_layer_input = 8;
    t.vocab_size_per_layer_input = 97;
    t.num_kv_shared_layers = 3;
    t.use_double_wide_mlp = true;
  }
  if (moe) {
    t.enable_moe_block = true;
    t.num_experts = 4;
    t.top_k_experts = 2;
    t.moe_intermediate_size = 16;
  }
  return c;
}

}  // namespace gemma4::test

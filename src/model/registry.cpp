// The Gemma 4 presets (spec §1.3 and the §1.4 family table; generation settings from §1.3 and §5.5).
#include "model/registry.h"

#include <functional>
#include <map>

#include "core/error.h"

namespace gemma4 {

namespace {

std::vector<LayerType> pattern(int layers, int period) {
  // `period - 1` sliding layers then one full layer, repeated; the last layer is full.
  std::vector<LayerType> t(layers);
  for (int i = 0; i < layers; ++i) t[i] = ((i + 1) % period) ? LayerType::Sliding : LayerType::Full;
  t.back() = LayerType::Full;
  return t;
}

// Settings shared by the whole family (spec §1.4: RoPE, softcap, norms, vocabulary).
TextConfig family_text() {
  TextConfig t;
  t.vocab_size = 262144;
  t.head_dim = 256;
  t.global_head_dim = 512;
  t.rms_norm_eps = 1e-6;
  t.final_logit_softcapping = 30.0;
  t.tie_word_embeddings = true;
  t.rope_sliding = {"default", 10000.0, 1.0};
  t.rope_full = {"proportional", 1000000.0, 0.25};
  t.pad_token_id = 0;
  t.bos_token_id = 2;
  t.eos_token_ids = {1};
  t.hidden_size_per_layer_input = 0;
  t.vocab_size_per_layer_input = 262144;
  return t;
}

// Sampling defaults written by the converters (spec §1.3: do_sample, temperature 1, top_k 64, top_p 0.95).
GenerationConfig family_generation() {
  GenerationConfig g;
  g.eos_token_ids = {1};
  g.do_sample = true;
  g.temperature = 1.0;
  g.top_k = 64;
  g.top_p = 0.95;
  return g;
}

ModelConfig unified_12b(bool audio) {
  ModelConfig c;
  c.model_type = "gemma4_unified";
  c.is_unified = true;
  TextConfig t = family_text();
  t.hidden_size = 3840;
  t.intermediate_size = 15360;
  t.num_hidden_layers = 48;
  t.layer_types = pattern(48, 6);
  t.num_attention_heads = 16;
  t.num_key_value_heads = 8;
  t.num_global_key_value_heads = 1;
  t.attention_k_eq_v = true;
  t.sliding_window = 1024;
  t.max_position_embeddings = 262144;
  t.use_bidirectional_attention = "vision";
  c.text = t;
  c.vision = VisionEmbedderConfig{};
  if (audio) c.audio = AudioEmbedderConfig{};
  c.generation = family_generation();
  c.generation.suppress_tokens = {258883, 258882};  // EOA, EOI rows were overwritten at conversion (spec §3.5)
  return c;
}

ModelConfig tower_model(int hidden, int layers, int period, int heads, int kv, int global_kv, bool k_eq_v,
                        int inter, int window, bool audio_tower) {
  ModelConfig c;
  c.model_type = "gemma4";
  TextConfig t = family_text();
  t.hidden_size = hidden;
  t.num_hidden_layers = layers;
  t.layer_types = pattern(layers, period);
  t.num_attention_heads = heads;
  t.num_key_value_heads = kv;
  t.num_global_key_value_heads = global_kv;
  t.attention_k_eq_v = k_eq_v;
  t.intermediate_size = inter;
  t.sliding_window = window;
  t.max_position_embeddings = window == 512 ? 131072 : 262144;
  t.use_bidirectional_attention = window == 512 ? "" : "vision";
  c.text = t;
  c.has_vision_tower = true;
  c.has_audio_tower = audio_tower;
  c.generation = family_generation();
  return c;
}

ModelConfig e2b() {
  ModelConfig c = tower_model(1536, 35, 5, 8, 1, -1, false, 6144, 512, true);  // 4 sliding : 1 full
  c.text.hidden_size_per_layer_input = 256;
  c.text.num_kv_shared_layers = 20;
  c.text.use_double_wide_mlp = true;
  return c;
}

ModelConfig e4b() {
  ModelConfig c = tower_model(2560, 42, 6, 8, 2, -1, false, 10240, 512, true);
  c.text.hidden_size_per_layer_input = 256;
  c.text.num_kv_shared_layers = 18;
  return c;
}

ModelConfig dense_31b() { return tower_model(5376, 60, 6, 32, 16, 4, true, 21504, 1024, false); }

ModelConfig moe_26b_a4b() {
  ModelConfig c = tower_model(2816, 30, 6, 16, 8, 2, true, 2112, 1024, false);
  c.text.enable_moe_block = true;
  c.text.num_experts = 128;
  c.text.top_k_experts = 8;
  c.text.moe_intermediate_size = 704;
  return c;
}

// Instruction-tuned variant: eos [1, 106] (<eos>, <turn|>) in config.json and [1, 106, 50] (+ <|tool_response>)
// in generation_config.json (spec §5.5).
ModelConfig instruct(ModelConfig c) {
  c.text.eos_token_ids = {1, 106};
  c.generation.eos_token_ids = {1, 106, 50};
  return c;
}

const std::vector<std::pair<std::string, std::function<ModelConfig()>>>& presets() {
  static const std::vector<std::pair<std::string, std::function<ModelConfig()>>> p = {
      {"12b", [] { return unified_12b(false); }},
      {"12b_it", [] { return instruct(unified_12b(false)); }},
      {"12b_audio", [] { return unified_12b(true); }},
      {"12b_it_audio", [] { return instruct(unified_12b(true)); }},
      {"e2b", e2b},
      {"e2b_it", [] { return instruct(e2b()); }},
      {"e4b", e4b},
      {"e4b_it", [] { return instruct(e4b()); }},
      {"31b", dense_31b},
      {"31b_it", [] { return instruct(dense_31b()); }},
      {"26b_a4b", moe_26b_a4b},
      {"26b_a4b_it", [] { return instruct(moe_26b_a4b()); }},
  };
  return p;
}

}  // namespace

const std::vector<std::string>& arch_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, fn] : presets()) n.push_back(name);
    return n;
  }();
  return names;
}

ModelConfig arch_config(const std::string& name) {
  for (const auto& [n, fn] : presets()) {
    if (n != name) continue;
    ModelConfig c = fn();
    c.arch_name = n;
    return c;
  }
  std::string all;
  for (const auto& n : arch_names()) all += (all.empty() ? "" : ", ") + n;
  throw Error("unknown architecture '{}' (known: {})", name, all);
}

}  // namespace gemma4

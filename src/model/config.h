// Gemma 4 configuration: the text decoder, the Unified tower-free embedders, token ids and generation
// settings. Parsed from a Hugging Face config.json (model_type gemma4_unified, gemma4, gemma4_text,
// gemma4_unified_text) or taken from the architecture registry (registry.h). Spec §1.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace gemma4 {

enum class LayerType { Sliding, Full };

struct RopeParams {
  std::string type = "default";  // "default" or "proportional" (spec §2.2)
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;  // proportional only
};

// Everything the forward needs for one decoder layer, resolved from the config (spec §1.1, §6.2, §8).
struct LayerSpec {
  LayerType type = LayerType::Sliding;
  int head_dim = 256;
  int num_kv_heads = 1;
  bool k_eq_v = false;        // full layer without v_proj: V = v_norm(raw K projection) (spec §2.4.3)
  int kv_source = -1;         // KV-shared layer: index of the layer whose K/V it reads; -1 = own K/V
  int intermediate_size = 0;  // dense MLP width (double on KV-shared layers with use_double_wide_mlp)
  bool has_moe = false;       // 26B-A4B block (spec §8.3)
};

struct TextConfig {
  int64_t vocab_size = 262144;
  int hidden_size = 2304;
  int intermediate_size = 9216;
  int num_hidden_layers = 30;
  int num_attention_heads = 8;
  int num_key_value_heads = 4;
  int head_dim = 256;
  int global_head_dim = 512;
  int num_global_key_value_heads = -1;  // -1: same as num_key_value_heads
  std::vector<LayerType> layer_types;
  int sliding_window = 512;
  double rms_norm_eps = 1e-6;
  double final_logit_softcapping = 0.0;  // 0 = none
  bool tie_word_embeddings = true;
  bool attention_k_eq_v = false;
  int num_kv_shared_layers = 0;
  bool use_double_wide_mlp = false;
  int hidden_size_per_layer_input = 0;  // PLE width; 0 = no PLE
  int64_t vocab_size_per_layer_input = 262144;
  bool enable_moe_block = false;
  int num_experts = 0;
  int top_k_experts = 0;
  int moe_intermediate_size = 0;
  RopeParams rope_sliding{"default", 10000.0, 1.0};
  RopeParams rope_full{"proportional", 1000000.0, 0.25};
  int64_t max_position_embeddings = 131072;
  std::string use_bidirectional_attention;  // "", "vision" or "all"
  int64_t pad_token_id = 0, bos_token_id = 2;
  std::vector<int64_t> eos_token_ids{1};

  // Per-layer geometry derived from the fields above.
  std::vector<LayerSpec> layers() const;
  int first_kv_shared_layer() const { return num_hidden_layers - num_kv_shared_layers; }
};

// Unified vision embedder (spec §4.2): 48-px patches of 6912 values -> LN -> Linear -> LN -> +pos -> LN
// -> RMSNorm(no weight) -> Linear.
struct VisionEmbedderConfig {
  int patch_size = 16;
  int pooling_kernel_size = 3;
  int mm_embed_dim = 3840;
  int mm_posemb_size = 1120;
  int output_proj_dims = 3840;
  double rms_norm_eps = 1e-6;
  double layer_norm_eps = 1e-5;
  int patch_dim() const { return (patch_size * pooling_kernel_size) * (patch_size * pooling_kernel_size) * 3; }
};

// Unified audio embedder (spec §4.3): 640-sample frames -> RMSNorm(no weight) -> Linear.
struct AudioEmbedderConfig {
  int audio_embed_dim = 640;
  double rms_norm_eps = 1e-6;
};

struct GenerationConfig {
  std::vector<int64_t> eos_token_ids;  // empty: use the model's
  std::vector<int64_t> suppress_tokens;
  bool do_sample = false;
  double temperature = 1.0;
  int top_k = 0;
  double top_p = 1.0;
};

struct ModelConfig {
  std::string model_type;  // as in config.json
  std::string arch_name;   // registry name when it came from the registry, else ""
  TextConfig text;
  // Unified (gemma4_unified): tower-free embedders. Gemma 4 tower models (gemma4): towers are not
  // implemented; their checkpoint tensors are skipped and reported by the key map.
  bool is_unified = false;
  bool has_vision_tower = false, has_audio_tower = false;  // gemma4 (tower) configs
  std::optional<VisionEmbedderConfig> vision;              // unified only
  std::optional<AudioEmbedderConfig> audio;                // unified only
  int64_t image_token_id = 258880, audio_token_id = 258881, video_token_id = 258884;
  int64_t boi_token_id = 255999, eoi_token_id = 258882, boa_token_id = 256000, eoa_token_id = 258883;
  std::string torch_dtype = "bfloat16";
  GenerationConfig generation;

  // config.json of a checkpoint directory (plus generation_config.json when present).
  static ModelConfig from_dir(const std::string& dir);
  static ModelConfig from_json(const nlohmann::json& j);  // throws Error on unknown model_type etc.
  nlohmann::json to_json() const;                          // HF config.json for export
  nlohmann::json generation_json() const;                  // generation_config.json for export; null if nothing to say
  std::vector<int64_t> eos_ids() const;                    // generation eos, else text eos
};

}  // namespace gemma4

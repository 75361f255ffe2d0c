// Hugging Face checkpoint key map with strict accounting (spec §3). Three stored layouts:
//   UnifiedConditional: model.language_model.*, model.vision_embedder.*, model.embed_vision.*, model.embed_audio.*
//   Gemma4Conditional:  model.language_model.*, model.vision_tower.*, model.audio_tower.*, model.embed_vision.*, ...
//   CausalLM:           model.* (text only)
// Every expected tensor must be present with the right shape; a tied lm_head.weight must be absent or
// equal to embed_tokens; anything else is unexpected (an error), except tensors of modalities the model
// does not use (towers of gemma4 checkpoints, or embedders the caller disabled), which are skipped and
// reported.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"

namespace gemma4 {

enum class Layout { UnifiedConditional, Gemma4Conditional, CausalLM };
const char* layout_name(Layout l);

struct ExpectedTensor {
  std::string name;  // full stored name for the layout
  Shape shape;
  std::string modality;  // "text", "vision", "audio"
};

struct KeyAccounting {
  Layout layout = Layout::CausalLM;
  std::vector<std::string> used;
  std::map<std::string, std::vector<std::string>> skipped;  // modality -> names
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  std::vector<std::string> bad_shape;  // "name: shape [..] but config needs [..]"
};

struct BindOptions {
  bool use_vision = true;  // bind the unified vision embedder when the config has one
  bool use_audio = true;   // bind the unified audio embedder when the config has one
};

// Tensors the model expects in the given layout (text, plus the embedders the options enable).
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg, Layout layout, const BindOptions& opt = {});
// Visits every parameter slot of `w` (resized to the config's layers) with its stored name, shape and modality,
// in the order of expected_tensors; lm_head only when untied. Used by binding, random init, export, training.
void for_each_parameter(const ModelConfig& cfg, Layout layout, const BindOptions& opt, Weights& w,
                        const std::function<void(const ExpectedTensor&, Tensor&)>& fn);
// Detects the layout from the stored names (and the config's model_type).
Layout detect_layout(const ModelConfig& cfg, const TensorStore& store);
// Binds zero-copy views into `w`; fills `acct`. Throws Error naming the first problem (missing tensor,
// wrong shape, unexpected tensor, untied lm_head) after filling `acct`.
Weights bind_weights(const ModelConfig& cfg, const TensorStore& store, KeyAccounting& acct, const BindOptions& opt = {});
// Total parameters of the text model (embeddings counted once when tied).
int64_t text_parameter_count(const ModelConfig& cfg);

// Random weights in `dtype` (normal(0, std) for matrices; norms and layer_scalar random around 1) for
// benchmarks and tests. Deterministic in `seed`.
Weights random_weights(const ModelConfig& cfg, DType dtype, uint64_t seed, const BindOptions& opt = {});
// Writes config.json + model.safetensors (names of `layout`) into dir (created if needed).
void save_checkpoint(const std::string& dir, const ModelConfig& cfg, const Weights& w, Layout layout);

}  // namespace gemma4

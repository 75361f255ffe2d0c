// Unified (tower-free) multimodal embedders, spec §4.2 (vision) and §4.3 (audio). Outputs are soft
// tokens [n, hidden] (F32) that replace placeholder embeddings; they are not multiplied by the
// embedding scale.
#pragma once
#include "core/tensor.h"
#include "model/config.h"
#include "model/weights.h"
#include "ops/ops.h"

namespace gemma4 {

// pixel_values F32 [N, patch_dim], image_position_ids I64 [N, 2] (x, y; (-1, -1) = padding row).
// Returns the soft tokens of the non-padding rows, in order.
Tensor embed_images(Ops& ops, const ModelConfig& cfg, const VisionEmbedderWeights& w, const Tensor& pixel_values,
                    const Tensor& image_position_ids);

// input_features F32 [M, audio_embed_dim]: one soft token per frame.
Tensor embed_audio(Ops& ops, const ModelConfig& cfg, const Tensor& projection, const Tensor& input_features);

}  // namespace gemma4

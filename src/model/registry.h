// Architecture registry (fairseq2 style): named presets of the Gemma 4 family with the spec's values
// (spec §1.3, §1.4). Names: 12b, 12b_it, 12b_audio, 12b_it_audio, e2b, e2b_it, e4b, e4b_it, 31b, 31b_it,
// 26b_a4b, 26b_a4b_it.
//
// - `*_it` presets: config eos [1, 106]; generation eos [1, 106, 50] (spec §5.5).
// - `12b` is the 12B Unified text model with the tower-free vision embedder; `12b_audio` also has the audio
//   embedder, which is what the released google/gemma-4-12B config.json declares (its checkpoint stores both).
//   With `12b`, the released checkpoint's audio tensor is skipped and reported as modality "audio".
// - E2B/E4B/31B/26B-A4B presets are model_type gemma4 with their vision (and, for E2B/E4B, audio) towers
//   declared; towers are not implemented, so their tensors are skipped and reported by the key map.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace gemma4 {

const std::vector<std::string>& arch_names();
// The preset's config (arch_name set). Unknown name -> Error listing the names.
ModelConfig arch_config(const std::string& name);

}  // namespace gemma4

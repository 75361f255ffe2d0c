// Hugging Face export: config.json (+ generation_config.json) and model.safetensors with the layout's names.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/keymap.h"

namespace gemma4 {

namespace {

// The config whose model_type matches the stored layout, so that transformers builds the right class:
// CausalLM -> gemma4_text / gemma4_unified_text (flat), the conditional layouts -> the composite types.
ModelConfig config_for_layout(const ModelConfig& cfg, Layout layout) {
  ModelConfig out = cfg;
  switch (layout) {
    case Layout::CausalLM:
      out.model_type = cfg.is_unified ? "gemma4_unified_text" : "gemma4_text";
      out.vision.reset();
      out.audio.reset();
      out.has_vision_tower = out.has_audio_tower = false;
      break;
    case Layout::UnifiedConditional:
      G4_CHECK(cfg.is_unified, "save_checkpoint: layout UnifiedConditional needs a gemma4_unified config, got '{}'",
               cfg.model_type);
      out.model_type = "gemma4_unified";
      break;
    case Layout::Gemma4Conditional:
      G4_CHECK(!cfg.is_unified, "save_checkpoint: layout Gemma4Conditional needs a gemma4 config, got '{}'",
               cfg.model_type);
      out.model_type = "gemma4";
      out.has_vision_tower = out.has_audio_tower = false;  // no tower weights are written
      break;
  }
  return out;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    G4_CHECK(f.good(), "{}: cannot write", tmp.string());
    f << text << "\n";
    f.flush();
    G4_CHECK(f.good(), "{}: write failed", tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  G4_CHECK(!ec, "{}: cannot rename into place: {}", path.string(), ec.message());
}

}  // namespace

void save_checkpoint(const std::string& dir, const ModelConfig& cfg, const Weights& w, Layout layout) {
  namespace fs = std::filesystem;
  ModelConfig out = config_for_layout(cfg, layout);
  std::error_code ec;
  fs::create_directories(dir, ec);
  G4_CHECK(!ec, "{}: cannot create directory: {}", dir, ec.message());

  // Embedders are written when the weights hold them (a model bound without images has none).
  BindOptions opt{w.vision.projection.defined(), w.audio_projection.defined()};
  Weights copy = w;  // views only; for_each_parameter needs a mutable Weights
  std::vector<std::pair<std::string, Tensor>> tensors;
  for_each_parameter(out, layout, opt, copy, [&](const ExpectedTensor& e, Tensor& t) {
    G4_CHECK(t.defined(), "save_checkpoint: tensor '{}' is not set", e.name);
    G4_CHECK(t.shape == e.shape, "save_checkpoint: tensor '{}' has shape {} but config needs {}", e.name,
             shape_str(t.shape), shape_str(e.shape));
    G4_CHECK(t.device == Device::CPU, "save_checkpoint: tensor '{}' is not on the CPU", e.name);
    tensors.emplace_back(e.name, t);
  });

  save_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_text(fs::path(dir) / "config.json", out.to_json().dump(2));
  nlohmann::json gen = out.generation_json();
  if (!gen.is_null()) write_text(fs::path(dir) / "generation_config.json", gen.dump(2));
}

}  // namespace gemma4

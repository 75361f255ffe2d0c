// Hugging Face tensor names <-> Weights, with strict accounting (spec §3; tower models: modeling_gemma4.py).
#include "model/keymap.h"

#include <cstring>
#include <filesystem>
#include <set>

namespace gemma4 {

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::UnifiedConditional: return "UnifiedConditional";
    case Layout::Gemma4Conditional: return "Gemma4Conditional";
    case Layout::CausalLM: return "CausalLM";
  }
  return "?";
}

namespace {

const char* kConditionalText = "model.language_model.";
const char* kCausalText = "model.";

std::string text_prefix(Layout l) { return l == Layout::CausalLM ? kCausalText : kConditionalText; }

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

Layout natural_layout(const ModelConfig& cfg) {
  if (cfg.model_type == "gemma4_unified") return Layout::UnifiedConditional;
  if (cfg.model_type == "gemma4") return Layout::Gemma4Conditional;
  return Layout::CausalLM;
}

// Where the checkpoint lives, for messages about tensors that are not in any file: the file when there is one,
// else the directory of the shards.
std::string checkpoint_location(const TensorStore& store) {
  std::string where;
  for (const auto& n : store.names()) {
    const std::string& f = store.file_of(n);
    if (where.empty()) where = f;
    else if (f != where) return std::filesystem::path(where).parent_path().string();
  }
  return where.empty() ? std::string("checkpoint") : where;
}

// Tensors a checkpoint may hold that this model does not use: towers (not implemented) and embedders of disabled
// modalities are skipped per modality; stale K/V weights of KV-shared layers are ignored exactly as HF's
// Gemma4TextModel._keys_to_ignore_on_load_unexpected does (layers.{i}.self_attn.{k_proj,v_proj,k_norm,v_norm}).
// Returns the modality ("vision", "audio", "kv_shared") or "" when the name is unexpected.
std::string skippable_modality(const std::string& name, const ModelConfig& cfg, Layout layout) {
  if (layout == Layout::Gemma4Conditional) {
    if (starts_with(name, "model.vision_tower.") || starts_with(name, "model.embed_vision.")) return "vision";
    if (starts_with(name, "model.audio_tower.") || starts_with(name, "model.embed_audio.")) return "audio";
  }
  if (layout == Layout::UnifiedConditional) {  // reached only when the embedder is not bound
    if (starts_with(name, "model.vision_embedder.") || starts_with(name, "model.embed_vision.")) return "vision";
    if (starts_with(name, "model.embed_audio.")) return "audio";
  }
  const TextConfig& t = cfg.text;
  if (t.num_kv_shared_layers > 0) {
    std::string p = text_prefix(layout) + "layers.";
    if (!starts_with(name, p.c_str())) return "";
    size_t pos = p.size(), end = name.find('.', pos);
    if (end == std::string::npos || end == pos) return "";
    std::string idx = name.substr(pos, end - pos);
    if (idx.size() > 6 || idx.find_first_not_of("0123456789") != std::string::npos) return "";
    int i = std::stoi(idx);
    if (i < t.first_kv_shared_layer() || i >= t.num_hidden_layers) return "";
    std::string rest = name.substr(end + 1);
    for (const char* m : {"self_attn.k_proj", "self_attn.v_proj", "self_attn.k_norm", "self_attn.v_norm"}) {
      size_t n = std::strlen(m);
      if (rest.compare(0, n, m) == 0 && (rest.size() == n || rest[n] == '.')) return "kv_shared";
    }
  }
  return "";
}

bool is_float(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

}  // namespace

void for_each_parameter(const ModelConfig& cfg, Layout layout, const BindOptions& opt, Weights& w,
                        const std::function<void(const ExpectedTensor&, Tensor&)>& fn) {
  const TextConfig& t = cfg.text;
  const int64_t H = t.hidden_size, V = t.vocab_size, L = t.num_hidden_layers, ple = t.hidden_size_per_layer_input;
  const std::string P = text_prefix(layout);
  auto emit = [&](const std::string& name, Shape shape, const char* modality, Tensor& slot) {
    fn(ExpectedTensor{name, std::move(shape), modality}, slot);
  };
  auto text = [&](const std::string& name, Shape shape, Tensor& slot) { emit(P + name, std::move(shape), "text", slot); };

  std::vector<LayerSpec> specs = t.layers();
  w.layers.resize(L);
  text("embed_tokens.weight", {V, H}, w.embed_tokens);
  if (ple > 0) {  // spec §8.2
    text("embed_tokens_per_layer.weight", {t.vocab_size_per_layer_input, L * ple}, w.embed_tokens_per_layer);
    text("per_layer_model_projection.weight", {L * ple, H}, w.per_layer_model_projection);
    text("per_layer_projection_norm.weight", {ple}, w.per_layer_projection_norm);
  }
  for (int64_t i = 0; i < L; ++i) {
    const LayerSpec& s = specs[i];
    LayerWeights& lw = w.layers[i];
    const std::string l = "layers." + std::to_string(i) + ".";
    const int64_t q = int64_t(t.num_attention_heads) * s.head_dim, kv = int64_t(s.num_kv_heads) * s.head_dim;
    const int64_t I = s.intermediate_size;
    text(l + "input_layernorm.weight", {H}, lw.input_layernorm);
    text(l + "self_attn.q_proj.weight", {q, H}, lw.q_proj);
    if (s.kv_source < 0) {  // KV-shared layers have no K/V weights (spec §6.2)
      text(l + "self_attn.k_proj.weight", {kv, H}, lw.k_proj);
      if (!s.k_eq_v) text(l + "self_attn.v_proj.weight", {kv, H}, lw.v_proj);  // spec §2.4.3
    }
    text(l + "self_attn.o_proj.weight", {H, q}, lw.o_proj);
    text(l + "self_attn.q_norm.weight", {s.head_dim}, lw.q_norm);
    if (s.kv_source < 0) text(l + "self_attn.k_norm.weight", {s.head_dim}, lw.k_norm);
    text(l + "post_attention_layernorm.weight", {H}, lw.post_attention_layernorm);
    text(l + "pre_feedforward_layernorm.weight", {H}, lw.pre_feedforward_layernorm);
    text(l + "mlp.gate_proj.weight", {I, H}, lw.gate_proj);
    text(l + "mlp.up_proj.weight", {I, H}, lw.up_proj);
    text(l + "mlp.down_proj.weight", {H, I}, lw.down_proj);
    text(l + "post_feedforward_layernorm.weight", {H}, lw.post_feedforward_layernorm);
    text(l + "layer_scalar", {1}, lw.layer_scalar);
    if (ple > 0) {
      text(l + "per_layer_input_gate.weight", {ple, H}, lw.per_layer_input_gate);
      text(l + "per_layer_projection.weight", {H, ple}, lw.per_layer_projection);
      text(l + "post_per_layer_input_norm.weight", {H}, lw.post_per_layer_input_norm);
    }
    if (s.has_moe) {  // spec §8.3
      const int64_t E = t.num_experts, mi = t.moe_intermediate_size;
      text(l + "router.proj.weight", {E, H}, lw.router_proj);
      text(l + "router.scale", {H}, lw.router_scale);
      text(l + "router.per_expert_scale", {E}, lw.router_per_expert_scale);
      text(l + "experts.gate_up_proj", {E, 2 * mi, H}, lw.experts_gate_up);
      text(l + "experts.down_proj", {E, H, mi}, lw.experts_down);
      text(l + "pre_feedforward_layernorm_2.weight", {H}, lw.pre_feedforward_layernorm_2);
      text(l + "post_feedforward_layernorm_1.weight", {H}, lw.post_feedforward_layernorm_1);
      text(l + "post_feedforward_layernorm_2.weight", {H}, lw.post_feedforward_layernorm_2);
    }
  }
  text("norm.weight", {H}, w.final_norm);
  if (!t.tie_word_embeddings) emit("lm_head.weight", {V, H}, "text", w.lm_head);

  if (layout != Layout::UnifiedConditional) return;
  if (cfg.vision && opt.use_vision) {  // spec §3.1, §4.2
    const auto& v = *cfg.vision;
    const int64_t pd = v.patch_dim(), D = v.mm_embed_dim;
    const std::string e = "model.vision_embedder.";
    VisionEmbedderWeights& vw = w.vision;
    emit(e + "patch_ln1.weight", {pd}, "vision", vw.patch_ln1_w);
    emit(e + "patch_ln1.bias", {pd}, "vision", vw.patch_ln1_b);
    emit(e + "patch_dense.weight", {D, pd}, "vision", vw.patch_dense_w);
    emit(e + "patch_dense.bias", {D}, "vision", vw.patch_dense_b);
    emit(e + "patch_ln2.weight", {D}, "vision", vw.patch_ln2_w);
    emit(e + "patch_ln2.bias", {D}, "vision", vw.patch_ln2_b);
    emit(e + "pos_embedding", {v.mm_posemb_size, 2, D}, "vision", vw.pos_embedding);
    emit(e + "pos_norm.weight", {D}, "vision", vw.pos_norm_w);
    emit(e + "pos_norm.bias", {D}, "vision", vw.pos_norm_b);
    emit("model.embed_vision.embedding_projection.weight", {H, v.output_proj_dims}, "vision", vw.projection);
  }
  if (cfg.audio && opt.use_audio) {  // spec §4.3
    emit("model.embed_audio.embedding_projection.weight", {H, cfg.audio->audio_embed_dim}, "audio", w.audio_projection);
  }
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg, Layout layout, const BindOptions& opt) {
  std::vector<ExpectedTensor> out;
  Weights scratch;
  for_each_parameter(cfg, layout, opt, scratch, [&](const ExpectedTensor& e, Tensor&) { out.push_back(e); });
  return out;
}

Layout detect_layout(const ModelConfig& cfg, const TensorStore& store) {
  bool conditional = false, causal = false;
  for (const auto& n : store.names()) {
    if (starts_with(n, kConditionalText)) conditional = true;
    else if (starts_with(n, "model.layers.") || starts_with(n, "model.embed_tokens.") || starts_with(n, "model.norm."))
      causal = true;
  }
  if (conditional) return cfg.is_unified ? Layout::UnifiedConditional : Layout::Gemma4Conditional;
  if (causal) return Layout::CausalLM;
  return natural_layout(cfg);  // nothing recognisable: account against what the config implies
}

Weights bind_weights(const ModelConfig& cfg, const TensorStore& store, KeyAccounting& acct, const BindOptions& opt) {
  const Layout layout = detect_layout(cfg, store);
  acct = KeyAccounting{};
  acct.layout = layout;
  const std::string location = checkpoint_location(store);
  std::string first_error;
  auto fail = [&](std::string msg) {
    if (first_error.empty()) first_error = std::move(msg);
  };

  Weights w;
  std::set<std::string> expected;
  for_each_parameter(cfg, layout, opt, w, [&](const ExpectedTensor& e, Tensor& slot) {
    expected.insert(e.name);
    if (!store.has(e.name)) {
      acct.missing.push_back(e.name);
      fail(fmt::format("{}: missing tensor '{}' (config needs {})", location, e.name, shape_str(e.shape)));
      return;
    }
    const TensorInfo& info = store.info(e.name);
    if (info.shape != e.shape) {
      acct.bad_shape.push_back(
          fmt::format("{}: shape {} but config needs {}", e.name, shape_str(info.shape), shape_str(e.shape)));
      fail(fmt::format("{}: tensor '{}': shape {} but config needs {}", store.file_of(e.name), e.name,
                       shape_str(info.shape), shape_str(e.shape)));
      return;
    }
    if (!is_float(info.dtype)) {
      acct.bad_shape.push_back(fmt::format("{}: dtype {} but a float dtype is needed", e.name, dtype_name(info.dtype)));
      fail(fmt::format("{}: tensor '{}': dtype {} but a float dtype (F32, BF16, F16) is needed", store.file_of(e.name),
                       e.name, dtype_name(info.dtype)));
      return;
    }
    slot = store.get(e.name);
    acct.used.push_back(e.name);
  });

  for (const auto& name : store.names()) {
    if (expected.count(name)) continue;
    if (name == "lm_head.weight" && cfg.text.tie_word_embeddings) {
      // Tied: an lm_head in the file must be the embedding table byte for byte (HF would silently tie it).
      Tensor lm = store.get(name);
      const Tensor& emb = w.embed_tokens;
      bool same = emb.defined() && lm.dtype == emb.dtype && lm.shape == emb.shape &&
                  std::memcmp(lm.data, emb.data, lm.nbytes()) == 0;
      if (same) {
        acct.used.push_back(name);
      } else {
        acct.unexpected.push_back(name);
        fail(fmt::format("{}: tensor 'lm_head.weight' ({} {}) differs from embed_tokens but tie_word_embeddings is "
                         "true", store.file_of(name), dtype_name(lm.dtype), shape_str(lm.shape)));
      }
      continue;
    }
    std::string modality = skippable_modality(name, cfg, layout);
    if (!modality.empty()) {
      acct.skipped[modality].push_back(name);
      continue;
    }
    acct.unexpected.push_back(name);
    fail(fmt::format("{}: unexpected tensor '{}' (not part of a {} model with this config)", store.file_of(name), name,
                     layout_name(layout)));
  }

  if (!first_error.empty()) {
    size_t problems = acct.missing.size() + acct.bad_shape.size() + acct.unexpected.size();
    if (problems > 1) first_error += fmt::format(" [{} problems in total]", problems);
    throw Error(first_error);
  }
  if (cfg.text.tie_word_embeddings) w.lm_head = w.embed_tokens;
  return w;
}

int64_t text_parameter_count(const ModelConfig& cfg) {
  int64_t n = 0;
  Weights scratch;
  for_each_parameter(cfg, Layout::CausalLM, BindOptions{false, false}, scratch,
                     [&](const ExpectedTensor& e, Tensor&) { n += shape_numel(e.shape); });
  return n;
}

}  // namespace gemma4

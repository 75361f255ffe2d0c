// config.json <-> ModelConfig (spec §1). Parsing follows transformers' Gemma4(Unified)TextConfig.__post_init__:
// default layer_types, last layer forced full, rope_parameters keyed by layer type, and the two ways the global
// (full-attention) layer geometry is stated: plain `global_head_dim` / `num_global_key_value_heads` keys, or the
// `per_layer_config` map that transformers >= 5.15 writes.
#include "model/config.h"

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace gemma4 {

using nlohmann::json;

namespace {

const char* kSliding = "sliding_attention";
const char* kFull = "full_attention";
const char* kSupportedTypes = "gemma4_unified, gemma4, gemma4_text, gemma4_unified_text";

// Typed reads of optional keys: absent (or null, where allowed) keeps the default; a wrong type is an Error that
// names the key as "<ctx>.<key>".
struct Reader {
  const json& j;
  std::string ctx;  // "" or "text_config"

  std::string where(const char* key) const { return ctx.empty() ? key : ctx + "." + key; }
  bool present(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }

  int64_t i64(const char* key, int64_t dflt) const {
    if (!present(key)) return dflt;
    const json& v = j.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float() && v.get<double>() == double(int64_t(v.get<double>()))) return int64_t(v.get<double>());
    throw Error("config.json: '{}' must be an integer, got {}", where(key), v.dump());
  }
  int i32(const char* key, int dflt) const {
    int64_t v = i64(key, dflt);
    if (v < INT32_MIN || v > INT32_MAX) throw Error("config.json: '{}' = {} is out of range", where(key), v);
    return int(v);
  }
  double f64(const char* key, double dflt) const {
    if (!present(key)) return dflt;
    const json& v = j.at(key);
    if (!v.is_number()) throw Error("config.json: '{}' must be a number, got {}", where(key), v.dump());
    return v.get<double>();
  }
  bool boolean(const char* key, bool dflt) const {
    if (!present(key)) return dflt;
    const json& v = j.at(key);
    if (!v.is_boolean()) throw Error("config.json: '{}' must be true or false, got {}", where(key), v.dump());
    return v.get<bool>();
  }
  std::string str(const char* key, const std::string& dflt) const {
    if (!present(key)) return dflt;
    const json& v = j.at(key);
    if (!v.is_string()) throw Error("config.json: '{}' must be a string, got {}", where(key), v.dump());
    return v.get<std::string>();
  }
  // int or list of ints (eos_token_id); absent/null keeps dflt.
  std::vector<int64_t> ids(const char* key, std::vector<int64_t> dflt) const {
    if (!present(key)) return dflt;
    const json& v = j.at(key);
    std::vector<int64_t> out;
    if (v.is_number_integer()) {
      out.push_back(v.get<int64_t>());
    } else if (v.is_array()) {
      for (const auto& e : v) {
        if (!e.is_number_integer()) throw Error("config.json: '{}' must hold integers, got {}", where(key), v.dump());
        out.push_back(e.get<int64_t>());
      }
    } else {
      throw Error("config.json: '{}' must be an integer or a list of integers, got {}", where(key), v.dump());
    }
    for (auto id : out) G4_CHECK(id >= 0, "config.json: '{}' holds a negative token id {}", where(key), id);
    return out;
  }
};

std::vector<LayerType> default_layer_types(int n) {
  // spec §1.1 (CU L157-168; same rule in configuration_gemma4.py): every 6th layer is full, last forced full.
  std::vector<LayerType> t(n);
  for (int i = 0; i < n; ++i) t[i] = ((i + 1) % 6) ? LayerType::Sliding : LayerType::Full;
  if (n > 0) t[n - 1] = LayerType::Full;
  return t;
}

RopeParams parse_rope(const json& r, const std::string& ctx) {
  if (!r.is_object()) throw Error("config.json: '{}' must be an object, got {}", ctx, r.dump());
  Reader rd{r, ctx};
  RopeParams p;
  p.type = rd.str("rope_type", "default");
  if (p.type != "default" && p.type != "proportional")
    throw Error("config.json: '{}.rope_type' = '{}' is not supported (supported: default, proportional)", ctx, p.type);
  if (!rd.present("rope_theta")) throw Error("config.json: '{}.rope_theta' is missing", ctx);
  p.theta = rd.f64("rope_theta", 0);
  G4_CHECK(p.theta > 0, "config.json: '{}.rope_theta' must be positive, got {}", ctx, p.theta);
  p.partial_rotary_factor = p.type == "proportional" ? rd.f64("partial_rotary_factor", 1.0) : 1.0;
  G4_CHECK(p.partial_rotary_factor > 0 && p.partial_rotary_factor <= 1,
           "config.json: '{}.partial_rotary_factor' must be in (0, 1], got {}", ctx, p.partial_rotary_factor);
  for (const char* k : {"factor", "attention_factor"}) {
    if (rd.present(k) && rd.f64(k, 1.0) != 1.0)
      throw Error("config.json: '{}.{}' = {} is not supported (RoPE scaling)", ctx, k, rd.f64(k, 1.0));
  }
  return p;
}

json rope_to_json(const RopeParams& p) {
  json r = {{"rope_type", p.type}, {"rope_theta", p.theta}};
  if (p.type == "proportional") r["partial_rotary_factor"] = p.partial_rotary_factor;
  return r;
}

// per_layer_config (transformers >= 5.15): {"<layer idx>": {"head_dim": .., "num_key_value_heads": ..}, ...}, keys
// possibly zero-padded, overrides equal to the global value dropped (sparse) or all written (explicit form). We
// support what Gemma 4 produces: all sliding layers at the global geometry, all full layers sharing one override.
void apply_per_layer_config(const json& plc, TextConfig& t, const std::string& ctx) {
  std::string where = ctx.empty() ? "per_layer_config" : ctx + ".per_layer_config";
  if (!plc.is_object()) throw Error("config.json: '{}' must be an object, got {}", where, plc.dump());
  const int L = t.num_hidden_layers;
  std::vector<int> hd(L, t.head_dim), kv(L, t.num_key_value_heads);
  for (const auto& [key, ov] : plc.items()) {
    bool digits = !key.empty() && key.size() < 10 && key.find_first_not_of("0123456789") == std::string::npos;
    if (!digits) throw Error("config.json: '{}' key '{}' is not a layer index", where, key);
    int idx = std::stoi(key);
    if (idx >= L) throw Error("config.json: '{}' layer {} is out of range [0, {})", where, idx, L);
    if (!ov.is_object()) throw Error("config.json: '{}.{}' must be an object", where, key);
    Reader rd{ov, where + "." + key};
    for (const auto& [attr, val] : ov.items()) {
      if (attr != "head_dim" && attr != "num_key_value_heads")
        throw Error("config.json: '{}.{}.{}' is not supported (only head_dim and num_key_value_heads may vary per "
                    "layer)", where, key, attr);
    }
    hd[idx] = rd.i32("head_dim", t.head_dim);
    kv[idx] = rd.i32("num_key_value_heads", t.num_key_value_heads);
  }
  int full_hd = -1, full_kv = -1;
  for (int i = 0; i < L; ++i) {
    if (t.layer_types[i] == LayerType::Sliding) {
      if (hd[i] != t.head_dim || kv[i] != t.num_key_value_heads)
        throw Error("config.json: '{}' overrides sliding layer {}; not supported", where, i);
    } else if (full_hd < 0) {
      full_hd = hd[i], full_kv = kv[i];
    } else if (hd[i] != full_hd || kv[i] != full_kv) {
      throw Error("config.json: '{}' gives full-attention layers different geometries (layer {}); not supported",
                  where, i);
    }
  }
  if (full_hd < 0) {  // no full layer: nothing to override
    t.global_head_dim = t.head_dim;
    t.num_global_key_value_heads = -1;
    return;
  }
  t.global_head_dim = full_hd;
  if (t.attention_k_eq_v) {
    t.num_global_key_value_heads = full_kv == t.num_key_value_heads ? -1 : full_kv;
  } else {
    // HF applies a kv-head override only together with attention_k_eq_v (spec §1.1); a per_layer_config that does
    // it anyway cannot be represented here.
    if (full_kv != t.num_key_value_heads)
      throw Error("config.json: '{}' sets num_key_value_heads on full layers without attention_k_eq_v; not supported",
                  where);
    t.num_global_key_value_heads = -1;
  }
}

// One text config object (flat config or text_config). `unified` selects the class defaults of
// Gemma4UnifiedTextConfig (vs Gemma4TextConfig) and drops the PLE/MoE keys the unified model ignores.
TextConfig parse_text(const json& j, bool unified, const std::string& ctx) {
  Reader rd{j, ctx};
  TextConfig t;
  t.vocab_size = rd.i64("vocab_size", 262144);
  t.hidden_size = rd.i32("hidden_size", 2304);
  t.intermediate_size = rd.i32("intermediate_size", 9216);
  t.num_hidden_layers = rd.i32("num_hidden_layers", 30);
  t.num_attention_heads = rd.i32("num_attention_heads", 8);
  t.num_key_value_heads = rd.i32("num_key_value_heads", 4);
  t.head_dim = rd.i32("head_dim", 256);
  // Kept as written in config.json. With use_bidirectional_attention == "all", HF's __post_init__ turns it into
  // sliding_window // 2 + 1 (a two-sided window) and to_dict undoes that; the forward must apply it itself.
  t.sliding_window = rd.i32("sliding_window", unified ? 1024 : 512);
  t.rms_norm_eps = rd.f64("rms_norm_eps", 1e-6);
  t.final_logit_softcapping = rd.f64("final_logit_softcapping", 0.0);  // null = none
  t.tie_word_embeddings = rd.boolean("tie_word_embeddings", true);
  t.attention_k_eq_v = rd.boolean("attention_k_eq_v", false);
  t.num_kv_shared_layers = rd.i32("num_kv_shared_layers", 0);
  t.use_double_wide_mlp = rd.boolean("use_double_wide_mlp", false);
  t.max_position_embeddings = rd.i64("max_position_embeddings", unified ? 262144 : 131072);
  t.use_bidirectional_attention = rd.str("use_bidirectional_attention", unified && !j.contains("use_bidirectional_attention") ? "vision" : "");
  t.pad_token_id = rd.i64("pad_token_id", 0);
  t.bos_token_id = rd.i64("bos_token_id", 2);
  t.eos_token_ids = rd.ids("eos_token_id", {1});
  if (unified) {
    // spec §1.1: Gemma4UnifiedTextConfig deletes the PLE/MoE attributes; the keys in config.json are BC-only.
    t.hidden_size_per_layer_input = 0;
    t.enable_moe_block = false;
  } else {
    t.hidden_size_per_layer_input = rd.i32("hidden_size_per_layer_input", 256);
    t.vocab_size_per_layer_input = rd.i64("vocab_size_per_layer_input", 262144);
    t.enable_moe_block = rd.boolean("enable_moe_block", false);
    t.num_experts = rd.i32("num_experts", 0);
    t.top_k_experts = rd.i32("top_k_experts", 0);
    t.moe_intermediate_size = rd.i32("moe_intermediate_size", 0);
  }
  if (rd.present("hidden_activation") && rd.str("hidden_activation", "") != "gelu_pytorch_tanh")
    throw Error("config.json: '{}' = '{}' is not supported (gelu_pytorch_tanh)", rd.where("hidden_activation"),
                rd.str("hidden_activation", ""));
  if (rd.boolean("attention_bias", false))
    throw Error("config.json: '{}' = true is not supported", rd.where("attention_bias"));

  G4_CHECK(t.num_hidden_layers > 0, "config.json: '{}' must be positive, got {}", rd.where("num_hidden_layers"),
           t.num_hidden_layers);
  if (rd.present("layer_types")) {
    const json& lt = j.at("layer_types");
    if (!lt.is_array()) throw Error("config.json: '{}' must be a list", rd.where("layer_types"));
    if (int64_t(lt.size()) != t.num_hidden_layers)
      throw Error("config.json: '{}' has {} entries but num_hidden_layers is {}", rd.where("layer_types"), lt.size(),
                  t.num_hidden_layers);
    for (const auto& e : lt) {
      std::string s = e.is_string() ? e.get<std::string>() : e.dump();
      if (s == kSliding) t.layer_types.push_back(LayerType::Sliding);
      else if (s == kFull) t.layer_types.push_back(LayerType::Full);
      else throw Error("config.json: '{}' holds '{}' (supported: {}, {})", rd.where("layer_types"), s, kSliding, kFull);
    }
    t.layer_types.back() = LayerType::Full;  // HF forces the last layer to full attention (CU L164-168)
  } else {
    t.layer_types = default_layer_types(t.num_hidden_layers);
  }

  if (rd.present("rope_parameters")) {
    const json& rp = j.at("rope_parameters");
    std::string w = rd.where("rope_parameters");
    if (!rp.is_object()) throw Error("config.json: '{}' must be an object keyed by layer type", w);
    bool has_sliding = false, has_full = false;
    for (auto lt : t.layer_types) (lt == LayerType::Sliding ? has_sliding : has_full) = true;
    if (rp.contains(kSliding)) t.rope_sliding = parse_rope(rp.at(kSliding), w + "." + kSliding);
    else if (has_sliding) throw Error("config.json: '{}' has no '{}' entry", w, kSliding);
    if (rp.contains(kFull)) t.rope_full = parse_rope(rp.at(kFull), w + "." + kFull);
    else if (has_full) throw Error("config.json: '{}' has no '{}' entry", w, kFull);
  }

  // Global-layer geometry: per_layer_config wins when present (HF pops the plain keys either way).
  if (j.contains("per_layer_config") && !j.at("per_layer_config").is_null()) {
    apply_per_layer_config(j.at("per_layer_config"), t, ctx);
  } else {
    t.global_head_dim = rd.i32("global_head_dim", 512);
    t.num_global_key_value_heads = rd.i32("num_global_key_value_heads", -1);
  }
  return t;
}

void validate_text(const TextConfig& t, const std::string& ctx) {
  auto key = [&](const char* k) { return ctx.empty() ? std::string(k) : ctx + "." + k; };
  auto positive = [&](const char* k, int64_t v) {
    G4_CHECK(v > 0, "config.json: '{}' must be positive, got {}", key(k), v);
  };
  positive("vocab_size", t.vocab_size);
  positive("hidden_size", t.hidden_size);
  positive("intermediate_size", t.intermediate_size);
  positive("num_hidden_layers", t.num_hidden_layers);
  positive("num_attention_heads", t.num_attention_heads);
  positive("num_key_value_heads", t.num_key_value_heads);
  positive("head_dim", t.head_dim);
  positive("global_head_dim", t.global_head_dim);
  positive("sliding_window", t.sliding_window);
  positive("max_position_embeddings", t.max_position_embeddings);
  G4_CHECK(t.rms_norm_eps > 0, "config.json: '{}' must be positive, got {}", key("rms_norm_eps"), t.rms_norm_eps);
  G4_CHECK(t.final_logit_softcapping >= 0, "config.json: '{}' must not be negative, got {}",
           key("final_logit_softcapping"), t.final_logit_softcapping);
  G4_CHECK(t.head_dim % 2 == 0, "config.json: '{}' must be even for RoPE, got {}", key("head_dim"), t.head_dim);
  G4_CHECK(t.global_head_dim % 2 == 0, "config.json: '{}' must be even for RoPE, got {}", key("global_head_dim"),
           t.global_head_dim);
  G4_CHECK(t.num_attention_heads % t.num_key_value_heads == 0,
           "config.json: '{}' ({}) must be a multiple of '{}' ({})", key("num_attention_heads"), t.num_attention_heads,
           key("num_key_value_heads"), t.num_key_value_heads);
  if (t.attention_k_eq_v && t.num_global_key_value_heads != -1) {
    G4_CHECK(t.num_global_key_value_heads > 0 && t.num_attention_heads % t.num_global_key_value_heads == 0,
             "config.json: '{}' ({}) must divide num_attention_heads ({})", key("num_global_key_value_heads"),
             t.num_global_key_value_heads, t.num_attention_heads);
  }
  G4_CHECK(int(t.layer_types.size()) == t.num_hidden_layers,
           "config.json: '{}' has {} entries but num_hidden_layers is {}", key("layer_types"), t.layer_types.size(),
           t.num_hidden_layers);
  G4_CHECK(t.num_kv_shared_layers >= 0 && t.num_kv_shared_layers < t.num_hidden_layers,
           "config.json: '{}' must be in [0, num_hidden_layers), got {}", key("num_kv_shared_layers"),
           t.num_kv_shared_layers);
  if (t.use_bidirectional_attention != "" && t.use_bidirectional_attention != "vision" &&
      t.use_bidirectional_attention != "all")
    throw Error("config.json: '{}' = '{}' (supported: null, vision, all)", key("use_bidirectional_attention"),
                t.use_bidirectional_attention);
  G4_CHECK(t.hidden_size_per_layer_input >= 0, "config.json: '{}' must not be negative",
           key("hidden_size_per_layer_input"));
  if (t.hidden_size_per_layer_input > 0) positive("vocab_size_per_layer_input", t.vocab_size_per_layer_input);
  if (t.enable_moe_block) {
    positive("num_experts", t.num_experts);
    positive("moe_intermediate_size", t.moe_intermediate_size);
    G4_CHECK(t.top_k_experts > 0 && t.top_k_experts <= t.num_experts,
             "config.json: '{}' must be in [1, num_experts], got {}", key("top_k_experts"), t.top_k_experts);
  }
  G4_CHECK(t.pad_token_id >= 0 && t.pad_token_id < t.vocab_size, "config.json: '{}' = {} is outside the vocabulary",
           key("pad_token_id"), t.pad_token_id);
  for (auto id : t.eos_token_ids)
    G4_CHECK(id < t.vocab_size, "config.json: '{}' = {} is outside the vocabulary", key("eos_token_id"), id);
  (void)t.layers();  // KV-sharing sources must exist
}

json ids_json(const std::vector<int64_t>& ids) {
  if (ids.size() == 1) return ids[0];
  return json(ids);
}

json text_to_json(const TextConfig& t, bool unified) {
  json j;
  j["model_type"] = unified ? "gemma4_unified_text" : "gemma4_text";
  j["vocab_size"] = t.vocab_size;
  j["hidden_size"] = t.hidden_size;
  j["intermediate_size"] = t.intermediate_size;
  j["num_hidden_layers"] = t.num_hidden_layers;
  j["num_attention_heads"] = t.num_attention_heads;
  j["num_key_value_heads"] = t.num_key_value_heads;
  j["head_dim"] = t.head_dim;
  // Plain keys (the released checkpoints' form); every transformers version turns them into per_layer_config.
  j["global_head_dim"] = t.global_head_dim;
  j["num_global_key_value_heads"] = t.num_global_key_value_heads < 0 ? json(nullptr) : json(t.num_global_key_value_heads);
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["max_position_embeddings"] = t.max_position_embeddings;
  j["initializer_range"] = 0.02;
  j["rms_norm_eps"] = t.rms_norm_eps;
  j["use_cache"] = true;
  j["pad_token_id"] = t.pad_token_id;
  j["bos_token_id"] = t.bos_token_id;
  j["eos_token_id"] = ids_json(t.eos_token_ids);
  j["tie_word_embeddings"] = t.tie_word_embeddings;
  j["rope_parameters"] = {{kSliding, rope_to_json(t.rope_sliding)}, {kFull, rope_to_json(t.rope_full)}};
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["sliding_window"] = t.sliding_window;
  json lt = json::array();
  for (auto l : t.layer_types) lt.push_back(l == LayerType::Sliding ? kSliding : kFull);
  j["layer_types"] = lt;
  j["final_logit_softcapping"] = t.final_logit_softcapping > 0 ? json(t.final_logit_softcapping) : json(nullptr);
  j["use_bidirectional_attention"] =
      t.use_bidirectional_attention.empty() ? json(nullptr) : json(t.use_bidirectional_attention);
  j["attention_k_eq_v"] = t.attention_k_eq_v;
  j["num_kv_shared_layers"] = t.num_kv_shared_layers;
  j["use_double_wide_mlp"] = t.use_double_wide_mlp;
  if (!unified) {
    j["hidden_size_per_layer_input"] = t.hidden_size_per_layer_input;
    j["vocab_size_per_layer_input"] = t.vocab_size_per_layer_input;
    j["enable_moe_block"] = t.enable_moe_block;
    j["num_experts"] = t.enable_moe_block ? json(t.num_experts) : json(nullptr);
    j["top_k_experts"] = t.enable_moe_block ? json(t.top_k_experts) : json(nullptr);
    j["moe_intermediate_size"] = t.enable_moe_block ? json(t.moe_intermediate_size) : json(nullptr);
  }
  return j;
}

GenerationConfig parse_generation(const json& j) {
  if (!j.is_object()) throw Error("generation_config.json: expected a JSON object");
  Reader rd{j, ""};
  GenerationConfig g;
  try {
    g.eos_token_ids = rd.ids("eos_token_id", {});
    g.suppress_tokens = rd.ids("suppress_tokens", {});
    g.do_sample = rd.boolean("do_sample", false);
    g.temperature = rd.f64("temperature", 1.0);
    g.top_k = rd.i32("top_k", 50);  // transformers' GenerationConfig default when the key is absent
    g.top_p = rd.f64("top_p", 1.0);
  } catch (const Error& e) {
    std::string m = e.what();
    if (m.rfind("config.json: ", 0) == 0) m = m.substr(13);
    throw Error("generation_config.json: {}", m);
  }
  G4_CHECK(g.temperature >= 0, "generation_config.json: 'temperature' must not be negative, got {}", g.temperature);
  G4_CHECK(g.top_p > 0 && g.top_p <= 1, "generation_config.json: 'top_p' must be in (0, 1], got {}", g.top_p);
  G4_CHECK(g.top_k >= 0, "generation_config.json: 'top_k' must not be negative, got {}", g.top_k);
  return g;
}

json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("{}: cannot open", path);
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    throw Error("{}: invalid JSON: {}", path, e.what());
  }
}

}  // namespace

std::vector<LayerSpec> TextConfig::layers() const {
  std::vector<LayerType> types = layer_types.empty() ? default_layer_types(num_hidden_layers) : layer_types;
  G4_CHECK(int(types.size()) == num_hidden_layers, "config: layer_types has {} entries but num_hidden_layers is {}",
           types.size(), num_hidden_layers);
  const int first_shared = first_kv_shared_layer();
  std::vector<LayerSpec> out(num_hidden_layers);
  for (int i = 0; i < num_hidden_layers; ++i) {
    LayerSpec& s = out[i];
    s.type = types[i];
    bool full = s.type == LayerType::Full;
    s.head_dim = full ? global_head_dim : head_dim;
    // num_global_key_value_heads applies only with attention_k_eq_v (spec §1.1, CU L183).
    s.num_kv_heads = (full && attention_k_eq_v && num_global_key_value_heads > 0) ? num_global_key_value_heads
                                                                                  : num_key_value_heads;
    s.k_eq_v = full && attention_k_eq_v;
    // spec §6.2: layers at or after L - num_kv_shared_layers read the K/V of the last earlier non-shared layer of
    // the same type (M4 store_full_length_kv).
    if (num_kv_shared_layers > 0 && i >= first_shared) {
      for (int j = first_shared - 1; j >= 0; --j) {
        if (types[j] == s.type) {
          s.kv_source = j;
          break;
        }
      }
      G4_CHECK(s.kv_source >= 0, "config: KV-shared layer {} has no earlier non-shared {} layer to read from", i,
               full ? kFull : kSliding);
    }
    // M4 Gemma4TextMLP: double width when use_double_wide_mlp and layer_idx >= first_kv_shared > 0.
    bool double_wide = use_double_wide_mlp && num_kv_shared_layers > 0 && i >= first_shared && first_shared > 0;
    s.intermediate_size = intermediate_size * (double_wide ? 2 : 1);
    s.has_moe = enable_moe_block;
  }
  return out;
}

ModelConfig ModelConfig::from_json(const json& j) {
  if (!j.is_object()) throw Error("config.json: expected a JSON object");
  Reader top{j, ""};
  if (!top.present("model_type")) throw Error("config.json: 'model_type' is missing");
  ModelConfig c;
  c.model_type = top.str("model_type", "");
  const std::string& mt = c.model_type;
  bool composite = mt == "gemma4_unified" || mt == "gemma4";
  bool flat = mt == "gemma4_text" || mt == "gemma4_unified_text";
  if (!composite && !flat) throw Error("config.json: unknown model_type '{}' (supported: {})", mt, kSupportedTypes);
  c.is_unified = mt.rfind("gemma4_unified", 0) == 0;

  if (composite) {
    json empty = json::object();
    const json* tj = &empty;
    if (top.present("text_config")) {
      tj = &j.at("text_config");
      if (!tj->is_object()) throw Error("config.json: 'text_config' must be an object");
    }
    c.text = parse_text(*tj, c.is_unified, "text_config");
    validate_text(c.text, "text_config");
    c.image_token_id = top.i64("image_token_id", c.image_token_id);
    c.audio_token_id = top.i64("audio_token_id", c.audio_token_id);
    c.video_token_id = top.i64("video_token_id", c.video_token_id);
    c.boi_token_id = top.i64("boi_token_id", c.boi_token_id);
    c.eoi_token_id = top.i64("eoi_token_id", c.eoi_token_id);
    c.boa_token_id = top.i64("boa_token_id", c.boa_token_id);
    c.eoa_token_id = top.i64("eoa_token_index", top.i64("eoa_token_id", c.eoa_token_id));  // HF's odd key name
    // -it composites carry eos_token_id [1, 106] at the top level (spec §1.1); it wins over text_config's.
    c.text.eos_token_ids = top.ids("eos_token_id", c.text.eos_token_ids);
    if (top.present("tie_word_embeddings")) c.text.tie_word_embeddings = top.boolean("tie_word_embeddings", true);
    bool has_vision = top.present("vision_config"), has_audio = top.present("audio_config");
    if (has_vision && !j.at("vision_config").is_object()) throw Error("config.json: 'vision_config' must be an object");
    if (has_audio && !j.at("audio_config").is_object()) throw Error("config.json: 'audio_config' must be an object");
    if (c.is_unified) {
      if (has_vision) {
        Reader v{j.at("vision_config"), "vision_config"};
        VisionEmbedderConfig vc;
        vc.patch_size = v.i32("patch_size", vc.patch_size);
        vc.pooling_kernel_size = v.i32("pooling_kernel_size", vc.pooling_kernel_size);
        vc.mm_embed_dim = v.i32("mm_embed_dim", vc.mm_embed_dim);
        vc.mm_posemb_size = v.i32("mm_posemb_size", vc.mm_posemb_size);
        vc.output_proj_dims = v.i32("output_proj_dims", vc.output_proj_dims);
        vc.rms_norm_eps = v.f64("rms_norm_eps", vc.rms_norm_eps);
        for (auto [k, val] : {std::pair{"patch_size", vc.patch_size}, {"pooling_kernel_size", vc.pooling_kernel_size},
                              {"mm_embed_dim", vc.mm_embed_dim}, {"mm_posemb_size", vc.mm_posemb_size},
                              {"output_proj_dims", vc.output_proj_dims}})
          G4_CHECK(val > 0, "config.json: 'vision_config.{}' must be positive, got {}", k, val);
        // The projection's input is output_proj_dims wide and is fed the mm_embed_dim-wide embedder output.
        G4_CHECK(vc.output_proj_dims == vc.mm_embed_dim,
                 "config.json: 'vision_config.output_proj_dims' ({}) must equal 'vision_config.mm_embed_dim' ({})",
                 vc.output_proj_dims, vc.mm_embed_dim);
        c.vision = vc;
      }
      if (has_audio) {
        Reader a{j.at("audio_config"), "audio_config"};
        AudioEmbedderConfig ac;
        ac.audio_embed_dim = a.i32("audio_embed_dim", ac.audio_embed_dim);
        ac.rms_norm_eps = a.f64("rms_norm_eps", ac.rms_norm_eps);
        G4_CHECK(ac.audio_embed_dim > 0, "config.json: 'audio_config.audio_embed_dim' must be positive, got {}",
                 ac.audio_embed_dim);
        c.audio = ac;
      }
    } else {
      c.has_vision_tower = has_vision;
      c.has_audio_tower = has_audio;
    }
  } else {
    c.text = parse_text(j, c.is_unified, "");
    validate_text(c.text, "");
  }
  c.torch_dtype = top.str("dtype", top.str("torch_dtype", c.torch_dtype));
  if (composite && !top.present("dtype") && !top.present("torch_dtype") && j.contains("text_config")) {
    Reader tr{j.at("text_config"), "text_config"};
    c.torch_dtype = tr.str("dtype", tr.str("torch_dtype", c.torch_dtype));
  }
  return c;
}

ModelConfig ModelConfig::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path p = fs::path(dir) / "config.json";
  if (!fs::exists(p)) throw Error("{}: no config.json in this directory", dir);
  ModelConfig c;
  try {
    c = from_json(read_json_file(p.string()));
  } catch (const Error& e) {
    std::string m = e.what();
    if (m.rfind("config.json: ", 0) == 0) throw Error("{}: {}", p.string(), m.substr(13));
    throw;
  }
  fs::path g = fs::path(dir) / "generation_config.json";
  if (fs::exists(g)) {
    try {
      c.generation = parse_generation(read_json_file(g.string()));
    } catch (const Error& e) {
      std::string m = e.what();
      if (m.rfind("generation_config.json: ", 0) == 0) throw Error("{}: {}", g.string(), m.substr(24));
      throw;
    }
  }
  return c;
}

json ModelConfig::to_json() const {
  bool composite = model_type == "gemma4_unified" || model_type == "gemma4";
  if (!composite) {
    json j = text_to_json(text, is_unified);
    j["model_type"] = model_type;
    j["architectures"] = {is_unified ? "Gemma4UnifiedForCausalLM" : "Gemma4ForCausalLM"};
    j["dtype"] = torch_dtype;
    return j;
  }
  json j;
  j["model_type"] = model_type;
  j["architectures"] = {is_unified ? "Gemma4UnifiedForConditionalGeneration" : "Gemma4ForConditionalGeneration"};
  j["text_config"] = text_to_json(text, is_unified);
  j["text_config"]["dtype"] = torch_dtype;
  if (is_unified && vision) {
    j["vision_config"] = {{"model_type", "gemma4_unified_vision"},   {"patch_size", vision->patch_size},
                          {"pooling_kernel_size", vision->pooling_kernel_size},
                          {"mm_embed_dim", vision->mm_embed_dim},     {"mm_posemb_size", vision->mm_posemb_size},
                          {"rms_norm_eps", vision->rms_norm_eps},     {"output_proj_dims", vision->output_proj_dims},
                          {"initializer_range", 0.02}};
  } else {
    // Tower configs (gemma4) are not kept: towers are not implemented and their weights are never exported.
    j["vision_config"] = nullptr;
  }
  if (is_unified && audio) {
    j["audio_config"] = {{"model_type", "gemma4_unified_audio"},
                         {"audio_embed_dim", audio->audio_embed_dim},
                         {"rms_norm_eps", audio->rms_norm_eps},
                         {"initializer_range", 0.02}};
  } else {
    j["audio_config"] = nullptr;
  }
  j["boi_token_id"] = boi_token_id;
  j["eoi_token_id"] = eoi_token_id;
  j["image_token_id"] = image_token_id;
  j["video_token_id"] = video_token_id;
  j["boa_token_id"] = boa_token_id;
  j["eoa_token_index"] = eoa_token_id;
  j["audio_token_id"] = audio_token_id;
  j["eos_token_id"] = ids_json(text.eos_token_ids);
  j["initializer_range"] = 0.02;
  j["tie_word_embeddings"] = text.tie_word_embeddings;
  j["dtype"] = torch_dtype;
  return j;
}

json ModelConfig::generation_json() const {
  const GenerationConfig& g = generation;
  if (g.eos_token_ids.empty() && g.suppress_tokens.empty() && !g.do_sample) return nullptr;
  json j;
  j["bos_token_id"] = text.bos_token_id;
  j["pad_token_id"] = text.pad_token_id;
  j["eos_token_id"] = ids_json(eos_ids());
  if (!g.suppress_tokens.empty()) j["suppress_tokens"] = g.suppress_tokens;
  j["do_sample"] = g.do_sample;
  j["temperature"] = g.temperature;
  j["top_k"] = g.top_k;
  j["top_p"] = g.top_p;
  return j;
}

std::vector<int64_t> ModelConfig::eos_ids() const {
  return generation.eos_token_ids.empty() ? text.eos_token_ids : generation.eos_token_ids;
}

}  // namespace gemma4

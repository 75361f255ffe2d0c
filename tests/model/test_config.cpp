// config.json parsing (spec §1): both forms of the global-layer geometry, default layer_types, rope parameters,
// eos ids, generation_config.json, KV sharing / double-wide MLP, validation errors, and to_json round trips.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "test_util.h"

namespace gemma4::test {
namespace {

using nlohmann::json;

std::vector<std::string> pattern_6(int n) {
  std::vector<std::string> t;
  for (int i = 0; i < n; ++i) t.push_back((i + 1) % 6 ? "sliding_attention" : "full_attention");
  return t;
}

// The released 12B config.json's text part (spec §1.1 [CFG]), with the global layers as plain keys.
json text_12b_plain() {
  return json{{"model_type", "gemma4_unified_text"},
              {"vocab_size", 262144},
              {"hidden_size", 3840},
              {"intermediate_size", 15360},
              {"num_hidden_layers", 48},
              {"num_attention_heads", 16},
              {"num_key_value_heads", 8},
              {"head_dim", 256},
              {"global_head_dim", 512},
              {"num_global_key_value_heads", 1},
              {"attention_k_eq_v", true},
              {"sliding_window", 1024},
              {"final_logit_softcapping", 30.0},
              {"layer_types", pattern_6(48)},
              {"rope_parameters",
               {{"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
                {"full_attention",
                 {{"rope_type", "proportional"}, {"partial_rotary_factor", 0.25}, {"rope_theta", 1000000.0}}}}},
              {"vocab_size_per_layer_input", 262144},
              {"hidden_size_per_layer_input", 0},
              {"enable_moe_block", false},
              {"num_experts", nullptr}};
}

json composite_12b(json text) {
  return json{{"model_type", "gemma4_unified"},
              {"text_config", text},
              {"vision_config", {{"model_type", "gemma4_unified_vision"}, {"num_soft_tokens", 280}}},
              {"audio_config", {{"model_type", "gemma4_unified_audio"}}},
              {"image_token_id", 258880},
              {"eoa_token_index", 258883},
              {"dtype", "bfloat16"}};
}

void expect_same_layers(const std::vector<LayerSpec>& a, const std::vector<LayerSpec>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    EXPECT_EQ(a[i].type, b[i].type);
    EXPECT_EQ(a[i].head_dim, b[i].head_dim);
    EXPECT_EQ(a[i].num_kv_heads, b[i].num_kv_heads);
    EXPECT_EQ(a[i].k_eq_v, b[i].k_eq_v);
    EXPECT_EQ(a[i].kv_source, b[i].kv_source);
    EXPECT_EQ(a[i].intermediate_size, b[i].intermediate_size);
    EXPECT_EQ(a[i].has_moe, b[i].has_moe);
  }
}

std::string error_of(const json& j) {
  try {
    ModelConfig::from_json(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Config, Unified12BPlainKeys) {
  ModelConfig c = ModelConfig::from_json(composite_12b(text_12b_plain()));
  EXPECT_EQ(c.model_type, "gemma4_unified");
  EXPECT_TRUE(c.is_unified);
  ASSERT_TRUE(c.vision && c.audio);
  EXPECT_EQ(c.vision->patch_dim(), 6912);
  EXPECT_EQ(c.audio->audio_embed_dim, 640);
  EXPECT_EQ(c.text.hidden_size_per_layer_input, 0);  // BC key ignored by the unified model
  EXPECT_EQ(c.text.use_bidirectional_attention, "vision");  // class default
  EXPECT_EQ(c.text.max_position_embeddings, 262144);
  EXPECT_DOUBLE_EQ(c.text.final_logit_softcapping, 30.0);
  EXPECT_EQ(c.text.rope_full.type, "proportional");
  EXPECT_DOUBLE_EQ(c.text.rope_full.partial_rotary_factor, 0.25);
  EXPECT_DOUBLE_EQ(c.text.rope_full.theta, 1e6);
  EXPECT_DOUBLE_EQ(c.text.rope_sliding.theta, 1e4);
  EXPECT_EQ(c.eoa_token_id, 258883);
  auto layers = c.text.layers();
  ASSERT_EQ(layers.size(), 48u);
  for (int i = 0; i < 48; ++i) {
    bool full = i % 6 == 5;
    EXPECT_EQ(layers[i].type, full ? LayerType::Full : LayerType::Sliding) << i;
    EXPECT_EQ(layers[i].head_dim, full ? 512 : 256);
    EXPECT_EQ(layers[i].num_kv_heads, full ? 1 : 8);
    EXPECT_EQ(layers[i].k_eq_v, full);
    EXPECT_EQ(layers[i].kv_source, -1);
    EXPECT_EQ(layers[i].intermediate_size, 15360);
  }
}

TEST(Config, PerLayerConfigFormGivesIdenticalLayers) {
  json plain = text_12b_plain();
  // What transformers >= 5.15 writes: zero-padded layer indices, overrides for the full layers only.
  json sparse = plain;
  sparse.erase("global_head_dim");
  sparse.erase("num_global_key_value_heads");
  json plc = json::object();
  for (int i = 5; i < 48; i += 6) plc[fmt::format("{:02d}", i)] = {{"head_dim", 512}, {"num_key_value_heads", 1}};
  sparse["per_layer_config"] = plc;
  // The explicit serialisation: every layer listed with its effective values.
  json explicit_form = sparse;
  json all = json::object();
  for (int i = 0; i < 48; ++i) {
    bool full = i % 6 == 5;
    all[fmt::format("{:02d}", i)] = {{"head_dim", full ? 512 : 256}, {"num_key_value_heads", full ? 1 : 8}};
  }
  explicit_form["per_layer_config"] = all;

  auto a = ModelConfig::from_json(composite_12b(plain)).text;
  auto b = ModelConfig::from_json(composite_12b(sparse)).text;
  auto c = ModelConfig::from_json(composite_12b(explicit_form)).text;
  expect_same_layers(a.layers(), b.layers());
  expect_same_layers(a.layers(), c.layers());
  EXPECT_EQ(b.global_head_dim, 512);
  EXPECT_EQ(b.num_global_key_value_heads, 1);

  // per_layer_config wins over stale plain keys (HF pops them either way).
  json both = sparse;
  both["global_head_dim"] = 128;
  expect_same_layers(a.layers(), ModelConfig::from_json(composite_12b(both)).text.layers());

  // An empty per_layer_config means the full layers keep the global head_dim.
  json none = sparse;
  none["per_layer_config"] = json::object();
  auto n = ModelConfig::from_json(composite_12b(none)).text.layers();
  EXPECT_EQ(n[5].head_dim, 256);
  EXPECT_EQ(n[5].num_kv_heads, 8);
}

TEST(Config, PerLayerConfigUnsupportedShapesAreErrors) {
  json t = text_12b_plain();
  t["per_layer_config"] = {{"00", {{"head_dim", 128}}}};
  EXPECT_NE(error_of(composite_12b(t)).find("sliding layer 0"), std::string::npos) << error_of(composite_12b(t));
  t["per_layer_config"] = {{"05", {{"head_dim", 512}}}, {"11", {{"head_dim", 256 + 128}}}};
  EXPECT_NE(error_of(composite_12b(t)).find("different geometries"), std::string::npos);
  t["per_layer_config"] = {{"05", {{"intermediate_size", 7}}}};
  EXPECT_NE(error_of(composite_12b(t)).find("intermediate_size"), std::string::npos);
  t["per_layer_config"] = {{"99", {{"head_dim", 512}}}};
  EXPECT_NE(error_of(composite_12b(t)).find("out of range"), std::string::npos);
  t["per_layer_config"] = {{"x5", {{"head_dim", 512}}}};
  EXPECT_NE(error_of(composite_12b(t)).find("not a layer index"), std::string::npos);
}

TEST(Config, GlobalKvHeadsApplyOnlyWithKEqV) {
  json t = text_12b_plain();
  t["attention_k_eq_v"] = false;
  auto layers = ModelConfig::from_json(composite_12b(t)).text.layers();
  EXPECT_EQ(layers[5].num_kv_heads, 8);  // num_global_key_value_heads=1 ignored
  EXPECT_EQ(layers[5].head_dim, 512);
  EXPECT_FALSE(layers[5].k_eq_v);
  // k_eq_v with no global count: full layers keep num_key_value_heads.
  t["attention_k_eq_v"] = true;
  t["num_global_key_value_heads"] = nullptr;
  layers = ModelConfig::from_json(composite_12b(t)).text.layers();
  EXPECT_EQ(layers[5].num_kv_heads, 8);
  EXPECT_TRUE(layers[5].k_eq_v);
}

TEST(Config, DefaultLayerTypesEverySixthFullAndLastForcedFull) {
  json j = {{"model_type", "gemma4_text"}, {"num_hidden_layers", 14}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}};
  auto t = ModelConfig::from_json(j).text;
  ASSERT_EQ(t.layer_types.size(), 14u);
  for (int i = 0; i < 14; ++i) {
    bool full = i == 5 || i == 11 || i == 13;
    EXPECT_EQ(t.layer_types[i], full ? LayerType::Full : LayerType::Sliding) << i;
  }
  // Given layer_types whose last entry is sliding: HF forces it to full.
  j["num_hidden_layers"] = 3;
  j["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention"};
  t = ModelConfig::from_json(j).text;
  EXPECT_EQ(t.layer_types[2], LayerType::Full);
  EXPECT_EQ(t.layer_types[1], LayerType::Full);
  EXPECT_EQ(t.layer_types[0], LayerType::Sliding);
}

TEST(Config, Gemma4ClassDefaultsAndTowers) {
  json j = {{"model_type", "gemma4"},
            {"text_config", {{"num_hidden_layers", 6}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}}},
            {"vision_config", {{"hidden_size", 768}}},
            {"audio_config", nullptr},
            {"eos_token_id", {1, 106}}};
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_FALSE(c.is_unified);
  EXPECT_TRUE(c.has_vision_tower);
  EXPECT_FALSE(c.has_audio_tower);
  EXPECT_FALSE(c.vision || c.audio);
  EXPECT_EQ(c.text.hidden_size_per_layer_input, 256);  // Gemma4TextConfig default: PLE on
  EXPECT_EQ(c.text.sliding_window, 512);
  EXPECT_EQ(c.text.max_position_embeddings, 131072);
  EXPECT_EQ(c.text.use_bidirectional_attention, "");
  EXPECT_EQ(c.text.eos_token_ids, (std::vector<int64_t>{1, 106}));  // top level wins
  EXPECT_EQ(c.eos_ids(), (std::vector<int64_t>{1, 106}));
  EXPECT_EQ(c.text.rope_full.type, "proportional");  // default rope_parameters
}

TEST(Config, KvSharingAndDoubleWideMlp) {
  // E2B-like: 10 layers, 4 sliding : 1 full, last 4 layers shared.
  std::vector<std::string> types;
  for (int i = 0; i < 10; ++i) types.push_back((i + 1) % 5 ? "sliding_attention" : "full_attention");
  json j = {{"model_type", "gemma4_text"}, {"num_hidden_layers", 10}, {"layer_types", types},
            {"num_attention_heads", 4},     {"num_key_value_heads", 1}, {"intermediate_size", 64},
            {"num_kv_shared_layers", 4},    {"use_double_wide_mlp", true}};
  auto layers = ModelConfig::from_json(j).text.layers();
  // first shared = 6; last non-shared sliding = 5, full = 4.
  for (int i = 0; i < 10; ++i) {
    SCOPED_TRACE(i);
    if (i < 6) {
      EXPECT_EQ(layers[i].kv_source, -1);
      EXPECT_EQ(layers[i].intermediate_size, 64);
    } else {
      EXPECT_EQ(layers[i].kv_source, layers[i].type == LayerType::Full ? 4 : 5);
      EXPECT_EQ(layers[i].intermediate_size, 128);
    }
  }
  j["use_double_wide_mlp"] = false;
  EXPECT_EQ(ModelConfig::from_json(j).text.layers()[9].intermediate_size, 64);
  // A shared layer type with no earlier source layer is an error.
  j["layer_types"] = {"sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention",
                      "sliding_attention", "sliding_attention", "full_attention",    "sliding_attention",
                      "sliding_attention", "full_attention"};
  EXPECT_NE(error_of(j).find("no earlier non-shared full_attention layer"), std::string::npos) << error_of(j);
}

TEST(Config, MoeKeysIgnoredByUnifiedButReadByGemma4) {
  json t = {{"num_hidden_layers", 6},  {"num_attention_heads", 4},    {"num_key_value_heads", 2},
            {"enable_moe_block", true}, {"num_experts", 8},           {"top_k_experts", 2},
            {"moe_intermediate_size", 16}, {"hidden_size_per_layer_input", 32}};
  ModelConfig g = ModelConfig::from_json({{"model_type", "gemma4"}, {"text_config", t}});
  EXPECT_TRUE(g.text.enable_moe_block);
  EXPECT_TRUE(g.text.layers()[0].has_moe);
  EXPECT_EQ(g.text.hidden_size_per_layer_input, 32);
  ModelConfig u = ModelConfig::from_json({{"model_type", "gemma4_unified"}, {"text_config", t}});
  EXPECT_FALSE(u.text.enable_moe_block);
  EXPECT_FALSE(u.text.layers()[0].has_moe);
  EXPECT_EQ(u.text.hidden_size_per_layer_input, 0);
}

TEST(Config, UnknownModelTypeAndBadValuesNameTheKey) {
  EXPECT_EQ(error_of({{"model_type", "llama"}}),
            "config.json: unknown model_type 'llama' (supported: gemma4_unified, gemma4, gemma4_text, "
            "gemma4_unified_text)");
  EXPECT_EQ(error_of({{"hidden_size", 3}}), "config.json: 'model_type' is missing");
  EXPECT_EQ(error_of(json::array()), "config.json: expected a JSON object");

  auto with = [](const char* key, json v) {
    json t = text_12b_plain();
    t[key] = v;
    return composite_12b(t);
  };
  EXPECT_NE(error_of(with("hidden_size", 0)).find("'text_config.hidden_size' must be positive"), std::string::npos);
  EXPECT_NE(error_of(with("hidden_size", "big")).find("'text_config.hidden_size' must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of(with("num_key_value_heads", 5)).find("'text_config.num_attention_heads' (16) must be a multiple"),
            std::string::npos);
  EXPECT_NE(error_of(with("num_global_key_value_heads", 3)).find("num_global_key_value_heads"), std::string::npos);
  EXPECT_NE(error_of(with("layer_types", pattern_6(47))).find("'text_config.layer_types' has 47 entries"),
            std::string::npos);
  EXPECT_NE(error_of(with("layer_types", std::vector<std::string>(48, "chunked_attention")))
                .find("chunked_attention"),
            std::string::npos);
  EXPECT_NE(error_of(with("head_dim", 255)).find("even"), std::string::npos);
  EXPECT_NE(error_of(with("num_kv_shared_layers", 48)).find("num_kv_shared_layers"), std::string::npos);
  EXPECT_NE(error_of(with("eos_token_id", "one")).find("'text_config.eos_token_id'"), std::string::npos);
  EXPECT_NE(error_of(with("eos_token_id", 300000)).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(error_of(with("hidden_activation", "relu")).find("relu"), std::string::npos);
  json bad_rope = text_12b_plain();
  bad_rope["rope_parameters"]["full_attention"]["rope_type"] = "yarn";
  EXPECT_NE(error_of(composite_12b(bad_rope)).find("'yarn' is not supported"), std::string::npos);
  bad_rope["rope_parameters"].erase("full_attention");
  EXPECT_NE(error_of(composite_12b(bad_rope)).find("no 'full_attention' entry"), std::string::npos);
  json v = composite_12b(text_12b_plain());
  v["vision_config"]["output_proj_dims"] = 100;
  EXPECT_NE(error_of(v).find("output_proj_dims"), std::string::npos);
}

TEST(Config, FromDirReadsGenerationConfigAndNamesTheFile) {
  std::string dir = temp_dir();
  write_file(dir + "/config.json", composite_12b(text_12b_plain()).dump());
  ModelConfig c = ModelConfig::from_dir(dir);
  EXPECT_EQ(c.eos_ids(), (std::vector<int64_t>{1}));
  EXPECT_TRUE(c.generation.suppress_tokens.empty());

  write_file(dir + "/generation_config.json",
             R"({"eos_token_id": [1, 106, 50], "suppress_tokens": [258883, 258882], "do_sample": true,
                 "temperature": 0.7, "top_k": 64, "top_p": 0.95})");
  c = ModelConfig::from_dir(dir);
  EXPECT_EQ(c.eos_ids(), (std::vector<int64_t>{1, 106, 50}));
  EXPECT_EQ(c.generation.suppress_tokens, (std::vector<int64_t>{258883, 258882}));
  EXPECT_TRUE(c.generation.do_sample);
  EXPECT_DOUBLE_EQ(c.generation.temperature, 0.7);
  EXPECT_EQ(c.generation.top_k, 64);
  EXPECT_DOUBLE_EQ(c.generation.top_p, 0.95);

  write_file(dir + "/generation_config.json", R"({"eos_token_id": 7})");
  c = ModelConfig::from_dir(dir);
  EXPECT_EQ(c.eos_ids(), (std::vector<int64_t>{7}));
  EXPECT_EQ(c.generation.top_k, 50);  // transformers' default

  write_file(dir + "/generation_config.json", R"({"top_p": "high"})");
  try {
    ModelConfig::from_dir(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find(dir + "/generation_config.json: 'top_p'"), 0u) << e.what();
  }
  write_file(dir + "/generation_config.json", "{}");
  write_file(dir + "/config.json", R"({"model_type": "gemma4_text", "num_hidden_layers": -2})");
  try {
    ModelConfig::from_dir(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/config.json: 'num_hidden_layers' must be positive, got -2");
  }
  write_file(dir + "/config.json", "{\"model_type\": ");
  try {
    ModelConfig::from_dir(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find(dir + "/config.json: invalid JSON"), 0u) << e.what();
  }
  std::string empty = temp_dir();
  EXPECT_THROW(ModelConfig::from_dir(empty), Error);
}

TEST(Config, ToJsonRoundTripsEveryModelType) {
  json text = text_12b_plain();
  text["num_hidden_layers"] = 12;
  text["layer_types"] = pattern_6(12);
  text["eos_token_id"] = {1, 106};
  text["tie_word_embeddings"] = false;
  std::vector<json> inputs = {composite_12b(text)};
  json flat_unified = text;
  inputs.push_back(flat_unified);
  json g4_text = text;
  g4_text["model_type"] = "gemma4_text";
  g4_text["hidden_size_per_layer_input"] = 16;
  g4_text["num_kv_shared_layers"] = 4;
  g4_text["use_double_wide_mlp"] = true;
  g4_text["enable_moe_block"] = true;
  g4_text["num_experts"] = 4;
  g4_text["top_k_experts"] = 2;
  g4_text["moe_intermediate_size"] = 8;
  g4_text["use_bidirectional_attention"] = nullptr;
  inputs.push_back(g4_text);
  inputs.push_back(json{{"model_type", "gemma4"}, {"text_config", g4_text}});
  for (const json& in : inputs) {
    ModelConfig a = ModelConfig::from_json(in);
    json out = a.to_json();
    ModelConfig b = ModelConfig::from_json(out);
    SCOPED_TRACE(a.model_type);
    EXPECT_EQ(out["model_type"], a.model_type);
    EXPECT_EQ(b.model_type, a.model_type);
    expect_same_layers(a.text.layers(), b.text.layers());
    EXPECT_EQ(b.text.eos_token_ids, a.text.eos_token_ids);
    EXPECT_EQ(b.text.tie_word_embeddings, a.text.tie_word_embeddings);
    EXPECT_EQ(b.text.hidden_size_per_layer_input, a.text.hidden_size_per_layer_input);
    EXPECT_EQ(b.text.enable_moe_block, a.text.enable_moe_block);
    EXPECT_EQ(b.text.use_bidirectional_attention, a.text.use_bidirectional_attention);
    EXPECT_EQ(b.text.sliding_window, a.text.sliding_window);
    EXPECT_EQ(b.text.rope_full.partial_rotary_factor, a.text.rope_full.partial_rotary_factor);
    EXPECT_EQ(b.vision.has_value(), a.vision.has_value());
    EXPECT_EQ(b.audio.has_value(), a.audio.has_value());
    EXPECT_EQ(b.torch_dtype, a.torch_dtype);
    // The output is what transformers reads: rope_parameters keyed by layer type, plain global keys.
    const json& t = out.contains("text_config") ? out["text_config"] : out;
    EXPECT_TRUE(t["rope_parameters"].contains("full_attention"));
    EXPECT_EQ(t["global_head_dim"], 512);
  }
}

}  // namespace
}  // namespace gemma4::test

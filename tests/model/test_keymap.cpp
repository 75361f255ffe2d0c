// HF key map with strict accounting on small synthetic checkpoints written by save_checkpoint / save_safetensors:
// all three layouts bind; missing, wrong shape, wrong dtype, unexpected and untied/tied lm_head problems are errors
// that name the file and tensor; towers, disabled embedders and stale KV-shared weights are skipped and reported.
// Also random_weights and the `inspect` command.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "model/keymap.h"
#include "test_util.h"

namespace gemma4::test {
namespace {

using nlohmann::json;

// A tiny Unified model: 6 layers (full at 5), k_eq_v with one global KV head, both embedders.
ModelConfig tiny_unified() {
  json j = {{"model_type", "gemma4_unified"},
            {"text_config",
             {{"vocab_size", 64},
              {"hidden_size", 32},
              {"intermediate_size", 48},
              {"num_hidden_layers", 6},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 2},
              {"head_dim", 8},
              {"global_head_dim", 16},
              {"num_global_key_value_heads", 1},
              {"attention_k_eq_v", true},
              {"sliding_window", 4},
              {"final_logit_softcapping", 30.0}}},
            {"vision_config",
             {{"patch_size", 2}, {"pooling_kernel_size", 2}, {"mm_embed_dim", 24}, {"mm_posemb_size", 10},
              {"output_proj_dims", 24}}},
            {"audio_config", {{"audio_embed_dim", 20}}}};
  return ModelConfig::from_json(j);
}

// A tiny Gemma 4 tower model with every text feature: PLE, KV sharing, double-wide MLP, MoE, untied lm_head.
ModelConfig tiny_gemma4() {
  std::vector<std::string> types;
  for (int i = 0; i < 10; ++i) types.push_back((i + 1) % 5 ? "sliding_attention" : "full_attention");
  json j = {{"model_type", "gemma4"},
            {"text_config",
             {{"vocab_size", 64},
              {"hidden_size", 32},
              {"intermediate_size", 48},
              {"num_hidden_layers", 10},
              {"layer_types", types},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 1},
              {"head_dim", 8},
              {"global_head_dim", 16},
              {"hidden_size_per_layer_input", 4},
              {"vocab_size_per_layer_input", 64},
              {"num_kv_shared_layers", 4},
              {"use_double_wide_mlp", true},
              {"enable_moe_block", true},
              {"num_experts", 4},
              {"top_k_experts", 2},
              {"moe_intermediate_size", 8},
              {"tie_word_embeddings", false}}},
            {"vision_config", {{"hidden_size", 16}}},
            {"audio_config", {{"hidden_size", 16}}}};
  return ModelConfig::from_json(j);
}

std::vector<std::pair<std::string, Tensor>> named(const ModelConfig& cfg, Weights w, Layout layout,
                                                  BindOptions opt = {}) {
  std::vector<std::pair<std::string, Tensor>> out;
  for_each_parameter(cfg, layout, opt, w, [&](const ExpectedTensor& e, Tensor& t) { out.emplace_back(e.name, t); });
  return out;
}

struct Bound {
  KeyAccounting acct;
  std::string error;
  Weights w;
};

Bound bind_dir(const std::string& dir, const ModelConfig& cfg, BindOptions opt = {}) {
  Bound b;
  TensorStore store = TensorStore::open(dir);
  try {
    b.w = bind_weights(cfg, store, b.acct, opt);
  } catch (const Error& e) {
    b.error = e.what();
  }
  return b;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype == b.dtype && a.shape == b.shape && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

TEST(KeyMap, AllThreeLayoutsRoundTripThroughSaveCheckpoint) {
  struct Case {
    ModelConfig cfg;
    Layout layout;
    const char* model_type;
  };
  std::vector<Case> cases = {{tiny_unified(), Layout::UnifiedConditional, "gemma4_unified"},
                             {tiny_unified(), Layout::CausalLM, "gemma4_unified_text"},
                             {tiny_gemma4(), Layout::Gemma4Conditional, "gemma4"},
                             {tiny_gemma4(), Layout::CausalLM, "gemma4_text"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(layout_name(c.layout));
    SCOPED_TRACE(c.model_type);
    std::string dir = temp_dir() + "/ckpt";
    Weights w = random_weights(c.cfg, DType::BF16, 7);
    save_checkpoint(dir, c.cfg, w, c.layout);
    ModelConfig loaded = ModelConfig::from_dir(dir);
    EXPECT_EQ(loaded.model_type, c.model_type);
    TensorStore store = TensorStore::open(dir);
    EXPECT_EQ(detect_layout(loaded, store), c.layout);
    Bound b = bind_dir(dir, loaded);
    ASSERT_EQ(b.error, "");
    EXPECT_TRUE(b.acct.missing.empty());
    EXPECT_TRUE(b.acct.unexpected.empty());
    EXPECT_TRUE(b.acct.bad_shape.empty());
    EXPECT_TRUE(b.acct.skipped.empty());
    EXPECT_EQ(b.acct.used.size(), store.size());
    EXPECT_EQ(b.acct.used.size(), expected_tensors(loaded, c.layout).size());
    EXPECT_EQ(b.acct.layout, c.layout);
    // Zero-copy views holding the saved values.
    EXPECT_TRUE(same_bytes(b.w.embed_tokens, w.embed_tokens));
    EXPECT_TRUE(same_bytes(b.w.layers[5].q_proj, w.layers[5].q_proj));
    EXPECT_TRUE(same_bytes(b.w.layers[2].layer_scalar, w.layers[2].layer_scalar));
    if (loaded.text.tie_word_embeddings) EXPECT_EQ(b.w.lm_head.data, b.w.embed_tokens.data);
    else EXPECT_TRUE(same_bytes(b.w.lm_head, w.lm_head));
    if (c.layout == Layout::UnifiedConditional) {
      EXPECT_TRUE(same_bytes(b.w.vision.pos_embedding, w.vision.pos_embedding));
      EXPECT_TRUE(same_bytes(b.w.audio_projection, w.audio_projection));
      EXPECT_EQ(b.w.vision.patch_dense_w.shape, (Shape{24, 48}));
    }
  }
}

TEST(KeyMap, LayerSlotsFollowTheConfig) {
  ModelConfig g = tiny_gemma4();
  Weights w = random_weights(g, DType::F32, 1);
  ASSERT_EQ(w.layers.size(), 10u);
  // KV-shared layers (6..9) have no K/V weights; full layers without k_eq_v keep v_proj.
  EXPECT_TRUE(w.layers[4].v_proj.defined());
  EXPECT_EQ(w.layers[4].q_proj.shape, (Shape{64, 32}));
  EXPECT_FALSE(w.layers[6].k_proj.defined());
  EXPECT_FALSE(w.layers[6].k_norm.defined());
  EXPECT_TRUE(w.layers[6].q_norm.defined());
  EXPECT_EQ(w.layers[6].gate_proj.shape, (Shape{96, 32}));  // double wide
  EXPECT_EQ(w.layers[5].gate_proj.shape, (Shape{48, 32}));
  EXPECT_EQ(w.layers[0].experts_gate_up.shape, (Shape{4, 16, 32}));
  EXPECT_EQ(w.layers[0].experts_down.shape, (Shape{4, 32, 8}));
  EXPECT_EQ(w.embed_tokens_per_layer.shape, (Shape{64, 40}));
  EXPECT_EQ(w.per_layer_model_projection.shape, (Shape{40, 32}));
  EXPECT_NE(w.lm_head.data, w.embed_tokens.data);
  ModelConfig u = tiny_unified();
  Weights wu = random_weights(u, DType::F32, 1);
  EXPECT_FALSE(wu.layers[5].v_proj.defined());  // k_eq_v
  EXPECT_EQ(wu.layers[5].k_proj.shape, (Shape{16, 32}));
  EXPECT_EQ(wu.layers[0].v_proj.shape, (Shape{16, 32}));
  EXPECT_EQ(wu.lm_head.data, wu.embed_tokens.data);
}

TEST(KeyMap, MissingTensorIsReportedAndNamed) {
  ModelConfig cfg = tiny_unified();
  auto ts = named(cfg, random_weights(cfg, DType::F32, 3), Layout::UnifiedConditional);
  const std::string gone = "model.language_model.layers.3.mlp.up_proj.weight";
  std::erase_if(ts, [&](const auto& p) { return p.first == gone; });
  std::string dir = temp_dir();
  save_safetensors(dir + "/model.safetensors", ts);
  Bound b = bind_dir(dir, cfg);
  EXPECT_EQ(b.acct.missing, std::vector<std::string>{gone});
  EXPECT_TRUE(b.acct.unexpected.empty());
  EXPECT_EQ(b.error, dir + "/model.safetensors: missing tensor '" + gone + "' (config needs [48, 32])");
}

TEST(KeyMap, WrongShapeAndWrongDtypeNameFileTensorAndShapes) {
  ModelConfig cfg = tiny_unified();
  auto ts = named(cfg, random_weights(cfg, DType::F32, 3), Layout::UnifiedConditional);
  for (auto& [n, t] : ts) {
    if (n == "model.language_model.layers.5.self_attn.k_proj.weight") t = Tensor::zeros(DType::F32, {32, 32});
    if (n == "model.language_model.layers.1.layer_scalar") t = Tensor::zeros(DType::I64, {1});
  }
  std::string dir = temp_dir();
  save_safetensors(dir + "/model.safetensors", ts);
  Bound b = bind_dir(dir, cfg);
  EXPECT_EQ(b.error, dir + "/model.safetensors: tensor 'model.language_model.layers.1.layer_scalar': dtype I64 but a "
                           "float dtype (F32, BF16, F16) is needed [2 problems in total]");
  ASSERT_EQ(b.acct.bad_shape.size(), 2u);
  EXPECT_EQ(b.acct.bad_shape[1],
            "model.language_model.layers.5.self_attn.k_proj.weight: shape [32, 32] but config needs [16, 32]");
}

TEST(KeyMap, UnexpectedTensorIsAnError) {
  ModelConfig cfg = tiny_unified();
  auto ts = named(cfg, random_weights(cfg, DType::F32, 3), Layout::UnifiedConditional);
  ts.emplace_back("model.language_model.layers.0.self_attn.v_norm.weight", Tensor::zeros(DType::F32, {8}));
  std::string dir = temp_dir();
  save_safetensors(dir + "/model.safetensors", ts);
  Bound b = bind_dir(dir, cfg);
  EXPECT_EQ(b.acct.unexpected, std::vector<std::string>{"model.language_model.layers.0.self_attn.v_norm.weight"});
  EXPECT_EQ(b.error, dir + "/model.safetensors: unexpected tensor 'model.language_model.layers.0.self_attn.v_norm."
                           "weight' (not part of a UnifiedConditional model with this config)");
}

TEST(KeyMap, TiedLmHeadMayBePresentOnlyIfEqual) {
  ModelConfig cfg = tiny_unified();
  Weights w = random_weights(cfg, DType::BF16, 3);
  auto ts = named(cfg, w, Layout::UnifiedConditional);
  ts.emplace_back("lm_head.weight", w.embed_tokens);
  std::string dir = temp_dir();
  save_safetensors(dir + "/model.safetensors", ts);
  Bound ok = bind_dir(dir, cfg);
  EXPECT_EQ(ok.error, "");
  EXPECT_NE(std::find(ok.acct.used.begin(), ok.acct.used.end(), "lm_head.weight"), ok.acct.used.end());

  ts.back().second = w.embed_tokens.to(DType::F32);  // same values, different bytes
  save_safetensors(dir + "/model.safetensors", ts);
  Bound bad = bind_dir(dir, cfg);
  EXPECT_EQ(bad.error, dir + "/model.safetensors: tensor 'lm_head.weight' (F32 [64, 32]) differs from embed_tokens "
                             "but tie_word_embeddings is true");
  EXPECT_EQ(bad.acct.unexpected, std::vector<std::string>{"lm_head.weight"});
}

TEST(KeyMap, UntiedLmHeadIsRequired) {
  ModelConfig cfg = tiny_gemma4();
  auto ts = named(cfg, random_weights(cfg, DType::F32, 3), Layout::Gemma4Conditional);
  std::erase_if(ts, [](const auto& p) { return p.first == "lm_head.weight"; });
  std::string dir = temp_dir();
  save_safetensors(dir + "/model.safetensors", ts);
  Bound b = bind_dir(dir, cfg);
  EXPECT_EQ(b.acct.missing, std::vector<std::string>{"lm_head.weight"});
  EXPECT_NE(b.error.find("missing tensor 'lm_head.weight'"), std::string::npos);
}

TEST(KeyMap, TowersAndStaleKvSharedWeightsAreSkippedAndReported) {
  ModelConfig cfg = tiny_gemma4();
  auto ts = named(cfg, random_weights(cfg, DType::F32, 3), Layout::Gemma4Conditional);
  auto z = Tensor::zeros(DType::F32, {2, 2});
  for (const char* n : {"model.vision_tower.encoder.layers.0.mlp.up_proj.linear.weight",
                        "model.vision_tower.patch_embedder.input_proj.weight",
                        "model.embed_vision.embedding_projection.weight", "model.audio_tower.output_proj.bias",
                        "model.embed_audio.embedding_projection.weight",
                        "model.language_model.layers.7.self_attn.k_proj.weight",
                        "model.language_model.layers.9.self_attn.v_norm.weight"})
    ts.emplace_back(n, z);
  std::string dir = temp_dir();
  save_safetensors(dir + "/model.safetensors", ts);
  Bound b = bind_dir(dir, cfg);
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(b.acct.skipped["vision"].size(), 3u);
  EXPECT_EQ(b.acct.skipped["audio"].size(), 2u);
  EXPECT_EQ(b.acct.skipped["kv_shared"], (std::vector<std::string>{"model.language_model.layers.7.self_attn.k_proj.weight",
                                                                    "model.language_model.layers.9.self_attn.v_norm.weight"}));
  EXPECT_EQ(b.acct.used.size(), ts.size() - 7);

  // K/V weights of a layer that is NOT shared are expected, so an extra one there is unexpected.
  ts.emplace_back("model.language_model.layers.5.self_attn.v_norm.weight", z);
  save_safetensors(dir + "/model.safetensors", ts);
  EXPECT_NE(bind_dir(dir, cfg).error.find("unexpected tensor 'model.language_model.layers.5.self_attn.v_norm.weight'"),
            std::string::npos);
}

TEST(KeyMap, DisabledOrUndeclaredEmbeddersAreSkipped) {
  ModelConfig cfg = tiny_unified();
  std::string dir = temp_dir();
  save_checkpoint(dir, cfg, random_weights(cfg, DType::F32, 5), Layout::UnifiedConditional);
  Bound b = bind_dir(dir, cfg, BindOptions{false, true});
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(b.acct.skipped["vision"].size(), 10u);
  EXPECT_FALSE(b.w.vision.projection.defined());
  EXPECT_TRUE(b.w.audio_projection.defined());

  ModelConfig no_audio = cfg;
  no_audio.audio.reset();  // like the `12b` preset on the released checkpoint
  b = bind_dir(dir, no_audio);
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(b.acct.skipped["audio"], std::vector<std::string>{"model.embed_audio.embedding_projection.weight"});
  EXPECT_TRUE(b.w.vision.projection.defined());
}

TEST(KeyMap, EmptyOrForeignCheckpointAccountsAgainstTheConfigLayout) {
  ModelConfig cfg = tiny_unified();
  std::string dir = temp_dir();
  save_safetensors(dir + "/model.safetensors", {{"foo.bar", Tensor::zeros(DType::F32, {1})}});
  Bound b = bind_dir(dir, cfg);
  EXPECT_EQ(b.acct.layout, Layout::UnifiedConditional);
  EXPECT_EQ(b.acct.missing.size(), expected_tensors(cfg, Layout::UnifiedConditional).size());
  EXPECT_EQ(b.acct.unexpected, std::vector<std::string>{"foo.bar"});
  EXPECT_NE(b.error.find("problems in total"), std::string::npos);
}

TEST(KeyMap, SaveCheckpointRejectsIncompleteWeightsAndWrongLayouts) {
  ModelConfig cfg = tiny_unified();
  Weights w = random_weights(cfg, DType::F32, 5);
  w.layers[2].down_proj = Tensor{};
  EXPECT_THROW(save_checkpoint(temp_dir(), cfg, w, Layout::UnifiedConditional), Error);
  EXPECT_THROW(save_checkpoint(temp_dir(), cfg, random_weights(cfg, DType::F32, 5), Layout::Gemma4Conditional), Error);
  EXPECT_THROW(save_checkpoint(temp_dir(), tiny_gemma4(), random_weights(tiny_gemma4(), DType::F32, 5),
                               Layout::UnifiedConditional),
               Error);
}

TEST(RandomWeights, DeterministicAndShaped) {
  ModelConfig cfg = tiny_unified();
  Weights a = random_weights(cfg, DType::F32, 42), b = random_weights(cfg, DType::F32, 42);
  Weights c = random_weights(cfg, DType::F32, 43);
  EXPECT_TRUE(same_bytes(a.layers[3].o_proj, b.layers[3].o_proj));
  EXPECT_FALSE(same_bytes(a.layers[3].o_proj, c.layers[3].o_proj));
  EXPECT_FALSE(same_bytes(a.layers[3].o_proj, a.layers[4].o_proj));  // each tensor has its own stream
  // Matrices ~ N(0, 0.02); scales near 1 but not 1.
  auto v = a.embed_tokens.f32_vector();
  double sum = 0, sq = 0;
  for (float x : v) sum += x, sq += double(x) * x;
  double mean = sum / v.size(), sd = std::sqrt(sq / v.size() - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.003);
  EXPECT_NEAR(sd, 0.02, 0.002);
  for (const Tensor* t : {&a.layers[0].input_layernorm, &a.layers[5].q_norm, &a.layers[1].layer_scalar, &a.final_norm,
                          &a.vision.patch_ln1_w}) {
    bool all_one = true;
    for (float x : t->f32_vector()) {
      EXPECT_GT(x, 0.7f);
      EXPECT_LT(x, 1.3f);
      all_one &= x == 1.0f;
    }
    EXPECT_FALSE(all_one);
  }
  Weights h = random_weights(cfg, DType::BF16, 42);
  EXPECT_EQ(h.layers[0].q_proj.dtype, DType::BF16);
  EXPECT_EQ(h.layers[0].q_proj.f32_vector()[7], round_to_bf16(a.layers[0].q_proj.f32_vector()[7]));
  EXPECT_THROW(random_weights(cfg, DType::I32, 1), Error);
}

TEST(Inspect, PrintsAccountingAndFailsOnInvalidCheckpoints) {
  ModelConfig cfg = tiny_gemma4();
  std::string dir = temp_dir() + "/m";
  save_checkpoint(dir, cfg, random_weights(cfg, DType::BF16, 9), Layout::Gemma4Conditional);
  auto r = run_gemma4({"inspect", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("model_type: gemma4\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layout: Gemma4Conditional\n"), std::string::npos);
  EXPECT_NE(r.out.find("kv from layer 4"), std::string::npos);
  EXPECT_NE(r.out.find("missing: 0\n"), std::string::npos);
  EXPECT_NE(r.out.find("unexpected: 0\n"), std::string::npos);
  EXPECT_NE(r.out.find("parameters (text): "), std::string::npos);
  EXPECT_NE(r.out.find("status: ok"), std::string::npos);

  // Drop one tensor and add a foreign one: accounting on stdout, one line on stderr, exit 1.
  auto ts = named(cfg, random_weights(cfg, DType::BF16, 9), Layout::Gemma4Conditional);
  ts.erase(ts.begin() + 3);
  ts.emplace_back("model.language_model.extra", Tensor::zeros(DType::F32, {1}));
  ts.emplace_back("model.vision_tower.x", Tensor::zeros(DType::F32, {1}));
  save_safetensors(dir + "/model.safetensors", ts);
  r = run_gemma4({"inspect", dir});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("missing: 1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unexpected: 1\n  model.language_model.extra\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("skipped vision: 1\n"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("missing tensor"), std::string::npos) << r.err;

  r = run_gemma4({"inspect", temp_dir()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("config.json"), std::string::npos);
  EXPECT_EQ(run_gemma4({"inspect"}).exit_code, 2);
}

}  // namespace
}  // namespace gemma4::test

namespace gemma4::test {
namespace {

// Every checkpoint that transformers 5.17 wrote with save_pretrained (tools/make_fixtures.py) binds with nothing
// missing, unexpected or mis-shaped; its config survives our export.
TEST(KeyMap, HuggingFaceFixturesBindExactly) {
  namespace fs = std::filesystem;
  fs::path root = fs::path(source_dir()) / "tests" / "fixtures";
  if (!fs::exists(root)) GTEST_SKIP() << "no fixtures under " << root;
  int n = 0;
  for (const auto& d : fs::directory_iterator(root)) {
    if (!fs::exists(d.path() / "config.json")) continue;
    SCOPED_TRACE(d.path().filename().string());
    ++n;
    ModelConfig cfg = ModelConfig::from_dir(d.path().string());
    Bound b = bind_dir(d.path().string(), cfg);
    EXPECT_EQ(b.error, "");
    EXPECT_TRUE(b.acct.missing.empty());
    EXPECT_TRUE(b.acct.unexpected.empty());
    EXPECT_TRUE(b.acct.bad_shape.empty());
    TensorStore store = TensorStore::open(d.path().string());
    size_t skipped = 0;
    for (const auto& [m, names] : b.acct.skipped) skipped += names.size();
    EXPECT_EQ(b.acct.used.size() + skipped, store.size());
    for (const auto& [m, names] : b.acct.skipped) EXPECT_TRUE(m == "vision" || m == "audio") << m;  // towers only
    ModelConfig again = ModelConfig::from_json(cfg.to_json());
    EXPECT_EQ(text_parameter_count(again), text_parameter_count(cfg));
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace gemma4::test

// Architecture registry: names, the spec's §1.4 values, the 12B parameter count and tensor counts (spec §3.2-3.3),
// -it eos/generation settings, and presets surviving config.json export.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/keymap.h"
#include "model/registry.h"
#include "test_util.h"

namespace gemma4::test {
namespace {

std::map<std::string, int> count_by_modality(const std::vector<ExpectedTensor>& ts) {
  std::map<std::string, int> m;
  for (const auto& t : ts) m[t.modality]++;
  return m;
}

std::vector<int> full_layers(const TextConfig& t) {
  std::vector<int> f;
  for (int i = 0; i < t.num_hidden_layers; ++i)
    if (t.layer_types[i] == LayerType::Full) f.push_back(i);
  return f;
}

TEST(Registry, Names) {
  EXPECT_EQ(arch_names(), (std::vector<std::string>{"12b", "12b_it", "12b_audio", "12b_it_audio", "e2b", "e2b_it",
                                                     "e4b", "e4b_it", "31b", "31b_it", "26b_a4b", "26b_a4b_it"}));
  for (const auto& n : arch_names()) EXPECT_EQ(arch_config(n).arch_name, n);
  try {
    arch_config("13b");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "unknown architecture '13b' (known: 12b, 12b_it, 12b_audio, 12b_it_audio, e2b, e2b_it, e4b, e4b_it, "
              "31b, 31b_it, 26b_a4b, 26b_a4b_it)");
  }
}

TEST(Registry, Unified12B) {
  ModelConfig c = arch_config("12b");
  const TextConfig& t = c.text;
  EXPECT_EQ(c.model_type, "gemma4_unified");
  EXPECT_TRUE(c.is_unified);
  EXPECT_TRUE(c.vision.has_value());
  EXPECT_FALSE(c.audio.has_value());
  EXPECT_TRUE(arch_config("12b_audio").audio.has_value());
  EXPECT_EQ(t.hidden_size, 3840);
  EXPECT_EQ(t.intermediate_size, 15360);
  EXPECT_EQ(t.num_hidden_layers, 48);
  EXPECT_EQ(full_layers(t), (std::vector<int>{5, 11, 17, 23, 29, 35, 41, 47}));
  EXPECT_EQ(t.sliding_window, 1024);
  EXPECT_EQ(t.max_position_embeddings, 262144);
  EXPECT_EQ(t.use_bidirectional_attention, "vision");
  EXPECT_DOUBLE_EQ(t.final_logit_softcapping, 30.0);
  auto L = t.layers();
  EXPECT_EQ(L[0].num_kv_heads, 8);
  EXPECT_EQ(L[0].head_dim, 256);
  EXPECT_EQ(L[5].num_kv_heads, 1);
  EXPECT_EQ(L[5].head_dim, 512);
  EXPECT_TRUE(L[5].k_eq_v);
  EXPECT_EQ(c.image_token_id, 258880);
  EXPECT_EQ(c.eoi_token_id, 258882);
  EXPECT_EQ(c.eos_ids(), (std::vector<int64_t>{1}));
  EXPECT_EQ(c.generation.suppress_tokens, (std::vector<int64_t>{258883, 258882}));
  EXPECT_EQ(c.generation.top_k, 64);
}

TEST(Registry, TwelveBParameterAndTensorCounts) {
  // spec §3.3: text 11,907,350,320 parameters; 677 stored tensors = 666 text + 10 vision + 1 audio.
  EXPECT_EQ(text_parameter_count(arch_config("12b")), 11907350320LL);
  EXPECT_EQ(text_parameter_count(arch_config("12b_it_audio")), 11907350320LL);
  auto all = expected_tensors(arch_config("12b_audio"), Layout::UnifiedConditional);
  EXPECT_EQ(all.size(), 677u);
  auto m = count_by_modality(all);
  EXPECT_EQ(m["text"], 666);
  EXPECT_EQ(m["vision"], 10);
  EXPECT_EQ(m["audio"], 1);
  int64_t vision = 0, audio = 0;
  for (const auto& e : all) {
    if (e.modality == "vision") vision += shape_numel(e.shape);
    if (e.modality == "audio") audio += shape_numel(e.shape);
  }
  EXPECT_EQ(vision, 49922304);  // spec §3.3
  EXPECT_EQ(audio, 2457600);
  EXPECT_EQ(expected_tensors(arch_config("12b"), Layout::UnifiedConditional).size(), 676u);
  EXPECT_EQ(expected_tensors(arch_config("12b_audio"), Layout::UnifiedConditional, {false, false}).size(), 666u);
  EXPECT_EQ(expected_tensors(arch_config("12b_audio"), Layout::CausalLM).size(), 666u);
  for (const auto& e : expected_tensors(arch_config("12b"), Layout::CausalLM))
    EXPECT_EQ(e.name.rfind("model.", 0), 0u) << e.name;
}

TEST(Registry, E2BAndE4BKvSharingPleDoubleWide) {
  ModelConfig e2 = arch_config("e2b");
  EXPECT_EQ(e2.model_type, "gemma4");
  EXPECT_TRUE(e2.has_vision_tower && e2.has_audio_tower);
  EXPECT_EQ(e2.text.hidden_size, 1536);
  EXPECT_EQ(e2.text.hidden_size_per_layer_input, 256);
  EXPECT_EQ(e2.text.sliding_window, 512);
  EXPECT_EQ(full_layers(e2.text), (std::vector<int>{4, 9, 14, 19, 24, 29, 34}));
  auto L = e2.text.layers();
  for (int i = 0; i < 35; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(L[i].num_kv_heads, 1);
    EXPECT_FALSE(L[i].k_eq_v);
    EXPECT_EQ(L[i].head_dim, L[i].type == LayerType::Full ? 512 : 256);
    if (i >= 15) {
      EXPECT_EQ(L[i].kv_source, L[i].type == LayerType::Full ? 14 : 13);  // spec §6.2
      EXPECT_EQ(L[i].intermediate_size, 12288);
    } else {
      EXPECT_EQ(L[i].kv_source, -1);
      EXPECT_EQ(L[i].intermediate_size, 6144);
    }
  }
  ModelConfig e4 = arch_config("e4b");
  EXPECT_EQ(e4.text.hidden_size, 2560);
  auto L4 = e4.text.layers();
  ASSERT_EQ(L4.size(), 42u);
  EXPECT_EQ(L4[24].kv_source, 22);
  EXPECT_EQ(L4[29].kv_source, 23);
  EXPECT_EQ(L4[41].kv_source, 23);
  EXPECT_EQ(L4[41].intermediate_size, 10240);
  EXPECT_EQ(L4[23].num_kv_heads, 2);
}

TEST(Registry, LargeModels) {
  ModelConfig d = arch_config("31b");
  EXPECT_EQ(d.text.hidden_size, 5376);
  EXPECT_EQ(d.text.num_hidden_layers, 60);
  EXPECT_EQ(d.text.num_attention_heads, 32);
  EXPECT_EQ(d.text.intermediate_size, 21504);
  auto L = d.text.layers();
  EXPECT_EQ(L[0].num_kv_heads, 16);
  EXPECT_EQ(L[59].num_kv_heads, 4);
  EXPECT_TRUE(L[59].k_eq_v);
  EXPECT_TRUE(d.has_vision_tower);
  EXPECT_FALSE(d.has_audio_tower);
  ModelConfig m = arch_config("26b_a4b");
  EXPECT_EQ(m.text.hidden_size, 2816);
  EXPECT_EQ(m.text.num_hidden_layers, 30);
  EXPECT_EQ(m.text.intermediate_size, 2112);
  EXPECT_TRUE(m.text.enable_moe_block);
  EXPECT_EQ(m.text.num_experts, 128);
  EXPECT_EQ(m.text.top_k_experts, 8);
  EXPECT_EQ(m.text.moe_intermediate_size, 704);
  EXPECT_EQ(m.text.layers()[29].num_kv_heads, 2);
  auto experts = expected_tensors(m, Layout::Gemma4Conditional);
  bool found = false;
  for (const auto& e : experts)
    if (e.name == "model.language_model.layers.3.experts.gate_up_proj") {
      found = true;
      EXPECT_EQ(e.shape, (Shape{128, 1408, 2816}));
    }
  EXPECT_TRUE(found);
}

TEST(Registry, InstructVariants) {
  for (const char* n : {"12b_it", "12b_it_audio", "e2b_it", "e4b_it", "31b_it", "26b_a4b_it"}) {
    SCOPED_TRACE(n);
    ModelConfig c = arch_config(n);
    EXPECT_EQ(c.text.eos_token_ids, (std::vector<int64_t>{1, 106}));
    EXPECT_EQ(c.eos_ids(), (std::vector<int64_t>{1, 106, 50}));
    std::string base = std::string(n);
    base.erase(base.find("_it"), 3);
    ModelConfig b = arch_config(base);
    EXPECT_EQ(b.text.eos_token_ids, (std::vector<int64_t>{1}));
    EXPECT_EQ(text_parameter_count(b), text_parameter_count(c));
  }
}

TEST(Registry, EveryPresetIsValidAndSurvivesExport) {
  for (const auto& n : arch_names()) {
    SCOPED_TRACE(n);
    ModelConfig a = arch_config(n);
    ModelConfig b = ModelConfig::from_json(a.to_json());  // validates too
    EXPECT_EQ(b.model_type, a.model_type);
    auto la = a.text.layers(), lb = b.text.layers();
    ASSERT_EQ(la.size(), lb.size());
    for (size_t i = 0; i < la.size(); ++i) {
      EXPECT_EQ(la[i].head_dim, lb[i].head_dim);
      EXPECT_EQ(la[i].num_kv_heads, lb[i].num_kv_heads);
      EXPECT_EQ(la[i].kv_source, lb[i].kv_source);
      EXPECT_EQ(la[i].intermediate_size, lb[i].intermediate_size);
    }
    EXPECT_EQ(text_parameter_count(a), text_parameter_count(b));
    EXPECT_EQ(b.text.eos_token_ids, a.text.eos_token_ids);
  }
}

TEST(Registry, ArchCli) {
  auto r = run_gemma4({"arch", "list"});
  EXPECT_EQ(r.exit_code, 0);
  std::string expected;
  for (const auto& n : arch_names()) expected += n + "\n";
  EXPECT_EQ(r.out, expected);

  r = run_gemma4({"arch", "show", "12b_it"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ModelConfig c = ModelConfig::from_json(nlohmann::json::parse(r.out));
  EXPECT_EQ(c.model_type, "gemma4_unified");
  EXPECT_EQ(c.text.eos_token_ids, (std::vector<int64_t>{1, 106}));
  EXPECT_EQ(text_parameter_count(c), 11907350320LL);

  r = run_gemma4({"arch", "show", "12b_it", "--generation"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto g = nlohmann::json::parse(r.out);
  EXPECT_EQ(g["eos_token_id"], nlohmann::json({1, 106, 50}));
  EXPECT_EQ(g["suppress_tokens"], nlohmann::json({258883, 258882}));

  r = run_gemma4({"arch", "show", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown architecture 'nope'"), std::string::npos);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_EQ(run_gemma4({"arch"}).exit_code, 2);
  EXPECT_EQ(run_gemma4({"arch", "frobnicate"}).exit_code, 2);
}

}  // namespace
}  // namespace gemma4::test

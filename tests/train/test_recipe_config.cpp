// Recipe config: YAML sections, overrides, every error kind, dump round trip, the shipped recipe.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "test_util.h"
#include "train/recipe_config.h"

using namespace gemma4;

namespace {

const char* kMinimal = R"(
model:
  arch: tiny
dataset:
  path: data/train.jsonl
)";

// The Error's message, or "" when parsing succeeds.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_recipe(yaml, "recipe.yaml", overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool same(const RecipeConfig& a, const RecipeConfig& b) { return dump_recipe(a) == dump_recipe(b); }

}  // namespace

TEST(RecipeConfig, DefaultsAndSections) {
  RecipeConfig c = parse_recipe(R"(
model:
  path: /ckpt/gemma
  dtype: float32
tokenizer:
  path: /ckpt/tok.json
  chat_template: /ckpt/chat.jinja
dataset:
  path: /data/gsm8k
  format: gsm8k
  valid_split: test
  max_seq_len: 512
  max_num_tokens: 1024
  chat_mode: true
trainer:
  grad_accumulation: 4
  max_grad_norm: 0.5
optimizer:
  lr: 3.0e-4
  betas: [0.8, 0.99]
  weight_decay: 0.0
lr_scheduler:
  num_warmup_steps: 7
  final_lr_scale: 0.2
  cycle_len: 50
regime:
  num_steps: 57
  num_data_epochs: 3
  export_hf: false
common:
  seed: 12345678901234
  metric_recorders: jsonl
)",
                                "r.yaml", {});
  EXPECT_EQ(c.model.path, "/ckpt/gemma");
  EXPECT_EQ(c.tokenizer.chat_template, "/ckpt/chat.jinja");
  EXPECT_EQ(c.dataset.format, "gsm8k");
  EXPECT_EQ(c.dataset.valid_split, "test");
  EXPECT_EQ(c.dataset.max_seq_len, 512);
  EXPECT_EQ(c.dataset.max_num_tokens, 1024);
  EXPECT_TRUE(c.dataset.chat_mode);
  EXPECT_EQ(c.trainer.grad_accumulation, 4);
  EXPECT_DOUBLE_EQ(c.trainer.max_grad_norm, 0.5);
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 3e-4);
  EXPECT_EQ(c.optimizer.betas, (std::vector<double>{0.8, 0.99}));
  EXPECT_EQ(c.optimizer.weight_decay, 0.0);
  EXPECT_EQ(c.lr_scheduler.num_warmup_steps, 7);
  EXPECT_EQ(c.lr_scheduler.cycle_len, std::optional<int64_t>(50));
  EXPECT_EQ(c.regime.num_steps, 57);
  EXPECT_EQ(c.regime.num_data_epochs, std::optional<int64_t>(3));
  EXPECT_FALSE(c.regime.export_hf);
  EXPECT_EQ(c.common.seed, 12345678901234u);
  EXPECT_EQ(c.common.metric_recorders, "jsonl");
  // Untouched keys keep the struct defaults.
  RecipeConfig d;
  EXPECT_EQ(c.optimizer.eps, d.optimizer.eps);
  EXPECT_EQ(c.regime.checkpoint_every_n_steps, d.regime.checkpoint_every_n_steps);
  EXPECT_EQ(c.dataset.example_shuffle_window, d.dataset.example_shuffle_window);
}

TEST(RecipeConfig, Fairseq2Spellings) {
  // fairseq2 nests optimizer/lr_scheduler settings under `config:` and spells a few keys differently.
  RecipeConfig c = parse_recipe(std::string(kMinimal) + R"(
optimizer:
  name: adamw
  config:
    lr: 1.0e-5
    betas: [0.9, 0.95]
lr_scheduler:
  name: cosine_annealing
  config:
    final_lr_scale: 0.3
regime:
  export_hugging_face: false
)",
                                "r.yaml", {"optimizer.config.eps=1e-6", "dataset.source_encode_mode=as_is"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 1e-5);
  EXPECT_DOUBLE_EQ(c.lr_scheduler.final_lr_scale, 0.3);
  EXPECT_DOUBLE_EQ(c.optimizer.eps, 1e-6);
  EXPECT_EQ(c.dataset.src_encode_mode, "as_is");
  EXPECT_FALSE(c.regime.export_hf);
}

TEST(RecipeConfig, Overrides) {
  RecipeConfig c = parse_recipe(kMinimal, "r.yaml",
                                {"optimizer.lr=1e-4", "optimizer.betas=[0.5, 0.75]", "dataset.chat_mode=true",
                                 "regime.num_data_epochs=2", "dataset.path=other dir/x.jsonl", "model.arch=",
                                 "model.path=/m", "optimizer={weight_decay: 0.25, eps: 1.0e-7}"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 1e-4);
  EXPECT_EQ(c.optimizer.betas, (std::vector<double>{0.5, 0.75}));
  EXPECT_TRUE(c.dataset.chat_mode);
  EXPECT_EQ(c.regime.num_data_epochs, std::optional<int64_t>(2));
  EXPECT_EQ(c.dataset.path, "other dir/x.jsonl");
  EXPECT_EQ(c.model.arch, "");
  EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 0.25);
  EXPECT_DOUBLE_EQ(c.optimizer.eps, 1e-7);
  // A later override wins; null clears an optional.
  c = parse_recipe(std::string(kMinimal) + "regime:\n  num_data_epochs: 4\n", "r.yaml",
                   {"optimizer.lr=1e-4", "optimizer.lr=2e-4", "regime.num_data_epochs=null"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 2e-4);
  EXPECT_FALSE(c.regime.num_data_epochs.has_value());
}

TEST(RecipeConfig, UnknownKeys) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "optimizer:\n  lrr: 1.0\n"),
            "recipe.yaml:7: unknown key 'optimizer.lrr'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "optimiser:\n  lr: 1.0\n"), "recipe.yaml:6: unknown key 'optimiser'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "optimizer:\n  config:\n    lrr: 1.0\n"),
            "recipe.yaml:8: unknown key 'optimizer.config.lrr'");
  EXPECT_EQ(error_of(kMinimal, {"optimizer.lrr=1"}), "--config optimizer.lrr=1: unknown key 'optimizer.lrr'");
  EXPECT_EQ(error_of(kMinimal, {"optimizer={lrr: 1}"}), "--config optimizer={lrr: 1}: unknown key 'optimizer.lrr'");
  // A value where a section belongs, and a section where a value belongs.
  EXPECT_EQ(error_of(std::string(kMinimal) + "optimizer: 3\n"),
            "recipe.yaml:6: 'optimizer' must be a mapping of keys, got a scalar");
  EXPECT_EQ(error_of(std::string(kMinimal) + "trainer:\n  dtype:\n    x: 1\n"),
            "recipe.yaml:7: key 'trainer.dtype': expected a string, got a mapping");
}

TEST(RecipeConfig, WrongTypes) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "optimizer:\n  lr: fast\n"),
            "recipe.yaml:7: key 'optimizer.lr': expected a number, got 'fast'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "optimizer:\n  lr: \"2e-5\"\n"),
            "recipe.yaml:7: key 'optimizer.lr': expected a number, got the string \"2e-5\"");
  EXPECT_EQ(error_of(kMinimal, {"regime.num_steps=1.5"}),
            "--config regime.num_steps=1.5: key 'regime.num_steps': expected an integer, got '1.5'");
  EXPECT_EQ(error_of(kMinimal, {"dataset.chat_mode=yes please"}),
            "--config dataset.chat_mode=yes please: key 'dataset.chat_mode': expected a boolean (true/false), got "
            "'yes please'");
  EXPECT_EQ(error_of(kMinimal, {"optimizer.betas=0.9"}),
            "--config optimizer.betas=0.9: key 'optimizer.betas': expected a list of numbers, got '0.9'");
  EXPECT_EQ(error_of(kMinimal, {"optimizer.betas=[0.9, x]"}),
            "--config optimizer.betas=[0.9, x]: key 'optimizer.betas': expected a list of numbers, got a list");
  EXPECT_EQ(error_of(kMinimal, {"common.seed=-1"}),
            "--config common.seed=-1: key 'common.seed': expected a non-negative integer, got '-1'");
  EXPECT_EQ(error_of(kMinimal, {"regime.num_steps=[1]"}),
            "--config regime.num_steps=[1]: key 'regime.num_steps': expected an integer, got a list");
  EXPECT_EQ(error_of(kMinimal, {"optimizer.lr=nan"}),
            "--config optimizer.lr=nan: key 'optimizer.lr': expected a number, got 'nan'");
  EXPECT_EQ(error_of(kMinimal, {"optimizer.lr"}),
            "--config optimizer.lr: expected KEY=VALUE (e.g. optimizer.lr=1e-4)");
}

TEST(RecipeConfig, YamlSyntaxAndDuplicates) {
  std::string e = error_of("model:\n  arch: [tiny\n");
  EXPECT_EQ(e.rfind("recipe.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
  EXPECT_EQ(error_of(std::string(kMinimal) + "optimizer:\n  lr: 1.0\n  config:\n    lr: 2.0\n"),
            "recipe.yaml:9: key 'optimizer.config.lr' is set twice (also at recipe.yaml:7)");
  EXPECT_EQ(error_of("- a\n- b\n"), "recipe.yaml:1: '(document)' must be a mapping of keys, got a list");
}

TEST(RecipeConfig, Validation) {
  struct Case {
    std::string override, message;
  };
  std::vector<Case> cases = {
      {"optimizer.lr=0", "--config optimizer.lr=0: optimizer.lr must be > 0, got 0"},
      {"optimizer.lr=-1e-5", "--config optimizer.lr=-1e-5: optimizer.lr must be > 0, got -1e-05"},
      {"optimizer.betas=[0.9, 1.0]", "--config optimizer.betas=[0.9, 1.0]: optimizer.betas values must be in [0, 1), got 1"},
      {"optimizer.betas=[0.9]", "--config optimizer.betas=[0.9]: optimizer.betas must have 2 values, got 1"},
      {"optimizer.eps=0", "--config optimizer.eps=0: optimizer.eps must be > 0, got 0"},
      {"optimizer.weight_decay=-0.1", "--config optimizer.weight_decay=-0.1: optimizer.weight_decay must be >= 0, got -0.1"},
      {"optimizer.name=sgd", "--config optimizer.name=sgd: optimizer.name must be one of adamw, got 'sgd'"},
      {"dataset.max_num_tokens=100",
       "--config dataset.max_num_tokens=100: dataset.max_num_tokens must be >= dataset.max_seq_len (4096), got 100"},
      {"dataset.max_seq_len=0", "--config dataset.max_seq_len=0: dataset.max_seq_len must be >= 1, got 0"},
      {"dataset.min_seq_len=5000",
       "--config dataset.min_seq_len=5000: dataset.min_seq_len must be in [1, max_seq_len=4096], got 5000"},
      {"dataset.format=csv",
       "--config dataset.format=csv: dataset.format must be one of auto, src_tgt, chat, gsm8k, got 'csv'"},
      {"dataset.valid_fraction=1", "--config dataset.valid_fraction=1: dataset.valid_fraction must be in [0, 1), got 1"},
      {"dataset.tgt_encode_mode=response",
       "--config dataset.tgt_encode_mode=response: dataset.tgt_encode_mode must be one of prompt, prompt_response, "
       "default, as_is, got 'response'"},
      {"dataset.example_shuffle_window=-1",
       "--config dataset.example_shuffle_window=-1: dataset.example_shuffle_window must be >= 0, got -1"},
      {"regime.num_steps=0", "--config regime.num_steps=0: regime.num_steps must be > 0, got 0"},
      {"regime.num_data_epochs=0",
       "--config regime.num_data_epochs=0: regime.num_data_epochs must be >= 1 or null, got 0"},
      {"regime.publish_metrics_every_n_steps=0",
       "--config regime.publish_metrics_every_n_steps=0: regime.publish_metrics_every_n_steps must be >= 1, got 0"},
      {"trainer.grad_accumulation=0",
       "--config trainer.grad_accumulation=0: trainer.grad_accumulation must be >= 1, got 0"},
      {"trainer.max_grad_norm=-1", "--config trainer.max_grad_norm=-1: trainer.max_grad_norm must be >= 0, got -1"},
      {"lr_scheduler.final_lr_scale=1.5",
       "--config lr_scheduler.final_lr_scale=1.5: lr_scheduler.final_lr_scale must be in [0, 1], got 1.5"},
      {"lr_scheduler.cycle_len=0", "--config lr_scheduler.cycle_len=0: lr_scheduler.cycle_len must be >= 1, got 0"},
      {"common.metric_recorders=jsonl,wandb",
       "--config common.metric_recorders=jsonl,wandb: common.metric_recorders must be a comma-separated list of "
       "jsonl, tensorboard; got 'jsonl,wandb'"},
  };
  for (const Case& c : cases) EXPECT_EQ(error_of(kMinimal, {c.override}), c.message);
  // A value from the file is named by its line; a missing one by the file.
  EXPECT_EQ(error_of(std::string(kMinimal) + "optimizer:\n  lr: 0.0\n"), "recipe.yaml:7: optimizer.lr must be > 0, got 0");
  EXPECT_EQ(error_of("model:\n  arch: tiny\n"), "recipe.yaml (default): dataset.path must be set");
  EXPECT_EQ(error_of(kMinimal, {"model.arch="}), "recipe.yaml (default): model.path or model.arch must be set");
  EXPECT_EQ(error_of(kMinimal, {"dataset.valid_split=test", "dataset.valid_fraction=0.1"}),
            "--config dataset.valid_fraction=0.1: dataset.valid_fraction must be 0 when dataset.valid_split is set "
            "(use one or the other)");
}

TEST(RecipeConfig, DumpRoundTrip) {
  RecipeConfig c = parse_recipe(kMinimal, "r.yaml",
                                {"optimizer.lr=1.2345678901234567e-5", "optimizer.betas=[0.9, 0.95]",
                                 "lr_scheduler.final_lr_scale=0.1", "regime.num_data_epochs=3",
                                 "common.seed=18446744073709551615", "model.path=\"a \\\"quoted\\\"\\\\ path: #x\\ty\"",
                                 "tokenizer.path='true'", "dataset.valid_split=null", "trainer.max_grad_norm=3"});
  std::string y = dump_recipe(c);
  RecipeConfig back = parse_recipe(y, "dump.yaml", {});
  EXPECT_TRUE(same(c, back)) << y;
  EXPECT_EQ(back.optimizer.lr, c.optimizer.lr);  // bit-exact
  EXPECT_EQ(back.model.path, "a \"quoted\"\\ path: #x\ty");
  EXPECT_EQ(back.tokenizer.path, "true");
  EXPECT_EQ(back.common.seed, 18446744073709551615u);
  EXPECT_EQ(back.regime.num_data_epochs, std::optional<int64_t>(3));
  EXPECT_EQ(dump_recipe(back), y);  // a fixed point
  // Every key is written (so the dump documents the effective config), and floats keep a decimal point.
  EXPECT_NE(y.find("  max_grad_norm: 3.0\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  cycle_len: null\n"), std::string::npos) << y;
  EXPECT_NE(y.find("lr_scheduler:\n"), std::string::npos) << y;
  // The next double up dumps differently, and reads back bit-exactly too.
  RecipeConfig other = back;
  other.optimizer.lr = std::nextafter(back.optimizer.lr, 1.0);
  std::string y2 = dump_recipe(other);
  EXPECT_NE(y2, y);
  EXPECT_EQ(parse_recipe(y2, "dump.yaml", {}).optimizer.lr, other.optimizer.lr);
}

TEST(RecipeConfig, LoadFile) {
  std::string dir = test::temp_dir();
  test::write_file(dir + "/r.yaml", kMinimal);
  RecipeConfig c = load_recipe(dir + "/r.yaml", {"optimizer.lr=0.5"});
  EXPECT_EQ(c.model.arch, "tiny");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.5);
  try {
    load_recipe(dir + "/missing.yaml", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/missing.yaml: cannot open recipe file");
  }
  test::write_file(dir + "/bad.yaml", "regime:\n  num_steps: 10\n  bogus: 1\n");
  try {
    load_recipe(dir + "/bad.yaml", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/bad.yaml:3: unknown key 'regime.bogus'");
  }
}

TEST(RecipeConfig, ShippedGsm8kRecipe) {
  RecipeConfig c = load_recipe(test::source_dir() + "/recipes/gemma4_12b_gsm8k.yaml", {});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 2e-5);
  EXPECT_EQ(c.optimizer.betas, (std::vector<double>{0.9, 0.95}));
  EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 0.1);
  EXPECT_EQ(c.lr_scheduler.num_warmup_steps, 100);
  EXPECT_DOUBLE_EQ(c.lr_scheduler.final_lr_scale, 0.1);
  EXPECT_EQ(c.dataset.max_seq_len, 4096);
  EXPECT_EQ(c.dataset.max_num_tokens, 8192);
  EXPECT_DOUBLE_EQ(c.trainer.max_grad_norm, 1.0);
  EXPECT_EQ(c.regime.checkpoint_every_n_steps, 100);
  EXPECT_EQ(c.regime.validate_every_n_steps, 100);
  EXPECT_EQ(c.regime.keep_last_n_checkpoints, 10);
  EXPECT_EQ(c.model.arch, "12b");
  EXPECT_TRUE(c.dataset.chat_mode);
  EXPECT_EQ(c.dataset.valid_split, "test");
  // Its dump reads back to the same config.
  EXPECT_TRUE(same(parse_recipe(dump_recipe(c), "dump.yaml", {}), c));
}

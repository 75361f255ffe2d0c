// Training checkpoints: round trip, atomicity (a failure mid-write leaves the previous checkpoint intact
// and no partial step directory), keep-last pruning, recovery of interrupted saves.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "train/checkpoint.h"

using namespace gemma4;
namespace fs = std::filesystem;

namespace {

CheckpointContents contents(float v, int64_t step) {
  CheckpointContents c;
  c.model = {{"model.embed_tokens.weight", Tensor::from_f32({v, v + 1, v + 2, v + 3}, {2, 2})},
             {"model.norm.weight", Tensor::from_f32({v * 2}, {1})}};
  c.optimizer = {{"model.embed_tokens.weight.exp_avg", Tensor::from_f32({v, 0, 0, 0}, {2, 2})}};
  c.optimizer_metadata = {{"step", std::to_string(step)}};
  c.trainer_state = {{"step", step}, {"value", v}};
  return c;
}

std::vector<std::string> dir_names(const std::string& d) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(d)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(Checkpoint, SaveListAndLoadBack) {
  std::string root = test::temp_dir() + "/checkpoints";
  CheckpointManager m(root);
  EXPECT_TRUE(m.steps().empty());
  EXPECT_FALSE(m.last_step().has_value());
  m.save(10, contents(1.5f, 10));
  m.save(20, contents(2.5f, 20));
  EXPECT_EQ(m.steps(), (std::vector<int64_t>{10, 20}));
  EXPECT_EQ(m.last_step(), 20);
  EXPECT_EQ(dir_names(root), (std::vector<std::string>{"step_10", "step_20"}));

  CheckpointContents dst = contents(0.f, 0);
  load_tensors_into(m.step_dir(20) + "/model.safetensors", dst.model);
  EXPECT_EQ(dst.model[0].second.f32_vector(), (std::vector<float>{2.5f, 3.5f, 4.5f, 5.5f}));
  EXPECT_EQ(dst.model[1].second.f32_vector(), (std::vector<float>{5.0f}));
  EXPECT_EQ(read_json_file(m.step_dir(20) + "/trainer_state.json")["step"], 20);
  auto opt = SafetensorsFile::open(m.step_dir(20) + "/optimizer.safetensors");
  EXPECT_EQ(opt->metadata().at("step"), "20");

  // Loading into tensors of another shape, or with a tensor missing, is an error naming the tensor.
  std::vector<std::pair<std::string, Tensor>> wrong{{"model.norm.weight", Tensor::from_f32({0, 0}, {2})},
                                                   {"model.embed_tokens.weight", Tensor::zeros(DType::F32, {2, 2})}};
  try {
    load_tensors_into(m.step_dir(20) + "/model.safetensors", wrong);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight"), std::string::npos) << e.what();
  }
  std::vector<std::pair<std::string, Tensor>> missing{{"lm_head.weight", Tensor::zeros(DType::F32, {2, 2})}};
  EXPECT_THROW(load_tensors_into(m.step_dir(20) + "/model.safetensors", missing), Error);
  EXPECT_THROW(read_json_file(root + "/nope.json"), Error);
}

TEST(Checkpoint, FailureMidWriteKeepsPreviousCheckpoint) {
  std::string root = test::temp_dir() + "/checkpoints";
  CheckpointManager m(root);
  m.save(5, contents(1.0f, 5));
  std::string before = test::read_file(m.step_dir(5) + "/model.safetensors");
  for (const char* stage : {"model", "optimizer", "state"}) {
    m.before_write = [&](const std::string& s) {
      if (s == stage) throw Error("disk full (simulated at {})", s);
    };
    EXPECT_THROW(m.save(6, contents(9.0f, 6)), Error) << stage;
    EXPECT_EQ(m.steps(), (std::vector<int64_t>{5})) << stage;
    EXPECT_EQ(dir_names(root), (std::vector<std::string>{"step_5"})) << stage;  // no partial dir, no temp left
    EXPECT_EQ(test::read_file(m.step_dir(5) + "/model.safetensors"), before);
  }
  // Replacing an existing step: a failure keeps the old one, a success swaps it in.
  m.before_write = [](const std::string& s) {
    if (s == "state") throw Error("simulated");
  };
  EXPECT_THROW(m.save(5, contents(7.0f, 5)), Error);
  EXPECT_EQ(test::read_file(m.step_dir(5) + "/model.safetensors"), before);
  m.before_write = nullptr;
  m.save(5, contents(7.0f, 5));
  EXPECT_EQ(read_json_file(m.step_dir(5) + "/trainer_state.json")["value"], 7.0);
  EXPECT_EQ(dir_names(root), (std::vector<std::string>{"step_5"}));
}

TEST(Checkpoint, IncompleteAndForeignDirectoriesAreIgnored) {
  std::string root = test::temp_dir() + "/checkpoints";
  CheckpointManager m(root);
  m.save(3, contents(1.0f, 3));
  fs::create_directories(root + "/step_9");  // no trainer_state.json: a crash before the rename cannot make
                                             // this, but a user copy might; it is not a checkpoint
  fs::create_directories(root + "/notes");
  fs::create_directories(root + "/step_x");
  EXPECT_EQ(m.steps(), (std::vector<int64_t>{3}));
  m.save(4, contents(1.0f, 4));
  m.prune(1);
  // Only complete checkpoints are pruned; everything else is left alone.
  EXPECT_EQ(dir_names(root), (std::vector<std::string>{"notes", "step_4", "step_9", "step_x"}));
}

TEST(Checkpoint, KeepLastPrunesOldest) {
  std::string root = test::temp_dir() + "/checkpoints";
  CheckpointManager m(root);
  for (int64_t s : {2, 4, 6, 8, 10}) {
    m.save(s, contents(float(s), s));
    m.prune(3);
  }
  EXPECT_EQ(m.steps(), (std::vector<int64_t>{6, 8, 10}));
  m.prune(0);  // 0 keeps everything
  EXPECT_EQ(m.steps().size(), 3u);
  m.prune(1);
  EXPECT_EQ(m.steps(), (std::vector<int64_t>{10}));
}

TEST(Checkpoint, StaleTemporariesAreCleanedAndInterruptedSwapRestored) {
  std::string root = test::temp_dir() + "/checkpoints";
  CheckpointManager m(root);
  m.save(7, contents(1.0f, 7));
  // A save interrupted after moving step_7 aside but before the new one was renamed in.
  fs::rename(root + "/step_7", root + "/.old_step_7.12345");
  fs::create_directories(root + "/.tmp_step_7.12345");
  fs::create_directories(root + "/.tmp_step_8.999");
  EXPECT_TRUE(m.steps().empty());
  m.remove_stale_temps();
  EXPECT_EQ(dir_names(root), (std::vector<std::string>{"step_7"}));
  EXPECT_EQ(m.last_step(), 7);
}

TEST(WriteFileAtomic, ReplacesWholeFile) {
  std::string p = test::temp_dir() + "/a.json";
  write_file_atomic(p, "one");
  write_file_atomic(p, "two");
  EXPECT_EQ(test::read_file(p), "two");
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  EXPECT_THROW(write_file_atomic("/nonexistent_dir_g4/x.json", "x"), Error);
}

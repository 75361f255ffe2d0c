// Metric aggregation with fairseq2's names, the JSONL/TensorBoard recorders, and resume truncation.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "test_util.h"
#include "train/metrics.h"

using namespace gemma4;
namespace fs = std::filesystem;

namespace {

Example example(int len, int targets) {
  Example e;
  e.ids.assign(size_t(len), 5);
  e.target.assign(size_t(len), 0);
  for (int t = len - targets; t < len; ++t) e.target[size_t(t)] = 1;
  return e;
}

Batch batch(const std::vector<std::pair<int, int>>& seqs) {
  Batch b;
  int64_t longest = 0;
  for (auto [len, tg] : seqs) {
    b.examples.push_back(example(len, tg));
    b.num_elements += len;
    longest = std::max<int64_t>(longest, len);
  }
  b.padded_elements = longest * int64_t(seqs.size());
  return b;
}

}  // namespace

TEST(Metrics, TrainValuesAggregateLikeFairseq2) {
  MetricBag bag;
  // Step 1: one micro-batch of 2 sequences (lengths 6 and 4, 3 + 2 targets), nll 5.0 over 5 targets.
  Batch b1 = batch({{6, 3}, {4, 2}});
  ASSERT_EQ(b1.num_target_elements(), 5);
  bag.add_batch(b1, LossStats{5.0, 5, 2});
  bag.add_step(2.0);
  // Step 2: one sequence of length 5 with 4 targets, nll 2.0.
  Batch b2 = batch({{5, 4}});
  bag.add_batch(b2, LossStats{2.0, 4, 1});
  bag.add_step(1.0);
  bag.data_time = 0.5, bag.compute_time = 1.5;
  auto v = train_values(bag, 2, 1e-5, 0, 3.0, 10.0);
  EXPECT_EQ(v["step"], 2);
  EXPECT_DOUBLE_EQ(v["nll_loss"].get<double>(), 7.0 / 9.0);  // per target token over the window
  EXPECT_DOUBLE_EQ(v["grad_norm"].get<double>(), 1.5);       // mean over steps
  EXPECT_DOUBLE_EQ(v["lr"].get<double>(), 1e-5);
  EXPECT_EQ(v["num_examples"], 3);
  EXPECT_EQ(v["num_elements"], 15);
  EXPECT_EQ(v["num_target_elements"], 9);
  EXPECT_EQ(v["padding"], 2);                               // (2*6 - 10) + (5 - 5)
  EXPECT_DOUBLE_EQ(v["padding_ratio"].get<double>(), 2.0 / 17.0);
  EXPECT_EQ(v["batch_size"], 1);                            // 3 examples // 2 steps
  EXPECT_EQ(v["elements_per_batch"], 7);
  EXPECT_DOUBLE_EQ(v["elements_per_second"].get<double>(), 15.0 / 2.0);
  EXPECT_EQ(v["total_num_examples"], 3);
  EXPECT_DOUBLE_EQ(v["wall_time"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(v["total_time"].get<double>(), 10.0);
  for (const char* k : {"data_epoch", "data_time", "compute_time"}) EXPECT_TRUE(v.contains(k)) << k;

  // The window resets, the totals do not; the state survives JSON exactly.
  bag.reset_window();
  bag.add_batch(b2, LossStats{1.0, 4, 0});
  bag.add_step(0.5);
  MetricBag back = MetricBag::from_json(nlohmann::json::parse(bag.to_json().dump()));
  auto v2 = train_values(back, 3, 1e-5, 1, 0, 0);
  EXPECT_EQ(v2["num_examples"], 1);
  EXPECT_EQ(v2["total_num_examples"], 4);
  EXPECT_DOUBLE_EQ(v2["nll_loss"].get<double>(), 0.25);
  EXPECT_EQ(v2["data_epoch"], 1);
  EXPECT_THROW(MetricBag::from_json(nlohmann::json{{"nll_sum", 1.0}}), Error);

  auto vv = valid_values(bag, 3, 2.0, 5.0);
  EXPECT_DOUBLE_EQ(vv["nll_loss"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(vv["elements_per_second"].get<double>(), 2.5);
  EXPECT_FALSE(vv.contains("lr"));
}

TEST(Metrics, RecorderWritesJsonlAndTensorBoard) {
  std::string out = test::temp_dir();
  {
    MetricRecorder r(out, "jsonl,tensorboard");
    for (int s = 1; s <= 4; ++s) r.record("train", nlohmann::ordered_json{{"step", s}, {"nll_loss", 1.0 / s}});
    r.record("valid", nlohmann::ordered_json{{"step", 4}, {"nll_loss", 0.5}});
  }
  auto recs = read_metrics_jsonl(out + "/metrics/train.jsonl");
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[2]["step"], 3);
  EXPECT_EQ(recs[2]["nll_loss"].get<double>(), 1.0 / 3);  // full double precision
  EXPECT_EQ(recs[2].begin().key(), "step");               // step first
  EXPECT_EQ(read_metrics_jsonl(out + "/metrics/valid.jsonl").size(), 1u);
  int tb_files = 0;
  for (const char* run : {"train", "valid"})
    for (const auto& e : fs::directory_iterator(out + "/tb/" + std::string(run)))
      tb_files += e.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  EXPECT_EQ(tb_files, 2);

  // Resuming at step 2 drops the later records (and a torn last line), keeps the earlier ones byte for byte.
  std::string before = test::read_file(out + "/metrics/train.jsonl");
  std::string first_two = before.substr(0, before.find('\n', before.find('\n') + 1) + 1);
  test::write_file(out + "/metrics/train.jsonl", before + "{\"step\": 5, \"nll_lo");
  {
    MetricRecorder r(out, "jsonl");
    r.resume_at(2);
    EXPECT_EQ(test::read_file(out + "/metrics/train.jsonl"), first_two);
    EXPECT_TRUE(read_metrics_jsonl(out + "/metrics/valid.jsonl").empty());  // its step-4 record is gone
    r.record("train", nlohmann::ordered_json{{"step", 3}, {"nll_loss", 0.1}});
  }
  auto after = read_metrics_jsonl(out + "/metrics/train.jsonl");
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after[2]["step"], 3);
}

TEST(Metrics, BadInput) {
  EXPECT_THROW(MetricRecorder(test::temp_dir(), "jsonl,wandb"), Error);
  MetricRecorder none(test::temp_dir(), "none");
  none.record("train", nlohmann::ordered_json{{"step", 1}});  // records nothing, no error
  std::string p = test::temp_dir() + "/m.jsonl";
  test::write_file(p, "{\"step\": 1}\nnot json\n");
  try {
    read_metrics_jsonl(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.jsonl:2"), std::string::npos) << e.what();
  }
}

// Training and validation metrics with fairseq2's names and aggregation rules, and their recorders:
// OUTPUT_DIR/metrics/{train,valid}.jsonl (one JSON object per publication) and TensorBoard event files
// under OUTPUT_DIR/tb/{train,valid}/.
//
// Train values (published every regime.publish_metrics_every_n_steps, aggregated over the steps since the
// last publication): nll_loss (summed nll / number of target tokens, natural log), grad_norm (mean of the
// steps' pre-clipping norms), lr (of the last step), num_examples, num_elements, num_target_elements,
// padding, total_num_* (since the start of training), batch_size (examples per step), elements_per_batch,
// padding_ratio = padding / (num_elements + padding), elements_per_second, data_epoch (1-based), and the timing
// fields data_time, compute_time, wall_time (this process), total_time (all runs of this output dir).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "train/data.h"
#include "train/grad.h"

namespace gemma4 {

class TensorBoardWriter;

// Fields that depend on the clock (excluded when comparing runs).
const std::set<std::string>& timing_metric_names();

// Sums behind the published values. The window part is cleared after each publication; totals are kept.
// Saved in the checkpoint so that a resumed run publishes exactly the same values.
struct MetricBag {
  double nll_sum = 0;
  int64_t num_targets = 0;  // targets scored (the weight of nll_loss)
  int64_t num_examples = 0, num_elements = 0, num_target_elements = 0, padding = 0;
  double grad_norm_sum = 0;
  int64_t num_steps = 0;  // optimizer steps (train) or batches (valid) in the window
  int64_t total_num_examples = 0, total_num_elements = 0, total_num_target_elements = 0;
  double data_time = 0, compute_time = 0;  // seconds, window

  void add_batch(const Batch& b, const LossStats& s);
  void add_step(double grad_norm) { grad_norm_sum += grad_norm, ++num_steps; }
  void reset_window();
  nlohmann::json to_json() const;
  static MetricBag from_json(const nlohmann::json& j);  // throws Error on a malformed state
};

// The published train values for `step` (wall_time: seconds of this process; total_time: of all runs).
nlohmann::ordered_json train_values(const MetricBag& bag, int64_t step, double lr, int64_t data_epoch, double wall_time,
                                    double total_time);
// Validation values (bag over the whole validation set; elapsed = seconds it took).
nlohmann::ordered_json valid_values(const MetricBag& bag, int64_t step, double elapsed, double wall_time);

class MetricRecorder {
 public:
  // recorders: comma-separated subset of "jsonl", "tensorboard" ("" or "none": nothing). Error otherwise.
  MetricRecorder(const std::string& output_dir, const std::string& recorders);
  ~MetricRecorder();

  // Appends values (which must contain "step") to run `run` ("train" or "valid").
  void record(const std::string& run, const nlohmann::ordered_json& values);
  // Resuming from the checkpoint of `step`: drops records with a larger step from the JSONL files (written
  // by the interrupted run, they will be produced again) and tells TensorBoard to discard them too.
  void resume_at(int64_t step);

  std::string jsonl_path(const std::string& run) const;

 private:
  std::string dir_;
  bool jsonl_ = false, tb_ = false;
  std::map<std::string, std::unique_ptr<TensorBoardWriter>> tb_writers_;
  int64_t resumed_step_ = -1;
};

// Reads a metrics JSONL file (one object per line). Error naming file and line on a malformed line.
std::vector<nlohmann::ordered_json> read_metrics_jsonl(const std::string& path);

}  // namespace gemma4

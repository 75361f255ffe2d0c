// Training checkpoints: OUTPUT_DIR/checkpoints/step_N/ holding
//   model.safetensors     the F32 master weights of the trained parameters, with their HF names
//   optimizer.safetensors the AdamW moments ("<name>.exp_avg", "<name>.exp_avg_sq"), metadata {"step"}
//   trainer_state.json    step, data stream state, metric sums, ... (written last)
// A checkpoint is written into checkpoints/.tmp_step_N.<pid>/ and renamed into place, so step_N either
// exists complete or not at all; an interrupted save leaves the previous checkpoints untouched.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace gemma4 {

struct CheckpointContents {
  std::vector<std::pair<std::string, Tensor>> model;
  std::vector<std::pair<std::string, Tensor>> optimizer;
  std::map<std::string, std::string> optimizer_metadata;
  nlohmann::json trainer_state;
};

class CheckpointManager {
 public:
  explicit CheckpointManager(std::string checkpoints_dir);

  const std::string& dir() const { return dir_; }
  std::string step_dir(int64_t step) const;
  // Steps of the complete checkpoints (those with trainer_state.json), ascending.
  std::vector<int64_t> steps() const;
  std::optional<int64_t> last_step() const;

  // Writes the checkpoint of `step` atomically (replacing an existing step_N only once the new one is complete).
  void save(int64_t step, const CheckpointContents& c);
  // Deletes the oldest complete checkpoints so that at most keep_last remain (keep_last <= 0: keep all).
  // Only step_N directories written by this manager's layout are touched.
  void prune(int64_t keep_last);
  // Removes leftover temporary directories of interrupted saves.
  void remove_stale_temps();

  // Test hook: called with "model", "optimizer", "state" before writing each part; it may throw to
  // simulate a failure mid-write.
  std::function<void(const std::string&)> before_write;

 private:
  std::string dir_;
};

// Copies the F32 tensors of `file` into `dst` (same names, dtypes and shapes; nothing missing, nothing extra).
void load_tensors_into(const std::string& file, const std::vector<std::pair<std::string, Tensor>>& dst);
// Reads a JSON file (Error naming the file when missing or malformed).
nlohmann::json read_json_file(const std::string& path);
// Writes text to PATH.tmp, then renames it to PATH.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace gemma4

// Decode steps as CUDA graphs (ops.h begin_step / end_step). A decode step of a 12B issues ~600 small
// launches; issuing them costs the host more time than the GPU needs to run them. A step is recorded once
// per key and replayed afterwards: the model code still runs on the host (it keeps the KV cache bookkeeping
// and produces the step's small host arrays), but the ops launch nothing; they only
//   - take their device memory from the recording (block(): the same addresses, in the same order),
//   - write their host arrays (positions, ids, cache rows, key ranges) into the recording's pinned upload
//     area (upload()); one host-to-device copy ahead of the graph moves the whole area. The area is double
//     buffered (two instantiations of the recording, one per host area, launched in turn), so the host can
//     prepare step n+1 while step n has not yet copied its arrays (a pipelined decode, generate()),
//   - check that they are the op the recording holds at that point (skip(): a hash of the op's pointers,
//     shapes and scalars; a difference is an error, never a silent wrong result).
// The caller's key must pin everything else: the caches' storage and the attention key capacities.
// Occurrences of a key: the first runs eagerly (it creates lazily made state: bf16 weight copies, uploaded
// constants, cuBLAS state), the second is recorded and launched, later ones replay. At most kMaxGraphs
// recordings are kept (least recently used evicted).
#pragma once
#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <vector>

#include "ops/cuda/device_pool.h"
#include "ops/ops.h"

namespace gemma4::cuda {

class StepGraphs {
 public:
  enum class Mode { Eager, Capture, Replay };
  StepGraphs(cudaStream_t stream, std::shared_ptr<DevicePool> pool);
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // GEMMA4_CUDA_GRAPHS=0 turns recording off (every step eager).
  bool enabled() const { return enabled_; }
  void set_enabled(bool on) { enabled_ = on; }
  Mode mode() const { return mode_; }
  bool active() const { return mode_ != Mode::Eager; }
  void begin(uint64_t key);
  // Capture: ends the recording, instantiates and launches it; replay: launches the recording.
  void end();
  // Leaves a step that failed midway (an exception): the recording is dropped and the key stays eager.
  void abort();

  // ---- inside a recorded or replayed step
  std::shared_ptr<void> block(size_t bytes);
  // Device address (valid for the step) holding a copy of p[0, bytes).
  void* upload(const void* p, size_t bytes);
  // True when the op must not launch (replay). `what` names the op in errors.
  bool skip(const char* what, std::initializer_list<uint64_t> sig);
  // Recorded steps launched so far, their host time (begin to launch) and GPU time (launch to done; the
  // GPU time of a step is read when the next recorded step begins or stats() is called).
  Ops::StepStats stats() const;

  static constexpr size_t kUploadBytes = size_t(1) << 20;
  static constexpr int kMaxGraphs = 6;

 private:
  struct Graph {
    int seen = 0;
    bool broken = false;  // recording failed: this key runs eagerly
    uint64_t last_use = 0;
    // Launch n uses instance n % 2: its own host upload area, rewritten only after that instance's previous
    // launch is done (the device side is shared: launches run in stream order).
    int parity = 0;  // of the next launch
    cudaGraphExec_t exec[2] = {nullptr, nullptr};
    cudaEvent_t start[2] = {nullptr, nullptr}, done[2] = {nullptr, nullptr};  // around each launch
    bool timing_pending[2] = {false, false};
    std::vector<uint64_t> sigs;
    std::vector<std::shared_ptr<void>> blocks;
    std::vector<size_t> block_bytes;
    std::vector<size_t> upload_bytes;
    char* pinned[2] = {nullptr, nullptr};  // host sides of the upload area
    std::shared_ptr<void> dev;             // device side
    size_t upload_used = 0;
    ~Graph();
  };
  [[noreturn]] void diverged(const char* what, size_t index);
  void evict();

  cudaStream_t stream_;
  std::shared_ptr<DevicePool> pool_;
  bool enabled_ = true;
  Mode mode_ = Mode::Eager;
  std::map<uint64_t, std::unique_ptr<Graph>> graphs_;
  Graph* cur_ = nullptr;
  size_t op_i_ = 0, block_i_ = 0, upload_i_ = 0;
  void collect_timing(Graph& g, int parity) const;
  uint64_t clock_ = 0;
  std::chrono::steady_clock::time_point began_{};
  mutable Ops::StepStats stats_;
};

}  // namespace gemma4::cuda

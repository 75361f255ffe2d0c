// Per-op GPU time of the CUDA backend, for finding where a forward spends its time (no nsys needed):
// GEMMA4_CUDA_PROFILE=1 brackets every op with CUDA events, groups them by a label (op + shape class) and
// prints the table (GPU ms, calls, share, host us per call, GPU idle before the op) when the backend is destroyed.
// An op's GPU time includes any wait for the host inside it, and the events add host work of their own, so
// host-heavy ops read high here: check them with bench_cuda --micro. Off: one branch per op.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace gemma4::cuda {

class OpProfiler {
 public:
  OpProfiler() {
    const char* v = std::getenv("GEMMA4_CUDA_PROFILE");
    on_ = v && *v && *v != '0';
  }
  ~OpProfiler() { report(); }
  bool enabled() const { return on_; }
  void set_stream(cudaStream_t s) { stream_ = s; }

  class Scope {
   public:
    Scope(OpProfiler* p, std::string label) : p_(p), label_(std::move(label)) {
      if (p_) start_ = p_->record(), host0_ = std::chrono::steady_clock::now();
    }
    ~Scope() {
      if (!p_) return;
      const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - host0_).count();
      p_->marks_.push_back({label_, start_, p_->record(), us});
    }

   private:
    OpProfiler* p_;
    std::string label_;
    cudaEvent_t start_{};
    std::chrono::steady_clock::time_point host0_{};
  };
  // label_fn is only called when profiling is on.
  template <typename F>
  Scope scope(F&& label_fn) {
    return on_ ? Scope(this, label_fn()) : Scope(nullptr, {});
  }

  void report() {
    if (!on_ || marks_.empty()) return;
    cudaDeviceSynchronize();
    struct Acc {
      double ms = 0, host_us = 0, idle_ms = 0;
      long calls = 0;
    };
    std::map<std::string, Acc> by;
    double total = 0, idle = 0;
    for (size_t i = 0; i < marks_.size(); ++i) {
      const Mark& m = marks_[i];
      float ms = 0, gap = 0;
      cudaEventElapsedTime(&ms, m.a, m.b);
      // The GPU's idle time between the previous op's end and this op's start: the host was late with this op
      // (gaps of more than 10 ms are taken as host work outside the ops: uploads, the caller).
      if (i > 0 && cudaEventElapsedTime(&gap, marks_[i - 1].b, m.a) == cudaSuccess && gap > 0 && gap < 10)
        by[m.label].idle_ms += gap, idle += gap;
      by[m.label].ms += ms;
      by[m.label].host_us += m.host_us;
      by[m.label].calls += 1;
      total += ms;
    }
    for (auto& m : marks_) cudaEventDestroy(m.a), cudaEventDestroy(m.b);
    marks_.clear();
    std::vector<std::pair<std::string, Acc>> rows(by.begin(), by.end());
    std::sort(rows.begin(), rows.end(), [](auto& x, auto& y) { return x.second.ms > y.second.ms; });
    std::fprintf(stderr,
                 "GEMMA4_CUDA_PROFILE: %.1f ms of GPU time in ops (GPU time per op includes waits for the host), "
                 "%.1f ms idle between ops\n%-56s %10s %8s %7s %12s %10s\n",
                 total, idle, "op", "GPU ms", "calls", "share", "host us/call", "idle ms");
    for (auto& [label, v] : rows)
      std::fprintf(stderr, "%-56s %10.2f %8ld %6.1f%% %12.1f %10.2f\n", label.c_str(), v.ms, v.calls,
                   100.0 * v.ms / total, v.host_us / v.calls, v.idle_ms);
  }

 private:
  struct Mark {
    std::string label;
    cudaEvent_t a, b;
    double host_us;
  };
  cudaEvent_t record() {
    cudaEvent_t e;
    cudaEventCreate(&e);
    cudaEventRecord(e, stream_);
    return e;
  }
  bool on_ = false;
  cudaStream_t stream_ = nullptr;
  std::vector<Mark> marks_;
};

}  // namespace gemma4::cuda

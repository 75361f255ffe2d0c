// Per-op GPU time of the CUDA backend, for finding where a forward spends its time (no nsys needed):
// GEMMA4_CUDA_PROFILE=1 brackets every op with CUDA events, groups them by a label (op + shape class) and
// prints the table (GPU ms, calls, share) when the backend is destroyed. Off: one branch per op.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
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
  bool on() const { return on_; }

  class Scope {
   public:
    Scope(OpProfiler* p, std::string label) : p_(p), label_(std::move(label)) {
      if (p_) start_ = p_->record();
    }
    ~Scope() {
      if (p_) p_->marks_.push_back({label_, start_, p_->record()});
    }

   private:
    OpProfiler* p_;
    std::string label_;
    cudaEvent_t start_{};
  };
  // label_fn is only called when profiling is on.
  template <typename F>
  Scope scope(F&& label_fn) {
    return on_ ? Scope(this, label_fn()) : Scope(nullptr, {});
  }

  void report() {
    if (!on_ || marks_.empty()) return;
    cudaDeviceSynchronize();
    std::map<std::string, std::pair<double, long>> by;
    double total = 0;
    for (auto& m : marks_) {
      float ms = 0;
      cudaEventElapsedTime(&ms, m.a, m.b);
      by[m.label].first += ms;
      by[m.label].second += 1;
      total += ms;
      cudaEventDestroy(m.a);
      cudaEventDestroy(m.b);
    }
    marks_.clear();
    std::vector<std::pair<std::string, std::pair<double, long>>> rows(by.begin(), by.end());
    std::sort(rows.begin(), rows.end(), [](auto& x, auto& y) { return x.second.first > y.second.first; });
    std::fprintf(stderr, "GEMMA4_CUDA_PROFILE: %.1f ms of GPU time in ops\n%-64s %10s %8s %7s\n", total, "op", "ms",
                 "calls", "share");
    for (auto& [label, v] : rows)
      std::fprintf(stderr, "%-64s %10.2f %8ld %6.1f%%\n", label.c_str(), v.first, v.second, 100.0 * v.first / total);
  }

 private:
  struct Mark {
    std::string label;
    cudaEvent_t a, b;
  };
  cudaEvent_t record() {
    cudaEvent_t e;
    cudaEventCreate(&e);
    cudaEventRecord(e, nullptr);
    return e;
  }
  bool on_ = false;
  std::vector<Mark> marks_;
};

}  // namespace gemma4::cuda

// Console progress of a training run on stderr: a redrawn bar "step 12/100 [####    ] loss 2.31 lr 1.0e-05
// 3.2 steps/s ETA 0:27" when stderr is a terminal, else plain lines at each metrics publication.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace gemma4 {

class ProgressReporter {
 public:
  // total: the last step; start: the step the run starts after (0, or the resumed checkpoint).
  ProgressReporter(int64_t total, int64_t start, std::FILE* out = stderr);
  ProgressReporter(int64_t total, int64_t start, std::FILE* out, bool tty);

  // After each optimizer step (redraws the bar on a TTY).
  void step(int64_t step, double loss, double lr);
  // A line of text (e.g. published metrics, validation); on a TTY it is printed above the bar.
  void message(const std::string& line);
  void finish();
  bool tty() const { return tty_; }
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

  // "1:02:03" / "2:03" for seconds >= 0.
  static std::string format_duration(double seconds);
  // The bar line (without carriage return) for the given state (exposed for tests).
  std::string bar_line(int64_t step, double loss, double lr, double elapsed) const;

 private:
  int64_t total_, start_;
  std::FILE* out_;
  bool tty_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point t0_;
  std::chrono::steady_clock::time_point last_draw_{};
  int64_t last_step_ = 0;
  double last_loss_ = 0, last_lr_ = 0;
};

}  // namespace gemma4

#include "train/progress.h"

#include <unistd.h>

#include <cmath>

#include <fmt/format.h>

namespace gemma4 {

ProgressReporter::ProgressReporter(int64_t total, int64_t start, std::FILE* out)
    : ProgressReporter(total, start, out, isatty(fileno(out)) != 0) {}

ProgressReporter::ProgressReporter(int64_t total, int64_t start, std::FILE* out, bool tty)
    : total_(total), start_(start), out_(out), tty_(tty), t0_(std::chrono::steady_clock::now()) {}

std::string ProgressReporter::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  int64_t t = int64_t(s + 0.5);
  int64_t h = t / 3600, m = (t / 60) % 60, sec = t % 60;
  if (h > 0) return fmt::format("{}:{:02d}:{:02d}", h, m, sec);
  return fmt::format("{}:{:02d}", m, sec);
}

std::string ProgressReporter::bar_line(int64_t step, double loss, double lr, double elapsed) const {
  const int width = 24;
  double frac = total_ > 0 ? std::min(1.0, double(step) / double(total_)) : 1.0;
  int filled = int(frac * width);
  std::string bar(size_t(filled), '#');
  bar.append(size_t(width - filled), ' ');
  int64_t done = step - start_;
  double rate = elapsed > 0 && done > 0 ? double(done) / elapsed : 0.0;
  std::string eta = rate > 0 ? format_duration(double(total_ - step) / rate) : "?";
  return fmt::format("step {}/{} [{}] loss {:.4f} lr {:.2e} {:.2f} steps/s elapsed {} ETA {}", step, total_, bar, loss, lr,
                     rate, format_duration(elapsed), eta);
}

void ProgressReporter::step(int64_t step, double loss, double lr) {
  last_step_ = step, last_loss_ = loss, last_lr_ = lr;
  if (!tty_) return;
  auto now = std::chrono::steady_clock::now();
  if (bar_shown_ && step != total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  double elapsed = std::chrono::duration<double>(now - t0_).count();
  std::fprintf(out_, "\r\033[K%s", bar_line(step, loss, lr, elapsed).c_str());
  std::fflush(out_);
  bar_shown_ = true;
}

void ProgressReporter::message(const std::string& line) {
  if (tty_ && bar_shown_) {
    std::fprintf(out_, "\r\033[K%s\n", line.c_str());
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    std::fprintf(out_, "%s", bar_line(last_step_, last_loss_, last_lr_, elapsed).c_str());
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void ProgressReporter::finish() {
  if (tty_ && bar_shown_) std::fprintf(out_, "\n");
  bar_shown_ = false;
  std::fflush(out_);
}

}  // namespace gemma4

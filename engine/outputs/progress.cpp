// Console progress bar / progress lines and the ETA rule (see progress.h).
#include "engine/outputs/progress.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace smol {
namespace {

constexpr int kBarWidth = 24;

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string printf_string(const char* format, auto... args) {
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, format, args...);
  return buffer;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds)) return "-:--:--";
  const auto total = static_cast<long long>(std::llround(std::max(seconds, 0.0)));
  return printf_string("%lld:%02lld:%02lld", total / 3600, total / 60 % 60, total % 60);
}

Progress::Progress(int64_t total_steps, std::FILE* out, bool interactive, Clock clock)
    : total_steps_(total_steps),
      out_(out),
      interactive_(interactive),
      clock_(clock ? std::move(clock) : Clock(steady_seconds)) {
  SMOL_CHECK(total_steps > 0, "progress: total_steps must be positive, got ", total_steps);
}

void Progress::start(int64_t step0) {
  start_step_ = step0;
  last_step_ = step0;
  start_time_ = clock_();
  have_anchor_ = false;
}

double Progress::eta_seconds(int64_t step) const {
  if (!have_anchor_) return std::numeric_limits<double>::quiet_NaN();
  const double now = clock_();
  double seconds_per_step;
  if (step > anchor_step_) {
    seconds_per_step = (now - anchor_time_) / static_cast<double>(step - anchor_step_);
  } else if (step > start_step_) {  // one update so far: only the warm-up-laden measurement
    seconds_per_step = (now - start_time_) / static_cast<double>(step - start_step_);
  } else {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return seconds_per_step * static_cast<double>(std::max<int64_t>(total_steps_ - step, 0));
}

std::string Progress::status_text(double loss, double lr, double tokens_per_second) const {
  // NaN: no loss read yet (the trainer reads losses at logging steps, docs/design.md §4).
  if (std::isnan(loss))
    return printf_string("loss -      | lr %.3e | %.0f tok/s", lr, tokens_per_second);
  return printf_string("loss %.4f | lr %.3e | %.0f tok/s", loss, lr, tokens_per_second);
}

void Progress::update(int64_t step, double loss, double lr, double tokens_per_second) {
  if (!have_anchor_) {
    have_anchor_ = true;
    anchor_step_ = step;
    anchor_time_ = clock_();
  }
  last_step_ = step;
  const double elapsed = clock_() - start_time_;
  const double eta = eta_seconds(step);
  const double percent = 100.0 * static_cast<double>(step) / static_cast<double>(total_steps_);
  const std::string status = status_text(loss, lr, tokens_per_second);
  if (interactive_) {
    const auto filled = static_cast<int>(std::clamp(percent / 100.0, 0.0, 1.0) * kBarWidth);
    const std::string bar = std::string(filled, '#') + std::string(kBarWidth - filled, '.');
    draw_bar(printf_string("[%s] %lld/%lld %3.0f%% | %s | %s | ETA %s", bar.c_str(),
                           static_cast<long long>(step), static_cast<long long>(total_steps_),
                           percent, status.c_str(), format_duration(elapsed).c_str(),
                           format_duration(eta).c_str()));
  } else {
    write(printf_string("step %lld/%lld (%.1f%%) | %s | elapsed %s | ETA %s\n",
                        static_cast<long long>(step), static_cast<long long>(total_steps_), percent,
                        status.c_str(), format_duration(elapsed).c_str(),
                        format_duration(eta).c_str()));
  }
}

void Progress::draw_bar(const std::string& line) {
  // Spaces cover what is left of a longer previous line; '\r' returns before and after them.
  const size_t old_length = bar_line_.size();
  std::string text = "\r" + line;
  if (line.size() < old_length) text += std::string(old_length - line.size(), ' ');
  write(text);
  bar_line_ = line;
}

void Progress::message(const std::string& text) {
  if (interactive_ && !bar_line_.empty()) {
    std::string text_over_bar = "\r";  // built by appends: GCC 12 misreads "\r" + string&&
    text_over_bar.append(bar_line_.size(), ' ').append("\r").append(text).append("\n\r");
    write(text_over_bar.append(bar_line_));
  } else {
    write(text + "\n");
  }
}

void Progress::finish() {
  const double elapsed = clock_() - start_time_;
  if (interactive_) {
    if (!bar_line_.empty()) write("\n");
    bar_line_.clear();
  }
  write(printf_string("done: %lld steps in %s\n", static_cast<long long>(last_step_ - start_step_),
                      format_duration(elapsed).c_str()));
}

void Progress::write(const std::string& text) {
  if (out_ == nullptr) return;
  std::fputs(text.c_str(), out_);
  std::fflush(out_);
}

}  // namespace smol

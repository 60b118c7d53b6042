// Console progress for `smolengine train` (docs/design.md §7): step/total, loss, lr, tokens/s,
// elapsed time and ETA.
//
// Interactive (stdout is a terminal): one line rewritten in place with '\r' (the bar is 24
// wide; shortened here), padded with spaces when shorter than the line it replaces:
//   [##....] 120/2802   4% | loss 1.2345 | lr 2.000e-04 | 51234 tok/s | 0:01:02 | ETA 1:23:45
// message() clears the bar, prints its own line and redraws the bar, so log lines never
// interleave with it. Not interactive (a log file, CI): one plain line per update(), which
// the caller calls at its logging steps:
//   step 120/2802 (4.3%) | loss 1.2345 | lr 2.000e-04 | 51234 tok/s | elapsed 0:01:02 | ETA …
//
// ETA = (total − step) × the mean seconds per step measured from the first update() on. The
// time before it (start() to the first update) is left out because the first step carries
// the warm-up (allocation, cuBLASLt plans, first-touch of pages) and would inflate the
// estimate; until a second update exists the ETA uses the time since start(), warm-up
// included, as the only measurement there is.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace smol {

// h:mm:ss of `seconds` rounded to the nearest second (0 → "0:00:00", 59.6 → "0:01:00",
// 3725 → "1:02:05"; hours are not wrapped into days). Negative values read as 0; a
// non-finite value (no estimate) is "-:--:--".
std::string format_duration(double seconds);

class Progress {
 public:
  // Seconds from an arbitrary origin; tests pass a fake clock.
  using Clock = std::function<double()>;

  // `out` is not owned; nullptr prints nothing (data-parallel ranks other than 0). `clock`
  // defaults to std::chrono::steady_clock.
  Progress(int64_t total_steps, std::FILE* out, bool interactive, Clock clock = {});

  // Starts the clock at `step0` (0, or the checkpoint step on resume).
  void start(int64_t step0);
  // Reports that `step` optimizer steps are done; loss, lr and tokens/s are shown as given (a NaN
  // loss as "loss -": none read yet).
  void update(int64_t step, double loss, double lr, double tokens_per_second);
  // Prints `text` as its own line without breaking the bar.
  void message(const std::string& text);
  // Ends the bar (interactive) or prints a closing line with the total time.
  void finish();

  // Seconds left by the rule above, at `step` and the clock's current time; NaN before the
  // first update. Exposed for tests and for the caller's own logs.
  double eta_seconds(int64_t step) const;

 private:
  std::string status_text(double loss, double lr, double tokens_per_second) const;
  void draw_bar(const std::string& line);
  void write(const std::string& text);

  int64_t total_steps_;
  std::FILE* out_;
  bool interactive_;
  Clock clock_;
  int64_t start_step_ = 0;
  double start_time_ = 0.0;
  bool have_anchor_ = false;  // the first update, from which steps are timed
  int64_t anchor_step_ = 0;
  double anchor_time_ = 0.0;
  int64_t last_step_ = 0;
  std::string bar_line_;  // what the interactive line shows now ("" when none)
};

}  // namespace smol

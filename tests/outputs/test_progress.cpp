// Console progress: duration format, ETA rule, plain lines vs the '\r' bar.
#include <gtest/gtest.h>

#include <limits>

#include <cmath>
#include <cstdio>
#include <string>

#include "common/error.h"
#include "engine/outputs/progress.h"

namespace smol {
namespace {

// Everything written to a tmpfile FILE*.
std::string contents(std::FILE* file) {
  std::fflush(file);
  std::rewind(file);
  std::string text;
  for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file))
    text.push_back(static_cast<char>(c));
  return text;
}

TEST(FormatDuration, RoundsToTheNearestSecond) {
  EXPECT_EQ(format_duration(0), "0:00:00");
  EXPECT_EQ(format_duration(59.6), "0:01:00");
  EXPECT_EQ(format_duration(59.4), "0:00:59");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(3599.5), "1:00:00");
  EXPECT_EQ(format_duration(100 * 3600 + 1), "100:00:01");  // hours are not wrapped into days
  EXPECT_EQ(format_duration(-5), "0:00:00");
  EXPECT_EQ(format_duration(NAN), "-:--:--");
  EXPECT_EQ(format_duration(INFINITY), "-:--:--");
}

TEST(Progress, EtaExcludesTheTimeBeforeTheFirstUpdate) {
  double now = 0.0;
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  Progress progress(100, out, /*interactive=*/false, [&] { return now; });
  progress.start(0);
  EXPECT_TRUE(std::isnan(progress.eta_seconds(0)));
  now = 30.0;  // step 1 took 30 s: warm-up
  progress.update(1, 2.0, 1e-4, 1000);
  // One update: only the warm-up-laden measurement, 30 s/step × 99 steps left.
  EXPECT_DOUBLE_EQ(progress.eta_seconds(1), 30.0 * 99);
  now = 50.0;  // steps 2..11 took 2 s each
  progress.update(11, 1.5, 1e-4, 1000);
  EXPECT_DOUBLE_EQ(progress.eta_seconds(11), 2.0 * 89);
  std::fclose(out);
}

TEST(Progress, PlainLinesCarryStepTotalLossAndEta) {
  double now = 100.0;
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  Progress progress(2802, out, false, [&] { return now; });
  progress.start(0);
  now = 110.0;
  progress.update(50, 1.23456, 2e-4, 51234);
  now = 160.0;  // 50 steps in 50 s: 1 s/step, 2702 left → 0:45:02
  progress.update(100, 0.98765, 1.5e-4, 52000);
  progress.message("eval at step 100: eval_loss 0.9");
  progress.finish();
  const std::string text = contents(out);
  std::fclose(out);
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("step 50/2802"), std::string::npos) << text;
  EXPECT_NE(text.find("step 100/2802 (3.6%)"), std::string::npos) << text;
  EXPECT_NE(text.find("loss 1.2346"), std::string::npos) << text;
  EXPECT_NE(text.find("loss 0.9877"), std::string::npos) << text;
  EXPECT_NE(text.find("lr 2.000e-04"), std::string::npos) << text;
  EXPECT_NE(text.find("52000 tok/s"), std::string::npos) << text;
  EXPECT_NE(text.find("elapsed 0:01:00 | ETA 0:45:02\n"), std::string::npos) << text;
  EXPECT_NE(text.find("eval at step 100: eval_loss 0.9\n"), std::string::npos) << text;
  EXPECT_NE(text.find("done: 100 steps in 0:01:00\n"), std::string::npos) << text;
}

// Before the first logging step the trainer has read no loss (it stays on the device): NaN is
// shown as "loss -", never as "nan".
TEST(Progress, ALossNotReadYetShowsADash) {
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  Progress progress(10, out, false, [] { return 0.0; });
  progress.start(0);
  progress.update(1, std::numeric_limits<double>::quiet_NaN(), 1e-4, 1000);
  const std::string text = contents(out);
  std::fclose(out);
  EXPECT_NE(text.find("loss -      | lr 1.000e-04 | 1000 tok/s"), std::string::npos) << text;
  EXPECT_EQ(text.find("nan"), std::string::npos) << text;
}

TEST(Progress, InteractiveRewritesOneLineAndMessagesDoNotBreakIt) {
  double now = 0.0;
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  Progress progress(10, out, /*interactive=*/true, [&] { return now; });
  progress.start(0);
  now = 1.0;
  progress.update(1, 2.0, 1e-3, 100);
  now = 2.0;
  progress.update(5, 1.0, 1e-3, 100);
  progress.message("saved checkpoint-5");
  progress.finish();
  const std::string text = contents(out);
  std::fclose(out);
  EXPECT_EQ(text.rfind("\r[##", 0), 0u) << text;
  EXPECT_NE(text.find("5/10"), std::string::npos) << text;
  EXPECT_NE(text.find("[############............]"), std::string::npos) << text;  // 50%
  // The message sits on its own line and the bar is redrawn after it.
  const size_t message = text.find("\rsaved checkpoint-5\n\r[");
  EXPECT_NE(message, std::string::npos) << text;
  // Before finish() no update wrote a newline: the bar was rewritten in place.
  EXPECT_EQ(text.substr(0, message).find('\n'), std::string::npos) << text;
  EXPECT_NE(text.find("done: 5 steps in 0:00:02\n"), std::string::npos) << text;
}

TEST(Progress, RejectsAnEmptyRun) {
  EXPECT_THROW(Progress(0, stdout, false), Error);
}

TEST(Progress, ANullStreamIsSilent) {
  // Data-parallel ranks other than 0 keep a Progress without a stream: it must say nothing and
  // still count (docs/design.md §8).
  Progress progress(10, nullptr, false);
  progress.start(0);
  progress.update(1, 2.5, 1e-3, 100.0);
  progress.message("not shown");
  progress.finish();
}

}  // namespace
}  // namespace smol

// metrics.jsonl: line format, exact double round trip, non-finite as null, torn last line,
// resume truncation and append repair.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "common/error.h"
#include "engine/outputs/metrics_log.h"
#include "outputs_test_util.h"

namespace smol {
namespace {

LogEvent train_event(int64_t step, double loss) {
  LogEvent event;
  event.kind = "train";
  event.step = step;
  event.epoch = 0.25 * static_cast<double>(step);
  event.elapsed_seconds = 1.5 * static_cast<double>(step);
  event.scalars = {{"loss", loss}, {"learning_rate", 2e-4}, {"grad_norm", 0.75}};
  return event;
}

TEST(MetricsLog, LineHasFixedFieldsThenScalarsInOrderThenExtra) {
  LogEvent event = train_event(10, 1.25);
  event.scalars.insert(event.scalars.begin(), {"zeta", 3.0});  // insertion order, not sorted
  event.extra = {{"note", "x"}};
  EXPECT_EQ(MetricsLog::format_line(event),
            R"({"kind":"train","step":10,"epoch":2.5,"elapsed_seconds":15.0,"zeta":3.0,)"
            R"("loss":1.25,"learning_rate":0.0002,"grad_norm":0.75,"extra":{"note":"x"}})");
}

TEST(MetricsLog, DoublesRoundTripExactlyAndNonFiniteIsNull) {
  test::ScratchDir dir;
  const std::string path = dir.file("metrics.jsonl");
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-300, 300);
  std::vector<double> values;
  for (int i = 0; i < 200; ++i) {
    values.push_back(std::pow(10.0, exponent(rng)) * (i % 2 ? -1.0 : 1.0) *
                     std::uniform_real_distribution<double>(1, 10)(rng));
  }
  values.push_back(std::numeric_limits<double>::denorm_min());
  values.push_back(std::numeric_limits<double>::max());
  values.push_back(0.1 + 0.2);
  {
    MetricsLog log(path, /*append=*/false);
    for (size_t i = 0; i < values.size(); ++i) {
      LogEvent event = train_event(static_cast<int64_t>(i), values[i]);
      log.write(event);
    }
    LogEvent bad = train_event(999, std::numeric_limits<double>::quiet_NaN());
    bad.scalars.push_back({"grad_norm_inf", std::numeric_limits<double>::infinity()});
    bad.elapsed_seconds = -std::numeric_limits<double>::infinity();
    log.write(bad);
  }
  const std::vector<nlohmann::json> events = MetricsLog::read(path);
  ASSERT_EQ(events.size(), values.size() + 1);
  for (size_t i = 0; i < values.size(); ++i) {
    // Exact equality: the printed form must be a round-trip representation of the double.
    EXPECT_EQ(events[i]["loss"].get<double>(), values[i]) << "line " << i + 1;
    EXPECT_TRUE(events[i]["step"].is_number_integer());
  }
  const nlohmann::json& bad = events.back();
  EXPECT_TRUE(bad["loss"].is_null());
  EXPECT_TRUE(bad["grad_norm_inf"].is_null());
  EXPECT_TRUE(bad["elapsed_seconds"].is_null());
  EXPECT_FALSE(bad.contains("extra"));  // null extra is left out
}

TEST(MetricsLog, ScalarNameCollisionsAreErrors) {
  LogEvent event = train_event(1, 1.0);
  event.scalars.push_back({"epoch", 1.0});  // the fixed field already holds the epoch
  EXPECT_THROW(MetricsLog::format_line(event), Error);
  event = train_event(1, 1.0);
  event.scalars.push_back({"loss", 2.0});
  EXPECT_THROW(MetricsLog::format_line(event), Error);
  event = train_event(1, 1.0);
  event.scalars.push_back({"extra", 2.0});
  EXPECT_THROW(MetricsLog::format_line(event), Error);
  event = train_event(1, 1.0);
  event.kind = "bad\xff utf8";
  EXPECT_THROW(MetricsLog::format_line(event), Error);
}

TEST(MetricsLog, EveryWriteIsOnDiskBeforeTheLogCloses) {
  test::ScratchDir dir;
  const std::string path = dir.file("metrics.jsonl");
  MetricsLog log(path, false);
  log.write(train_event(1, 2.0));
  log.write(train_event(2, 1.5));
  // Still open: a killed process would leave exactly what is on disk now.
  EXPECT_EQ(MetricsLog::read(path).size(), 2u);
  EXPECT_EQ(test::read_bytes(path).back(), '\n');
}

TEST(MetricsLog, ReadSkipsATornLastLineButNotABrokenMiddleLine) {
  test::ScratchDir dir;
  const std::string path = dir.file("metrics.jsonl");
  const std::string line1 = MetricsLog::format_line(train_event(1, 2.0));
  const std::string line2 = MetricsLog::format_line(train_event(2, 1.5));
  test::write_bytes(path, line1 + "\n" + line2 + "\n" + line2.substr(0, 20));
  EXPECT_EQ(MetricsLog::read(path).size(), 2u);

  // A write cut exactly before its '\n' left a whole object: it is kept.
  test::write_bytes(path, line1 + "\n" + line2);
  EXPECT_EQ(MetricsLog::read(path).size(), 2u);

  test::write_bytes(path, line1 + "\n" + line2.substr(0, 20) + "\n" + line2 + "\n");
  try {
    MetricsLog::read(path);
    FAIL() << "a broken middle line must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(MetricsLog::read(dir.file("missing.jsonl")), Error);
}

TEST(MetricsLog, AppendCutsATornLineSoTheNextLineStartsClean) {
  test::ScratchDir dir;
  const std::string path = dir.file("metrics.jsonl");
  const std::string line1 = MetricsLog::format_line(train_event(1, 2.0));
  test::write_bytes(path, line1 + "\n" + "{\"kind\":\"tr");
  {
    MetricsLog log(path, /*append=*/true);
    log.write(train_event(2, 1.5));
  }
  EXPECT_EQ(test::read_bytes(path),
            line1 + "\n" + MetricsLog::format_line(train_event(2, 1.5)) + "\n");

  // A whole object missing only its '\n' is kept and terminated.
  test::write_bytes(path, line1);
  {
    MetricsLog log(path, true);
    log.write(train_event(2, 1.5));
  }
  EXPECT_EQ(MetricsLog::read(path).size(), 2u);

  // append = false starts over.
  {
    MetricsLog log(path, false);
    log.write(train_event(7, 1.0));
  }
  ASSERT_EQ(MetricsLog::read(path).size(), 1u);
  EXPECT_EQ(MetricsLog::read(path)[0]["step"], 7);
}

TEST(MetricsLog, TruncateAfterStepKeepsEarlierLinesByteForByte) {
  test::ScratchDir dir;
  const std::string path = dir.file("metrics.jsonl");
  {
    MetricsLog log(path, false);
    for (int64_t step = 1; step <= 6; ++step) log.write(train_event(step, 1.0 / step));
  }
  std::string expected;
  for (int64_t step = 1; step <= 4; ++step) {
    expected += MetricsLog::format_line(train_event(step, 1.0 / step)) + "\n";
  }
  std::string bytes = test::read_bytes(path);
  test::write_bytes(path, bytes + "{\"kind\":\"train\",\"st");  // plus a torn line
  EXPECT_EQ(MetricsLog::truncate_after_step(path, 4), 2u);
  EXPECT_EQ(test::read_bytes(path), expected);

  // Resume: the re-run steps 5 and 6 append after step 4.
  {
    MetricsLog log(path, true);
    log.write(train_event(5, 0.5));
  }
  const auto events = MetricsLog::read(path);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events.back()["step"], 5);
  EXPECT_EQ(events.back()["loss"], 0.5);

  EXPECT_EQ(MetricsLog::truncate_after_step(dir.file("absent.jsonl"), 3), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir.file("absent.jsonl")));
}

TEST(MetricsLog, TruncateRejectsANonIntegerStep) {
  test::ScratchDir dir;
  const std::string path = dir.file("metrics.jsonl");
  test::write_bytes(path, "{\"kind\":\"train\",\"step\":\"5\"}\n");
  EXPECT_THROW(MetricsLog::truncate_after_step(path, 3), Error);
}

}  // namespace
}  // namespace smol

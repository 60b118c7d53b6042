// LR schedules against transformers' get_*_schedule_* values (tests/golden/training/
// schedules.json: T = 10, warmup 3, peak 1, k = 0..11).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/lr_schedule.h"
#include "training_fixtures.h"

namespace smol {
namespace {

TEST(LrSchedule, MatchesTransformersAtEveryStep) {
  std::ifstream in(test::golden("schedules.json"));
  ASSERT_TRUE(in.good()) << "missing fixture schedules.json";
  const nlohmann::json golden = nlohmann::json::parse(in);
  const int64_t total = golden["total"], warmup = golden["warmup"];
  for (const char* kind : {"cosine", "linear", "constant_with_warmup", "constant"}) {
    const LrSchedule schedule(parse_lr_schedule_kind(kind, "test"), 1.0, total, warmup);
    const auto& values = golden[kind];
    for (size_t k = 0; k < values.size(); ++k) {
      // Both sides evaluate the same double formula; only libm's cos may differ in the last
      // bits, so 1e-12 absolute on values in [0, 1].
      EXPECT_NEAR(schedule.factor(static_cast<int64_t>(k)), values[k].get<double>(), 1e-12)
          << kind << " at k = " << k;
    }
  }
}

TEST(LrSchedule, FirstUpdateHasZeroLrWithWarmup) {
  const LrSchedule cosine(LrScheduleKind::Cosine, 2e-4, 2802, resolve_warmup_steps(2802, 0.06, 0));
  EXPECT_EQ(cosine.warmup_steps(), 169);  // docs/seed-behaviour.md §6: ceil(0.06 · 2802)
  EXPECT_EQ(cosine.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(cosine.lr(169), 2e-4);
  EXPECT_NEAR(cosine.lr(2802), 0.0, 1e-20);
}

TEST(LrSchedule, WarmupStepsWinOverRatio) {
  EXPECT_EQ(resolve_warmup_steps(100, 0.5, 7), 7);
  EXPECT_EQ(resolve_warmup_steps(100, 0.031, 0), 4);  // ceil(3.1)
  EXPECT_EQ(resolve_warmup_steps(100, 0.0, 0), 0);
  EXPECT_THROW(resolve_warmup_steps(100, 1.5, 0), Error);
}

TEST(LrSchedule, ConstantIgnoresWarmupAndUnknownKindThrows) {
  const LrSchedule constant(LrScheduleKind::Constant, 0.1, 10, 5);
  EXPECT_EQ(constant.lr(0), 0.1);
  EXPECT_THROW(parse_lr_schedule_kind("cosine_with_restarts", "cfg.yaml"), Error);
  EXPECT_THROW(LrSchedule(LrScheduleKind::Cosine, 1.0, 0, 0), Error);
}

}  // namespace
}  // namespace smol

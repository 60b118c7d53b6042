// The per-op time breakdown with device timing events (bench/model/op_timer.h, Clock::DeviceEvents;
// docs/design.md §2.6) over one LoRA optimizer step of the tiny golden Llama on cuda-emu,
// against the wall-clock breakdown of the same step (cuda-emu, and cpu for the category set).
//
// What must hold: every category's time is finite and ≥ 0; the categories (and the calls per op)
// are the ones the wall-clock mode sees for the same step; the exclusive times add up to at most
// the step's own time (cuda-emu's events record host time, which there is when the work before
// them ran: the sum of the pairs at depth 0 cannot exceed the span around them); and the timed
// step waits for the device once (finish()), not once per op as the wall-clock mode does
// (cuda-emu counts host waits: kernels/emu/emu_host_waits.h).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <set>

#include "bench/model/op_timer.h"
#include "device_test_util.h"
#include "engine/optimizer.h"
#include "engine/train/step_losses.h"
#include "engine/train_step.h"
#include "kernels/emu/emu_host_waits.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

LoraSettings lora_qv() {
  LoraSettings lora;
  lora.r = 4;
  lora.alpha = 8;
  return lora;
}

std::set<std::string> keys(const std::map<std::string, double>& m) {
  std::set<std::string> out;
  for (const auto& [k, v] : m) out.insert(k);
  return out;
}

// One backend's model, optimizer and deferred losses: the trainer's step (no host wait in it).
struct Trainer {
  explicit Trainer(Backend& backend)
      : model(load_tiny(backend, TrainMode::Lora, lora_qv())),
        optimizer(backend, model->trainable_params(), AdamWSettings{}),
        schedule(LrScheduleKind::Constant, 1e-3, 10, 0),
        losses(backend) {}
  void step(uint64_t seed) {
    train_step(*model, optimizer, schedule, golden_micro_batches(), seed, nullptr, &losses);
  }
  std::unique_ptr<LlamaModel> model;
  AdamW optimizer;
  LrSchedule schedule;
  StepLosses losses;
};

TEST(OpTimerEvents, CpuFallsBackToTheWallClock) {
  auto cpu = make_backend("cpu");
  EXPECT_EQ(cpu->record_timing_event(nullptr), nullptr) << "cpu has no timing events";
  EXPECT_THROW(cpu->elapsed_ms(nullptr, nullptr), Error);
  OpTimer timer(*cpu, OpTimer::Clock::DeviceEvents);
  EXPECT_EQ(timer.clock(), OpTimer::Clock::Wall);
}

TEST(OpTimerEvents, TrainingStepOnCudaEmuMatchesTheWallClockBreakdownWithOneWait) {
  std::unique_ptr<Backend> emu = backend_if_built("cuda-emu");
  if (!emu) GTEST_SKIP() << "cuda-emu is not in this build";
  emu->set_device_checks(false);   // the product configuration (the debug mode reads flags)
  emu->set_graphs_enabled(false);  // a hook runs the step eagerly anyway (docs/design.md §2.8)
  Trainer device(*emu);
  device.step(1);  // warm-up: the arena, scratch and RoPE tables, outside the counts

  // The wall-clock breakdown of a step on cuda-emu: a synchronize after every op.
  std::map<std::string, double> wall_seconds;
  std::map<std::string, long> wall_op_calls;
  uint64_t wall_waits = 0;
  {
    OpTimer timer(*emu);
    ASSERT_EQ(timer.clock(), OpTimer::Clock::Wall);
    const emu::HostWaitCounts before = emu::host_wait_counts();
    device.step(2);
    timer.finish();  // a no-op for the wall clock
    wall_waits = emu::host_wait_counts().total() - before.total();
    wall_seconds = timer.seconds;
    wall_op_calls = timer.op_calls;
  }

  // The same step with device events.
  OpTimer timer(*emu, OpTimer::Clock::DeviceEvents);
  ASSERT_EQ(timer.clock(), OpTimer::Clock::DeviceEvents);
  const emu::HostWaitCounts before = emu::host_wait_counts();
  const auto t0 = std::chrono::steady_clock::now();
  device.step(3);
  EXPECT_TRUE(timer.seconds.empty()) << "event times are read by finish(), not per op";
  timer.finish();
  const double step_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const emu::HostWaitCounts after = emu::host_wait_counts();
  const uint64_t waits = after.total() - before.total();
  std::printf("[ measured ] host waits: wall-clock breakdown %llu, event breakdown %llu\n",
              static_cast<unsigned long long>(wall_waits), static_cast<unsigned long long>(waits));
  // finish()'s synchronize is the one wait; the upload staging's rare half switch (an event
  // wait inside the step, tests/model_device/host_waits_test.cpp) may add one, per step not op.
  EXPECT_EQ(after.total() - after.event_sync - (before.total() - before.event_sync), 1u);
  EXPECT_LE(after.event_sync - before.event_sync, 1u);
  long ops = 0;
  for (const auto& [op, n] : wall_op_calls) ops += n;
  EXPECT_GE(wall_waits, static_cast<uint64_t>(ops)) << "the wall clock waits after every op";

  double sum = 0;
  for (const auto& [category, s] : timer.seconds) {
    EXPECT_TRUE(std::isfinite(s) && s >= 0) << category << ": " << s;
    EXPECT_GT(timer.calls.at(category), 0) << category;
    sum += s;
  }
  std::printf("[ measured ] event breakdown: %zu categories, %.1f ms of a %.1f ms step\n",
              timer.seconds.size(), 1e3 * sum, 1e3 * step_seconds);
  EXPECT_GT(sum, 0);
  EXPECT_LE(sum, step_seconds) << "exclusive times overlap: a nested op is counted twice";
  EXPECT_EQ(keys(timer.seconds), keys(wall_seconds));
  EXPECT_EQ(timer.op_calls, wall_op_calls) << "the same ops, as often, in both modes";
  EXPECT_GT(timer.calls.at("matmul"), 0);

  // Events are recycled: a second step records into the same pool, with its own times.
  timer.clear();
  device.step(4);
  timer.finish();
  EXPECT_EQ(timer.op_calls, wall_op_calls);

  // The cpu backend's wall-clock breakdown of the same step names the same categories.
  auto cpu = make_backend("cpu");
  Trainer host(*cpu);
  host.step(1);
  OpTimer cpu_timer(*cpu, OpTimer::Clock::DeviceEvents);  // falls back to the wall clock
  host.step(2);
  cpu_timer.finish();
  EXPECT_EQ(keys(timer.seconds), keys(cpu_timer.seconds));
}

}  // namespace
}  // namespace smol::test

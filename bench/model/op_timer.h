// OpTimer: an OpHook (kernels/backend.h) that adds up each op's time per category, so a benchmark
// can report where a step's time goes. Time is exclusive: a composite op (lm_head_cross_entropy)
// is charged only what its primitives did not take.
//
// Two clocks. Clock::Wall (the default, and the fallback where the backend has no timing events:
// cpu) synchronises after each op and reads the host's steady clock; on a GPU that adds each
// op's launch latency and idles the device between ops, inflating the share of small ops.
// Clock::DeviceEvents records a timing event on the backend's stream before and after every op
// (nested ones too: Backend::record_timing_event) and waits for nothing per op; finish() waits
// once (one synchronize) and turns every pair into milliseconds (cudaEventElapsedTime). An op's
// events bracket what its launches took on the device, including the device's idle time while
// the host was still launching them (docs/design.md §2.6).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace smol {

class OpTimer final : public OpHook {
 public:
  enum class Clock { Wall, DeviceEvents };

  // Installs itself as `backend`'s hook; the destructor removes it (and frees its events).
  // Clock::DeviceEvents falls back to Clock::Wall when the backend gives no timing events.
  explicit OpTimer(Backend& backend, Clock clock = Clock::Wall);
  ~OpTimer() override;
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

  // The clock in use (DeviceEvents only where the backend gave an event).
  Clock clock() const { return clock_; }

  // Filled as ops end (Clock::Wall) or by finish() (Clock::DeviceEvents).
  std::map<std::string, double> seconds;     // category ("matmul", "rmsnorm", ...) → seconds
  std::map<std::string, long> calls;         // category → ops run (each one launch or more)
  std::map<std::string, double> op_seconds;  // op name ("rope_qk_forward", ...) → seconds
  std::map<std::string, long> op_calls;      // op name → calls

  // Device events: waits once for the recorded events, adds their times to the tables above and
  // recycles them. A no-op for Clock::Wall. Throws while an op is still open.
  void finish();
  // Clears the tables (after finish(), or pending events are dropped).
  void clear();

  void before_op(Backend& backend, const char* op, int depth) override;
  void after_op(Backend& backend, const char* op, int depth) override;

 private:
  void add(const char* op, double exclusive_seconds);
  void* take_event();

  struct Open {  // Clock::Wall: an op not yet ended
    std::chrono::steady_clock::time_point start;
    double nested_seconds = 0;  // taken by ops inside this one
  };
  struct Recorded {  // Clock::DeviceEvents: one op's pair of events
    std::string op;  // the op's public name
    void* start = nullptr;
    void* end = nullptr;
    int parent = -1;  // index of the enclosing op in recorded_, −1 at depth 0
  };
  Backend& backend_;
  Clock clock_;
  std::vector<Open> open_;
  std::vector<Recorded> recorded_;
  std::vector<int> open_recorded_;  // indices into recorded_ of the ops not yet ended
  std::vector<void*> free_events_;  // recorded before, reusable after finish()
};

}  // namespace smol

// OpTimer: an OpHook (kernels/backend.h) that adds each op's wall time, after a synchronize, to
// a per-category total, so a benchmark can report where a step's time goes. Time is exclusive:
// a composite op (lm_head_cross_entropy) is charged only what its primitives did not take.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace smol {

class OpTimer final : public OpHook {
 public:
  // Installs itself as `backend`'s hook; the destructor removes it.
  explicit OpTimer(Backend& backend);
  ~OpTimer() override;
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

  std::map<std::string, double> seconds;  // category ("matmul", "rmsnorm", ...) → wall seconds
  void clear() { seconds.clear(); }

  void before_op(Backend& backend, const char* op, int depth) override;
  void after_op(Backend& backend, const char* op, int depth) override;

 private:
  struct Open {
    std::chrono::steady_clock::time_point start;
    double nested_seconds = 0;  // taken by ops inside this one
  };
  Backend& backend_;
  std::vector<Open> open_;
};

}  // namespace smol

// StepLosses: the training loss of each optimizer step, kept on the device until the host needs
// it (docs/design.md §2.2 "Host waits", §4 "The loop").
//
// A step leaves Σ token CE of its micro-batches in the model's loss accumulator
// (LlamaModel::loss_accumulator, F32 [1]). record() copies that sum into the next slot of a
// device buffer and zeroes the accumulator — two stream-ordered device ops, no host wait — and
// remembers the step's number and its supervised-token count N on the host. read() downloads the
// slots once (one host wait) and returns each step's loss Σ CE / N, divided in double as the
// synchronous path (engine/train_step.cpp) divides it, so the logged numbers are the same bits.
// HF Trainer does the same: tr_loss stays a device tensor and `.item()` runs at logging steps.
//
// When every slot is taken, record() moves the slots to the host first (one wait per `capacity`
// steps), so any logging interval works.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "model/llama_model.h"

namespace smol {

struct StepLoss {
  int64_t step = 0;  // 1-based optimizer step
  double loss = 0;   // Σ CE / N of that step (0 when N = 0)
};

class StepLosses {
 public:
  explicit StepLosses(Backend& backend, int64_t capacity = 1024);

  // Moves the model's accumulated Σ CE (this step's) into the next slot and zeroes the
  // accumulator; `supervised` is the step's N (of the whole step, every rank's tokens).
  void record(LlamaModel& model, int64_t step, int64_t supervised);
  // record() in three parts, for a step recorded as a CUDA graph (engine/train_step.cpp), whose
  // device work may be recorded, abandoned and run again (Backend::run_as_graph): make_room()
  // before the work (the one host wait, when every slot is taken, happens outside the capture),
  // copy_to_slot() inside it (two device ops, no host state changes), commit() after it.
  void make_room();
  void copy_to_slot(LlamaModel& model);
  void commit(int64_t step, int64_t supervised);
  // Every recorded step's loss since the last read, in step order (one host wait), then forgets
  // them.
  std::vector<StepLoss> read();
  int64_t pending() const { return static_cast<int64_t>(host_.size() + slots_.size()); }

 private:
  void move_slots_to_host();

  struct Slot {
    int64_t step, supervised;
  };
  Backend& backend_;
  Buffer buffer_;
  Tensor sums_;  // F32 [capacity]
  std::vector<Slot> slots_;
  std::vector<StepLoss> host_;
};

}  // namespace smol

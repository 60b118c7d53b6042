// Per-step losses kept on the device (see step_losses.h).
#include "engine/train/step_losses.h"

#include "common/error.h"

namespace smol {

StepLosses::StepLosses(Backend& backend, int64_t capacity) : backend_(backend) {
  SMOL_CHECK(capacity > 0, "StepLosses: capacity must be positive, got ", capacity);
  buffer_ = backend_.allocate(static_cast<size_t>(capacity) * sizeof(float));
  sums_ = buffer_.view(DType::F32, Shape{capacity});
}

void StepLosses::record(LlamaModel& model, int64_t step, int64_t supervised) {
  make_room();
  copy_to_slot(model);
  commit(step, supervised);
}

void StepLosses::make_room() {
  if (static_cast<int64_t>(slots_.size()) == sums_.numel()) move_slots_to_host();
}

void StepLosses::copy_to_slot(LlamaModel& model) {
  SMOL_CHECK(static_cast<int64_t>(slots_.size()) < sums_.numel(),
             "internal: StepLosses::copy_to_slot without make_room");
  const Tensor accumulator = model.loss_accumulator();
  backend_.copy(sums_.elements(static_cast<int64_t>(slots_.size()), 1), accumulator);
  backend_.fill_zero(accumulator);
}

void StepLosses::commit(int64_t step, int64_t supervised) {
  slots_.push_back({step, supervised});
}

void StepLosses::move_slots_to_host() {
  if (slots_.empty()) return;
  std::vector<float> sums(slots_.size());
  backend_.download(sums.data(), sums_.elements(0, static_cast<int64_t>(slots_.size())));
  for (size_t i = 0; i < slots_.size(); ++i) {
    // As accumulate_gradients divides: the fp32 Σ widened to double, then / N in double.
    const double sum = sums[i];
    host_.push_back({slots_[i].step, slots_[i].supervised > 0
                                         ? sum / static_cast<double>(slots_[i].supervised)
                                         : 0.0});
  }
  slots_.clear();
}

std::vector<StepLoss> StepLosses::read() {
  move_slots_to_host();
  std::vector<StepLoss> out;
  out.swap(host_);
  return out;
}

}  // namespace smol

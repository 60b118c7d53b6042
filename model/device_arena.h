// DeviceArena: many tensors carved out of one backend allocation (docs/design.md §2: parameters,
// gradients and activations are allocated once, in arenas). Two passes: plan() records the
// tensors and their byte offsets, allocate() makes one zero-filled Buffer and resolves them.
#pragma once

#include <cstddef>
#include <vector>

#include "kernels/backend.h"

namespace smol {

class DeviceArena {
 public:
  // Every tensor starts on a 256-byte boundary so vectorised kernels and cuBLAS see aligned rows.
  static constexpr size_t kAlignment = 256;

  // Reserves space for a tensor; `*slot` receives its view when allocate() runs.
  void plan(Tensor* slot, DType dtype, Shape shape) {
    const size_t offset = (bytes_ + kAlignment - 1) / kAlignment * kAlignment;
    slots_.push_back({slot, dtype, shape, offset});
    bytes_ = offset + static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  }
  // Like plan(), but directly after the previously planned tensor, with no alignment gap: tensors
  // planned this way in a row form one dense block an op can see as a single matrix (the LoRA A
  // factors of projections sharing an input, stacked [ΣR, in]: docs/design.md §2.7).
  void plan_packed(Tensor* slot, DType dtype, Shape shape) {
    slots_.push_back({slot, dtype, shape, bytes_});
    bytes_ += static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  }
  // One allocation for everything planned; releases the previous one (its views die with it).
  void allocate(Backend& backend) {
    buffer_ = Buffer();
    buffer_ = backend.allocate(bytes_ == 0 ? kAlignment : bytes_);
    for (const Planned& p : slots_) *p.slot = buffer_.view(p.dtype, p.shape, p.offset);
    slots_.clear();
  }
  size_t bytes() const { return bytes_; }
  // The whole allocation as one flat tensor of `dtype` (after allocate()).
  Tensor whole(DType dtype) const {
    return buffer_.view(dtype, Shape{static_cast<int64_t>(buffer_.bytes() / dtype_size(dtype))});
  }
  // Forget the plan and the memory (for re-planning at a larger size).
  void reset() {
    slots_.clear();
    bytes_ = 0;
    buffer_ = Buffer();
  }

 private:
  struct Planned {
    Tensor* slot;
    DType dtype;
    Shape shape;
    size_t offset;
  };
  std::vector<Planned> slots_;
  size_t bytes_ = 0;
  Buffer buffer_;
};

}  // namespace smol

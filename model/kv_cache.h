// KvCache: keys and values of every layer for up to `slots` sequences of up to `max_len`
// tokens (docs/design.md §3, generation). Slot s owns rows [s·max_len, (s+1)·max_len) of each
// layer's K and V [slots·max_len, Hkv, D]; keys are stored after RoPE, so a decode step only
// computes the new tokens' q, k, v and attends over the slot's rows (AttentionLayout with
// k_len = cached + new, bottom-right causal).
#pragma once

#include <cstdint>
#include <vector>

#include "io/llama_config.h"
#include "model/device_arena.h"

namespace smol {

class KvCache {
 public:
  void reset(Backend& backend, const LlamaConfig& config, int32_t slots, int32_t max_len);
  bool empty() const { return slots_ == 0; }
  int32_t slots() const { return slots_; }
  int32_t max_len() const { return max_len_; }
  int32_t length(int32_t slot) const;
  void set_length(int32_t slot, int32_t length);
  // First row of `slot` in a layer's K/V.
  int64_t slot_row(int32_t slot) const { return static_cast<int64_t>(slot) * max_len_; }
  const Tensor& keys(size_t layer) const { return keys_[layer]; }
  const Tensor& values(size_t layer) const { return values_[layer]; }

 private:
  int32_t slots_ = 0, max_len_ = 0;
  std::vector<int32_t> lengths_;
  std::vector<Tensor> keys_, values_;
  DeviceArena arena_;
};

}  // namespace smol

// KvCache: one arena holding K and V of every layer for every slot.
#include "model/kv_cache.h"

namespace smol {

void KvCache::reset(Backend& backend, const LlamaConfig& config, int32_t slots, int32_t max_len) {
  SMOL_CHECK(slots > 0 && max_len > 0, "KV cache needs slots > 0 and max_len > 0 (got ", slots,
             " slots of ", max_len, " tokens)");
  const size_t layers = static_cast<size_t>(config.num_hidden_layers);
  arena_.reset();
  keys_.assign(layers, Tensor{});
  values_.assign(layers, Tensor{});
  const Shape shape{static_cast<int64_t>(slots) * max_len, config.num_key_value_heads,
                    config.head_dim};
  for (size_t l = 0; l < layers; ++l) {
    arena_.plan(&keys_[l], backend.activation_dtype(), shape);
    arena_.plan(&values_[l], backend.activation_dtype(), shape);
  }
  arena_.allocate(backend);
  slots_ = slots;
  max_len_ = max_len;
  lengths_.assign(static_cast<size_t>(slots), 0);
}

int32_t KvCache::length(int32_t slot) const {
  SMOL_CHECK(slot >= 0 && slot < slots_, "KV cache slot ", slot, " is outside [0, ", slots_, ")");
  return lengths_[static_cast<size_t>(slot)];
}

void KvCache::set_length(int32_t slot, int32_t length) {
  SMOL_CHECK(slot >= 0 && slot < slots_, "KV cache slot ", slot, " is outside [0, ", slots_, ")");
  SMOL_CHECK(length >= 0 && length <= max_len_, "KV cache slot ", slot, ": length ", length,
             " exceeds max_len ", max_len_);
  lengths_[static_cast<size_t>(slot)] = length;
}

}  // namespace smol

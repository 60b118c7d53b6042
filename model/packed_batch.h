// PackedBatch: the host-side description of T tokens packed back to back (no padding compute),
// built from training rows or from decode requests (docs/design.md §3, backend.h AttentionLayout).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "model/llama_model.h"

namespace smol {

struct PackedBatch {
  std::vector<int32_t> ids;        // [T]
  std::vector<int32_t> positions;  // [T]: RoPE position of each token
  std::vector<int32_t> targets;    // [T]: the token to predict, −100 = none
  AttentionLayout layout;          // q rows are the packed tokens
  std::vector<int32_t> slots;      // decoding: the cache slot of each sequence
  int64_t supervised = 0;          // targets ≠ −100
  int64_t tokens() const { return static_cast<int64_t>(ids.size()); }
};

// Training/eval rows: positions restart at 0 per row, each row attends only to itself
// (q_len == k_len), and target[t] = labels[t+1] within the row, −100 at each row's last token.
// Throws naming the row and position of an id outside [0, vocab) or a label that is neither
// −100 nor a valid id, or a labels list whose length differs from input_ids.
PackedBatch pack_rows(const std::vector<TokenRow>& rows, int64_t vocab_size);

// Decoding: new tokens of each slot continue at position cached_length[i]; attention keys are
// the slot's rows of the cache (k_begin = slot·max_len, k_len = cached + new). No targets.
PackedBatch pack_decode(const std::vector<int32_t>& slots,
                        const std::vector<std::vector<int32_t>>& new_tokens,
                        const std::vector<int32_t>& cached_length, int64_t slot_stride,
                        int64_t vocab_size);

}  // namespace smol

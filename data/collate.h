// Collation (docs/seed-behaviour.md §2.7, the seed's CompletionDataCollator): right-pad every
// example to the longest one in the batch rounded up to a multiple of pad_to_multiple_of; input_ids
// get the pad id, labels -100, attention_mask 0 (1 on real tokens). The tokenizer's padding_side is
// ignored, as in the seed. The pad id is the caller's (the engine resolves it once:
// resolve_special_ids in engine/training_data.h).
#pragma once

#include <cstdint>
#include <vector>

#include "data/example_builder.h"
#include "data/tokenizer.h"

namespace smol {

struct CollatedBatch {
  int64_t rows = 0, length = 0;
  std::vector<int32_t> input_ids;       // [rows, length] row-major
  std::vector<int32_t> labels;          // [rows, length]
  std::vector<int32_t> attention_mask;  // [rows, length]
};

// Throws smol::Error for an empty batch or pad_to_multiple_of < 1.
CollatedBatch collate_examples(const std::vector<TokenizedExample>& examples,
                               int64_t pad_to_multiple_of, int32_t pad_id);

}  // namespace smol

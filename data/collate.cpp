// collate_examples (see collate.h).
#include "data/collate.h"

#include <algorithm>

#include "common/error.h"

namespace smol {

CollatedBatch collate_examples(const std::vector<TokenizedExample>& examples,
                               int64_t pad_to_multiple_of, int32_t pad_id) {
  SMOL_CHECK(!examples.empty(), "collate: empty batch");
  SMOL_CHECK(pad_to_multiple_of >= 1, "collate: pad_to_multiple_of must be >= 1, got ",
             pad_to_multiple_of);
  size_t longest = 0;
  for (const TokenizedExample& e : examples) {
    SMOL_CHECK(e.input_ids.size() == e.labels.size(), "collate: an example has ",
               e.input_ids.size(), " ids but ", e.labels.size(), " labels");
    longest = std::max(longest, e.input_ids.size());
  }
  const int64_t multiple = pad_to_multiple_of;
  CollatedBatch batch;
  batch.rows = static_cast<int64_t>(examples.size());
  batch.length = (static_cast<int64_t>(longest) + multiple - 1) / multiple * multiple;
  const size_t cells = static_cast<size_t>(batch.rows * batch.length);
  batch.input_ids.assign(cells, pad_id);
  batch.labels.assign(cells, kIgnoreLabel);
  batch.attention_mask.assign(cells, 0);
  for (size_t r = 0; r < examples.size(); ++r) {
    const TokenizedExample& e = examples[r];
    const size_t offset = r * static_cast<size_t>(batch.length);
    std::copy(e.input_ids.begin(), e.input_ids.end(), batch.input_ids.begin() + offset);
    std::copy(e.labels.begin(), e.labels.end(), batch.labels.begin() + offset);
    std::fill_n(batch.attention_mask.begin() + offset, e.input_ids.size(), 1);
  }
  return batch;
}

}  // namespace smol

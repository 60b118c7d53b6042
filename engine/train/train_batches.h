// Which examples each optimizer update reads (docs/seed-behaviour.md §2.8, §6).
//
// Epoch e visits the training examples in epoch_order(N, data_seed, e) (data/sampling_order.h),
// cut into micro-batches of per_device_train_batch_size (the last one short, or dropped with
// dataloader_drop_last); an update takes gradient_accumulation_steps consecutive micro-batches,
// and the last update of an epoch takes whatever is left (HF ≥ 4.46). Rows go to the model
// unpadded: it packs them back to back with block-diagonal causal attention, which gives every
// real token the numbers HF's right-padded batch gives it, without computing on padding.
//
// The position is a DataCursor (epoch, next micro-batch); it is all a checkpoint needs to
// continue with the same data, because the order is a pure function of (data_seed, epoch).
#pragma once

#include <cstdint>
#include <vector>

#include "data/example_builder.h"
#include "model/llama_model.h"

namespace smol {

struct DataCursor {
  int64_t epoch = 0;        // 0-based
  int64_t micro_batch = 0;  // next micro-batch of that epoch
};

class TrainBatches {
 public:
  // `examples` must outlive this object.
  TrainBatches(const std::vector<TokenizedExample>& examples, int64_t micro_batch_size,
               int64_t accumulation, uint64_t data_seed, bool drop_last);

  int64_t micro_batches_per_epoch() const { return micro_batches_per_epoch_; }
  // The micro-batches of the update at `cursor`, advancing it (into the next epoch after an
  // epoch's last update).
  std::vector<std::vector<TokenRow>> next_update(DataCursor& cursor);

 private:
  const std::vector<int64_t>& order_of(int64_t epoch);

  const std::vector<TokenizedExample>& examples_;
  int64_t micro_batch_size_, accumulation_;
  uint64_t data_seed_;
  int64_t usable_examples_;  // N, or a multiple of the batch with drop_last
  int64_t micro_batches_per_epoch_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_order_;
};

// The most input tokens `rows` of these examples can hold together (the sum of the `rows`
// longest): what the trainer plans its activations for, once (LlamaModel::plan_activations).
int64_t most_tokens_in_rows(const std::vector<TokenizedExample>& examples, int64_t rows);

}  // namespace smol

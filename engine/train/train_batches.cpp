// Epoch orders cut into updates (see train_batches.h).
#include "engine/train/train_batches.h"

#include <algorithm>
#include <functional>

#include "common/error.h"
#include "data/sampling_order.h"

namespace smol {

TrainBatches::TrainBatches(const std::vector<TokenizedExample>& examples, int64_t micro_batch_size,
                           int64_t accumulation, uint64_t data_seed, bool drop_last)
    : examples_(examples),
      micro_batch_size_(micro_batch_size),
      accumulation_(accumulation),
      data_seed_(data_seed) {
  SMOL_CHECK(micro_batch_size > 0 && accumulation > 0,
             "TrainBatches: batch size and accumulation must be positive");
  const int64_t n = static_cast<int64_t>(examples.size());
  usable_examples_ = drop_last ? n / micro_batch_size * micro_batch_size : n;
  micro_batches_per_epoch_ = (usable_examples_ + micro_batch_size - 1) / micro_batch_size;
  SMOL_CHECK(micro_batches_per_epoch_ > 0, "TrainBatches: ", n, " examples make no micro-batch of ",
             micro_batch_size);
}

const std::vector<int64_t>& TrainBatches::order_of(int64_t epoch) {
  if (epoch != cached_epoch_) {
    cached_order_ = epoch_order(static_cast<int64_t>(examples_.size()), data_seed_, epoch);
    cached_epoch_ = epoch;
  }
  return cached_order_;
}

std::vector<std::vector<TokenRow>> TrainBatches::next_update(DataCursor& cursor) {
  SMOL_CHECK(cursor.micro_batch >= 0 && cursor.micro_batch < micro_batches_per_epoch_,
             "data position: micro-batch ", cursor.micro_batch, " of epoch ", cursor.epoch,
             " is outside the epoch's ", micro_batches_per_epoch_, " micro-batches");
  const std::vector<int64_t>& order = order_of(cursor.epoch);
  std::vector<std::vector<TokenRow>> update;
  const int64_t end_micro = std::min(micro_batches_per_epoch_, cursor.micro_batch + accumulation_);
  for (int64_t m = cursor.micro_batch; m < end_micro; ++m) {
    std::vector<TokenRow> rows;
    const int64_t begin = m * micro_batch_size_;
    const int64_t end = std::min(usable_examples_, begin + micro_batch_size_);
    for (int64_t i = begin; i < end; ++i) {
      const TokenizedExample& example =
          examples_[static_cast<size_t>(order[static_cast<size_t>(i)])];
      rows.push_back(TokenRow{example.input_ids, example.labels});
    }
    update.push_back(std::move(rows));
  }
  cursor.micro_batch = end_micro;
  if (cursor.micro_batch == micro_batches_per_epoch_) {
    ++cursor.epoch;
    cursor.micro_batch = 0;
  }
  return update;
}

int64_t most_tokens_in_rows(const std::vector<TokenizedExample>& examples, int64_t rows) {
  std::vector<int64_t> lengths;
  lengths.reserve(examples.size());
  for (const TokenizedExample& e : examples)
    lengths.push_back(static_cast<int64_t>(e.input_ids.size()));
  const size_t take = std::min(lengths.size(), static_cast<size_t>(std::max<int64_t>(rows, 0)));
  std::partial_sort(lengths.begin(), lengths.begin() + static_cast<std::ptrdiff_t>(take),
                    lengths.end(), std::greater<>());
  int64_t tokens = 0;
  for (size_t i = 0; i < take; ++i) tokens += lengths[i];
  return tokens;
}

}  // namespace smol

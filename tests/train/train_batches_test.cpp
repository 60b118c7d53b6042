// Data order per update: each epoch visits every example once in epoch_order(N, data_seed, e),
// updates take GA micro-batches with a short last one, and a cursor resumes mid-epoch.
#include <gtest/gtest.h>

#include <set>

#include "data/sampling_order.h"
#include "engine/train/train_batches.h"

namespace smol {
namespace {

// Example i has one token, i, so a row names the example it came from.
std::vector<TokenizedExample> numbered(int n) {
  std::vector<TokenizedExample> out;
  for (int i = 0; i < n; ++i) out.push_back(TokenizedExample{{i}, {i}, 0});
  return out;
}

TEST(TrainBatches, EpochVisitsEveryExampleOnceInTheSeededOrder) {
  const auto examples = numbered(23);
  TrainBatches batches(examples, /*bs=*/4, /*GA=*/2, /*data_seed=*/7, /*drop_last=*/false);
  EXPECT_EQ(batches.micro_batches_per_epoch(), 6);
  DataCursor cursor;
  std::vector<int64_t> seen;
  std::vector<size_t> update_sizes;
  while (cursor.epoch == 0) {
    const auto update = batches.next_update(cursor);
    update_sizes.push_back(update.size());
    for (const auto& micro : update)
      for (const TokenRow& row : micro) seen.push_back(row.input_ids[0]);
  }
  EXPECT_EQ(update_sizes, (std::vector<size_t>{2, 2, 2}));
  EXPECT_EQ(seen, epoch_order(23, 7, 0));
  EXPECT_EQ(cursor.epoch, 1);
  EXPECT_EQ(cursor.micro_batch, 0);
  // The next epoch reshuffles.
  const auto first = batches.next_update(cursor);
  EXPECT_EQ(first[0][0].input_ids[0], epoch_order(23, 7, 1)[0]);
}

TEST(TrainBatches, ShortLastUpdateAndDropLast) {
  const auto examples = numbered(10);
  TrainBatches batches(examples, 3, 3, 1, false);  // 4 micro-batches: updates of 3, then 1
  DataCursor cursor;
  EXPECT_EQ(batches.next_update(cursor).size(), 3u);
  const auto last = batches.next_update(cursor);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].size(), 1u);  // 10 = 3 + 3 + 3 + 1
  TrainBatches dropping(examples, 3, 3, 1, true);
  EXPECT_EQ(dropping.micro_batches_per_epoch(), 3);
}

TEST(TrainBatches, ACursorResumesTheSameStream) {
  const auto examples = numbered(17);
  TrainBatches a(examples, 2, 3, 5, false), b(examples, 2, 3, 5, false);
  DataCursor ca, cb;
  for (int i = 0; i < 4; ++i) a.next_update(ca);
  DataCursor saved = ca;
  const auto expected = a.next_update(ca);
  const auto resumed = b.next_update(saved);
  ASSERT_EQ(expected.size(), resumed.size());
  for (size_t m = 0; m < expected.size(); ++m)
    for (size_t r = 0; r < expected[m].size(); ++r)
      EXPECT_EQ(expected[m][r].input_ids, resumed[m][r].input_ids);
  DataCursor bad{0, 99};
  EXPECT_THROW(b.next_update(bad), Error);
}

}  // namespace
}  // namespace smol

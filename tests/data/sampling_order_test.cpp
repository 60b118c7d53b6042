// The deterministic per-epoch order (sampling_order.h): a permutation, reproducible, different
// per epoch and per seed, pinned values (std::mt19937_64's output is fixed by the standard and
// the bounded draw is our own, so these hold on every platform), and DDP sharding.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"
#include "data/sampling_order.h"

namespace smol {
namespace {

TEST(SamplingOrder, DeterministicPermutationPerEpoch) {
  const std::vector<int64_t> a = epoch_order(1000, 42, 0);
  EXPECT_EQ(a, epoch_order(1000, 42, 0));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, sequential_order(1000));
  EXPECT_NE(a, sequential_order(1000));
  EXPECT_NE(a, epoch_order(1000, 42, 1));
  EXPECT_NE(a, epoch_order(1000, 7, 0));
  // data_seed + epoch: seed 42 epoch 1 is seed 43 epoch 0 (documented).
  EXPECT_EQ(epoch_order(1000, 42, 1), epoch_order(1000, 43, 0));
  EXPECT_TRUE(epoch_order(0, 42, 0).empty());
  EXPECT_EQ(epoch_order(1, 42, 3), std::vector<int64_t>{0});
  EXPECT_THROW(epoch_order(5, 42, -1), Error);
}

TEST(SamplingOrder, PinnedValues) {
  EXPECT_EQ(epoch_order(10, 42, 0), (std::vector<int64_t>{1, 7, 9, 0, 3, 8, 4, 2, 5, 6}));
}

TEST(SamplingOrder, ShardsLikeDistributedSampler) {
  const std::vector<int64_t> order = {10, 11, 12, 13, 14, 15, 16};
  EXPECT_EQ(shard_order(order, 0, 1), order);
  EXPECT_EQ(shard_order(order, 0, 3), (std::vector<int64_t>{10, 13, 16}));
  EXPECT_EQ(shard_order(order, 1, 3), (std::vector<int64_t>{11, 14, 10}));  // wraps around
  EXPECT_EQ(shard_order(order, 2, 3), (std::vector<int64_t>{12, 15, 11}));
  EXPECT_THROW(shard_order(order, 3, 3), Error);
}

}  // namespace
}  // namespace smol

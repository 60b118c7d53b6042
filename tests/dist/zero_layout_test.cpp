// ZeroLayout (engine/dist/zero_layout.h): across the ranks the pieces cover every element of
// every tensor exactly once, each rank's pieces sit inside its own block of each bucket, and the
// blocks are aligned.
#include <gtest/gtest.h>

#include <vector>

#include "engine/dist/zero_layout.h"

namespace smol {
namespace {

TEST(ZeroLayout, PiecesCoverEveryElementOnce) {
  const std::vector<int64_t> sizes = {1000, 7, 64, 129, 1, 5000, 3};
  const std::vector<std::vector<size_t>> buckets = {{1, 2, 3}, {4, 5}, {0, 6}};
  for (int world : {1, 2, 3, 8}) {
    std::vector<std::vector<int>> owners(sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) owners[i].assign(static_cast<size_t>(sizes[i]), 0);
    int64_t staging = -1;
    for (int rank = 0; rank < world; ++rank) {
      const ZeroLayout layout(sizes, buckets, rank, world);
      if (staging < 0) staging = layout.staging_size();
      EXPECT_EQ(layout.staging_size(), staging) << "every rank computes the same layout";
      EXPECT_EQ(layout.staging_size(), layout.shard_size() * world);
      for (const ZeroBucket& b : layout.buckets()) {
        EXPECT_EQ(b.count % ZeroLayout::kAlignment, 0);
        EXPECT_EQ(b.staging_offset % ZeroLayout::kAlignment, 0);
      }
      int64_t previous_end = 0;
      for (const ZeroPiece& p : layout.pieces()) {
        ASSERT_LT(p.param, sizes.size());
        ASSERT_GE(p.begin, 0);
        ASSERT_LE(p.begin + p.count, sizes[p.param]);
        EXPECT_GE(p.shard_offset, previous_end) << "pieces are in shard order, disjoint";
        previous_end = p.shard_offset + p.count;
        const ZeroBucket& b = layout.buckets()[layout.bucket_of(p.param)];
        EXPECT_GE(p.shard_offset, b.shard_offset);
        EXPECT_LE(p.shard_offset + p.count, b.shard_offset + b.count);
        // The piece's place in the staging block is this rank's block.
        size_t k = 0;
        while (b.params[k] != p.param) ++k;
        const int64_t staging_position = b.local_offset[k] + p.begin;
        EXPECT_EQ(staging_position - b.count * rank, p.shard_offset - b.shard_offset);
        for (int64_t e = p.begin; e < p.begin + p.count; ++e)
          ++owners[p.param][static_cast<size_t>(e)];
      }
      EXPECT_LE(previous_end, layout.shard_size());
    }
    for (size_t i = 0; i < sizes.size(); ++i)
      for (int64_t e = 0; e < sizes[i]; ++e)
        ASSERT_EQ(owners[i][static_cast<size_t>(e)], 1)
            << "world " << world << ": element " << e << " of tensor " << i;
  }
}

TEST(ZeroLayout, RejectsABadPartition) {
  EXPECT_THROW(ZeroLayout({10, 10}, {{0}}, 0, 2), Error);          // tensor 1 in no bucket
  EXPECT_THROW(ZeroLayout({10, 10}, {{0, 1}, {1}}, 0, 2), Error);  // tensor 1 twice
  EXPECT_THROW(ZeroLayout({10}, {{0}}, 2, 2), Error);              // rank outside the world
}

}  // namespace
}  // namespace smol

// ZeRO-1 ownership layout (see zero_layout.h).
#include "engine/dist/zero_layout.h"

#include <algorithm>

#include "common/error.h"

namespace smol {

namespace {

int64_t round_up(int64_t n, int64_t multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

}  // namespace

ZeroLayout::ZeroLayout(const std::vector<int64_t>& sizes,
                       const std::vector<std::vector<size_t>>& buckets, int rank, int world_size)
    : rank_(rank), world_size_(world_size) {
  SMOL_CHECK(world_size > 0 && rank >= 0 && rank < world_size, "ZeroLayout: rank ", rank,
             " of world ", world_size);
  bucket_of_.assign(sizes.size(), sizes.size());
  for (size_t b = 0; b < buckets.size(); ++b) {
    ZeroBucket bucket;
    bucket.params = buckets[b];
    int64_t local = 0;
    for (size_t param : bucket.params) {
      SMOL_CHECK(param < sizes.size() && bucket_of_[param] == sizes.size(), "ZeroLayout: tensor ",
                 param, " is missing or in two buckets");
      bucket_of_[param] = b;
      bucket.local_offset.push_back(local);
      local = round_up(local + sizes[param], kAlignment);
    }
    bucket.count = round_up((local + world_size - 1) / world_size, kAlignment);
    bucket.staging_offset = staging_size_;
    bucket.shard_offset = shard_size_;
    staging_size_ += bucket.count * world_size;
    shard_size_ += bucket.count;
    // This rank owns [own_begin, own_end) of the bucket's staging block.
    const int64_t own_begin = bucket.count * rank, own_end = own_begin + bucket.count;
    for (size_t i = 0; i < bucket.params.size(); ++i) {
      const int64_t lo = bucket.local_offset[i], hi = lo + sizes[bucket.params[i]];
      const int64_t begin = std::max(lo, own_begin), end = std::min(hi, own_end);
      if (begin >= end) continue;
      pieces_.push_back(ZeroPiece{bucket.params[i], begin - lo, end - begin,
                                  bucket.shard_offset + begin - own_begin});
    }
    buckets_.push_back(std::move(bucket));
  }
  for (size_t param = 0; param < sizes.size(); ++param)
    SMOL_CHECK(bucket_of_[param] < buckets_.size(), "ZeroLayout: tensor ", param,
               " is in no bucket");
}

}  // namespace smol

// ZeroLayout: which elements of the trainable parameters each rank owns under ZeRO-1
// (docs/design.md §8 "ZeRO-1"), and where they sit in the buffers the collectives use.
//
// The trainable tensors are grouped into buckets (one per transformer layer, reduced as soon as
// that layer's backward is done, plus one for everything else). A bucket's tensors are laid out
// back to back in a staging buffer, each at a multiple of kAlignment elements (zeros between),
// and the bucket is padded to world · count elements, count a multiple of kAlignment:
//
//   staging  | bucket 0: rank 0's count | rank 1's count | ... | bucket 1: ... |
//   shard    | bucket 0: this rank's count | bucket 1: this rank's count | ...  (per rank)
//
// reduce_scatter(shard block b, staging bucket b) leaves in shard block b the summed gradients
// of the elements this rank owns; AdamW updates those elements (ZeroPiece: a run of one tensor's
// elements) with moments laid out like the shard; all_gather(staging bucket b, its own block)
// then gives every rank every updated value. Every rank computes the same layout.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/tensor.h"

namespace smol {

// count elements of trainable tensor `param`, from element `begin` of it (row-major), at
// `shard_offset` of this rank's shard.
struct ZeroPiece {
  size_t param = 0;
  int64_t begin = 0, count = 0;
  int64_t shard_offset = 0;
};

struct ZeroBucket {
  std::vector<size_t> params;         // trainable tensor indices, in order
  std::vector<int64_t> local_offset;  // each one's offset inside the bucket's staging block
  int64_t count = 0;                  // elements per rank (a multiple of kAlignment)
  int64_t staging_offset = 0;         // where the bucket starts in the staging buffer
  int64_t shard_offset = 0;           // where this rank's block starts in the shard
};

class ZeroLayout {
 public:
  static constexpr int64_t kAlignment = 64;  // elements: 256-byte aligned F32 vector access

  ZeroLayout() = default;
  // `sizes`: element count of every trainable tensor; `buckets`: a partition of their indices.
  ZeroLayout(const std::vector<int64_t>& sizes, const std::vector<std::vector<size_t>>& buckets,
             int rank, int world_size);

  const std::vector<ZeroBucket>& buckets() const { return buckets_; }
  const std::vector<ZeroPiece>& pieces() const { return pieces_; }  // this rank's, by shard offset
  int64_t staging_size() const { return staging_size_; }            // Σ world · count
  int64_t shard_size() const { return shard_size_; }                // Σ count
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  // The bucket holding trainable tensor `param`.
  size_t bucket_of(size_t param) const { return bucket_of_[param]; }

 private:
  std::vector<ZeroBucket> buckets_;
  std::vector<ZeroPiece> pieces_;
  std::vector<size_t> bucket_of_;
  int64_t staging_size_ = 0, shard_size_ = 0;
  int rank_ = 0, world_size_ = 1;
};

}  // namespace smol

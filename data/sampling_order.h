// The order training rows are visited in (docs/seed-behaviour.md §2.8). The seed used HF's seeded
// RandomSampler (torch.randperm under a generator seeded with data_seed), reshuffled each
// epoch; reproducing torch's generator stream is out of scope, so the port defines its own
// deterministic order, portable across compilers and standard libraries:
//
//   rng   = std::mt19937_64 seeded with data_seed + epoch (the standard fixes its output)
//   order = 0..n-1, then Fisher–Yates from the back: for i = n-1 … 1, swap order[i] with
//           order[j], j uniform in [0, i] drawn by rejection sampling from rng (so no
//           std::uniform_int_distribution, whose algorithm differs between libraries)
//
// Evaluation is sequential. Under data parallelism each rank takes every world-th index of
// the epoch's order starting at its rank, after padding the order by wrapping around to a
// multiple of world (torch DistributedSampler's layout, drop_last false).
#pragma once

#include <cstdint>
#include <vector>

namespace smol {

// A permutation of 0..n-1 for `epoch` (0-based).
std::vector<int64_t> epoch_order(int64_t n, uint64_t data_seed, int64_t epoch);
// 0..n-1.
std::vector<int64_t> sequential_order(int64_t n);
// The indices of `order` that rank `rank` of `world` visits (see above).
std::vector<int64_t> shard_order(const std::vector<int64_t>& order, int64_t rank, int64_t world);

}  // namespace smol

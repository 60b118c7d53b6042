// epoch_order, sequential_order, shard_order (see sampling_order.h).
#include "data/sampling_order.h"

#include <numeric>
#include <random>
#include <utility>

#include "common/error.h"

namespace smol {

namespace {

// Uniform in [0, bound) without modulo bias: reject draws below 2^64 mod bound.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;
  uint64_t draw = rng();
  while (draw < threshold) draw = rng();
  return draw % bound;
}

}  // namespace

std::vector<int64_t> sequential_order(int64_t n) {
  SMOL_CHECK(n >= 0, "sampling order: negative row count ", n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  return order;
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t data_seed, int64_t epoch) {
  SMOL_CHECK(epoch >= 0, "sampling order: negative epoch ", epoch);
  std::vector<int64_t> order = sequential_order(n);
  std::mt19937_64 rng(data_seed + static_cast<uint64_t>(epoch));
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t j = uniform_below(rng, static_cast<uint64_t>(i) + 1);
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

std::vector<int64_t> shard_order(const std::vector<int64_t>& order, int64_t rank, int64_t world) {
  SMOL_CHECK(world >= 1 && rank >= 0 && rank < world, "sampling order: rank ", rank, " of world ",
             world, " is invalid");
  const int64_t n = static_cast<int64_t>(order.size());
  if (n == 0) return {};
  const int64_t per_rank = (n + world - 1) / world;
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(per_rank));
  for (int64_t k = 0; k < per_rank; ++k)
    mine.push_back(order[static_cast<size_t>((rank + k * world) % n)]);
  return mine;
}

}  // namespace smol

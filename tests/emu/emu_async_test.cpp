// What cuda-emu adds for the pipelined tensor-core kernels (kernels/cuda/flash_attention.cu):
//  - warps are scheduled one at a time, each as far as it gets before the next starts, so a
//    warp that overwrites block-shared data another warp has yet to read (no __syncthreads in
//    between) is caught, not hidden by lockstep execution;
//  - warp_all_gather hands every lane every lane's bytes (the basis of the mma emulation);
//  - cp.async (kernels/cuda/async_copy.h) poisons its destination at issue and lands at the
//    wait that completes its group, so reading a tile too early reads NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cuda/async_copy.h"
#include "kernels/cuda/cuda_compat.h"

namespace smol::gpu_emu {
namespace {

template <typename T>
T* device_alloc(size_t count) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, count * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}
template <typename T>
std::vector<T> download(const T* p, size_t count) {
  std::vector<T> out(count);
  EXPECT_EQ(cudaMemcpy(out.data(), p, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return out;
}

// Two warps. Phase 1: every thread writes slot[tid] = 1. Phase 2: each warp reads the other's
// slots, synchronises within the warp (as an mma between a tile's last read and the next
// refill would), then overwrites its own slots with 2 — a race unless a block barrier
// separates the reads from the refill. out[tid] = what the thread read.
__global__ void refill_race(int* out /* [64] */, bool barrier_before_refill) {
  __shared__ int slot[64];
  const int tid = threadIdx.x;
  slot[tid] = 1;
  __syncthreads();
  const int seen = slot[(tid + 32) % 64];  // warp 0 reads warp 1's slots and vice versa
  __syncwarp();
  if (barrier_before_refill) __syncthreads();
  slot[tid] = 2;
  out[tid] = seen;
}

TEST(EmuWarpOrder, OverwritingSharedDataBeforeTheBarrierIsExposed) {
  int* out = device_alloc<int>(64);
  launch(refill_race, 1, 64, 0, nullptr, out, true);
  for (int v : download(out, 64)) EXPECT_EQ(v, 1);
  // Without the barrier one warp runs ahead and refills its slots before the other reads them:
  // warp 1, whose last thread released the phase-1 barrier, goes first, so every thread of
  // warp 0 reads a 2. (Run in lockstep, warp after warp between warp ops, none would.)
  launch(refill_race, 1, 64, 0, nullptr, out, false);
  const std::vector<int> racy = download(out, 64);
  int stale = 0;
  for (int t = 0; t < 32; ++t) stale += racy[t] == 2;
  EXPECT_EQ(stale, 32) << "warp 0 should have seen warp 1's refill";
  cudaFree(out);
}

__global__ void gather_lanes(int* out /* [32][32] */) {
  const int lane = threadIdx.x;
  const int mine = 100 + lane;
  int all[32];
  ::smol::emu::warp_all_gather(0xffffffffu, &mine, sizeof(mine), all, __FILE__, __LINE__);
  for (int l = 0; l < 32; ++l) out[lane * 32 + l] = all[l];
}

TEST(EmuWarpOrder, AllGatherGivesEveryLaneEveryLanesValue) {
  int* out = device_alloc<int>(32 * 32);
  launch(gather_lanes, 1, 32, 0, nullptr, out);
  const std::vector<int> got = download(out, 32 * 32);
  for (int lane = 0; lane < 32; ++lane)
    for (int l = 0; l < 32; ++l) EXPECT_EQ(got[lane * 32 + l], 100 + l);
  cudaFree(out);
}

// One thread copies 16 bytes (4 floats) in two groups and reads the destination at each step.
__global__ void async_copy_steps(float* out /* [4 steps][8] */, const float* src /* [8] */) {
  __shared__ __align__(16) float tile[8];
  AsyncCopies copies;
  copies.copy16(tile, src, true);
  copies.commit();
  copies.copy16(tile + 4, src, false);  // a missing row: zero-filled
  copies.commit();
  for (int i = 0; i < 8; ++i) out[0 * 8 + i] = tile[i];  // before any wait
  copies.wait<1>();                                      // the first group landed
  for (int i = 0; i < 8; ++i) out[1 * 8 + i] = tile[i];
  copies.wait<0>();
  for (int i = 0; i < 8; ++i) out[2 * 8 + i] = tile[i];
}

TEST(EmuAsyncCopy, DataLandsOnlyAtTheWaitThatCompletesItsGroup) {
  float* src = device_alloc<float>(8);
  const std::vector<float> values{1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(cudaMemcpy(src, values.data(), 32, cudaMemcpyHostToDevice), cudaSuccess);
  float* out = device_alloc<float>(24);
  launch(async_copy_steps, 1, 1, 0, nullptr, out, static_cast<const float*>(src));
  const std::vector<float> got = download(out, 24);
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(std::isnan(got[i])) << "before the wait: poisoned " << i;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[8 + i], values[i]);
  for (int i = 4; i < 8; ++i) EXPECT_TRUE(std::isnan(got[8 + i])) << "second group pending " << i;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[16 + i], values[i]);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(got[16 + i], 0.0f) << "zero-filled " << i;
  cudaFree(src);
  cudaFree(out);
}

}  // namespace
}  // namespace smol::gpu_emu

// The cuda-emu harness (kernels/emu): kernels written in CUDA syntax, compiled by the host
// compiler, must see CUDA's execution model — and the harness must catch the bugs a GPU would
// hide or turn into garbage: a barrier some threads skip, a missing barrier, an out-of-bounds
// index, a host pointer handed to a kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cuda/cuda_compat.h"

namespace smol::gpu_emu {
namespace {

// ---- helpers -------------------------------------------------------------------------------
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
template <typename T>
void upload(T* p, const std::vector<T>& v) {
  EXPECT_EQ(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
}

// ---- kernels ---------------------------------------------------------------------------------
__global__ void write_indices(int* out /* [grid·block, 6] */) {
  const int linear_block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int linear_thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const int threads = blockDim.x * blockDim.y * blockDim.z;
  int* row = out + (linear_block * threads + linear_thread) * 6;
  row[0] = threadIdx.x, row[1] = threadIdx.y, row[2] = threadIdx.z;
  row[3] = blockIdx.x, row[4] = blockIdx.y, row[5] = blockIdx.z;
}

__global__ void block_sum_static_shared(float* out /* [grid] */, const float* in /* [n] */, int n) {
  __shared__ float partial[256];
  const int t = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + t;
  partial[t] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = partial[0];
}

// Thread 0 sums what every thread put in dynamic shared memory; with_barrier = false plants
// the classic missing-__syncthreads bug.
__global__ void gather_dynamic_shared(float* out /* [1] */, bool with_barrier) {
  float* values = dynamic_shared<float>();
  values[threadIdx.x] = static_cast<float>(threadIdx.x + 1);
  if (with_barrier) __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (unsigned i = 0; i < blockDim.x; ++i) total += values[i];
    out[0] = total;
  }
}

__global__ void barrier_skipped_by_some_threads(float* out) {
  if (threadIdx.x < 16) __syncthreads();  // planted: threads 16.. never reach it
  out[threadIdx.x] = 1.0f;
}

__global__ void barriers_at_two_sites(float* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();  // a different barrier: undefined behaviour on a GPU
  }
  out[threadIdx.x] = 1.0f;
}

__global__ void warp_ops(int* out /* [threads, 7] */) {
  const int lane = threadIdx.x % 32;
  int* row = out + threadIdx.x * 7;
  row[0] = __shfl_sync(0xffffffffu, lane * 10, 3);  // broadcast lane 3
  row[1] = __shfl_xor_sync(0xffffffffu, lane, 1);   // swap neighbours
  row[2] = __shfl_down_sync(0xffffffffu, lane, 4);  // lane+4, own value past the end
  row[3] = __shfl_up_sync(0xffffffffu, lane, 2);    // lane−2, own value before 0
  row[4] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0));
  row[5] = __all_sync(0xffffffffu, lane < 40) ? 1 : 0;
  row[6] = __any_sync(0xffffffffu, lane == 7) ? 1 : 0;
}

__global__ void warp_sum_kernel(float* out /* [warps] */, const float* in /* [threads] */) {
  const float s = warp_sum(in[threadIdx.x]);
  if (threadIdx.x % 32 == 0) out[threadIdx.x / 32] = s;
}

__global__ void shuffle_skipped_by_some_lanes(float* out) {
  float v = 1.0f;
  if (threadIdx.x % 32 < 31) v = __shfl_xor_sync(0xffffffffu, v, 1);  // planted: lane 31 skips
  out[threadIdx.x] = v;
}

__global__ void atomics_kernel(float* fsum, int* isum, int* imax, int* cas_winner) {
  atomicAdd(fsum, 0.5f);
  atomicAdd(isum, 1);
  atomicMax(imax, static_cast<int>(threadIdx.x));
  atomicCAS(cas_winner, -1, static_cast<int>(threadIdx.x));
}

__global__ void write_at(float* out, int index) {
  out[index] = 42.0f;
}
__global__ void read_at(float* out, const float* in, int index) {
  out[0] = in[index];
}

// ---- tests -----------------------------------------------------------------------------------
TEST(EmuHarness, ThreadAndBlockIndicesCoverA3dGridExactlyOnce) {
  const dim3 grid(3, 2, 2), block(5, 3, 2);
  const int threads = 3 * 2 * 2 * 5 * 3 * 2;
  int* out = device_alloc<int>(threads * 6);
  launch(write_indices, grid, block, 0, nullptr, out);
  const auto v = download(out, threads * 6);
  int row = 0;
  for (unsigned bz = 0; bz < 2; ++bz)
    for (unsigned by = 0; by < 2; ++by)
      for (unsigned bx = 0; bx < 3; ++bx)
        for (unsigned tz = 0; tz < 2; ++tz)
          for (unsigned ty = 0; ty < 3; ++ty)
            for (unsigned tx = 0; tx < 5; ++tx, ++row) {
              const int* r = &v[row * 6];
              ASSERT_EQ(r[0], (int)tx);
              ASSERT_EQ(r[1], (int)ty);
              ASSERT_EQ(r[2], (int)tz);
              ASSERT_EQ(r[3], (int)bx);
              ASSERT_EQ(r[4], (int)by);
              ASSERT_EQ(r[5], (int)bz);
            }
  cudaFree(out);
}

TEST(EmuHarness, SyncthreadsAndStaticSharedGiveAnExactBlockReduction) {
  const int n = 1000, blocks = 4;  // last block partly empty
  std::vector<float> in(n);
  std::iota(in.begin(), in.end(), 1.0f);  // integers: fp32 sums below 2^24 are exact
  float* d_in = device_alloc<float>(n);
  float* d_out = device_alloc<float>(blocks);
  upload(d_in, in);
  launch(block_sum_static_shared, blocks, 256, 0, nullptr, d_out, d_in, n);
  const auto out = download(d_out, blocks);
  for (int b = 0; b < blocks; ++b) {
    double expect = 0;
    for (int i = b * 256; i < std::min(n, (b + 1) * 256); ++i) expect += in[i];
    EXPECT_EQ(out[b], expect) << "block " << b;
  }
  cudaFree(d_in);
  cudaFree(d_out);
}

TEST(EmuHarness, MissingBarrierIsExposedByPoisonedSharedMemory) {
  float* out = device_alloc<float>(1);
  // With the barrier: 1 + 2 + … + 64 = 2080, exactly.
  launch(gather_dynamic_shared, 1, 64, 64 * sizeof(float), nullptr, out, true);
  EXPECT_EQ(download(out, 1)[0], 2080.0f);
  // Without it, thread 0 runs before the others have written: it reads the 0xFF poison the
  // harness fills dynamic shared memory with (a NaN), never a plausible number.
  launch(gather_dynamic_shared, 1, 64, 64 * sizeof(float), nullptr, out, false);
  EXPECT_TRUE(std::isnan(download(out, 1)[0]));
  cudaFree(out);
}

TEST(EmuHarness, SyncthreadsNotReachedByEveryThreadIsAnError) {
  float* out = device_alloc<float>(64);
  try {
    launch(barrier_skipped_by_some_threads, 1, 64, 0, nullptr, out);
    FAIL() << "a __syncthreads reached by 16 of 64 threads was not reported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reached by 16 of 64 threads"), std::string::npos)
        << e.what();
  }
  cudaFree(out);
}

TEST(EmuHarness, BarriersAtDifferentSourceLinesAreAnError) {
  float* out = device_alloc<float>(32);
  EXPECT_THROW(launch(barriers_at_two_sites, 1, 32, 0, nullptr, out), Error);
  cudaFree(out);
}

TEST(EmuHarness, ShufflesAndVotesFollowCudaSemantics) {
  const int threads = 64;
  int* out = device_alloc<int>(threads * 7);
  launch(warp_ops, 1, threads, 0, nullptr, out);
  const auto v = download(out, threads * 7);
  unsigned ballot = 0;
  for (int l = 0; l < 32; ++l)
    if (l % 3 == 0) ballot |= 1u << l;
  for (int t = 0; t < threads; ++t) {
    const int lane = t % 32;
    const int* r = &v[t * 7];
    EXPECT_EQ(r[0], 30) << t;
    EXPECT_EQ(r[1], lane ^ 1) << t;
    EXPECT_EQ(r[2], lane + 4 < 32 ? lane + 4 : lane) << t;
    EXPECT_EQ(r[3], lane >= 2 ? lane - 2 : lane) << t;
    EXPECT_EQ(static_cast<unsigned>(r[4]), ballot) << t;
    EXPECT_EQ(r[5], 1) << t;
    EXPECT_EQ(r[6], 1) << t;
  }
  cudaFree(out);
}

TEST(EmuHarness, WarpSumIsExactOnIntegersAndIdenticalAcrossWarps) {
  std::vector<float> in(96);
  std::iota(in.begin(), in.end(), 0.0f);
  float* d_in = device_alloc<float>(96);
  float* d_out = device_alloc<float>(3);
  upload(d_in, in);
  launch(warp_sum_kernel, 1, 96, 0, nullptr, d_out, d_in);
  const auto out = download(d_out, 3);
  for (int w = 0; w < 3; ++w) EXPECT_EQ(out[w], 32.0f * (32 * w) + 496.0f) << w;
  cudaFree(d_in);
  cudaFree(d_out);
}

TEST(EmuHarness, ShuffleSkippedByALaneIsAnError) {
  float* out = device_alloc<float>(32);
  EXPECT_THROW(launch(shuffle_skipped_by_some_lanes, 1, 32, 0, nullptr, out), Error);
  cudaFree(out);
}

TEST(EmuHarness, AtomicsAccumulateOverEveryThread) {
  float* fsum = device_alloc<float>(1);
  int* ints = device_alloc<int>(3);
  cudaMemset(fsum, 0, sizeof(float));
  upload(ints, std::vector<int>{0, -1, -1});
  launch(atomics_kernel, 2, 100, 0, nullptr, fsum, ints, ints + 1, ints + 2);
  EXPECT_EQ(download(fsum, 1)[0], 100.0f);
  const auto v = download(ints, 3);
  EXPECT_EQ(v[0], 200);
  EXPECT_EQ(v[1], 99);
  EXPECT_EQ(v[2], 0);  // the first thread to run wins the CAS
  cudaFree(fsum);
  cudaFree(ints);
}

TEST(EmuHarness, InvalidLaunchConfigurationIsAnError) {
  float* out = device_alloc<float>(1);
  EXPECT_THROW(launch(write_at, 1, 2048, 0, nullptr, out, 0), Error);  // > 1024 threads
  EXPECT_THROW(launch(write_at, 0, 32, 0, nullptr, out, 0), Error);    // empty grid
  cudaFree(out);
}

TEST(EmuHarness, HostPointerAsKernelArgumentIsAnError) {
  std::vector<float> host(4);
  EXPECT_THROW(launch(write_at, 1, 1, 0, nullptr, host.data(), 0), Error);
  float* freed = device_alloc<float>(4);
  cudaFree(freed);
  EXPECT_THROW(launch(write_at, 1, 1, 0, nullptr, freed, 0), Error);
}

TEST(EmuHarness, CopiesOutsideAnAllocationAreAnError) {
  float* d = device_alloc<float>(4);
  std::vector<float> host(8);
  EXPECT_THROW(cudaMemcpy(host.data(), d, 8 * sizeof(float), cudaMemcpyDeviceToHost), Error);
  EXPECT_THROW(cudaMemset(d, 0, 5 * sizeof(float)), Error);
  cudaFree(d);
}

TEST(EmuHarness, WriteIntoTheSlackBehindAnAllocationIsAnError) {
  float* d = device_alloc<float>(3);  // 12 bytes: 4 bytes of canary before the guard page
  EXPECT_THROW(launch(write_at, 1, 1, 0, nullptr, d, 3), Error);
  cudaFree(d);
}

using EmuHarnessDeathTest = ::testing::Test;

TEST(EmuHarnessDeathTest, OutOfBoundsWriteIsCaughtByTheGuardPage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        float* d = device_alloc<float>(64);  // 256 bytes: ends exactly at the guard page
        launch(write_at, 1, 1, 0, nullptr, d, 64);
      },
      "out-of-bounds device memory access.*0 bytes past the end of a 256-byte allocation");
}

TEST(EmuHarnessDeathTest, OutOfBoundsReadIsCaughtByTheGuardPage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        float* in = device_alloc<float>(1024);
        float* out = device_alloc<float>(1);
        launch(read_at, 1, 1, 0, nullptr, out, static_cast<const float*>(in), 1030);
      },
      "out-of-bounds device memory access.*past the end of a 4096-byte allocation");
}

__global__ void copy8(float* out /* [8] */, const float* in /* [8] */, bool vec) {
  float v[8];
  load8(v, in, 0, 8, vec);
  store8(out, v, 0, 8, vec);
}

TEST(EmuHarness, Misaligned16ByteAccessIsAnError) {
  // A GPU faults on a 16-byte load from an address that is not 16-byte aligned; x86 does not,
  // so the harness must refuse it for the kernels' tests to mean anything on a real device.
  float* buffer = device_alloc<float>(16);
  upload(buffer, std::vector<float>(16, 1.0f));
  launch(copy8, dim3(1), dim3(1), 0, nullptr, buffer + 8, buffer, true);  // aligned: fine
  EXPECT_EQ(download(buffer + 8, 8), std::vector<float>(8, 1.0f));
  EXPECT_THROW(launch(copy8, dim3(1), dim3(1), 0, nullptr, buffer + 8, buffer + 1, true), Error);
  launch(copy8, dim3(1), dim3(1), 0, nullptr, buffer + 8, buffer + 1, false);  // scalar path
  cudaFree(buffer);
}

__global__ void touch_dynamic_shared(float* out /* [1] */) {
  float* scratch = dynamic_shared<float>();
  scratch[threadIdx.x] = 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = scratch[0];
}

TEST(EmuHarness, DynamicSharedAbove48KiBNeedsTheKernelsOptIn) {
  float* out = device_alloc<float>(1);
  launch(touch_dynamic_shared, dim3(1), dim3(32), 48 * 1024, nullptr, out);  // default limit
  EXPECT_THROW(launch(touch_dynamic_shared, dim3(1), dim3(32), 64 * 1024, nullptr, out), Error);
  ASSERT_EQ(cudaFuncSetAttribute(reinterpret_cast<const void*>(touch_dynamic_shared),
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024),
            cudaSuccess);
  launch(touch_dynamic_shared, dim3(1), dim3(32), 64 * 1024, nullptr, out);
  EXPECT_EQ(download(out, 1)[0], 1.0f);
  EXPECT_NE(cudaFuncSetAttribute(reinterpret_cast<const void*>(touch_dynamic_shared),
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024),
            cudaSuccess);
  cudaFree(out);
}

TEST(EmuHarness, DevicePropertiesAreANominalSm90) {
  cudaDeviceProp prop;
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  EXPECT_EQ(prop.major, 9);
  EXPECT_EQ(prop.minor, 0);
  EXPECT_EQ(prop.warpSize, 32);
  int count = 0;
  ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  EXPECT_EQ(count, 1);
}

TEST(EmuHarness, StreamsAndEventsRunInOrder) {
  cudaStream_t stream;
  cudaEvent_t start, stop;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  float* d = device_alloc<float>(1);
  cudaEventRecord(start, stream);
  launch(write_at, 1, 1, 0, stream, d, 0);
  std::vector<float> host{7.0f};
  ASSERT_EQ(cudaMemcpyAsync(host.data(), d, 4, cudaMemcpyDeviceToHost, stream), cudaSuccess);
  cudaEventRecord(stop, stream);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(host[0], 42.0f);
  float ms = -1;
  ASSERT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
  EXPECT_GE(ms, 0.0f);
  cudaFree(d);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace smol::gpu_emu

// cuda-emu's event timing (kernels/emu/emu_memory.cpp), which Backend::elapsed_ms and the
// benchmark's per-op breakdown read (bench/model/op_timer.h): the time between two records is
// the host time between them, ≥ 0 and growing with the work queued between, and an event never
// recorded is refused as the CUDA runtime refuses it (cudaErrorInvalidResourceHandle).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "kernels/cuda/cuda_compat.h"

namespace smol::gpu_emu {
namespace {

TEST(EmuEventTiming, ElapsedTimeIsTheTimeBetweenRecords) {
  cudaStream_t stream;
  cudaEvent_t a, b, c;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&a), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&b), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&c), cudaSuccess);
  float ms = -1;
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, b), cudaErrorInvalidResourceHandle)
      << "neither event was recorded";
  ASSERT_EQ(cudaEventRecord(a, stream), cudaSuccess);
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, b), cudaErrorInvalidResourceHandle)
      << "the end event was not recorded";
  // 20 ms of host time stands for 20 ms of device work (the emulator runs work when queued).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(cudaEventRecord(b, stream), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(c, stream), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  ASSERT_EQ(cudaEventElapsedTime(&ms, a, b), cudaSuccess);
  EXPECT_GE(ms, 20.0f);  // sleep_for sleeps at least that long
  float bc = -1;
  ASSERT_EQ(cudaEventElapsedTime(&bc, b, c), cudaSuccess);
  EXPECT_GE(bc, 0.0f);
  EXPECT_LT(bc, ms) << "back-to-back records are closer than a 20 ms sleep";
  // Re-recording moves the event (OpTimer reuses its events step after step).
  ASSERT_EQ(cudaEventRecord(a, stream), cudaSuccess);
  ASSERT_EQ(cudaEventElapsedTime(&ms, b, a), cudaSuccess);
  EXPECT_GE(ms, 0.0f);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaEventDestroy(c);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace smol::gpu_emu

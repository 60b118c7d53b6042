// cuda-emu stream capture and graphs (kernels/emu/emu_graph.cpp, docs/design.md §2.8):
//  - while a stream captures, launches, async copies, memsets and cuBLASLt matmuls are recorded
//    with their argument values, not run; each cudaGraphLaunch runs them in order;
//  - what a GPU refuses during a capture throws naming the call and invalidates the capture:
//    host waits (stream synchronise, synchronous copies — a download —, event synchronise,
//    cudaFree), allocations, and async copies from pageable host memory;
//  - cudaGraphExecUpdate takes new parameters for the same topology and refuses a changed one.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/cuda/cuda_compat.h"

namespace smol::gpu_emu {
namespace {

__global__ void add_value(float* data, float value, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) data[i] += value;
}
__global__ void scale_value(float* data, float value, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) data[i] *= value;
}

struct Fixture {
  cudaStream_t stream = nullptr;
  float* data = nullptr;
  static constexpr int kN = 40;
  Fixture() {
    EXPECT_EQ(cudaStreamCreate(&stream), cudaSuccess);
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&data), kN * sizeof(float)), cudaSuccess);
    EXPECT_EQ(cudaMemset(data, 0, kN * sizeof(float)), cudaSuccess);
  }
  ~Fixture() {
    cudaFree(data);
    cudaStreamDestroy(stream);
  }
  std::vector<float> read() const {
    std::vector<float> host(kN);
    EXPECT_EQ(cudaMemcpy(host.data(), data, kN * sizeof(float), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return host;
  }
};

TEST(EmuGraph, CapturedWorkRunsAtEachLaunchNotWhenRecorded) {
  Fixture f;
  float* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&pinned), Fixture::kN * sizeof(float)),
            cudaSuccess);
  for (int i = 0; i < Fixture::kN; ++i) pinned[i] = 1.0f;
  ASSERT_EQ(cudaStreamBeginCapture(f.stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  cudaStreamCaptureStatus status{};
  ASSERT_EQ(cudaStreamIsCapturing(f.stream, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusActive);
  // data = pinned (1); data += 2; data *= 3  →  9 at each launch.
  ASSERT_EQ(cudaMemcpyAsync(f.data, pinned, Fixture::kN * sizeof(float), cudaMemcpyHostToDevice,
                            f.stream),
            cudaSuccess);
  launch(add_value, 1, 64, 0, f.stream, f.data, 2.0f, Fixture::kN);
  launch(scale_value, 1, 64, 0, f.stream, f.data, 3.0f, Fixture::kN);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(f.stream, &graph), cudaSuccess);
  for (float x : f.read()) ASSERT_EQ(x, 0.0f) << "captured work ran while being recorded";
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, f.stream), cudaSuccess);
  for (float x : f.read()) EXPECT_EQ(x, 9.0f);
  // The copy node reads the pinned source at launch, as a GPU's does.
  for (int i = 0; i < Fixture::kN; ++i) pinned[i] = 2.0f;
  ASSERT_EQ(cudaGraphLaunch(exec, f.stream), cudaSuccess);
  for (float x : f.read()) EXPECT_EQ(x, 12.0f);

  // Same topology, new parameters: the update takes them.
  ASSERT_EQ(cudaStreamBeginCapture(f.stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(f.data, pinned, Fixture::kN * sizeof(float), cudaMemcpyHostToDevice,
                            f.stream),
            cudaSuccess);
  launch(add_value, 1, 64, 0, f.stream, f.data, 5.0f, Fixture::kN);
  launch(scale_value, 1, 64, 0, f.stream, f.data, 10.0f, Fixture::kN);
  cudaGraph_t same = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(f.stream, &same), cudaSuccess);
  cudaGraphExecUpdateResultInfo info{};
  ASSERT_EQ(cudaGraphExecUpdate(exec, same, &info), cudaSuccess);
  EXPECT_EQ(info.result, cudaGraphExecUpdateSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, f.stream), cudaSuccess);
  for (float x : f.read()) EXPECT_EQ(x, 70.0f);

  // Another kernel in a node's place: the topology changed, the update is refused.
  ASSERT_EQ(cudaStreamBeginCapture(f.stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(f.data, pinned, Fixture::kN * sizeof(float), cudaMemcpyHostToDevice,
                            f.stream),
            cudaSuccess);
  launch(scale_value, 1, 64, 0, f.stream, f.data, 5.0f, Fixture::kN);
  launch(scale_value, 1, 64, 0, f.stream, f.data, 10.0f, Fixture::kN);
  cudaGraph_t other = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(f.stream, &other), cudaSuccess);
  EXPECT_EQ(cudaGraphExecUpdate(exec, other, &info), cudaErrorGraphExecUpdateFailure);
  EXPECT_EQ(info.result, cudaGraphExecUpdateErrorTopologyChanged);
  cudaGraphDestroy(graph);
  cudaGraphDestroy(same);
  cudaGraphDestroy(other);
  cudaGraphExecDestroy(exec);
  cudaFreeHost(pinned);
}

// Begins a capture, runs `refused`, expects a smol::Error naming `call`, and expects the capture
// to end invalidated (no graph).
template <typename F>
void expect_refused(const char* call, F&& refused) {
  Fixture f;
  ASSERT_EQ(cudaStreamBeginCapture(f.stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  launch(add_value, 1, 64, 0, f.stream, f.data, 2.0f, Fixture::kN);
  try {
    refused(f);
    ADD_FAILURE() << call << " was accepted during a capture";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(call), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("during stream capture"), std::string::npos) << e.what();
  }
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(f.stream, &graph), cudaErrorStreamCaptureInvalidated) << call;
  EXPECT_EQ(graph, nullptr);
  for (float x : f.read()) EXPECT_EQ(x, 0.0f) << "the invalidated capture's work ran";
}

TEST(EmuGraph, HostWaitsAllocationsAndPageableCopiesAreRefusedDuringCapture) {
  std::vector<float> pageable(Fixture::kN, 1.0f);
  // A download is a device-to-host copy and a wait for it.
  expect_refused("cudaMemcpy", [&](Fixture& f) {
    cudaMemcpy(pageable.data(), f.data, Fixture::kN * sizeof(float), cudaMemcpyDeviceToHost);
  });
  expect_refused("cudaStreamSynchronize", [](Fixture& f) { cudaStreamSynchronize(f.stream); });
  expect_refused("cudaDeviceSynchronize", [](Fixture&) { cudaDeviceSynchronize(); });
  expect_refused("cudaEventSynchronize", [](Fixture& f) {
    cudaEvent_t event = nullptr;
    cudaEventCreate(&event);
    cudaEventRecord(event, f.stream);
    try {
      cudaEventSynchronize(event);
    } catch (...) {
      cudaEventDestroy(event);
      throw;
    }
  });
  expect_refused("cudaMalloc", [](Fixture&) {
    void* p = nullptr;
    cudaMalloc(&p, 64);
  });
  expect_refused("cudaFree", [](Fixture& f) { cudaFree(f.data); });
  expect_refused("pageable host memory", [&](Fixture& f) {
    cudaMemcpyAsync(f.data, pageable.data(), Fixture::kN * sizeof(float), cudaMemcpyHostToDevice,
                    f.stream);
  });
}

TEST(EmuGraph, OnlyOneCaptureAndNotOnTheLegacyStream) {
  Fixture f;
  EXPECT_EQ(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal),
            cudaErrorStreamCaptureUnsupported);
  ASSERT_EQ(cudaStreamBeginCapture(f.stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaStreamBeginCapture(f.stream, cudaStreamCaptureModeGlobal), cudaErrorIllegalState);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(f.stream, &graph), cudaSuccess);
  cudaGraphDestroy(graph);
}

}  // namespace
}  // namespace smol::gpu_emu

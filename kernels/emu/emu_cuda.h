// cuda-emu: the subset of the CUDA programming model that kernels/cuda/*.cu uses, for the host
// compiler (docs/design.md §2). kernels/cuda/cuda_compat.h includes this header instead of the CUDA
// runtime when SMOL_CUDA_EMU is defined, so the very same kernel sources run on the CPU.
//
// How it works:
//  - Types (dim3, cudaError_t, cudaStream_t, __nv_bfloat16, cublasLt handles and enums) come
//    from CUDA's own headers, which compile as plain C++ under g++.
//  - Every runtime / cuBLASLt entry point the backend calls is redirected by a macro to a
//    function in smol::emu, so the emu never defines a symbol that the real libcudart or
//    libcublasLt also define (both backends can live in one binary).
//  - A launch runs the grid's blocks one after another; the threads of a block run as fibers
//    (emu_fiber.cpp). threadIdx & co. read the current fiber's registers.
//  - `__shared__` becomes `static thread_local`: blocks run one at a time on one OS thread, so
//    the fibers of a block share it, exactly like a block's shared memory.
//  - __syncthreads / __syncwarp / shuffles / votes are barriers between fibers; a barrier that
//    not every thread of the block (or lane of the warp) reaches is a smol::Error.
//  - Device memory is host memory with a guard page after each allocation (emu_memory.cpp).
//  - Stream capture records launches, async copies and memsets, and cuBLASLt matmuls as closures
//    over their arguments; graph launches replay them; what a capture refuses (host waits,
//    allocations, pageable copies) throws (emu_graph.cpp, docs/design.md §2.8).
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

#include "common/error.h"
#include "kernels/emu/emu_host_waits.h"

namespace smol::emu {

// ---- the registers of the thread (fiber) now running ---------------------------------------
struct ThreadRegisters {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
const ThreadRegisters& current_thread();

// ---- barriers between fibers (emu_fiber.cpp) -----------------------------------------------
void syncthreads(const char* file, int line);
void syncwarp(unsigned mask, const char* file, int line);
// All lanes of the calling warp deposit `value`; returns lane `src_lane`'s value (own value when
// src_lane is outside the warp). Every lane named in `mask` must arrive.
uint64_t warp_exchange(unsigned mask, uint64_t value, int src_lane, const char* file, int line);
// Every lane of the calling warp deposits `bytes` (≤ kWarpAllGatherMaxBytes) from `mine`;
// each lane receives every lane's deposit, lane after lane, in `all` [32 · bytes]. One barrier:
// the tensor-core emulation (kernels/cuda/mma.h) builds each lane's exact fragment from it.
inline constexpr size_t kWarpAllGatherMaxBytes = 32;
void warp_all_gather(unsigned mask, const void* mine, size_t bytes, void* all, const char* file,
                     int line);
// Returns the ballot (bit per lane) of `predicate` over the lanes in `mask`.
unsigned warp_ballot(unsigned mask, bool predicate, const char* file, int line);
unsigned warp_live_mask();  // lanes that exist in the calling warp
// Dynamic shared memory (`extern __shared__`) of the running block: poisoned with 0xFF bytes
// (NaN for floats) at block start, so reads of never-written shared data show up.
void* dynamic_shared_memory();

// ---- launch -----------------------------------------------------------------------------------
// Runs `body` as every thread of every block of the grid (see emu_fiber.cpp).
void run_grid(const void* kernel_address, dim3 grid, dim3 block, size_t shared_bytes,
              cudaStream_t stream, const std::function<void()>& body);
// Throws smol::Error naming argument `index` when a non-null pointer argument lies outside
// every live device allocation (a host pointer or a freed buffer handed to a kernel).
void check_kernel_pointer_argument(const void* pointer, int index);
// Is [p, p + bytes) inside one live device allocation?
bool is_device_range(const void* p, size_t bytes);
// After each launch: throws when a kernel wrote into the slack bytes behind an allocation.
void check_allocation_canaries();

template <typename Arg>
void check_argument(const Arg& arg, int index) {
  if constexpr (std::is_pointer_v<std::decay_t<Arg>>) {
    if (arg != nullptr) check_kernel_pointer_argument(static_cast<const void*>(arg), index);
  }
}

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            cudaStream_t stream, Args&&... args) {
  int index = 0;
  (check_argument(args, index++), ...);
  // Arguments are converted to the kernel's parameter types once, as a real launch copies them.
  auto body = [kernel, params = std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)] {
    std::apply(kernel, params);
  };
  run_grid(reinterpret_cast<const void*>(kernel), grid, block, shared_bytes, stream, body);
  check_allocation_canaries();
}

// ---- runtime API (emu_memory.cpp) -------------------------------------------------------------
cudaError_t cudaMalloc(void** pointer, size_t bytes);
cudaError_t cudaFree(void* pointer);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemset(void* pointer, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);  // always complete: streams run at once
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);
// The dynamic shared memory a launch of `kernel` may use: 48 KiB unless cudaFuncSetAttribute
// raised it (as on a GPU).
size_t max_dynamic_shared_bytes(const void* kernel);
cudaError_t cudaGetLastError();
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaMallocHost(void** pointer, size_t bytes);  // pinned host memory
cudaError_t cudaFreeHost(void* pointer);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags);

// ---- graphs: stream capture, instantiate, update, launch (emu_graph.cpp, docs/design.md §2.8) --
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                 unsigned long long flags = 0);
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph,
                                cudaGraphExecUpdateResultInfo* info);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
// Only the count (nodes must be null): the emu's nodes have no handles.
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

// ---- cuBLASLt over OpenBLAS (emu_cublaslt.cpp) ----------------------------------------------
cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale_type);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void* buf,
                                              size_t size);
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout);
// BATCH_COUNT (int32) and STRIDED_BATCH_OFFSET (int64, elements) only.
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout,
                                                cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size);
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void* buf, size_t size);
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int* returned);
cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha,
                              const void* a, cublasLtMatrixLayout_t a_layout, const void* b,
                              cublasLtMatrixLayout_t b_layout, const void* beta, const void* c,
                              cublasLtMatrixLayout_t c_layout, void* d,
                              cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t* algo,
                              void* workspace, size_t workspace_bytes, cudaStream_t stream);

// ---- atomics: fibers never preempt each other, so plain read-modify-write is atomic --------
template <typename T>
inline T atomic_add(T* address, T value) {
  T old = *address;
  *address = old + value;
  return old;
}
template <typename T>
inline T atomic_max(T* address, T value) {
  T old = *address;
  if (value > old) *address = value;
  return old;
}
template <typename T>
inline T atomic_cas(T* address, T compare, T value) {
  T old = *address;
  if (old == compare) *address = value;
  return old;
}

template <typename T>
inline T shuffle_as(unsigned mask, T value, int src_lane, const char* file, int line) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>);
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = warp_exchange(mask, bits, src_lane, file, line);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
inline int lane_id() {
  const auto& r = current_thread();
  const unsigned linear =
      r.thread_idx.x + r.block_dim.x * (r.thread_idx.y + r.block_dim.y * r.thread_idx.z);
  return static_cast<int>(linear % 32);
}

}  // namespace smol::emu

// ---- built-in variables and intrinsics ---------------------------------------------------------
#define threadIdx (::smol::emu::current_thread().thread_idx)
#define blockIdx (::smol::emu::current_thread().block_idx)
#define blockDim (::smol::emu::current_thread().block_dim)
#define gridDim (::smol::emu::current_thread().grid_dim)

inline constexpr int warpSize = 32;

#undef __shared__
#define __shared__ static thread_local
#undef __launch_bounds__
#define __launch_bounds__(...)

#define __syncthreads() ::smol::emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::smol::emu::syncwarp_at(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)

// Shuffles: the source lane is computed per CUDA's definition within segments of `width` lanes;
// a source outside the segment returns the caller's own value. File and line come first so the
// optional width keeps its default.
#define __shfl_sync(...) ::smol::emu::shfl_idx(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) ::smol::emu::shfl_xor(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::smol::emu::shfl_down(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::smol::emu::shfl_up(__FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(mask, predicate) \
  ::smol::emu::warp_ballot(mask, static_cast<bool>(predicate), __FILE__, __LINE__)
#define __all_sync(mask, predicate)                                                    \
  (::smol::emu::warp_ballot(mask, static_cast<bool>(predicate), __FILE__, __LINE__) == \
   ((mask) & ::smol::emu::warp_live_mask()))
#define __any_sync(mask, predicate) \
  (::smol::emu::warp_ballot(mask, static_cast<bool>(predicate), __FILE__, __LINE__) != 0u)

namespace smol::emu {
inline void syncwarp_at(const char* file, int line, unsigned mask = 0xffffffffu) {
  syncwarp(mask, file, line);
}
template <typename T>
T shfl_idx(const char* file, int line, unsigned mask, T v, int src, int width = 32) {
  const int lane = lane_id();
  return shuffle_as(mask, v, (lane & ~(width - 1)) + (src & (width - 1)), file, line);
}
template <typename T>
T shfl_xor(const char* file, int line, unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = lane_id();
  const int src = lane ^ lane_mask;
  const bool same_segment = (src & ~(width - 1)) == (lane & ~(width - 1));
  return shuffle_as(mask, v, same_segment ? src : lane, file, line);
}
template <typename T>
T shfl_down(const char* file, int line, unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = lane_id();
  const bool inside = (lane & (width - 1)) + static_cast<int>(delta) < width;
  return shuffle_as(mask, v, inside ? lane + static_cast<int>(delta) : lane, file, line);
}
template <typename T>
T shfl_up(const char* file, int line, unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = lane_id();
  const bool inside = (lane & (width - 1)) >= static_cast<int>(delta);
  return shuffle_as(mask, v, inside ? lane - static_cast<int>(delta) : lane, file, line);
}
}  // namespace smol::emu

inline float atomicAdd(float* a, float v) {
  return ::smol::emu::atomic_add(a, v);
}
inline double atomicAdd(double* a, double v) {
  return ::smol::emu::atomic_add(a, v);
}
inline int atomicAdd(int* a, int v) {
  return ::smol::emu::atomic_add(a, v);
}
inline unsigned atomicAdd(unsigned* a, unsigned v) {
  return ::smol::emu::atomic_add(a, v);
}
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
  return ::smol::emu::atomic_add(a, v);
}
inline int atomicMax(int* a, int v) {
  return ::smol::emu::atomic_max(a, v);
}
inline unsigned atomicMax(unsigned* a, unsigned v) {
  return ::smol::emu::atomic_max(a, v);
}
inline int atomicCAS(int* a, int c, int v) {
  return ::smol::emu::atomic_cas(a, c, v);
}
inline unsigned atomicCAS(unsigned* a, unsigned c, unsigned v) {
  return ::smol::emu::atomic_cas(a, c, v);
}
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long c,
                                    unsigned long long v) {
  return ::smol::emu::atomic_cas(a, c, v);
}

inline float rsqrtf(float x) {
  return 1.0f / std::sqrt(x);
}
inline float __expf(float x) {
  return std::exp(x);
}
inline float __logf(float x) {
  return std::log(x);
}
inline float __fdividef(float a, float b) {
  return a / b;
}
inline void __threadfence() {}
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
template <typename T>
inline T __ldcs(const T* p) {
  return *p;
}
template <typename T>
inline void __stcs(T* p, T v) {
  *p = v;
}

// ---- runtime and cuBLASLt entry points: redirected to smol::emu -------------------------------
// (Not inside the emu's own .cpp files, which define these functions.)
#ifndef SMOL_EMU_IMPLEMENTATION
#define cudaMalloc ::smol::emu::cudaMalloc
#define cudaFree ::smol::emu::cudaFree
#define cudaMemcpy ::smol::emu::cudaMemcpy
#define cudaMemcpyAsync ::smol::emu::cudaMemcpyAsync
#define cudaMemset ::smol::emu::cudaMemset
#define cudaMemsetAsync ::smol::emu::cudaMemsetAsync
#define cudaStreamCreate ::smol::emu::cudaStreamCreate
#define cudaStreamDestroy ::smol::emu::cudaStreamDestroy
#define cudaStreamSynchronize ::smol::emu::cudaStreamSynchronize
#define cudaDeviceSynchronize ::smol::emu::cudaDeviceSynchronize
#define cudaEventCreate ::smol::emu::cudaEventCreate
#define cudaEventDestroy ::smol::emu::cudaEventDestroy
#define cudaEventRecord ::smol::emu::cudaEventRecord
#define cudaEventSynchronize ::smol::emu::cudaEventSynchronize
#define cudaEventQuery ::smol::emu::cudaEventQuery
#define cudaEventElapsedTime ::smol::emu::cudaEventElapsedTime
#define cudaGetDeviceCount ::smol::emu::cudaGetDeviceCount
#define cudaSetDevice ::smol::emu::cudaSetDevice
#define cudaGetDevice ::smol::emu::cudaGetDevice
#define cudaGetDeviceProperties ::smol::emu::cudaGetDeviceProperties
#define cudaDeviceGetAttribute ::smol::emu::cudaDeviceGetAttribute
#define cudaFuncSetAttribute ::smol::emu::cudaFuncSetAttribute
#define cudaGetLastError ::smol::emu::cudaGetLastError
#define cudaMemGetInfo ::smol::emu::cudaMemGetInfo
#define cudaGetErrorString ::smol::emu::cudaGetErrorString
#define cudaMallocHost ::smol::emu::cudaMallocHost
#define cudaFreeHost ::smol::emu::cudaFreeHost
#define cudaStreamWaitEvent ::smol::emu::cudaStreamWaitEvent
#define cudaStreamBeginCapture ::smol::emu::cudaStreamBeginCapture
#define cudaStreamEndCapture ::smol::emu::cudaStreamEndCapture
#define cudaStreamIsCapturing ::smol::emu::cudaStreamIsCapturing
#define cudaGraphInstantiate ::smol::emu::cudaGraphInstantiate
#define cudaGraphExecUpdate ::smol::emu::cudaGraphExecUpdate
#define cudaGraphLaunch ::smol::emu::cudaGraphLaunch
#define cudaGraphGetNodes ::smol::emu::cudaGraphGetNodes
#define cudaGraphDestroy ::smol::emu::cudaGraphDestroy
#define cudaGraphExecDestroy ::smol::emu::cudaGraphExecDestroy
#define cublasLtCreate ::smol::emu::cublasLtCreate
#define cublasLtDestroy ::smol::emu::cublasLtDestroy
#define cublasLtMatmulDescCreate ::smol::emu::cublasLtMatmulDescCreate
#define cublasLtMatmulDescDestroy ::smol::emu::cublasLtMatmulDescDestroy
#define cublasLtMatmulDescSetAttribute ::smol::emu::cublasLtMatmulDescSetAttribute
#define cublasLtMatrixLayoutCreate ::smol::emu::cublasLtMatrixLayoutCreate
#define cublasLtMatrixLayoutDestroy ::smol::emu::cublasLtMatrixLayoutDestroy
#define cublasLtMatrixLayoutSetAttribute ::smol::emu::cublasLtMatrixLayoutSetAttribute
#define cublasLtMatmulPreferenceCreate ::smol::emu::cublasLtMatmulPreferenceCreate
#define cublasLtMatmulPreferenceDestroy ::smol::emu::cublasLtMatmulPreferenceDestroy
#define cublasLtMatmulPreferenceSetAttribute ::smol::emu::cublasLtMatmulPreferenceSetAttribute
#define cublasLtMatmulAlgoGetHeuristic ::smol::emu::cublasLtMatmulAlgoGetHeuristic
#define cublasLtMatmul ::smol::emu::cublasLtMatmul
#endif  // SMOL_EMU_IMPLEMENTATION

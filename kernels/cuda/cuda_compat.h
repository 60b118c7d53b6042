// What every kernels/cuda source includes: the CUDA runtime (nvcc) or the cuda-emu runtime
// (g++ with SMOL_CUDA_EMU, kernels/emu/emu_cuda.h), plus the few device helpers the kernels
// share (llm.c's cuda_common.h / cuda_utils.cuh, without their globals):
//  - launch(kernel, grid, block, shared_bytes, stream, args...): the one way kernels start;
//    <<<>>> under nvcc, the fiber scheduler under emu.
//  - Everything lives in namespace smol::SMOL_GPU_NS (gpu for nvcc, gpu_emu for g++), so both
//    builds link into one binary without clashing symbols.
//  - to_float / from_float: fp32 <-> storage type (float or bf16, round-to-nearest-even).
//  - load8 / store8: eight consecutive elements as fp32, one or two 16-byte accesses when the
//    caller says the address is 16-byte aligned, scalar (and bounds-checked) otherwise.
//  - warp_sum / block_sum: fixed-order tree reductions (deterministic).
#pragma once

#if defined(SMOL_CUDA_EMU)
#include "kernels/emu/emu_cuda.h"
#define SMOL_GPU_NS gpu_emu
#else
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#define SMOL_GPU_NS gpu
#endif

#include <cstdint>
#include <utility>

#include "common/error.h"

namespace smol::SMOL_GPU_NS {

using bf16 = __nv_bfloat16;

inline void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw_error("cuda: ", what, ": ", cudaGetErrorString(status));
}
inline void cublas_check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw_error("cublasLt: ", what, " failed with status ", static_cast<int>(status));
}

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            cudaStream_t stream, Args&&... args) {
#if defined(SMOL_CUDA_EMU)
  ::smol::emu::launch(kernel, grid, block, shared_bytes, stream, std::forward<Args>(args)...);
#else
  // clang-format off
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
  // clang-format on
  cuda_check(cudaGetLastError(), "kernel launch");
#endif
}

inline unsigned ceil_div(int64_t a, int64_t b) {
  return static_cast<unsigned>((a + b - 1) / b);
}
inline bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Dynamic shared memory of the running block, as T*.
template <typename T>
__device__ __forceinline__ T* dynamic_shared() {
#if defined(SMOL_CUDA_EMU)
  return static_cast<T*>(::smol::emu::dynamic_shared_memory());
#else
  extern __shared__ __align__(16) unsigned char smol_dynamic_smem[];
  return reinterpret_cast<T*>(smol_dynamic_smem);
#endif
}

__device__ __forceinline__ float to_float(float x) {
  return x;
}
__device__ __forceinline__ float to_float(bf16 x) {
  return __bfloat162float(x);
}
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) {
  return __float2bfloat16(x);
}

// 16 bytes of T (llm.c's Packed128): one LDG.128/STG.128 under nvcc. Accessing T elements
// through a struct of T keeps the compiler's aliasing rules intact.
template <typename T>
struct alignas(16) Packed128 {
  static constexpr int kSize = 16 / sizeof(T);
  T e[kSize];
};

// A 16-byte access to a misaligned address faults on a GPU but works on x86, so under cuda-emu
// every Packed128 access checks its alignment: a caller that claims `vec` wrongly fails here.
__device__ __forceinline__ void check_aligned16(const void* p) {
#if defined(SMOL_CUDA_EMU)
  if (!aligned16(p)) throw_error("cuda-emu: misaligned 16-byte access at ", p);
#else
  (void)p;
#endif
}

// Loads elements [i, i+8) of p (n elements in all) as fp32; missing ones read as 0.
// vec: p is 16-byte aligned and i is a multiple of 8, so full groups use 16-byte loads.
template <typename T>
__device__ __forceinline__ void load8(float (&out)[8], const T* p, int64_t i, int64_t n, bool vec) {
  if (vec && i + 8 <= n) {
    constexpr int kPer = Packed128<T>::kSize;  // 8 bf16 or 4 floats
    for (int part = 0; part < 8 / kPer; ++part) {
      check_aligned16(p + i + part * kPer);
      const Packed128<T> v = *reinterpret_cast<const Packed128<T>*>(p + i + part * kPer);
      for (int j = 0; j < kPer; ++j) out[part * kPer + j] = to_float(v.e[j]);
    }
    return;
  }
  for (int j = 0; j < 8; ++j) out[j] = i + j < n ? to_float(p[i + j]) : 0.0f;
}

// Stores elements [i, min(i+8, n)) of p from fp32, rounding once to T.
template <typename T>
__device__ __forceinline__ void store8(T* p, const float (&in)[8], int64_t i, int64_t n, bool vec) {
  if (vec && i + 8 <= n) {
    constexpr int kPer = Packed128<T>::kSize;
    for (int part = 0; part < 8 / kPer; ++part) {
      Packed128<T> v;
      for (int j = 0; j < kPer; ++j) v.e[j] = from_float<T>(in[part * kPer + j]);
      check_aligned16(p + i + part * kPer);
      *reinterpret_cast<Packed128<T>*>(p + i + part * kPer) = v;
    }
    return;
  }
  for (int j = 0; j < 8; ++j)
    if (i + j < n) p[i + j] = from_float<T>(in[j]);
}

// Butterfly sum over the 32 lanes; every lane gets the same (bitwise) result.
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets
// the result. `scratch` is 32 elements of shared memory; the call ends with a barrier so the
// scratch may be reused right away.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int warps = blockDim.x / 32;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T total = lane < warps ? scratch[lane] : T(0);
  total = warp_sum(total);
  __syncthreads();
  return total;
}

// Maximum over a block, the twin of block_sum (same scratch and barrier contract).
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int warps = blockDim.x / 32;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float m = lane < warps ? scratch[lane] : -INFINITY;
  m = warp_max(m);
  __syncthreads();
  return m;
}

}  // namespace smol::SMOL_GPU_NS

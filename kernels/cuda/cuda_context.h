// GpuContext: the per-backend state every cuda op needs — the stream, the cuBLASLt handle and
// its cached plans, the matmul workspace, and a growable scratch area for reduction partials.
// Owned by the CudaBackend object (no globals, unlike llm.c's main_stream / cublaslt_handle).
#pragma once

#include <map>
#include <tuple>

#include "kernels/cuda/cuda_compat.h"
#include "kernels/tensor.h"

namespace smol::SMOL_GPU_NS {

// A cuBLASLt plan for one (shape, transposes, dtypes) combination: built once, reused forever.
struct MatmulPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};
using MatmulKey = std::tuple<int64_t, int64_t, int64_t, int, int, int, int>;  // M,N,K,ta,tb,in,out

class GpuContext {
 public:
  GpuContext();
  ~GpuContext();
  GpuContext(const GpuContext&) = delete;
  GpuContext& operator=(const GpuContext&) = delete;

  cudaStream_t stream() const { return stream_; }
  cublasLtHandle_t cublaslt() const { return cublaslt_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return kWorkspaceBytes; }
  std::map<MatmulKey, MatmulPlan>& matmul_plans() { return plans_; }

  // `bytes` of device scratch, valid until the next scratch() call (ops are stream-ordered,
  // so reuse by the next op is safe). Grows by reallocation, never shrinks.
  void* scratch(size_t bytes);
  // A second, independent scratch region (matmul operand casts while scratch() is in use).
  void* scratch2(size_t bytes);

  // Number of streaming multiprocessors, for sizing persistent grids.
  int sm_count() const { return sm_count_; }

 private:
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // llm.c's cuBLASLt workspace
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t cublaslt_ = nullptr;
  void* workspace_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  void* scratch2_ = nullptr;
  size_t scratch2_bytes_ = 0;
  int sm_count_ = 1;
  std::map<MatmulKey, MatmulPlan> plans_;
};

// Calls f(tag) with tag a float or bf16 value matching dtype; other dtypes are an Error.
template <typename F>
void dispatch_float(DType dtype, const char* what, F&& f) {
  if (dtype == DType::F32) return f(float{});
  if (dtype == DType::BF16) return f(bf16{});
  throw_error(what, ": dtype ", dtype_name(dtype), " is not F32 or BF16");
}

}  // namespace smol::SMOL_GPU_NS

// matmul: c[M,N] = alpha · op(a) · op(b) + beta · c (row-major, backend.h) through cuBLASLt,
// fp32 accumulation (CUBLAS_COMPUTE_32F), inputs BF16 or F32, output BF16 or F32.
//
// Row-major to column-major: a row-major [r, c] matrix is the column-major c×r matrix (its
// transpose) with ld = c. So we compute the column-major product
//     Cᵀ (N×M, ld N) = op(b)ᵀ · op(a)ᵀ
// passing b as cuBLAS's "A" operand and a as its "B" operand:
//   cuBLAS A = b: stored column-major as (tb == No ? N×K : K×N), ld = its rows, and
//                 op = (tb == No ? N : T) gives op(b)ᵀ (N×K);
//   cuBLAS B = a: stored column-major as (ta == No ? K×M : M×K), ld = its rows, and
//                 op = (ta == No ? N : T) gives op(a)ᵀ (K×M).
// Plans (descriptor, layouts, heuristic algorithm) are cached per (M, N, K, transposes, dtypes,
// operand alignment) in the GpuContext and never rebuilt (llm.c rebuilt them on every call). Mixed
// input dtypes (a LoRA factor in F32 against bf16 activations) are resolved by casting the F32
// operand to bf16 in scratch, so cuBLASLt always sees one input type. Alignment: cuBLASLt's
// heuristic assumes 256-byte aligned operands unless told otherwise
// (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES, default 256), and an algorithm chosen for 256
// need not run on less. Arena tensors start on 256 bytes; a row slice of a view need not (a LoRA
// group member's rows of the stacked uᵀ [ΣR, T], docs/design.md §2.7), so the plan is chosen for
// the operands' actual alignment.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

cudaDataType_t cuda_type(DType t) {
  return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

// The largest power of two ≤ 256 that divides the address.
uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && address % align != 0) align /= 2;
  return align;
}

MatmulPlan build_plan(GpuContext& ctx, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                      DType in_type, DType out_type, uint32_t alignment) {
  MatmulPlan plan;
  cublas_check(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
               "cublasLtMatmulDescCreate");
  const int32_t op_a = tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS A is our b
  const int32_t op_b = ta ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS B is our a
  cublas_check(
      cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a),
      "set TRANSA");
  cublas_check(
      cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b),
      "set TRANSB");
  const uint64_t a_rows = tb ? k : n, a_cols = tb ? n : k;
  const uint64_t b_rows = ta ? m : k, b_cols = ta ? k : m;
  cublas_check(cublasLtMatrixLayoutCreate(&plan.a, cuda_type(in_type), a_rows, a_cols,
                                          static_cast<int64_t>(a_rows)),
               "layout A");
  cublas_check(cublasLtMatrixLayoutCreate(&plan.b, cuda_type(in_type), b_rows, b_cols,
                                          static_cast<int64_t>(b_rows)),
               "layout B");
  cublas_check(cublasLtMatrixLayoutCreate(&plan.c, cuda_type(out_type), n, m, n), "layout C");
  cublasLtMatmulPreference_t pref = nullptr;
  cublas_check(cublasLtMatmulPreferenceCreate(&pref), "preference");
  uint64_t workspace = ctx.workspace_bytes();
  cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &workspace, sizeof workspace),
               "preference workspace");
  if (alignment < 256) {
    for (cublasLtMatmulPreferenceAttributes_t attr :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, attr, &alignment, sizeof alignment),
                   "preference alignment");
  }
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      ctx.cublaslt(), plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1, &heuristic, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  SMOL_CHECK(status == CUBLAS_STATUS_SUCCESS && found > 0,
             "matmul: cuBLASLt has no algorithm for M=", m, " N=", n, " K=", k, " ",
             dtype_name(in_type), " -> ", dtype_name(out_type));
  plan.algo = heuristic.algo;
  return plan;
}

}  // namespace

void destroy_matmul_plans(GpuContext& ctx) {
  for (auto& [key, plan] : ctx.matmul_plans()) {
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.c);
    cublasLtMatmulDescDestroy(plan.desc);
  }
  ctx.matmul_plans().clear();
}

void matmul(GpuContext& ctx, Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
            float alpha, float beta) {
  const bool trans_a = ta == Transpose::Yes, trans_b = tb == Transpose::Yes;
  const int64_t m = trans_a ? a.shape.cols() : a.shape.rows();
  const int64_t k = trans_a ? a.shape.rows() : a.shape.cols();
  const int64_t n = trans_b ? b.shape.rows() : b.shape.cols();
  if (m == 0 || n == 0) return;
  if (k == 0) {  // the empty sum: c = beta·c
    if (beta == 0.0f)
      cuda_check(cudaMemsetAsync(c.data, 0, c.bytes(), ctx.stream()), "matmul");
    else
      scale(ctx, c, beta);
    return;
  }
  Tensor a_in = a, b_in = b;
  if (a.dtype != b.dtype) {
    Tensor& wide = a.dtype == DType::F32 ? a_in : b_in;
    auto* narrow = ctx.scratch2(static_cast<size_t>(wide.numel()) * sizeof(bf16));
    Tensor cast{narrow, DType::BF16, wide.shape};
    copy_cast(ctx, cast, wide);
    wide = cast;
  }
  const DType in_type = a_in.dtype;
  const uint32_t alignment =
      std::min({alignment_of(a_in.data), alignment_of(b_in.data), alignment_of(c.data)});
  const MatmulKey key{m,
                      n,
                      k,
                      trans_a,
                      trans_b,
                      static_cast<int>(in_type),
                      static_cast<int>(c.dtype),
                      static_cast<int>(alignment)};
  auto& plans = ctx.matmul_plans();
  auto it = plans.find(key);
  if (it == plans.end())
    it = plans.emplace(key, build_plan(ctx, m, n, k, trans_a, trans_b, in_type, c.dtype, alignment))
             .first;
  const MatmulPlan& plan = it->second;
  cublas_check(cublasLtMatmul(ctx.cublaslt(), plan.desc, &alpha, b_in.data, plan.a, a_in.data,
                              plan.b, &beta, c.data, plan.c, c.data, plan.c, &plan.algo,
                              ctx.workspace(), ctx.workspace_bytes(), ctx.stream()),
               "cublasLtMatmul");
}

}  // namespace smol::SMOL_GPU_NS

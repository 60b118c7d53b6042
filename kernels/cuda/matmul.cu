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
//
// Two uses beyond c = alpha·op(a)·op(b) + beta·c (docs/design.md §2.9):
//  - a separate addend, cuBLASLt's C operand with C ≠ D (same layout): a projection writes
//    h_in + x·Wᵀ straight into the residual stream, one rounding, no separate add pass;
//  - a strided batch (CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT / STRIDED_BATCH_OFFSET): products of
//    equal shape whose operands and outputs are evenly spaced in memory, a shared operand with
//    stride 0 (gate and up from one input: W_gate and W_up planned back to back).
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

// A strided batch in elements of our a, b, c (count 1: not batched).
struct Batch {
  int32_t count = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
};

void set_batch(cublasLtMatrixLayout_t layout, int32_t count, int64_t stride) {
  cublas_check(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                sizeof count),
               "layout batch count");
  cublas_check(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                &stride, sizeof stride),
               "layout batch stride");
}

MatmulPlan build_plan(GpuContext& ctx, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                      DType in_type, DType out_type, uint32_t alignment, const Batch& batch) {
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
  if (batch.count > 1) {  // cuBLAS A is our b, cuBLAS B our a
    set_batch(plan.a, batch.count, batch.stride_b);
    set_batch(plan.b, batch.count, batch.stride_a);
    set_batch(plan.c, batch.count, batch.stride_c);
  }
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

namespace {

// One cuBLASLt call for c = alpha·op(a)·op(b) + beta·addend (addend == c: in place), batched
// over `batch`; a, b, c are batch element 0 of their lists.
void run_matmul(GpuContext& ctx, const Tensor& c, const Tensor& a, const Tensor& b, Transpose ta,
                Transpose tb, float alpha, float beta, const Tensor& addend, Batch batch) {
  const bool trans_a = ta == Transpose::Yes, trans_b = tb == Transpose::Yes;
  const int64_t m = trans_a ? a.shape.cols() : a.shape.rows();
  const int64_t k = trans_a ? a.shape.rows() : a.shape.cols();
  const int64_t n = trans_b ? b.shape.rows() : b.shape.cols();
  if (m == 0 || n == 0) return;
  if (k == 0) {  // the empty sum: c = beta·addend, per batch element
    for (int32_t i = 0; i < batch.count; ++i) {
      Tensor ci = c;
      ci.data = static_cast<char*>(c.data) + i * batch.stride_c * dtype_size(c.dtype);
      if (addend.data != c.data && beta != 0.0f) {  // (a separate addend is never batched)
        copy_cast(ctx, ci, addend);
        scale(ctx, ci, beta);
      } else if (beta == 0.0f) {
        cuda_check(cudaMemsetAsync(ci.data, 0, ci.bytes(), ctx.stream()), "matmul");
      } else {
        scale(ctx, ci, beta);
      }
    }
    return;
  }
  Tensor a_in = a, b_in = b;
  if (a.dtype != b.dtype) {
    // Cast the F32 operand to bf16 in scratch; a strided one over its whole span, keeping the
    // stride (the gaps between batch elements lie inside the same allocation).
    const bool a_wide = a.dtype == DType::F32;
    Tensor& wide = a_wide ? a_in : b_in;
    int64_t& stride = a_wide ? batch.stride_a : batch.stride_b;
    const int64_t span = stride * (batch.count - 1) + wide.numel();
    auto* narrow = ctx.scratch2(static_cast<size_t>(span) * sizeof(bf16));
    copy_cast(ctx, Tensor{narrow, DType::BF16, Shape{span}},
              Tensor{wide.data, DType::F32, Shape{span}});
    wide = Tensor{narrow, DType::BF16, wide.shape};
  }
  const DType in_type = a_in.dtype;
  auto stride_alignment = [](int64_t stride, DType t) {
    return stride == 0 ? 256u : alignment_of(reinterpret_cast<const void*>(stride * dtype_size(t)));
  };
  const uint32_t alignment = std::min(
      {alignment_of(a_in.data), alignment_of(b_in.data), alignment_of(c.data),
       alignment_of(addend.data), stride_alignment(batch.stride_a, in_type),
       stride_alignment(batch.stride_b, in_type), stride_alignment(batch.stride_c, c.dtype)});
  const MatmulKey key{m,
                      n,
                      k,
                      trans_a,
                      trans_b,
                      static_cast<int>(in_type),
                      static_cast<int>(c.dtype),
                      static_cast<int>(alignment),
                      batch.count,
                      batch.stride_a,
                      batch.stride_b,
                      batch.stride_c};
  auto& plans = ctx.matmul_plans();
  auto it = plans.find(key);
  if (it == plans.end())
    it = plans
             .emplace(key, build_plan(ctx, m, n, k, trans_a, trans_b, in_type, c.dtype, alignment,
                                      batch))
             .first;
  const MatmulPlan& plan = it->second;
  // C and D share one layout; C is the addend (D itself when in place).
  cublas_check(cublasLtMatmul(ctx.cublaslt(), plan.desc, &alpha, b_in.data, plan.a, a_in.data,
                              plan.b, &beta, addend.data, plan.c, c.data, plan.c, &plan.algo,
                              ctx.workspace(), ctx.workspace_bytes(), ctx.stream()),
               "cublasLtMatmul");
}

// The element stride of an evenly spaced list of equally shaped tensors (0 for one shared
// tensor), or -1 when the list is not evenly spaced at a positive stride.
int64_t even_stride(std::span<const Tensor> ts) {
  if (ts.size() == 1) return 0;
  const int64_t bytes = static_cast<const char*>(ts[1].data) - static_cast<const char*>(ts[0].data);
  const int64_t size = static_cast<int64_t>(dtype_size(ts[0].dtype));
  if (bytes <= 0 || bytes % size != 0) return -1;
  for (size_t i = 2; i < ts.size(); ++i)
    if (static_cast<const char*>(ts[i].data) - static_cast<const char*>(ts[0].data) !=
        bytes * static_cast<int64_t>(i))
      return -1;
  return bytes / size;
}

}  // namespace

void matmul(GpuContext& ctx, Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
            float alpha, float beta, const Tensor* addend) {
  run_matmul(ctx, c, a, b, ta, tb, alpha, beta, addend ? *addend : c, Batch{});
}

void matmul_batched(GpuContext& ctx, std::span<const Tensor> cs, std::span<const Tensor> as,
                    std::span<const Tensor> bs, Transpose ta, Transpose tb, float alpha,
                    float beta) {
  const int64_t sa = even_stride(as), sb = even_stride(bs), sc = even_stride(cs);
  constexpr int64_t kMaxBatch = 65535;
  if (cs.size() == 1 || sa < 0 || sb < 0 || sc < 0 || static_cast<int64_t>(cs.size()) > kMaxBatch) {
    for (size_t i = 0; i < cs.size(); ++i)
      run_matmul(ctx, cs[i], as[as.size() == 1 ? 0 : i], bs[bs.size() == 1 ? 0 : i], ta, tb, alpha,
                 beta, cs[i], Batch{});
    return;
  }
  run_matmul(ctx, cs[0], as[0], bs[0], ta, tb, alpha, beta, cs[0],
             Batch{static_cast<int32_t>(cs.size()), sa, sb, sc});
}

}  // namespace smol::SMOL_GPU_NS

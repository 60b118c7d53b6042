// cuda-emu cuBLASLt: the matmul entry points the cuda backend calls, answered by OpenBLAS.
//
// Semantics follow cuBLASLt exactly, so a wrong leading dimension or transpose fails here too:
// matrices are column-major; layout (type, rows, cols, ld) describes the stored matrix;
// D = alpha · op(A) · op(B) + beta · C with op from CUBLASLT_MATMUL_DESC_TRANSA/B, op(A) m×k,
// op(B) k×n, C and D m×n. Every stored matrix must lie inside one device allocation (checked
// from its layout: ld·(cols−1) + rows elements), ld ≥ rows, and the dimensions must agree;
// violations return CUBLAS_STATUS_INVALID_VALUE like the real library. bf16 operands are
// widened to fp32 (exact), multiplied with sgemm (fp32 accumulation, CUBLAS_COMPUTE_32F) and
// D rounded once to its type — the numerics of a cuBLASLt bf16 GEMM up to summation order.
//
// C ≠ D (docs/design.md §2.9: the residual stream as the addend): C is read through its own
// layout and D written through its own; in place (C == D) the two layouts must be equal, and
// out of place C must not overlap D (a GPU would race on it). Strided batches
// (CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT / STRIDED_BATCH_OFFSET): every layout must carry the same
// batch count; matrix i of a layout starts i·stride elements after matrix 0 (stride 0: one
// matrix shared by the batch); D's matrices must not overlap each other (stride ≥ its stored
// size), and the whole strided span of each matrix must lie inside one device allocation.
#include <cblas.h>

#include <algorithm>
#include <vector>

// This file defines the entry points the header redirects to.
#define SMOL_EMU_IMPLEMENTATION
#include "kernels/emu/emu_capture.h"
#include "kernels/emu/emu_cuda.h"

namespace smol::emu {
namespace {

struct EmuLayout {
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch_count = 1;
  int64_t batch_stride = 0;  // elements
};
struct EmuDesc {
  cublasComputeType_t compute;
  cudaDataType_t scale_type;
  cublasOperation_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
};
struct EmuHandle {
  int unused = 0;
};
struct EmuPreference {
  uint64_t workspace_bytes = 0;
  uint32_t min_alignment = 256;  // the least of CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES
};

size_t element_size(cudaDataType t) {
  switch (t) {
    case CUDA_R_32F:
      return 4;
    case CUDA_R_16BF:
      return 2;
    case CUDA_R_16F:
      return 2;
    default:
      return 0;
  }
}

float load_element(const void* base, cudaDataType t, size_t i) {
  switch (t) {
    case CUDA_R_32F:
      return static_cast<const float*>(base)[i];
    case CUDA_R_16BF:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
    case CUDA_R_16F:
      return __half2float(static_cast<const __half*>(base)[i]);
    default:
      return 0.0f;
  }
}

void store_element(void* base, cudaDataType t, size_t i, float v) {
  switch (t) {
    case CUDA_R_32F:
      static_cast<float*>(base)[i] = v;
      break;
    case CUDA_R_16BF:
      static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16(v);
      break;
    case CUDA_R_16F:
      static_cast<__half*>(base)[i] = __float2half(v);
      break;
    default:
      break;
  }
}

size_t stored_elements(const EmuLayout& l) {
  return l.cols == 0 ? 0 : static_cast<size_t>(l.ld) * (l.cols - 1) + l.rows;
}

// Elements from matrix 0's first to the last matrix's last element of a strided batch.
size_t batch_span(const EmuLayout& l) {
  const size_t one = stored_elements(l);
  return one == 0 ? 0 : static_cast<size_t>(l.batch_stride) * (l.batch_count - 1) + one;
}

bool layout_valid(const EmuLayout& l) {
  return element_size(l.type) != 0 && l.ld >= static_cast<int64_t>(std::max<uint64_t>(1, l.rows));
}

// The stored matrix widened to fp32, same column-major shape and leading dimension.
std::vector<float> widen(const void* p, const EmuLayout& l) {
  std::vector<float> out(stored_elements(l), 0.0f);
  for (uint64_t c = 0; c < l.cols; ++c)
    for (uint64_t r = 0; r < l.rows; ++r) {
      const size_t i = c * l.ld + r;
      out[i] = load_element(p, l.type, i);
    }
  return out;
}

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = reinterpret_cast<cublasLtHandle_t>(new EmuHandle{});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete reinterpret_cast<EmuHandle*>(handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale_type) {
  if (compute != CUBLAS_COMPUTE_32F || scale_type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  *desc = reinterpret_cast<cublasLtMatmulDesc_t>(new EmuDesc{compute, scale_type});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete reinterpret_cast<EmuDesc*>(desc);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void* buf,
                                              size_t size) {
  auto* d = reinterpret_cast<EmuDesc*>(desc);
  if (attr == CUBLASLT_MATMUL_DESC_TRANSA || attr == CUBLASLT_MATMUL_DESC_TRANSB) {
    if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
    int32_t op;
    std::memcpy(&op, buf, sizeof op);
    if (op != CUBLAS_OP_N && op != CUBLAS_OP_T) return CUBLAS_STATUS_NOT_SUPPORTED;
    (attr == CUBLASLT_MATMUL_DESC_TRANSA ? d->trans_a : d->trans_b) =
        static_cast<cublasOperation_t>(op);
    return CUBLAS_STATUS_SUCCESS;
  }
  if (attr == CUBLASLT_MATMUL_DESC_EPILOGUE) {
    int32_t epilogue;
    std::memcpy(&epilogue, buf, sizeof epilogue);
    return epilogue == CUBLASLT_EPILOGUE_DEFAULT ? CUBLAS_STATUS_SUCCESS
                                                 : CUBLAS_STATUS_NOT_SUPPORTED;
  }
  return CUBLAS_STATUS_NOT_SUPPORTED;  // the emu answers only what the backend uses
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  EmuLayout l{type, rows, cols, ld};
  if (!layout_valid(l)) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = reinterpret_cast<cublasLtMatrixLayout_t>(new EmuLayout(l));
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete reinterpret_cast<EmuLayout*>(layout);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout,
                                                cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
  EmuLayout& l = *reinterpret_cast<EmuLayout*>(layout);
  if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT) {
    int32_t count = 0;
    if (size != sizeof count) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&count, buf, size);
    if (count < 1) return CUBLAS_STATUS_INVALID_VALUE;
    l.batch_count = count;
    return CUBLAS_STATUS_SUCCESS;
  }
  if (attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET) {
    int64_t stride = 0;
    if (size != sizeof stride) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&stride, buf, size);
    if (stride < 0) return CUBLAS_STATUS_NOT_SUPPORTED;  // the backend never asks for one
    l.batch_stride = stride;
    return CUBLAS_STATUS_SUCCESS;
  }
  return CUBLAS_STATUS_NOT_SUPPORTED;  // the emu answers only what the backend uses
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  *pref = reinterpret_cast<cublasLtMatmulPreference_t>(new EmuPreference{});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete reinterpret_cast<EmuPreference*>(pref);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void* buf, size_t size) {
  EmuPreference& p = *reinterpret_cast<EmuPreference*>(pref);
  if (attr == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES ||
      attr == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES ||
      attr == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES ||
      attr == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES) {
    uint32_t align = 0;
    if (size != sizeof align) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&align, buf, size);
    p.min_alignment = std::min(p.min_alignment, align);
    return CUBLAS_STATUS_SUCCESS;
  }
  if (attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES || size != sizeof(uint64_t))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  std::memcpy(&p.workspace_bytes, buf, size);
  return CUBLAS_STATUS_SUCCESS;
}

namespace {
// Shape agreement of a matmul; the same rules cuBLASLt applies.
bool shapes_agree(const EmuDesc& d, const EmuLayout& a, const EmuLayout& b, const EmuLayout& c,
                  const EmuLayout& dd, uint64_t* m, uint64_t* n, uint64_t* k) {
  *m = d.trans_a == CUBLAS_OP_N ? a.rows : a.cols;
  *k = d.trans_a == CUBLAS_OP_N ? a.cols : a.rows;
  const uint64_t kb = d.trans_b == CUBLAS_OP_N ? b.rows : b.cols;
  *n = d.trans_b == CUBLAS_OP_N ? b.cols : b.rows;
  const int32_t count = dd.batch_count;
  return kb == *k && c.rows == *m && c.cols == *n && dd.rows == *m && dd.cols == *n &&
         c.type == dd.type && a.type == b.type && a.batch_count == count &&
         b.batch_count == count && c.batch_count == count &&
         (count == 1 || dd.batch_stride >= static_cast<int64_t>(stored_elements(dd)));
}
}  // namespace

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int* returned) {
  uint64_t m, n, k;
  if (requested < 1 ||
      !shapes_agree(*reinterpret_cast<EmuDesc*>(desc), *reinterpret_cast<EmuLayout*>(a),
                    *reinterpret_cast<EmuLayout*>(b), *reinterpret_cast<EmuLayout*>(c),
                    *reinterpret_cast<EmuLayout*>(d), &m, &n, &k)) {
    *returned = 0;
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  results[0] = cublasLtMatmulHeuristicResult_t{};
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  // The algorithm remembers the alignment it was chosen for: cublasLtMatmul refuses operands
  // aligned less (a real algorithm chosen for 256-byte operands may fault on them).
  results[0].algo.data[0] = pref ? reinterpret_cast<EmuPreference*>(pref)->min_alignment : 256;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

namespace {
// One matmul with its descriptors and scalars by value: what cublasLtMatmul runs at once, or
// what a stream capture records and each graph launch runs (the real library, too, reads the
// host scalars and descriptors when the call is made, not when the kernel runs).
cublasStatus_t run_matmul(const EmuDesc op, const EmuLayout la, const EmuLayout lb,
                          const EmuLayout lc, const EmuLayout ld, float alpha_value,
                          float beta_value, const void* a, const void* b, const void* c, void* d,
                          bool has_algo, uint64_t algo_alignment, bool check_only) {
  uint64_t m, n, k;
  if (!shapes_agree(op, la, lb, lc, ld, &m, &n, &k)) return CUBLAS_STATUS_INVALID_VALUE;
  const bool reads_c = beta_value != 0.0f;
  auto bytes_of = [](const EmuLayout& l) { return batch_span(l) * element_size(l.type); };
  // In place, C and D must be described alike; out of place, C must not overlap D.
  if (c == d && (lc.ld != ld.ld || lc.batch_stride != ld.batch_stride))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (c != d && reads_c) {
    const auto *c0 = static_cast<const char*>(c), *d0 = static_cast<const char*>(d);
    if (c0 < d0 + bytes_of(ld) && d0 < c0 + bytes_of(lc)) return CUBLAS_STATUS_INVALID_VALUE;
  }
  // Every stored matrix must sit inside device memory, as its layout describes it.
  if (!is_device_range(a, bytes_of(la)) || !is_device_range(b, bytes_of(lb)) ||
      !is_device_range(d, bytes_of(ld)) || (reads_c && !is_device_range(c, bytes_of(lc))))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (has_algo) {
    const uint64_t align = algo_alignment ? algo_alignment : 256;
    auto aligned = [&](const void* p) { return reinterpret_cast<uintptr_t>(p) % align == 0; };
    auto stride_aligned = [&](const EmuLayout& l) {
      return (static_cast<uint64_t>(l.batch_stride) * element_size(l.type)) % align == 0;
    };
    if (!aligned(a) || !aligned(b) || !aligned(d) || (reads_c && !aligned(c)) ||
        !stride_aligned(la) || !stride_aligned(lb) || !stride_aligned(ld) ||
        (reads_c && !stride_aligned(lc)))
      return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (check_only || m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;

  auto at = [](const void* p, const EmuLayout& l, int32_t i) {
    return static_cast<const char*>(p) +
           static_cast<size_t>(i) * l.batch_stride * element_size(l.type);
  };
  for (int32_t i = 0; i < ld.batch_count; ++i) {
    const std::vector<float> fa = widen(at(a, la, i), la);
    const std::vector<float> fb = widen(at(b, lb, i), lb);
    std::vector<float> fd(stored_elements(ld), 0.0f);
    if (reads_c) {
      const std::vector<float> fc = widen(at(c, lc, i), lc);
      for (uint64_t col = 0; col < n; ++col)
        for (uint64_t row = 0; row < m; ++row) fd[col * ld.ld + row] = fc[col * lc.ld + row];
    }
    if (k > 0) {
      cblas_sgemm(CblasColMajor, op.trans_a == CUBLAS_OP_T ? CblasTrans : CblasNoTrans,
                  op.trans_b == CUBLAS_OP_T ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                  static_cast<int>(n), static_cast<int>(k), alpha_value, fa.data(),
                  static_cast<int>(la.ld), fb.data(), static_cast<int>(lb.ld), beta_value,
                  fd.data(), static_cast<int>(ld.ld));
    } else {
      for (float& x : fd) x *= beta_value;
    }
    void* di = const_cast<char*>(at(d, ld, i));
    for (uint64_t col = 0; col < n; ++col)
      for (uint64_t row = 0; row < m; ++row) {
        const size_t e = col * ld.ld + row;
        store_element(di, ld.type, e, fd[e]);
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void* alpha,
                              const void* a, cublasLtMatrixLayout_t a_layout, const void* b,
                              cublasLtMatrixLayout_t b_layout, const void* beta, const void* c,
                              cublasLtMatrixLayout_t c_layout, void* d,
                              cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t* algo,
                              void*, size_t, cudaStream_t stream) {
  const EmuDesc op = *reinterpret_cast<EmuDesc*>(desc);
  const EmuLayout la = *reinterpret_cast<EmuLayout*>(a_layout);
  const EmuLayout lb = *reinterpret_cast<EmuLayout*>(b_layout);
  const EmuLayout lc = *reinterpret_cast<EmuLayout*>(c_layout);
  const EmuLayout ld = *reinterpret_cast<EmuLayout*>(d_layout);
  const float alpha_value = *static_cast<const float*>(alpha);
  const float beta_value = *static_cast<const float*>(beta);
  const bool has_algo = algo != nullptr;
  const uint64_t alignment = algo ? algo->data[0] : 0;
  if (!stream_capturing(stream))
    return run_matmul(op, la, lb, lc, ld, alpha_value, beta_value, a, b, c, d, has_algo, alignment,
                      /*check_only=*/false);
  // Captured: checked now as a launch would be, run at each graph launch (emu_graph.cpp).
  const cublasStatus_t status = run_matmul(op, la, lb, lc, ld, alpha_value, beta_value, a, b, c, d,
                                           has_algo, alignment, /*check_only=*/true);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  capture_node(stream, GraphNodeKind::Matmul, nullptr, [=] {
    SMOL_CHECK(run_matmul(op, la, lb, lc, ld, alpha_value, beta_value, a, b, c, d, has_algo,
                          alignment, /*check_only=*/false) == CUBLAS_STATUS_SUCCESS,
               "cuda-emu: a graph's cuBLASLt matmul node no longer fits its operands");
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace smol::emu

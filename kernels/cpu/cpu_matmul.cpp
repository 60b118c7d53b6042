// matmul: c[M,N] = alpha · op(a) · op(b) + beta · c, row-major, op(x) = x or xᵀ
// (kernels/backend.h). One cblas_sgemm call: for row-major storage the leading dimension of
// each operand is its stored column count, whichever way it is transposed. A BF16 b (a frozen
// weight) goes to gemm_bf16 instead (cpu_bf16_gemm.h; docs/cpu-speed.md "bf16 on cpu").
//
// Tensors of rank > 2 are taken as matrices [rows, last dim] (Tensor::rows/cols), so a
// [T, H, D] activation is a [T·H, D] matrix; reshape views when another split is meant.
#include <cblas.h>

#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {

void matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb, float alpha,
            float beta, Bf16Gemm bf16) {
  const bool a_t = ta == Transpose::Yes, b_t = tb == Transpose::Yes;
  // op(a) is [M, K], op(b) is [K, N].
  const int64_t m = a_t ? a.shape.cols() : a.shape.rows();
  const int64_t k = a_t ? a.shape.rows() : a.shape.cols();
  const int64_t kb = b_t ? b.shape.cols() : b.shape.rows();
  const int64_t n = b_t ? b.shape.rows() : b.shape.cols();
  constexpr int64_t kIntMax = 2147483647;  // cblas takes int dimensions
  SMOL_CHECK(m <= kIntMax && n <= kIntMax && k <= kIntMax && a.shape.cols() <= kIntMax &&
                 b.shape.cols() <= kIntMax,
             "matmul: dimensions of a ", a.shape.str(), ", b ", b.shape.str(), " exceed cblas int");
  if (m == 0 || n == 0) return;
  float* out = c.as<float>();
  if (k == 0) {  // empty inner product: c = beta·c (sgemm's treatment of K = 0 varies).
    for (int64_t i = 0; i < m * n; ++i) out[i] = beta == 0.0f ? 0.0f : beta * out[i];
    return;
  }
  if (b.dtype == DType::BF16) {  // a frozen bf16 weight (training.cpu_precision: bf16)
    Bf16GemmArgs g;
    g.m = m, g.n = n, g.k = k;
    g.a = a.as<float>(), g.lda = a.shape.cols(), g.a_t = a_t;
    g.b = b.as<uint16_t>(), g.ldb = b.shape.cols(), g.b_t = b_t;
    g.c = out, g.ldc = n, g.alpha = alpha, g.beta = beta;
    gemm_bf16(bf16, g);
    return;
  }
  cblas_sgemm(CblasRowMajor, a_t ? CblasTrans : CblasNoTrans, b_t ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a.as<float>(),
              static_cast<int>(a.shape.cols()), b.as<float>(), static_cast<int>(b.shape.cols()),
              beta, out, static_cast<int>(n));
}

}  // namespace smol::cpu

// cuda-emu cuBLASLt beyond one in-place GEMM (docs/design.md §2.9), against a scalar reference:
//  - strided batches (CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT / STRIDED_BATCH_OFFSET) for every
//    transpose combination, one operand shared by the batch (stride 0) and the others spaced
//    with a gap between matrices, padded leading dimensions;
//  - C ≠ D: D = α·op(A)·op(B) + β·C with C read through its own layout and left untouched;
//  - what cuBLASLt rejects: batch counts that differ, D matrices that overlap, an out-of-place C
//    overlapping D, a strided span reaching past its allocation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_compat.h"

namespace smol::gpu_emu {
namespace {

// `count` column-major rows×cols fp32 matrices, matrix i at element i·stride of one allocation
// (stride ≥ ld·(cols−1)+rows; the gaps hold NaN, so reading one shows up in the results).
struct Batched {
  int rows, cols, ld, count;
  int64_t stride;
  std::vector<float> host;
  float* device = nullptr;
  float at(int i, int r, int c) const {
    return host[static_cast<size_t>(i * stride + static_cast<int64_t>(c) * ld + r)];
  }
  size_t elements() const {
    return static_cast<size_t>(stride * (count - 1) + static_cast<int64_t>(ld) * (cols - 1) + rows);
  }
};

Batched make_batched(int rows, int cols, int ld, int count, int64_t stride, std::mt19937& rng) {
  Batched b{rows, cols, ld, count, stride, {}};
  b.host.assign(b.elements(), NAN);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int i = 0; i < (stride == 0 ? 1 : count); ++i)
    for (int c = 0; c < cols; ++c)
      for (int r = 0; r < rows; ++r)
        b.host[static_cast<size_t>(i * stride + static_cast<int64_t>(c) * ld + r)] = dist(rng);
  EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&b.device), b.elements() * sizeof(float)),
            cudaSuccess);
  EXPECT_EQ(
      cudaMemcpy(b.device, b.host.data(), b.elements() * sizeof(float), cudaMemcpyHostToDevice),
      cudaSuccess);
  return b;
}

cublasLtMatrixLayout_t layout_of(const Batched& b) {
  cublasLtMatrixLayout_t l = nullptr;
  EXPECT_EQ(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, b.rows, b.cols, b.ld),
            CUBLAS_STATUS_SUCCESS);
  const int32_t count = b.count;
  const int64_t stride = b.stride;
  EXPECT_EQ(
      cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
      CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                             &stride, sizeof stride),
            CUBLAS_STATUS_SUCCESS);
  return l;
}

struct Gemm {
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  Gemm(bool ta, bool tb) {
    cublasLtCreate(&handle);
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    const int32_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b);
  }
  ~Gemm() {
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(handle);
  }
  cublasStatus_t run(float alpha, const Batched& a, const Batched& b, float beta, const Batched& c,
                     const Batched& d) {
    cublasLtMatrixLayout_t la = layout_of(a), lb = layout_of(b), lc = layout_of(c),
                           ld = layout_of(d);
    const cublasStatus_t status =
        cublasLtMatmul(handle, desc, &alpha, a.device, la, b.device, lb, &beta, c.device, lc,
                       d.device, ld, nullptr, nullptr, 0, nullptr);
    for (cublasLtMatrixLayout_t l : {la, lb, lc, ld}) cublasLtMatrixLayoutDestroy(l);
    return status;
  }
};

std::vector<float> download(const Batched& b) {
  std::vector<float> out(b.elements());
  EXPECT_EQ(cudaMemcpy(out.data(), b.device, out.size() * sizeof(float), cudaMemcpyDeviceToHost),
            cudaSuccess);
  return out;
}

class EmuCublasLtBatch : public ::testing::TestWithParam<std::pair<bool, bool>> {};

TEST_P(EmuCublasLtBatch, StridedBatchWithSeparateCMatchesScalarReference) {
  const auto [ta, tb] = GetParam();
  const int m = 5, n = 4, k = 6, count = 3;
  std::mt19937 rng(77);
  const int a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
  // A shared by the batch (stride 0, like x for gate and up); B, C, D spaced with gaps.
  const Batched a = make_batched(a_rows, a_cols, a_rows + 1, count, 0, rng);
  const Batched b = make_batched(b_rows, b_cols, b_rows + 2, count,
                                 static_cast<int64_t>(b_rows + 2) * b_cols + 3, rng);
  const Batched c = make_batched(m, n, m + 1, count, static_cast<int64_t>(m + 1) * n + 5, rng);
  Batched d = make_batched(m, n, m + 2, count, static_cast<int64_t>(m + 2) * n + 1, rng);
  const std::vector<float> c_before = download(c), d_before = download(d);
  const float alpha = 0.75f, beta = 1.0f;
  Gemm gemm(ta, tb);
  ASSERT_EQ(gemm.run(alpha, a, b, beta, c, d), CUBLAS_STATUS_SUCCESS);
  const std::vector<float> got = download(d);
  for (int i = 0; i < count; ++i)
    for (int col = 0; col < n; ++col)
      for (int row = 0; row < m; ++row) {
        double expect = beta * static_cast<double>(c.at(i, row, col));
        for (int j = 0; j < k; ++j)
          expect += alpha * static_cast<double>(ta ? a.at(0, j, row) : a.at(0, row, j)) *
                    (tb ? b.at(i, col, j) : b.at(i, j, col));
        // fp32 sums of 7 terms of magnitude ≤ 1: ≤ 7·2^-24·7 < 1e-5.
        EXPECT_NEAR(got[static_cast<size_t>(i * d.stride + col * d.ld + row)], expect, 1e-5)
            << "batch " << i << " row " << row << " col " << col;
      }
  // C is only read; D's padding and gaps are not written.
  const std::vector<float> c_after = download(c);
  EXPECT_EQ(std::memcmp(c_after.data(), c_before.data(), c_after.size() * sizeof(float)), 0);
  for (size_t e = 0; e < got.size(); ++e)
    if (std::isnan(d_before[e])) {
      EXPECT_TRUE(std::isnan(got[e])) << "element " << e;
    }
  for (const Batched* x : {&a, &b, &c, static_cast<const Batched*>(&d)}) cudaFree(x->device);
}

INSTANTIATE_TEST_SUITE_P(AllTransposes, EmuCublasLtBatch,
                         ::testing::Values(std::pair{false, false}, std::pair{true, false},
                                           std::pair{false, true}, std::pair{true, true}));

TEST(EmuCublasLtBatchErrors, MismatchedCountsOverlapsAndOverreachAreRejected) {
  std::mt19937 rng(5);
  const int m = 4, n = 3, k = 2;
  const Batched a = make_batched(m, k, m, 2, 0, rng);
  const Batched b = make_batched(k, n, k, 2, k * n, rng);
  const Batched c = make_batched(m, n, m, 2, m * n, rng);
  const Batched d = make_batched(m, n, m, 2, m * n, rng);
  Gemm gemm(false, false);
  ASSERT_EQ(gemm.run(1.0f, a, b, 1.0f, c, d), CUBLAS_STATUS_SUCCESS);  // the valid call
  // A batch count that differs from D's.
  Batched one_a = a;
  one_a.count = 1;
  EXPECT_EQ(gemm.run(1.0f, one_a, b, 1.0f, c, d), CUBLAS_STATUS_INVALID_VALUE);
  // D's matrices overlapping each other (stride smaller than one matrix).
  Batched tight = d;
  tight.stride = m * n - 1;
  Batched tight_c = c;
  tight_c.stride = m * n - 1;
  EXPECT_EQ(gemm.run(1.0f, a, b, 0.0f, tight_c, tight), CUBLAS_STATUS_INVALID_VALUE);
  // An out-of-place C that overlaps D: C starts one element into D.
  Batched shifted = d;
  shifted.device = d.device + 1;
  shifted.count = 1;
  Batched d1 = d;
  d1.count = 1;
  Batched a1 = a, b1 = b;
  a1.count = b1.count = 1;
  EXPECT_EQ(gemm.run(1.0f, a1, b1, 1.0f, shifted, d1), CUBLAS_STATUS_INVALID_VALUE);
  // In place, C and D must be described alike.
  Batched d_wide = d;
  d_wide.ld = m + 1;
  d_wide.count = 1;
  Batched c_same = d;
  c_same.count = 1;
  EXPECT_EQ(gemm.run(1.0f, a1, b1, 1.0f, c_same, d_wide), CUBLAS_STATUS_INVALID_VALUE);
  // A strided span reaching past the allocation (three matrices where two are allocated).
  Batched b3 = b, a3 = a, c3 = c, d3 = d;
  a3.count = b3.count = c3.count = d3.count = 3;
  EXPECT_EQ(gemm.run(1.0f, a3, b3, 0.0f, c3, d3), CUBLAS_STATUS_INVALID_VALUE);
  for (const Batched* x : {&a, &b, &c, &d}) cudaFree(x->device);
}

}  // namespace
}  // namespace smol::gpu_emu

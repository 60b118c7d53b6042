// cuda-emu cuBLASLt (kernels/emu/emu_cublaslt.cpp) against a naive column-major reference, for
// every transpose combination and padded leading dimensions: the emu must reproduce
// cuBLASLt's exact semantics so that a wrong ld or transpose in the backend fails in CI.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_compat.h"

namespace smol::gpu_emu {
namespace {

struct Stored {
  int rows, cols, ld;
  std::vector<float> host;  // column-major, ld ≥ rows, padding filled with NaN
  void* device = nullptr;
};

Stored make_matrix(int rows, int cols, int ld, std::mt19937& rng, cudaDataType type) {
  Stored s{rows, cols, ld, std::vector<float>(static_cast<size_t>(ld) * cols, NAN)};
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int c = 0; c < cols; ++c)
    for (int r = 0; r < rows; ++r) {
      float v = dist(rng);
      if (type == CUDA_R_16BF) v = __bfloat162float(__float2bfloat16(v));  // representable
      s.host[static_cast<size_t>(c) * ld + r] = v;
    }
  const size_t elems = static_cast<size_t>(ld) * (cols - 1) + rows;  // exactly the extent
  const size_t esize = type == CUDA_R_16BF ? 2 : 4;
  EXPECT_EQ(cudaMalloc(&s.device, elems * esize), cudaSuccess);
  std::vector<unsigned char> bytes(elems * esize);
  for (size_t i = 0; i < elems; ++i) {
    if (type == CUDA_R_16BF) {
      const bf16 b = __float2bfloat16(s.host[i]);
      std::memcpy(&bytes[i * 2], &b, 2);
    } else {
      std::memcpy(&bytes[i * 4], &s.host[i], 4);
    }
  }
  EXPECT_EQ(cudaMemcpy(s.device, bytes.data(), bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
  return s;
}

float at(const Stored& s, int r, int c) {
  return s.host[static_cast<size_t>(c) * s.ld + r];
}

struct Case {
  bool trans_a, trans_b;
  cudaDataType in_type, out_type;
};

class EmuCublasLt : public ::testing::TestWithParam<Case> {};

TEST_P(EmuCublasLt, MatchesNaiveColumnMajorReference) {
  const Case p = GetParam();
  const int m = 5, n = 3, k = 7;
  std::mt19937 rng(1234);
  // op(A) is m×k: stored A is m×k (N) or k×m (T); leading dimensions padded by 2, 3, 1.
  const int a_rows = p.trans_a ? k : m, a_cols = p.trans_a ? m : k;
  const int b_rows = p.trans_b ? n : k, b_cols = p.trans_b ? k : n;
  Stored a = make_matrix(a_rows, a_cols, a_rows + 2, rng, p.in_type);
  Stored b = make_matrix(b_rows, b_cols, b_rows + 3, rng, p.in_type);
  Stored c = make_matrix(m, n, m + 1, rng, p.out_type);
  const float alpha = 0.75f, beta = -0.5f;

  cublasLtHandle_t handle;
  ASSERT_EQ(cublasLtCreate(&handle), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulDesc_t desc;
  ASSERT_EQ(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  const int32_t op_a = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int32_t op_b = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a);
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b);
  cublasLtMatrixLayout_t la, lb, lc;
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&la, p.in_type, a_rows, a_cols, a.ld),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&lb, p.in_type, b_rows, b_cols, b.ld),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&lc, p.out_type, m, n, c.ld), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatmul(handle, desc, &alpha, a.device, la, b.device, lb, &beta, c.device, lc,
                           c.device, lc, nullptr, nullptr, 0, nullptr),
            CUBLAS_STATUS_SUCCESS);

  const size_t esize = p.out_type == CUDA_R_16BF ? 2 : 4;
  const size_t elems = static_cast<size_t>(c.ld) * (n - 1) + m;
  std::vector<unsigned char> bytes(elems * esize);
  ASSERT_EQ(cudaMemcpy(bytes.data(), c.device, bytes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  for (int col = 0; col < n; ++col)
    for (int row = 0; row < m; ++row) {
      double expect = beta * static_cast<double>(at(c, row, col));
      for (int i = 0; i < k; ++i) {
        const double av = p.trans_a ? at(a, i, row) : at(a, row, i);
        const double bv = p.trans_b ? at(b, col, i) : at(b, i, col);
        expect += alpha * av * bv;
      }
      const size_t idx = static_cast<size_t>(col) * c.ld + row;
      float got;
      if (p.out_type == CUDA_R_16BF) {
        bf16 v;
        std::memcpy(&v, &bytes[idx * 2], 2);
        got = __bfloat162float(v);
      } else {
        std::memcpy(&got, &bytes[idx * 4], 4);
      }
      // fp32 accumulation of k = 7 products of |x| ≤ 1: error ≤ ~k·2^-24·Σ|terms| < 1e-5;
      // a bf16 output adds one rounding, 2^-8 relative.
      const double tol = p.out_type == CUDA_R_16BF ? std::abs(expect) * 0x1p-8 + 1e-5 : 1e-5;
      EXPECT_NEAR(got, expect, tol) << "row " << row << " col " << col;
    }
  // The padding rows of C (between m and ld) must be untouched: the ld was honoured.
  if (p.out_type == CUDA_R_32F) {
    float pad;
    std::memcpy(&pad, &bytes[static_cast<size_t>(m) * 4], 4);
    EXPECT_TRUE(std::isnan(pad));
  }
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(desc);
  cublasLtDestroy(handle);
  cudaFree(a.device);
  cudaFree(b.device);
  cudaFree(c.device);
}

INSTANTIATE_TEST_SUITE_P(AllTransposes, EmuCublasLt,
                         ::testing::Values(Case{false, false, CUDA_R_32F, CUDA_R_32F},
                                           Case{true, false, CUDA_R_32F, CUDA_R_32F},
                                           Case{false, true, CUDA_R_32F, CUDA_R_32F},
                                           Case{true, true, CUDA_R_32F, CUDA_R_32F},
                                           Case{false, true, CUDA_R_16BF, CUDA_R_16BF},
                                           Case{true, false, CUDA_R_16BF, CUDA_R_32F}));

TEST(EmuCublasLtErrors, LeadingDimensionSmallerThanRowsIsRejected) {
  cublasLtMatrixLayout_t l;
  EXPECT_EQ(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 8, 4, 7), CUBLAS_STATUS_INVALID_VALUE);
}

TEST(EmuCublasLtErrors, LayoutReachingPastItsAllocationIsRejected) {
  std::mt19937 rng(1);
  Stored a = make_matrix(4, 4, 4, rng, CUDA_R_32F);  // 16 floats allocated
  cublasLtHandle_t handle;
  cublasLtCreate(&handle);
  cublasLtMatmulDesc_t desc;
  cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasLtMatrixLayout_t wrong, right;
  cublasLtMatrixLayoutCreate(&wrong, CUDA_R_32F, 4, 4, 5);  // ld 5: needs 19 floats
  cublasLtMatrixLayoutCreate(&right, CUDA_R_32F, 4, 4, 4);
  const float alpha = 1, beta = 0;
  EXPECT_EQ(cublasLtMatmul(handle, desc, &alpha, a.device, wrong, a.device, right, &beta, a.device,
                           right, a.device, right, nullptr, nullptr, 0, nullptr),
            CUBLAS_STATUS_INVALID_VALUE);
  cublasLtMatrixLayoutDestroy(wrong);
  cublasLtMatrixLayoutDestroy(right);
  cublasLtMatmulDescDestroy(desc);
  cublasLtDestroy(handle);
  cudaFree(a.device);
}

TEST(EmuCublasLtErrors, DisagreeingShapesHaveNoAlgorithm) {
  cublasLtHandle_t handle;
  cublasLtCreate(&handle);
  cublasLtMatmulDesc_t desc;
  cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasLtMatrixLayout_t a, b, c;
  cublasLtMatrixLayoutCreate(&a, CUDA_R_32F, 4, 5, 4);
  cublasLtMatrixLayoutCreate(&b, CUDA_R_32F, 6, 3, 6);  // k = 6 ≠ 5
  cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, 4, 3, 4);
  cublasLtMatmulPreference_t pref;
  cublasLtMatmulPreferenceCreate(&pref);
  cublasLtMatmulHeuristicResult_t result;
  int found = -1;
  EXPECT_NE(cublasLtMatmulAlgoGetHeuristic(handle, desc, a, b, c, c, pref, 1, &result, &found),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(found, 0);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(a);
  cublasLtMatrixLayoutDestroy(b);
  cublasLtMatrixLayoutDestroy(c);
  cublasLtMatmulDescDestroy(desc);
  cublasLtDestroy(handle);
}

}  // namespace
}  // namespace smol::gpu_emu

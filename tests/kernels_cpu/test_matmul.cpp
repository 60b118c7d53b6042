// matmul: all four transpose combinations with alpha/beta against a double reference, and
// shape/dtype errors.
#include "tests/kernels_cpu/test_util.h"

namespace smol::test {
namespace {

// c[M,N] = alpha·op(a)·op(b) + beta·c in double. a is stored [M,K] (or [K,M] when ta), b is
// stored [K,N] (or [N,K] when tb).
std::vector<double> matmul_ref(const std::vector<float>& a, const std::vector<float>& b,
                               const std::vector<float>& c, int64_t m, int64_t n, int64_t k,
                               bool ta, bool tb, double alpha, double beta) {
  std::vector<double> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const double av = ta ? a[p * m + i] : a[i * k + p];
        const double bv = tb ? b[j * k + p] : b[p * n + j];
        acc += av * bv;
      }
      out[i * n + j] = alpha * acc + beta * c[i * n + j];
    }
  return out;
}

TEST(CpuMatmul, AllTransposesAlphaBeta) {
  Device dev;
  const int64_t m = 17, n = 13, k = 29;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}}) {
        const auto a = random_floats(m * k, 1), b = random_floats(k * n, 2),
                   c0 = random_floats(m * n, 3);
        Tensor ta_t = dev.f32(ta ? Shape{k, m} : Shape{m, k}, a);
        Tensor tb_t = dev.f32(tb ? Shape{n, k} : Shape{k, n}, b);
        Tensor c = dev.f32({m, n}, c0);
        dev->matmul(c, ta_t, tb_t, ta ? Transpose::Yes : Transpose::No,
                    tb ? Transpose::Yes : Transpose::No, alpha, beta);
        // fp32 sgemm vs double: each dot of k=29 products of O(1) values carries a rounding
        // error ≲ k·2⁻²⁴·Σ|a·b| ≈ 29·6e-8·29 ≈ 5e-5 worst case; typical far smaller.
        expect_near_all(dev.get(c), matmul_ref(a, b, c0, m, n, k, ta, tb, alpha, beta), 5e-5, 1e-5,
                        "matmul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) +
                            " alpha=" + std::to_string(alpha) + " beta=" + std::to_string(beta));
      }
}

TEST(CpuMatmul, BetaZeroIgnoresNanInOutput) {
  Device dev;
  Tensor a = dev.f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = dev.f32({3, 1}, {1, 1, 1});
  Tensor c = dev.f32({2, 1}, {NAN, NAN});
  dev->matmul(c, a, b, Transpose::No, Transpose::No);
  EXPECT_EQ(dev.get(c), (std::vector<float>{6, 15}));
}

TEST(CpuMatmul, RejectsMismatchedShapesAndDtypes) {
  Device dev;
  Tensor a = dev.zeros({4, 3}), b = dev.zeros({4, 5}), c = dev.zeros({4, 5});
  EXPECT_THROW(dev->matmul(c, a, b, Transpose::No, Transpose::No), Error);
  try {
    dev->matmul(c, a, b, Transpose::No, Transpose::No);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4, 3]"), std::string::npos) << e.what();
  }
  Tensor c_ok = dev.zeros({3, 5});
  EXPECT_NO_THROW(dev->matmul(c_ok, a, b, Transpose::Yes, Transpose::No));
  // BF16 is accepted only as the weight operand b (Backend::accepts_bf16_weights;
  // test_bf16_gemm.cpp), never as a or c.
  Tensor bf = dev.zeros({4, 3}, DType::BF16);
  EXPECT_THROW(dev->matmul(c_ok, bf, b, Transpose::Yes, Transpose::No), Error);
}

}  // namespace
}  // namespace smol::test

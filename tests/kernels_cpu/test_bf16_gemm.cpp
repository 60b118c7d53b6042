// The bf16 matmul of training.cpu_precision: bf16 (kernels/cpu/cpu_bf16_gemm.h,
// docs/cpu-speed.md "bf16 on cpu"): both paths (AVX512-BF16 where the CPU has it, and the
// portable one) against a double-precision product of the same bf16-rounded operands, on odd
// shapes, all transposes and alpha/beta; the rounding itself; and the cpu backend's contract
// (BF16 accepted exactly as a weight operand: matmul's b, embedding_forward's table).
#include <cstdlib>
#include <limits>

#include "kernels/cpu/cpu_bf16_gemm.h"
#include "tests/kernels_cpu/test_util.h"

namespace smol::test {
namespace {

using cpu::Bf16Gemm;

// The paths this machine can run: always Generic, Avx512Bf16 when the CPU has it (ignoring
// SMOL_CPU_ISA, which forces only the backend's choice).
std::vector<Bf16Gemm> runnable_paths() {
  std::vector<Bf16Gemm> paths{Bf16Gemm::Generic};
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16"))
    paths.push_back(Bf16Gemm::Avx512Bf16);
  return paths;
}

std::vector<uint16_t> bf16_bits(const std::vector<float>& x) {
  std::vector<uint16_t> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = cpu::round_to_bf16(x[i]);
  return out;
}

TEST(CpuBf16, RoundsToNearestEvenAsTorch) {
  // bf16 keeps 8 significant bits: 1 + 2⁻⁸ is a tie between 1 and 1 + 2⁻⁷ → even (1);
  // 1 + 3·2⁻⁸ is a tie between 1 + 2⁻⁷ and 1 + 2⁻⁶ → even (1 + 2⁻⁶); just above a tie rounds up.
  EXPECT_EQ(cpu::widen_bf16(cpu::round_to_bf16(1.0f + 0x1p-8f)), 1.0f);
  EXPECT_EQ(cpu::widen_bf16(cpu::round_to_bf16(1.0f + 3 * 0x1p-8f)), 1.0f + 0x1p-6f);
  EXPECT_EQ(cpu::widen_bf16(cpu::round_to_bf16(1.0f + 0x1p-8f + 0x1p-20f)), 1.0f + 0x1p-7f);
  EXPECT_EQ(cpu::widen_bf16(cpu::round_to_bf16(-2.5f)), -2.5f);  // exact values stay
  EXPECT_TRUE(std::isnan(cpu::widen_bf16(cpu::round_to_bf16(std::nanf("")))));
  EXPECT_EQ(cpu::widen_bf16(cpu::round_to_bf16(std::numeric_limits<float>::infinity())),
            std::numeric_limits<float>::infinity());
  EXPECT_EQ(cpu::widen_bf16(cpu::round_to_bf16(0x1p-130f)), 0x1p-130f);  // denormal kept
}

struct GemmShape {
  int64_t m, n, k;
};

TEST(CpuBf16, GemmMatchesDoubleOfRoundedOperands) {
  // Odd sizes: M, N, K not multiples of the 8 × 48 tile, K odd (a half-filled last k-pair), K
  // past one 384-pair block, N past one 8-panel column block; 1 × 1 × 1.
  const std::vector<GemmShape> shapes{{1, 1, 1}, {7, 50, 13},   {17, 97, 31},
                                      {9, 5, 2}, {33, 48, 801}, {20, 400, 64}};
  for (const Bf16Gemm path : runnable_paths())
    for (const GemmShape& s : shapes)
      for (bool a_t : {false, true})
        for (bool b_t : {false, true})
          for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}}) {
            const auto a = random_floats(s.m * s.k, 11), b = random_floats(s.k * s.n, 12);
            const auto c0 = random_floats(s.m * s.n, 13);
            const std::vector<uint16_t> b16 = bf16_bits(b);
            std::vector<float> c = c0;
            cpu::Bf16GemmArgs g;
            g.m = s.m, g.n = s.n, g.k = s.k;
            g.a = a.data(), g.lda = a_t ? s.m : s.k, g.a_t = a_t;
            g.b = b16.data(), g.ldb = b_t ? s.k : s.n, g.b_t = b_t;
            g.c = c.data(), g.ldc = s.n, g.alpha = alpha, g.beta = beta;
            cpu::gemm_bf16(path, g);
            double worst = 0;  // largest error / bound
            for (int64_t i = 0; i < s.m; ++i)
              for (int64_t j = 0; j < s.n; ++j) {
                double dot = 0, magnitude = 0;
                for (int64_t p = 0; p < s.k; ++p) {
                  const double av =
                      cpu::widen_bf16(cpu::round_to_bf16(a_t ? a[p * s.m + i] : a[i * s.k + p]));
                  const double bv = cpu::widen_bf16(b_t ? b16[j * s.k + p] : b16[p * s.n + j]);
                  dot += av * bv;  // each product of two bf16 values is exact in fp32
                  magnitude += std::abs(av * bv);
                }
                const double expected = alpha * dot + beta * c0[i * s.n + j];
                // fp32 summation of k exact products, then alpha· and +beta·c: each of the ≤ k+2
                // roundings adds ≤ 2⁻²⁴ of a partial sum ≤ Σ|a||b| (scaled), so
                // |err| ≤ (k+2)·2⁻²⁴·(|alpha|·Σ|a||b| + |beta·c|).
                const double bound =
                    (s.k + 2) * 0x1p-24 *
                        (std::abs(alpha) * magnitude + std::abs(beta * c0[i * s.n + j])) +
                    1e-30;
                worst = std::max(worst, std::abs(c[i * s.n + j] - expected) / bound);
              }
            EXPECT_LE(worst, 1.0) << cpu::bf16_gemm_name(path) << " " << s.m << "x" << s.n << "x"
                                  << s.k << " a_t=" << a_t << " b_t=" << b_t << " alpha=" << alpha
                                  << " beta=" << beta;
          }
}

TEST(CpuBf16, BetaZeroIgnoresNanInOutputAndBetaOneAccumulates) {
  for (const Bf16Gemm path : runnable_paths()) {
    const std::vector<float> a{1, 2, 3, 4, 5, 6};                       // [2, 3]
    const std::vector<uint16_t> b = bf16_bits({1, 0, -1, 2, 0.5f, 1});  // [3, 2]
    std::vector<float> c(4, std::nanf(""));
    cpu::Bf16GemmArgs g;
    g.m = 2, g.n = 2, g.k = 3, g.a = a.data(), g.lda = 3, g.b = b.data(), g.ldb = 2;
    g.c = c.data(), g.ldc = 2;
    cpu::gemm_bf16(path, g);  // small integers and halves: exact in bf16 and fp32
    EXPECT_EQ(c, (std::vector<float>{0.5f, 7.0f, 2.0f, 16.0f})) << cpu::bf16_gemm_name(path);
    g.beta = 1.0f;
    cpu::gemm_bf16(path, g);
    EXPECT_EQ(c, (std::vector<float>{1.0f, 14.0f, 4.0f, 32.0f})) << cpu::bf16_gemm_name(path);
  }
}

// A cpu backend built with SMOL_CPU_ISA set (restored afterwards): the backend reads it once.
std::unique_ptr<Backend> backend_with_isa(const char* isa) {
  const char* old = std::getenv("SMOL_CPU_ISA");
  const std::string saved = old ? old : "";
  if (isa)
    setenv("SMOL_CPU_ISA", isa, 1);
  else
    unsetenv("SMOL_CPU_ISA");
  std::unique_ptr<Backend> backend = make_cpu_backend();
  if (old)
    setenv("SMOL_CPU_ISA", saved.c_str(), 1);
  else
    unsetenv("SMOL_CPU_ISA");
  return backend;
}

TEST(CpuBf16, BackendMatmulWithBf16WeightOnBothPaths) {
  // y = x·Wᵀ and dx += dy·W with W BF16, as the LoRA step runs them; the forced-generic backend
  // and the default one (AVX512-BF16 here when the CPU has it) agree within fp32 summation order.
  const int64_t t = 37, in = 70, out = 53;
  const auto x = random_floats(t * in, 21), w = random_floats(out * in, 22);
  const auto dy = random_floats(t * out, 23), dx0 = random_floats(t * in, 24);
  std::vector<std::vector<float>> ys, dxs;
  for (const char* isa : {"generic", static_cast<const char*>(nullptr)}) {
    std::unique_ptr<Backend> be = backend_with_isa(isa);
    Buffer xb = be->allocate(t * in * 4), wb = be->allocate(out * in * 2);
    Buffer yb = be->allocate(t * out * 4), dyb = be->allocate(t * out * 4);
    Buffer dxb = be->allocate(t * in * 4), w32 = be->allocate(out * in * 4);
    const Tensor xt = xb.view(DType::F32, {t, in}), wt = wb.view(DType::BF16, {out, in});
    const Tensor yt = yb.view(DType::F32, {t, out}), dyt = dyb.view(DType::F32, {t, out});
    const Tensor dxt = dxb.view(DType::F32, {t, in}), w32t = w32.view(DType::F32, {out, in});
    be->upload(xt, x.data());
    be->upload(w32t, w.data());
    be->copy(wt, w32t);  // F32 → BF16, nearest even
    be->upload(dyt, dy.data());
    be->upload(dxt, dx0.data());
    be->matmul(yt, xt, wt, Transpose::No, Transpose::Yes);
    be->matmul(dxt, dyt, wt, Transpose::No, Transpose::No, 1.0f, 1.0f);
    std::vector<float> y(t * out), dx(t * in);
    be->download(y.data(), yt);
    be->download(dx.data(), dxt);
    ys.push_back(y);
    dxs.push_back(dx);
  }
  // Both equal the double product of the same rounded operands within (k+2)·2⁻²⁴·Σ|a||b|;
  // with |a|, |b| ≤ 1: ≤ (70+2)·6e-8·70 ≈ 3e-4 for y and (53+2)·6e-8·(53+1) ≈ 2e-4 for dx, so
  // the two paths differ by at most twice that.
  for (size_t i = 0; i < ys[0].size(); ++i) ASSERT_NEAR(ys[0][i], ys[1][i], 6e-4) << i;
  for (size_t i = 0; i < dxs[0].size(); ++i) ASSERT_NEAR(dxs[0][i], dxs[1][i], 4e-4) << i;
  // And not the fp32 product: x is rounded to bf16 (relative 2⁻⁹), so y moves by ~1e-2.
  double fp32_gap = 0;
  for (int64_t i = 0; i < t; ++i) {
    double dot = 0;
    for (int64_t p = 0; p < in; ++p) dot += static_cast<double>(x[i * in + p]) * w[p];
    fp32_gap = std::max(fp32_gap, std::abs(dot - ys[0][i * out]));
  }
  EXPECT_GT(fp32_gap, 1e-4);
}

TEST(CpuBf16, BackendAcceptsBf16OnlyAsAWeight) {
  Device dev;
  Tensor a32 = dev.zeros({4, 6}), c32 = dev.zeros({4, 5});
  Tensor w16 = dev.zeros({5, 6}, DType::BF16), a16 = dev.zeros({4, 6}, DType::BF16);
  Tensor c16 = dev.zeros({4, 5}, DType::BF16);
  EXPECT_TRUE(dev->accepts_bf16_weights());
  EXPECT_NO_THROW(dev->matmul(c32, a32, w16, Transpose::No, Transpose::Yes));
  EXPECT_THROW(dev->matmul(c32, a16, w16, Transpose::No, Transpose::Yes), Error);  // a
  EXPECT_THROW(dev->matmul(c16, a32, w16, Transpose::No, Transpose::Yes), Error);  // c
  Tensor y16 = dev.zeros({4, 6}, DType::BF16);
  EXPECT_THROW(dev->axpy(y16, a32, 1.0f), Error);  // every other op stays F32
  // embedding_forward with a BF16 table: the rows widened exactly.
  Tensor table32 = dev.f32({3, 2}, {1.5f, -2.0f, 0.1f, 3.0f, 7.0f, -0.25f});
  Tensor table16 = dev.zeros({3, 2}, DType::BF16), out = dev.zeros({2, 2});
  dev->copy(table16, table32);
  dev->embedding_forward(out, dev.i32({2}, {2, 1}), table16);
  EXPECT_EQ(dev.get(out),
            (std::vector<float>{7.0f, -0.25f, cpu::widen_bf16(cpu::round_to_bf16(0.1f)), 3.0f}));
  Tensor dtable16 = dev.zeros({3, 2}, DType::BF16);
  EXPECT_THROW(dev->embedding_backward(dtable16, out, dev.i32({2}, {0, 1})), Error);
}

}  // namespace
}  // namespace smol::test

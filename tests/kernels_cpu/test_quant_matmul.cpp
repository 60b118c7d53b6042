// matmul_quantized on cpu (kernels/cpu/cpu_quant_matmul.h): every format against
// dequantise-then-fp32 within the activation's int8 rounding, the SIMD kernels against the
// scalar reference bit for bit, T = 1 against T > 1 row by row, the sgemm path for large T, and
// the op's contract.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/cpu_quant_matmul.h"
#include "test_util.h"

namespace smol::test {
namespace {

using cpu::ActBlock;
using cpu::QuantIsa;

// A random half in [2^-10, 2^-6): typical weight-block scales.
uint16_t random_half(std::mt19937& rng) {
  return static_cast<uint16_t>(((5 + rng() % 4) << 10) | (rng() % 1024));
}

// rows × cols of random blocks of `format` (every byte random except the fp16 scales, which
// stay finite and in a realistic range).
// Q4_1_R2 (Q4_1 in block pairs) is made from random Q4_1 blocks by the loader's repacking.
std::vector<uint8_t> random_blocks(QuantFormat format, int64_t rows, int64_t cols, uint32_t seed) {
  if (format == QuantFormat::Q4_1_R2) {
    const std::vector<uint8_t> q4_1 = random_blocks(QuantFormat::Q4_1, rows, cols, seed);
    std::vector<uint8_t> paired(q4_1.size());
    repack_q4_1_pairs(q4_1.data(), rows, cols, paired.data());
    return paired;
  }
  std::mt19937 rng(seed);
  const QuantFormatTraits t = quant_format_traits(format);
  const int64_t blocks = rows * cols / t.block_elems;
  std::vector<uint8_t> bytes(static_cast<size_t>(blocks * t.block_bytes));
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  for (int64_t i = 0; i < blocks; ++i) {
    uint8_t* block = bytes.data() + i * t.block_bytes;
    const uint16_t d = random_half(rng), m = random_half(rng) | 0x8000;  // negative min
    std::memcpy(block, &d, 2);
    if (format == QuantFormat::Q4_1 || format == QuantFormat::Q4_K) std::memcpy(block + 2, &m, 2);
    if (format == QuantFormat::Q4_K) {
      const uint16_t dmin = random_half(rng);
      std::memcpy(block + 2, &dmin, 2);
    }
  }
  return bytes;
}

std::vector<float> dequantized(const QuantMatrix& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r)
    dequantize_quant_row(w.format, w.row(r), out.data() + r * w.cols, w.cols);
  return out;
}

std::vector<float> random_activations(int64_t T, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(T * K));
  for (float& v : x) v = normal(rng);
  for (int64_t k = 0; k < K; k += 37) x[k] *= 20.0f;  // outliers, as real activations have
  return x;
}

std::vector<float> run_kernel(QuantIsa isa, const QuantMatrix& w, const std::vector<float>& x,
                              int64_t T) {
  std::vector<ActBlock> xq;
  cpu::quantize_activations(x.data(), T, w.cols, xq);
  std::vector<float> y(static_cast<size_t>(T * w.rows), -1.0f);
  cpu::quant_rows_kernel(isa)(w, xq.data(), T, 0, w.rows, y.data(), w.rows);
  return y;
}

std::vector<QuantIsa> isas_here() {
  std::vector<QuantIsa> isas{QuantIsa::Generic};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    isas.push_back(QuantIsa::Avx2);
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && isas.size() == 2)
    isas.push_back(QuantIsa::Avx512Vnni);
  return isas;
}

// Q4_1_R2 needs a multiple of 64 columns: 544 → 576 (18 blocks: 16 in groups of 8 and a tail
// of 2), 800 → 832 (26: 24 and 2), 256 stays (8: one group, no tail).
int64_t cols_for(QuantFormat format, int64_t cols) {
  return format == QuantFormat::Q4_1_R2 ? (cols + 63) / 64 * 64 : cols;
}

class QuantMatmulFormat : public ::testing::TestWithParam<QuantFormat> {};

TEST_P(QuantMatmulFormat, EqualsDequantizedMatmulWithinActivationRounding) {
  const QuantFormat format = GetParam();
  // An odd number of 32-blocks per row (the kernels' tail block) where the format allows.
  const int64_t N = 37, K = cols_for(format, format == QuantFormat::Q4_K ? 512 : 544), T = 5;
  const std::vector<uint8_t> bytes = random_blocks(format, N, K, 11);
  const QuantMatrix w{format, N, K, bytes.data()};
  const std::vector<float> wf = dequantized(w), x = random_activations(T, K, 12);
  for (QuantIsa isa : isas_here()) {
    const std::vector<float> y = run_kernel(isa, w, x, T);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t n = 0; n < N; ++n) {
        double exact = 0, bound = 0, magnitude = 0;
        for (int64_t b = 0; b < K / 32; ++b) {
          float amax = 0;
          for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[t * K + b * 32 + j]));
          double wsum = 0;
          for (int j = 0; j < 32; ++j) {
            const int64_t k = b * 32 + j;
            exact += static_cast<double>(x[t * K + k]) * wf[n * K + k];
            wsum += std::fabs(wf[n * K + k]);
            magnitude += std::fabs(static_cast<double>(x[t * K + k]) * wf[n * K + k]);
          }
          // x rounds to d·q with d = max|x|/127 and |x − d·q| ≤ d/2 in every block, so
          // |Δy| ≤ Σ_blocks d/2 · Σ|w|.
          bound += amax / 127.0 / 2.0 * wsum;
        }
        // Plus fp32 arithmetic (scales, lanes, sums): a few ulps of Σ|x·w|.
        bound += 1e-5 * magnitude;
        EXPECT_NEAR(y[t * N + n], exact, bound)
            << quant_format_traits(format).name << " " << cpu::quant_isa_name(isa) << " t " << t
            << " n " << n;
      }
    }
  }
}

TEST_P(QuantMatmulFormat, SimdKernelsEqualScalarReferenceBitForBit) {
  const QuantFormat format = GetParam();
  // 25 blocks: a tail
  const int64_t N = 19, K = cols_for(format, format == QuantFormat::Q4_K ? 768 : 800), T = 6;
  const std::vector<uint8_t> bytes = random_blocks(format, N, K, 21);
  const QuantMatrix w{format, N, K, bytes.data()};
  const std::vector<float> x = random_activations(T, K, 22);
  const std::vector<float> reference = run_kernel(QuantIsa::Generic, w, x, T);
  for (QuantIsa isa : isas_here()) {
    // Integer dot products are exact and every fp32 operation happens in the same order in
    // all kernels (cpu_quant_simd.inc, cpu_quant_scalar.cpp): equal bits, not a tolerance.
    const std::vector<float> y = run_kernel(isa, w, x, T);
    for (size_t i = 0; i < y.size(); ++i)
      ASSERT_EQ(y[i], reference[i]) << cpu::quant_isa_name(isa) << " element " << i;
  }
}

TEST_P(QuantMatmulFormat, BatchedRowsEqualSingleRows) {
  const QuantFormat format = GetParam();
  const int64_t N = 23, K = 256, T = 7;  // T = 7: one tile of 4 and a tail of 3
  const std::vector<uint8_t> bytes = random_blocks(format, N, K, 31);
  const QuantMatrix w{format, N, K, bytes.data()};
  const std::vector<float> x = random_activations(T, K, 32);
  for (QuantIsa isa : isas_here()) {
    const std::vector<float> batched = run_kernel(isa, w, x, T);
    for (int64_t t = 0; t < T; ++t) {
      const std::vector<float> row(x.begin() + t * K, x.begin() + (t + 1) * K);
      const std::vector<float> single = run_kernel(isa, w, row, 1);
      for (int64_t n = 0; n < N; ++n)
        ASSERT_EQ(batched[t * N + n], single[n]) << cpu::quant_isa_name(isa) << " t " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantMatmulFormat,
                         ::testing::Values(QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1,
                                           QuantFormat::Q4_K, QuantFormat::Q4_1_R2),
                         [](const auto& info) {
                           return info.param == QuantFormat::Q4_1_R2
                                      ? std::string("Q4_1_R2")
                                      : std::string(quant_format_traits(info.param).name);
                         });

// The repacking (kernels/quant_matrix.h) keeps every value: Q4_1_R2 dequantises to Q4_1's bits;
// and its kernel equals the Q4_1 kernel up to the order of the min terms' fp32 sums (a few
// ulps of Σ|m·d·Σq| — 1e-6 of Σ|x·w| is ample), on rows with and without a tail group.
TEST(QuantMatmulPairs, RepackedQ4_1KeepsTheValuesAndTheProducts) {
  for (const int64_t K : {64, 256, 576, 1536}) {
    const int64_t N = 9, T = 3;
    const std::vector<uint8_t> q4_1 = random_blocks(QuantFormat::Q4_1, N, K, 71);
    std::vector<uint8_t> paired(q4_1.size());
    repack_q4_1_pairs(q4_1.data(), N, K, paired.data());
    const QuantMatrix a{QuantFormat::Q4_1, N, K, q4_1.data()};
    const QuantMatrix b{QuantFormat::Q4_1_R2, N, K, paired.data()};
    const std::vector<float> wa = dequantized(a), wb = dequantized(b);
    ASSERT_EQ(std::memcmp(wa.data(), wb.data(), wa.size() * sizeof(float)), 0) << "K " << K;
    const std::vector<float> x = random_activations(T, K, 72);
    for (QuantIsa isa : isas_here()) {
      const std::vector<float> ya = run_kernel(isa, a, x, T), yb = run_kernel(isa, b, x, T);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t n = 0; n < N; ++n) {
          double magnitude = 0;
          for (int64_t k = 0; k < K; ++k)
            magnitude += std::fabs(static_cast<double>(x[t * K + k]) * wa[n * K + k]);
          ASSERT_NEAR(yb[t * N + n], ya[t * N + n], 1e-6 * magnitude)
              << cpu::quant_isa_name(isa) << " K " << K << " t " << t << " n " << n;
        }
    }
  }
  // The op refuses block pairs on a row that is not whole pairs.
  Device dev;
  const std::vector<uint8_t> bytes = random_blocks(QuantFormat::Q4_1, 2, 96, 73);
  const QuantMatrix odd{QuantFormat::Q4_1_R2, 2, 96, bytes.data()};
  EXPECT_THROW(dev->matmul_quantized(dev.zeros(Shape{1, 2}), dev.zeros(Shape{1, 96}), odd), Error);
}

TEST(QuantMatmulOp, BackendOpMatchesKernelAndSgemmPathForManyRows) {
  Device dev;
  const int64_t N = 40, K = 256;
  const std::vector<uint8_t> bytes = random_blocks(QuantFormat::Q4_1, N, K, 41);
  const QuantMatrix w{QuantFormat::Q4_1, N, K, bytes.data()};
  ASSERT_TRUE(dev->supports_quantized(QuantFormat::Q4_K));
  // Few rows: the int8 kernel the backend chose (detect_quant_isa), bit-equal to the scalar one.
  {
    const int64_t T = 3;
    const std::vector<float> x = random_activations(T, K, 42);
    const Tensor y = dev.zeros(Shape{T, N});
    dev->matmul_quantized(y, dev.f32(Shape{T, K}, x), w);
    std::vector<float> got(static_cast<size_t>(T * N));
    dev->download(got.data(), y);
    EXPECT_EQ(got, run_kernel(QuantIsa::Generic, w, x, T));
  }
  // Many rows: dequantised tiles through sgemm, equal to fp32 matmul of the dequantised W up
  // to sgemm's summation order (K = 256 terms: 1e-5 relative to Σ|x·w| is ample).
  {
    const int64_t T = cpu::kQuantSgemmMinRows + 3;
    const std::vector<float> x = random_activations(T, K, 43);
    const std::vector<float> wf = dequantized(w);
    const Tensor y = dev.zeros(Shape{T, N});
    dev->matmul_quantized(y, dev.f32(Shape{T, K}, x), w);
    std::vector<float> got(static_cast<size_t>(T * N));
    dev->download(got.data(), y);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) {
        double exact = 0, magnitude = 0;
        for (int64_t k = 0; k < K; ++k) {
          exact += static_cast<double>(x[t * K + k]) * wf[n * K + k];
          magnitude += std::fabs(static_cast<double>(x[t * K + k]) * wf[n * K + k]);
        }
        ASSERT_NEAR(got[t * N + n], exact, 1e-5 * magnitude) << "t " << t << " n " << n;
      }
  }
}

TEST(QuantMatmulOp, GroupOfMatricesEqualsSingleCalls) {
  Device dev;
  const int64_t K = 256, T = 2;
  const std::vector<uint8_t> q = random_blocks(QuantFormat::Q4_1, 70, K, 61),
                             k = random_blocks(QuantFormat::Q8_0, 33, K, 62),
                             v = random_blocks(QuantFormat::Q4_K, 5, K, 63);
  const std::array<QuantMatrix, 3> ws{QuantMatrix{QuantFormat::Q4_1, 70, K, q.data()},
                                      QuantMatrix{QuantFormat::Q8_0, 33, K, k.data()},
                                      QuantMatrix{QuantFormat::Q4_K, 5, K, v.data()}};
  const Tensor x = dev.f32(Shape{T, K}, random_activations(T, K, 64));
  std::array<Tensor, 3> grouped, single;
  for (size_t i = 0; i < 3; ++i) {
    grouped[i] = dev.zeros(Shape{T, ws[i].rows});
    single[i] = dev.zeros(Shape{T, ws[i].rows});
    dev->matmul_quantized(single[i], x, ws[i]);
  }
  dev->matmul_quantized(grouped, x, ws);
  for (size_t i = 0; i < 3; ++i) {
    std::vector<float> a(static_cast<size_t>(T * ws[i].rows)), b(a.size());
    dev->download(a.data(), grouped[i]);
    dev->download(b.data(), single[i]);
    EXPECT_EQ(a, b) << "matrix " << i;  // same int8 x, same kernel: equal bits
  }
  EXPECT_THROW(dev->matmul_quantized(std::span<const Tensor>(grouped.data(), 2), x, ws), Error);
}

TEST(QuantMatmulOp, ContractViolationsThrow) {
  Device dev;
  const std::vector<uint8_t> bytes = random_blocks(QuantFormat::Q8_0, 4, 64, 51);
  const QuantMatrix w{QuantFormat::Q8_0, 4, 64, bytes.data()};
  const Tensor x = dev.zeros(Shape{2, 64});
  EXPECT_THROW(dev->matmul_quantized(dev.zeros(Shape{2, 5}), x, w), Error);  // y cols ≠ N
  EXPECT_THROW(dev->matmul_quantized(dev.zeros(Shape{2, 4}), dev.zeros(Shape{2, 32}), w), Error);
  const QuantMatrix ragged{QuantFormat::Q8_0, 4, 48, bytes.data()};  // 48 % 32 ≠ 0
  EXPECT_THROW(dev->matmul_quantized(dev.zeros(Shape{2, 4}), dev.zeros(Shape{2, 48}), ragged),
               Error);
  const QuantMatrix null_blocks{QuantFormat::Q8_0, 4, 64, nullptr};
  EXPECT_THROW(dev->matmul_quantized(dev.zeros(Shape{2, 4}), x, null_blocks), Error);
}

TEST(QuantMatmulOp, IsaEnvironmentVariableSelectsOrRefuses) {
  const char* saved = std::getenv("SMOL_CPU_ISA");
  const std::string restore = saved ? saved : "";
  setenv("SMOL_CPU_ISA", "generic", 1);
  EXPECT_EQ(cpu::detect_quant_isa(), QuantIsa::Generic);
  setenv("SMOL_CPU_ISA", "sse9", 1);
  EXPECT_THROW(cpu::detect_quant_isa(), Error);
  if (saved)
    setenv("SMOL_CPU_ISA", restore.c_str(), 1);
  else
    unsetenv("SMOL_CPU_ISA");
}

}  // namespace
}  // namespace smol::test
